import { Inject, Injectable } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import {
  buildHistoryDataSource,
  HistoryJournal,
  HistoryQueryService,
  HistoryRecorder,
  recordNsqdEvents,
  type HistoryRecorderStats,
} from '../../../libs/message-history/src/index.js';
import type { NSQD } from '../../../libs/nsq/src/index.js';
import { NestNsqLogger } from '../../../libs/nest-nsq/src/nest-logger.js';
import { BROKER_CONFIG } from './broker.tokens.js';
import type { BrokerConfig, BrokerHistoryConfig } from './flags.js';

export const HISTORY_LOG_CONTEXT = 'history';

/**
 * sql.js writes the whole database file on every commit, so the embedded database gets fewer,
 * larger batches; MySQL takes a batch every 100 ms (the recorder's default).
 */
const SQLJS_FLUSH_INTERVAL_MS = 500;

/**
 * Owns the broker's message history: the DataSource, the recorder fed by the nsqd's lifecycle
 * events, and the query service the admin API reads with. The database need not be reachable at
 * start: the recorder spools until it is, and queries answer 503 meanwhile.
 */
@Injectable()
export class HistoryHost {
  readonly config: BrokerHistoryConfig;
  readonly dataSource: DataSource;
  readonly recorder: HistoryRecorder;
  readonly query: HistoryQueryService;
  /** In front of the recorder unless --history-journal=false. */
  readonly journal: HistoryJournal | undefined;
  private unsubscribe: (() => void) | undefined;
  private started = false;
  private connecting: Promise<boolean> | undefined;

  constructor(@Inject(BROKER_CONFIG) brokerConfig: BrokerConfig) {
    const config = brokerConfig.history;
    if (!config?.db) throw new Error('HistoryHost needs a history database (history is off)');
    this.config = config;
    this.dataSource = buildHistoryDataSource(config.db);
    this.recorder = new HistoryRecorder(this.dataSource, {
      spoolPath: config.spoolPath,
      storeBodies: config.storeBodies,
      maxBodySize: config.maxBodySize,
      retention: config.retention,
      ...(config.db.type === 'sqljs' ? { flushInterval: SQLJS_FLUSH_INTERVAL_MS } : {}),
      logger: new NestNsqLogger(HISTORY_LOG_CONTEXT),
    });
    this.query = new HistoryQueryService(this.dataSource);
    this.journal = config.journal ? new HistoryJournal(this.recorder, { path: `${config.spoolPath}.journal` }) : undefined;
  }

  get backend(): 'mysql' | 'mariadb' | 'sqljs' {
    return this.config.db!.type;
  }

  /** Where the history goes, without credentials, for the ready line. */
  describe(): string {
    const db = this.config.db!;
    return db.type === 'sqljs' ? `sqljs ${db.location}` : `${db.type} ${db.host ?? '127.0.0.1'}:${db.port ?? 3306}/${db.database}`;
  }

  /** Connected and migrated: queries can run. */
  get databaseReady(): boolean {
    return this.recorder.databaseReady && this.dataSource.isInitialized;
  }

  /** Waits up to `ms` for the first connection attempt (started at start()); true when queries can run. */
  async waitReady(ms: number): Promise<boolean> {
    if (this.databaseReady || !this.connecting) return this.databaseReady;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    await Promise.race([this.connecting, bound]);
    clearTimeout(timer);
    return this.databaseReady;
  }

  stats(): HistoryRecorderStats {
    return this.journal?.stats() ?? this.recorder.stats();
  }

  /** Opens the spool (replaying what a previous run left) and subscribes to the started nsqd. */
  async start(nsqd: NSQD): Promise<void> {
    // the journal starts the recorder, then replays what a killed broker left in it
    await (this.journal ?? this.recorder).start();
    this.started = true;
    // connect now, not at the first event: the admin API reads through the same DataSource, and a
    // bad database shows in the log at start (the broker still starts; the recorder spools)
    this.connecting = this.recorder.connect();
    this.unsubscribe = recordNsqdEvents(this.journal ?? this.recorder, nsqd);
  }

  /** After the nsqd has closed (its drain emits events too): flush, close, release the database. */
  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.started) await (this.journal ?? this.recorder).close();
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
