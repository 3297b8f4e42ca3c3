import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { NsqClient } from './client/nsq.client.js';
import { NsqBroker } from './nsq.broker.js';
import { NSQ_MODULE_OPTIONS, NsqConfigurableModule, type NsqModuleOptions } from './nsq.module-definition.js';

/**
 * Provides NsqClient and NsqBroker configured once for the app:
 * `NsqModule.forRoot({ nsqdTCPAddresses: ['127.0.0.1:4150'] })`, or forRootAsync with a factory
 * (ConfigService). On shutdown it closes the broker's subscriptions, then the client.
 */
@Module({
  providers: [
    { provide: NsqClient, useFactory: (options: NsqModuleOptions) => new NsqClient(options), inject: [NSQ_MODULE_OPTIONS] },
    NsqBroker,
  ],
  exports: [NsqClient, NsqBroker],
})
export class NsqModule extends NsqConfigurableModule implements OnApplicationShutdown {
  constructor(
    @Inject(NsqBroker) private readonly broker: NsqBroker,
    @Inject(NsqClient) private readonly client: NsqClient,
  ) {
    super();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.broker.close();
    await this.client.close();
  }
}
