import { Module } from '@nestjs/common';
import type { DynamicModule, Provider } from '@nestjs/common';
import type { BrokerConfig } from './flags.js';
import { BROKER_CONFIG, BrokerLifecycle, NsqdHost, NsqlookupdHost } from './broker.hosts.js';

/** Hosts the servers of `config.role`; they start on application bootstrap and close on shutdown. */
@Module({})
export class BrokerModule {
  static forRoot(config: BrokerConfig): DynamicModule {
    const hosts: Provider[] = [];
    if (config.role !== 'nsqd') hosts.push(NsqlookupdHost);
    if (config.role !== 'lookupd') hosts.push(NsqdHost);
    return {
      module: BrokerModule,
      providers: [{ provide: BROKER_CONFIG, useValue: config }, ...hosts, BrokerLifecycle],
      exports: [BROKER_CONFIG, ...hosts],
    };
  }
}
