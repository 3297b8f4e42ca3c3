import { Module } from '@nestjs/common';
import type { DynamicModule, Provider } from '@nestjs/common';
import type { BrokerConfig } from './flags.js';
import { BROKER_CONFIG, BrokerLifecycle, NsqdHost, NsqlookupdHost } from './broker.hosts.js';
import { HistoryHost } from './history.host.js';
import { AdminController } from './admin/admin.controller.js';
import { AdminService } from './admin/admin.service.js';

/**
 * Hosts the servers of `config.role`, the message history and the admin API; they start on
 * application bootstrap and close on shutdown. The admin controller is mounted only when main
 * serves HTTP (`config.admin.address`).
 */
@Module({})
export class BrokerModule {
  static forRoot(config: BrokerConfig): DynamicModule {
    const hosts: Provider[] = [];
    if (config.role !== 'nsqd') hosts.push(NsqlookupdHost);
    if (config.role !== 'lookupd') hosts.push(NsqdHost);
    if (config.history?.db) hosts.push(HistoryHost);
    const admin = config.admin.address !== undefined;
    return {
      module: BrokerModule,
      controllers: admin ? [AdminController] : [],
      providers: [{ provide: BROKER_CONFIG, useValue: config }, ...hosts, BrokerLifecycle, ...(admin ? [AdminService] : [])],
      exports: [BROKER_CONFIG, ...hosts],
    };
  }
}
