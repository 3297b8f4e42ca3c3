/**
 * MariaDB for the history suites: the machine's server on 127.0.0.1:3306 (root, no password), a
 * database of its own per suite (`history_<random>`), dropped afterwards.
 *
 * `mariadbProbe()` says why MariaDB cannot be used, if it cannot. Suites then fail in CI
 * (CI=true) and skip locally with a console warning, like the suites that need the NSQ binaries.
 */
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';

export const MARIADB = {
  host: process.env.HISTORY_TEST_MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.HISTORY_TEST_MYSQL_PORT ?? 3306),
  user: process.env.HISTORY_TEST_MYSQL_USER ?? 'root',
  password: process.env.HISTORY_TEST_MYSQL_PASSWORD ?? '',
};

/** undefined when MariaDB answers; else the reason it cannot be used. */
export async function mariadbProbe(): Promise<string | undefined> {
  try {
    const conn = await mysql.createConnection({ ...MARIADB, connectTimeout: 3000 });
    try {
      await conn.query('SELECT 1');
    } finally {
      await conn.end();
    }
    return undefined;
  } catch (err) {
    return `MariaDB/MySQL not reachable at ${MARIADB.host}:${MARIADB.port} as ${MARIADB.user}: ${(err as Error).message}`;
  }
}

/** A fresh, uniquely named database; `drop()` removes it. */
export async function createTestDatabase(prefix = 'history'): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection(MARIADB);
  try {
    await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await conn.end();
  }
  return {
    name,
    drop: async () => {
      const c = await mysql.createConnection(MARIADB);
      try {
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Which history backends a suite runs against: always the embedded sql.js; MariaDB when it
 * answers. When it does not: CI=true gives the suite a failing entry, otherwise a console.warn.
 */
export async function historyBackends(): Promise<{ backends: Array<'sqljs' | 'mariadb'>; missing: string | undefined }> {
  const missing = await mariadbProbe();
  if (missing === undefined) return { backends: ['sqljs', 'mariadb'], missing };
  if (process.env.CI === 'true') return { backends: ['sqljs', 'mariadb'], missing };
  console.warn(`SKIPPING the MariaDB half of the history suites: ${missing}`);
  return { backends: ['sqljs'], missing };
}
