import type { DataSource } from 'typeorm';

/**
 * The few statements of the hot write path, written out for the two SQL dialects. TypeORM's
 * InsertQueryBuilder spends ~20 µs of CPU per row naming and escaping parameters, on the same
 * event loop that delivers messages; plain positional statements cost next to nothing to build.
 */
export interface Dialect {
  readonly mysql: boolean;
  /** Bound parameters per statement (sql.js: SQLite's limit is 32766; MySQL: none, statements are bounded by size). */
  readonly maxParams: number;
  /** Bytes a body takes in the statement (mysql2 sends a Buffer as a hex literal). */
  readonly bodyFactor: number;
  quote(name: string): string;
  insert(table: string, columns: readonly string[], rows: number, mode: { ignore: true } | { conflict: readonly string[]; update: readonly string[] }): string;
  /** A timestamp as both drivers store DATETIME(6) from JavaScript: UTC, 'YYYY-MM-DD HH:MM:SS.mmm'. */
  time(ms: number | Date | null | undefined): string | null;
}

export function isMysqlFamily(dataSource: DataSource): boolean {
  const type = dataSource.options.type;
  return type === 'mysql' || type === 'mariadb';
}

const dialects = new WeakMap<DataSource, Dialect>();

export function dialectOf(dataSource: DataSource): Dialect {
  let dialect = dialects.get(dataSource);
  if (dialect === undefined) {
    dialect = makeDialect(isMysqlFamily(dataSource));
    dialects.set(dataSource, dialect);
  }
  return dialect;
}

function makeDialect(mysql: boolean): Dialect {
  let lastMs = Number.NaN;
  let lastTime = '';
  const quote = mysql ? (name: string) => `\`${name}\`` : (name: string) => `"${name}"`;
  return {
    mysql,
    maxParams: mysql ? Number.MAX_SAFE_INTEGER : 30_000,
    bodyFactor: mysql ? 2 : 1,
    quote,
    insert(table, columns, rows, mode) {
      const tuple = `(${columns.map(() => '?').join(', ')})`;
      const values = new Array<string>(rows).fill(tuple).join(', ');
      const head = `${quote(table)} (${columns.map(quote).join(', ')}) VALUES ${values}`;
      if ('ignore' in mode) return mysql ? `INSERT IGNORE INTO ${head}` : `INSERT OR IGNORE INTO ${head}`;
      const set = mode.update.map((c) => (mysql ? `${quote(c)} = VALUES(${quote(c)})` : `${quote(c)} = excluded.${quote(c)}`)).join(', ');
      return mysql
        ? `INSERT INTO ${head} ON DUPLICATE KEY UPDATE ${set}`
        : `INSERT INTO ${head} ON CONFLICT (${mode.conflict.map(quote).join(', ')}) DO UPDATE SET ${set}`;
    },
    time(value) {
      if (value === null || value === undefined) return null;
      const ms = typeof value === 'number' ? value : value.getTime();
      // events come in runs of the same millisecond: format each one once
      if (ms !== lastMs) {
        const iso = new Date(ms).toISOString();
        lastMs = ms;
        lastTime = `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
      }
      return lastTime;
    },
  };
}

/** A DATETIME read back raw: mysql2 gives a Date (timezone 'Z'), sql.js the stored UTC string. */
export function readTime(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value;
  if (typeof value === 'number') return new Date(value);
  if (typeof value === 'string') {
    const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value.replace(' ', 'T')}Z`);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  return null;
}

/** Splits rows into statements under the parameter and size limits. */
export function statements<T>(rows: readonly T[], columns: number, maxParams: number, maxBytes: number, bytesOf: (row: T) => number): T[][] {
  const maxRows = Math.max(1, Math.floor(maxParams / columns));
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    const b = bytesOf(row);
    if (current.length > 0 && (current.length >= maxRows || bytes + b > maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += b;
  }
  if (current.length > 0) out.push(current);
  return out;
}
