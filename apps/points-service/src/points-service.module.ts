import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { describeDatabase, SampleDatabase, type ClientHistory } from '../../shared/src/index.js';
import type { PointsServiceConfig } from './config.js';
import { POINTS_ENTITIES } from './entities.js';
import { POINTS_MIGRATIONS, POINTS_MIGRATIONS_TABLE } from './migrations.js';
import { OrderEventsController } from './order-events.controller.js';
import { PointsController } from './points.controller.js';
import { PointsService } from './points.service.js';

export const POINTS_SERVICE_CONFIG = Symbol('POINTS_SERVICE_CONFIG');
export const CLIENT_HISTORY = Symbol('CLIENT_HISTORY');

/**
 * Closes what the module owns, in order, after Nest has closed the NSQ server (its handlers
 * have finished) and the HTTP listener: the history recorder, then the database.
 */
@Injectable()
export class PointsServiceLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('points-service');

  constructor(
    @Inject(POINTS_SERVICE_CONFIG) private readonly config: PointsServiceConfig,
    @Inject(SampleDatabase) private readonly db: SampleDatabase,
    @Inject(CLIENT_HISTORY) private readonly history: ClientHistory | null,
  ) {}

  onApplicationBootstrap(): void {
    const from = [
      ...(this.config.lookupdHTTPAddresses ? [`nsqlookupd ${this.config.lookupdHTTPAddresses.join(', ')}`] : []),
      ...(this.config.nsqdTCPAddresses ? [`nsqd ${this.config.nsqdTCPAddresses.join(', ')}`] : []),
    ];
    this.logger.log(`database ${describeDatabase(this.config.db)}; consuming order.created through ${from.join(' and ')}`);
  }

  async onApplicationShutdown(): Promise<void> {
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

/** points-service: HTTP (GET /users/:id/points) plus the order.created handlers (connected as an NsqServer by main.ts). */
@Module({})
export class PointsServiceModule {
  static forRoot(config: PointsServiceConfig, history?: ClientHistory): DynamicModule {
    const logger = new Logger('database');
    return {
      module: PointsServiceModule,
      controllers: [PointsController, OrderEventsController],
      providers: [
        { provide: POINTS_SERVICE_CONFIG, useValue: config },
        { provide: CLIENT_HISTORY, useValue: history ?? null },
        {
          provide: SampleDatabase,
          useFactory: () =>
            SampleDatabase.open({
              connection: config.db,
              entities: POINTS_ENTITIES,
              migrations: POINTS_MIGRATIONS,
              migrationsTableName: POINTS_MIGRATIONS_TABLE,
              onRetry: (err, attempt) => logger.warn(`cannot reach ${describeDatabase(config.db)} (attempt ${attempt}): ${err.message}; retrying`),
            }),
        },
        PointsService,
        PointsServiceLifecycle,
      ],
    };
  }
}
