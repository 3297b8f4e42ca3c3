import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { NsqClient } from '../../../libs/nest-nsq/src/index.js';
import { describeDatabase, SampleDatabase, type ClientHistory } from '../../shared/src/index.js';
import type { OrderServiceConfig } from './config.js';
import { ORDER_ENTITIES } from './entities.js';
import { ORDER_MIGRATIONS, ORDER_MIGRATIONS_TABLE } from './migrations.js';
import { OrdersController } from './orders.controller.js';
import { OrdersService } from './orders.service.js';
import { OutboxRelay } from './outbox.relay.js';
import { OutboxSubscriber } from './outbox.subscriber.js';

export const ORDER_SERVICE_CONFIG = Symbol('ORDER_SERVICE_CONFIG');
export const CLIENT_HISTORY = Symbol('CLIENT_HISTORY');

/**
 * Start and stop order in one place (Nest runs one module's hooks concurrently): the relay starts
 * once everything is built; on shutdown it stops first, then the NSQ client, the history
 * recorder and the database.
 */
@Injectable()
export class OrderServiceLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('order-service');

  constructor(
    @Inject(ORDER_SERVICE_CONFIG) private readonly config: OrderServiceConfig,
    @Inject(SampleDatabase) private readonly db: SampleDatabase,
    @Inject(NsqClient) private readonly client: NsqClient,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
    @Inject(CLIENT_HISTORY) private readonly history: ClientHistory | null,
  ) {}

  onApplicationBootstrap(): void {
    this.relay.start();
    this.logger.log(`database ${describeDatabase(this.config.db)}; publishing order.created to nsqd ${this.config.nsqdTCPAddresses.join(', ')}`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.step('outbox relay', () => this.relay.close());
    await this.step('NSQ client', () => this.client.close());
    if (this.history) await this.step('message history', () => this.history!.close());
    await this.step('database', () => this.db.close());
  }

  private async step(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.logger.error(`${name} did not close cleanly: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** order-service: POST /orders → order + outbox row in one transaction → OutboxRelay → emit('order.created'). */
@Module({})
export class OrderServiceModule {
  static forRoot(config: OrderServiceConfig, history?: ClientHistory): DynamicModule {
    const logger = new Logger('database');
    return {
      module: OrderServiceModule,
      controllers: [OrdersController],
      providers: [
        { provide: ORDER_SERVICE_CONFIG, useValue: config },
        { provide: CLIENT_HISTORY, useValue: history ?? null },
        {
          provide: SampleDatabase,
          useFactory: () =>
            SampleDatabase.open({
              connection: config.db,
              entities: ORDER_ENTITIES,
              migrations: ORDER_MIGRATIONS,
              subscribers: [OutboxSubscriber],
              migrationsTableName: ORDER_MIGRATIONS_TABLE,
              onRetry: (err, attempt) => logger.warn(`cannot reach ${describeDatabase(config.db)} (attempt ${attempt}): ${err.message}; retrying`),
            }),
        },
        {
          provide: NsqClient,
          useFactory: () => new NsqClient({ nsqdTCPAddresses: config.nsqdTCPAddresses, ...(history ? { hooks: history.hooks } : {}) }),
        },
        {
          provide: OutboxRelay,
          useFactory: (db: SampleDatabase, client: NsqClient) => new OutboxRelay(db, client, new Logger('OutboxRelay'), config.relay),
          inject: [SampleDatabase, NsqClient],
        },
        OrdersService,
        OrderServiceLifecycle,
      ],
    };
  }
}
