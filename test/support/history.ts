/**
 * Helpers for the message-history suites: a history DataSource on the embedded sql.js (a temp
 * file) or on MariaDB (a database of its own, dropped afterwards), and row counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { createHistoryDataSource, type HistoryDataSourceOptions } from '../../libs/message-history/src/index.js';
import { createTestDatabase, MARIADB } from './mariadb.js';

export type HistoryBackend = 'sqljs' | 'mariadb';

export interface HistoryDb {
  backend: HistoryBackend;
  /** A scratch directory (spool files, the sql.js file); removed by drop(). */
  dir: string;
  options: HistoryDataSourceOptions;
  dataSource: DataSource;
  /** Destroys the DataSource (if still initialized), drops the database, removes the directory. */
  drop(): Promise<void>;
}

export async function openHistoryDb(backend: HistoryBackend): Promise<HistoryDb> {
  const dir = mkdtempSync(join(tmpdir(), `history-${backend}-`));
  let options: HistoryDataSourceOptions;
  let dropDatabase = async (): Promise<void> => undefined;
  if (backend === 'sqljs') {
    options = { type: 'sqljs', location: join(dir, 'history.sqlite') };
  } else {
    const db = await createTestDatabase();
    dropDatabase = db.drop;
    options = { type: 'mariadb', host: MARIADB.host, port: MARIADB.port, username: MARIADB.user, password: MARIADB.password, database: db.name };
  }
  const dataSource = await createHistoryDataSource(options);
  return {
    backend,
    dir,
    options,
    dataSource,
    drop: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
      await dropDatabase();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Rows in a table, and distinct values of a column (to tell duplicates). */
export async function countRows(ds: DataSource, table: string, distinct?: string): Promise<number> {
  const expr = distinct === undefined ? 'COUNT(*)' : `COUNT(DISTINCT ${ds.driver.escape(distinct)})`;
  const rows = (await ds.query(`SELECT ${expr} AS n FROM ${ds.driver.escape(table)}`)) as Array<{ n: number | string }>;
  return Number(rows[0]?.n ?? 0);
}
