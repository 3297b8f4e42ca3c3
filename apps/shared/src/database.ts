import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { withDatabaseLock } from '../../../libs/message-history/src/index.js';
import type { DatabaseConnectionOptions } from './env.js';

export interface SampleDatabaseOptions {
  connection: DatabaseConnectionOptions;
  /** Entity classes. */
  entities: NonNullable<DataSourceOptions['entities']>;
  /** Migration classes, run in order on open. */
  migrations: NonNullable<DataSourceOptions['migrations']>;
  /** Entity subscriber classes. */
  subscribers?: NonNullable<DataSourceOptions['subscribers']>;
  /** Each service keeps its own migrations table, so two services may share one MySQL database. */
  migrationsTableName: string;
  /** How long open() keeps trying to reach MySQL (a container starting next to it). Default 30 s. */
  connectRetryMs?: number;
  /** Told about each failed connection attempt. */
  onRetry?: (error: Error, attempt: number) => void;
}

/** MySQL errors worth running the whole transaction again for. */
const RETRYABLE_MYSQL_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const TRANSACTION_ATTEMPTS = 3;

async function saveAtomically(location: string, data: Uint8Array): Promise<void> {
  const tmp = `${location}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, location);
}

function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  const code = e?.driverError?.code ?? e?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A service's database: TypeORM over MySQL / MariaDB (mysql2), or the embedded sql.js file.
 * Schema changes are migrations (run on open, never `synchronize`).
 *
 * sql.js needs two things MySQL does not:
 * - one connection for everything: two transactions of concurrent requests would interleave on
 *   it, and a read would see another request's transaction half done. `transaction()` and `read()`
 *   run one at a time (withDatabaseLock).
 * - the database lives in memory and the file is a copy. `transaction()` resolves only once a copy
 *   holding its commit is on disk (temp file, fsync, rename); commits that arrive while a copy is
 *   being written share the next one (group commit), so 1,000 concurrent requests cost a handful
 *   of file writes, not 1,000. `persisted()` waits for the same, for readers that must not act on
 *   what a crash could still take back (the outbox relay, a duplicate delivery).
 */
export class SampleDatabase {
  readonly dataSource: DataSource;
  private readonly location: string | undefined;
  private committed = 0;
  private saved = 0;
  private saving: Promise<void> | undefined;
  private closed = false;

  private constructor(private readonly options: SampleDatabaseOptions) {
    const c = options.connection;
    const common = {
      entities: options.entities,
      migrations: options.migrations,
      subscribers: options.subscribers ?? [],
      migrationsTableName: options.migrationsTableName,
      migrationsRun: true,
      synchronize: false,
      logging: false,
    };
    let dsOptions: DataSourceOptions;
    if (c.type === 'sqljs') {
      this.location = resolve(c.location);
      mkdirSync(dirname(this.location), { recursive: true });
      dsOptions = { ...common, type: 'sqljs', location: this.location, autoSave: false };
    } else {
      dsOptions = {
        ...common,
        type: c.type,
        host: c.host ?? '127.0.0.1',
        port: c.port ?? 3306,
        username: c.username ?? 'root',
        password: c.password ?? '',
        database: c.database,
        poolSize: c.poolSize ?? 10,
        connectTimeout: c.connectTimeout ?? 10_000,
        timezone: 'Z',
        charset: 'utf8mb4',
      };
    }
    this.dataSource = new DataSource(dsOptions);
  }

  /** Connects (retrying MySQL for `connectRetryMs`) and runs the migrations. */
  static async open(options: SampleDatabaseOptions): Promise<SampleDatabase> {
    const retryMs = options.connection.type === 'sqljs' ? 0 : (options.connectRetryMs ?? 30_000);
    const deadline = Date.now() + retryMs;
    for (let attempt = 1; ; attempt++) {
      const db = new SampleDatabase(options);
      try {
        await db.dataSource.initialize();
      } catch (error) {
        if (db.dataSource.isInitialized) await db.dataSource.destroy().catch(() => undefined);
        if (Date.now() >= deadline) throw error;
        options.onRetry?.(error as Error, attempt);
        await new Promise((r) => setTimeout(r, Math.min(1000 * attempt, 5000)));
        continue;
      }
      if (db.isSqljs) {
        // the migrations ran in memory; a fresh file holds them from now on
        db.committed++;
        await db.persisted();
      }
      return db;
    }
  }

  get type(): DatabaseConnectionOptions['type'] {
    return this.options.connection.type;
  }

  get isSqljs(): boolean {
    return this.location !== undefined;
  }

  /**
   * Runs `fn` in a transaction. On sql.js, alone and durable (see the class comment); on MySQL,
   * run again (up to 3 times) when it loses a deadlock or a lock wait.
   */
  async transaction<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    if (this.isSqljs) {
      const result = await withDatabaseLock(this.dataSource, async () => {
        const r = await this.dataSource.transaction(fn);
        this.committed++;
        return r;
      });
      await this.persisted();
      return result;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dataSource.transaction(fn);
      } catch (error) {
        const code = errorCode(error);
        if (attempt >= TRANSACTION_ATTEMPTS || code === undefined || !RETRYABLE_MYSQL_CODES.has(code)) throw error;
      }
    }
  }

  /** Reads; on sql.js between two transactions, never in the middle of one. */
  read<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    if (this.isSqljs) return withDatabaseLock(this.dataSource, () => fn(this.dataSource.manager));
    return fn(this.dataSource.manager);
  }

  /** Resolves once everything committed so far is on disk (sql.js); at once on MySQL, where a commit is durable. */
  async persisted(): Promise<void> {
    if (!this.isSqljs) return;
    const target = this.committed;
    while (this.saved < target) {
      this.saving ??= this.saveOnce().finally(() => {
        this.saving = undefined;
      });
      await this.saving;
    }
  }

  /** True when `error` is a unique-key violation (a duplicate row). */
  isUniqueViolation(error: unknown): boolean {
    if (this.isSqljs) return /UNIQUE constraint failed|PRIMARY KEY constraint failed|constraint failed/i.test((error as Error)?.message ?? '');
    return errorCode(error) === 'ER_DUP_ENTRY';
  }

  /** Writes what is committed (sql.js) and disconnects. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.dataSource.isInitialized) return;
    try {
      await this.persisted();
    } finally {
      await withDatabaseLock(this.dataSource, () => this.dataSource.destroy());
    }
  }

  private async saveOnce(): Promise<void> {
    const location = this.location!;
    // export() closes and reopens sql.js's database: never in the middle of a transaction
    const { upTo, data } = await withDatabaseLock(this.dataSource, async () => {
      const driver = this.dataSource.driver as unknown as { export(): Uint8Array };
      return { upTo: this.committed, data: driver.export() };
    });
    await saveAtomically(location, data);
    this.saved = Math.max(this.saved, upTo);
  }
}
