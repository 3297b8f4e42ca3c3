import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import mysql from 'mysql2';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { HISTORY_ENTITIES } from './entities.js';
import { HISTORY_MIGRATIONS } from './migrations.js';
import { HistoryEventSubscriber } from './subscriber.js';

/** MySQL or MariaDB (through mysql2). */
export interface HistoryMysqlOptions {
  type: 'mysql' | 'mariadb';
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  database: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  connectTimeout?: number;
  logging?: boolean;
}

/**
 * The embedded default: SQLite compiled to WASM (sql.js), no native build, no download. The
 * whole database lives in memory and is written to `location` (atomically: temp file, fsync,
 * rename) after every committed transaction, so it survives restarts; the recorder's batching
 * keeps that to one write per flush. Fine for development and small volumes; use MySQL beyond.
 */
export interface HistorySqljsOptions {
  type: 'sqljs';
  location: string;
  logging?: boolean;
}

export type HistoryDataSourceOptions = HistoryMysqlOptions | HistorySqljsOptions;

export const DEFAULT_SQLJS_LOCATION = '.data/history.sqlite';
export const HISTORY_MIGRATIONS_TABLE = 'nsq_history_migrations';

const saving = new Map<string, Promise<void>>();

/**
 * Writes the database file whole: temp file, fsync, rename. Saves of one file run one after the
 * other (sql.js can commit again while a save is still writing; two renames of one temp file
 * would race), and a save that fails does not stop the next one.
 */
function saveAtomically(location: string, data: Uint8Array): Promise<void> {
  const previous = saving.get(location) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => writeAtomically(location, data));
  const tail = run.catch(() => undefined);
  saving.set(location, tail);
  void tail.then(() => {
    if (saving.get(location) === tail) saving.delete(location);
  });
  return run;
}

async function writeAtomically(location: string, data: Uint8Array): Promise<void> {
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

/**
 * The TypeORM options of a history database: its entities, its migrations (run on initialize,
 * never `synchronize`), the summary subscriber, UTC timestamps. Also usable with
 * `TypeOrmModule.forRoot(...)`.
 */
export function historyDataSourceOptions(options: HistoryDataSourceOptions): DataSourceOptions {
  const common = {
    entities: HISTORY_ENTITIES,
    migrations: HISTORY_MIGRATIONS,
    subscribers: [HistoryEventSubscriber],
    migrationsTableName: HISTORY_MIGRATIONS_TABLE,
    migrationsRun: true,
    synchronize: false,
    logging: options.logging ?? false,
  };
  if (options.type === 'sqljs') {
    const location = resolve(options.location);
    return {
      ...common,
      type: 'sqljs' as const,
      location,
      autoSave: true,
      // the driver's own save is a plain writeFile: a crash mid-write would leave a torn file
      autoSaveCallback: (data: Uint8Array) => saveAtomically(location, data),
    };
  }
  return {
    ...common,
    type: options.type,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 3306,
    username: options.username ?? 'root',
    password: options.password ?? '',
    database: options.database,
    poolSize: options.poolSize ?? 10,
    connectTimeout: options.connectTimeout ?? 10_000,
    timezone: 'Z',
    charset: 'utf8mb4',
    // trace: mysql2 would capture a stack trace at every query to put the caller's frames in its
    // errors; TypeORM wraps them (QueryFailedError, with the statement) anyway, and the capture
    // was about 3 % of the recorder's CPU
    extra: { queryFormat, trace: false },
  };
}

/**
 * mysql2's query formatting, except that a statement with no parameters is sent as it is: mysql2
 * scans the whole text for placeholders even then, and the recorder's batch statements (values
 * written in as literals, hundreds of kilobytes each) spent over a tenth of the writer's CPU in
 * that scan.
 */
function queryFormat(sql: string, values: unknown, timezone: string | undefined): string {
  if (values === undefined || values === null || (Array.isArray(values) && values.length === 0)) return sql;
  return mysql.format(sql, values as Parameters<typeof mysql.format>[1], false, timezone);
}

/** A history DataSource, not yet initialized (the recorder initializes it when the database is reachable). */
export function buildHistoryDataSource(options: HistoryDataSourceOptions): DataSource {
  if (options.type === 'sqljs') mkdirSync(dirname(resolve(options.location)), { recursive: true });
  return new DataSource(historyDataSourceOptions(options));
}

/** A history DataSource, initialized: connected and migrated. */
export async function createHistoryDataSource(options: HistoryDataSourceOptions): Promise<DataSource> {
  return buildHistoryDataSource(options).initialize();
}

/**
 * A history database URL: `mysql://user:pass@host:port/db` or `mariadb://…` for MySQL / MariaDB;
 * `sqljs:<path>` or a plain file path for the embedded database. Unset or empty: the embedded
 * database at `defaultLocation`. Throws an Error that says what is wrong with the URL.
 */
export function historyOptionsFromUrl(url: string | undefined, defaultLocation: string = DEFAULT_SQLJS_LOCATION): HistoryDataSourceOptions {
  const text = url?.trim();
  if (!text) return { type: 'sqljs', location: defaultLocation };
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text)?.[1]?.toLowerCase();
  if (scheme === 'mysql' || scheme === 'mariadb') {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      throw new Error(`not a valid URL: ${text}`);
    }
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    if (!database) throw new Error(`the URL names no database (expected ${scheme}://user@host:port/<database>)`);
    const port = parsed.port ? Number(parsed.port) : 3306;
    return {
      type: scheme,
      host: parsed.hostname || '127.0.0.1',
      port,
      username: parsed.username ? decodeURIComponent(parsed.username) : 'root',
      password: decodeURIComponent(parsed.password),
      database,
    };
  }
  if (scheme === 'sqljs') {
    const location = text.slice('sqljs:'.length).replace(/^\/\//, '');
    return { type: 'sqljs', location: location || defaultLocation };
  }
  // one letter before a colon is a Windows drive, not a scheme
  if (scheme !== undefined && scheme.length > 1) {
    throw new Error(`unsupported scheme ${scheme}: (use mysql://, mariadb://, sqljs:<path> or a file path)`);
  }
  return { type: 'sqljs', location: text };
}

/** `HISTORY_DB_URL` (see historyOptionsFromUrl); unset or empty: the embedded database at `.data/history.sqlite`. */
export function historyOptionsFromEnv(env: Record<string, string | undefined> = process.env): HistoryDataSourceOptions {
  try {
    return historyOptionsFromUrl(env.HISTORY_DB_URL);
  } catch (err) {
    throw new Error(`HISTORY_DB_URL: ${(err as Error).message}`);
  }
}

const chains = new WeakMap<DataSource, Promise<unknown>>();

/**
 * Runs `fn` alone among the history operations on `dataSource` when it is sql.js: TypeORM's
 * sql.js driver runs everything on its one connection, so two write transactions would interleave
 * on it, and a read during a write would see the write half done (events without their summary).
 * On MySQL it just runs `fn`: each transaction has a pooled connection of its own.
 */
export function withDatabaseLock<T>(dataSource: DataSource, fn: () => Promise<T>): Promise<T> {
  if (dataSource.options.type !== 'sqljs') return fn();
  const previous = chains.get(dataSource) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  chains.set(
    dataSource,
    run.catch(() => undefined),
  );
  return run;
}
