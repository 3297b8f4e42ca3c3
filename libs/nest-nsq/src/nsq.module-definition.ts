import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { NsqClientOptions, NsqSubscriptionOptions } from './interfaces.js';

export interface NsqModuleOptions extends NsqClientOptions {
  /** Defaults for NsqBroker.subscribe() (channel, maxInFlight, maxAttempts, …). */
  subscription?: NsqSubscriptionOptions;
  /** ms NsqBroker's subscriptions wait for running handlers on shutdown. Default 10 000. */
  closeTimeout?: number;
}

export const {
  ConfigurableModuleClass: NsqConfigurableModule,
  MODULE_OPTIONS_TOKEN: NSQ_MODULE_OPTIONS,
  OPTIONS_TYPE: NSQ_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: NSQ_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<NsqModuleOptions>({ moduleName: 'Nsq' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
