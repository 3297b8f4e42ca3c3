import type { DataSource } from 'typeorm';

/**
 * The few statements of the hot write path, written out for the two SQL dialects. TypeORM's
 * InsertQueryBuilder spends ~20 µs of CPU per row naming and escaping parameters, on the same
 * event loop that delivers messages; plain statements cost next to nothing to build. On MySQL the
 * values are written into the statement as literals (`Values`): mysql2 would otherwise format
 * every bound parameter into the text itself, with a regular-expression pass per value.
 */
export interface Dialect {
  readonly mysql: boolean;
  /** Bound parameters per statement (sql.js: SQLite's limit is 32766; MySQL: none, statements are bounded by size). */
  readonly maxParams: number;
  /** Bytes a body takes in the statement (mysql2 sends a Buffer as a hex literal). */
  readonly bodyFactor: number;
  quote(name: string): string;
  /** INSERT of `values` (the text after VALUES); `set` is the assignment list of an upsert. */
  insertValues(table: string, columns: readonly string[], values: string, mode: { ignore: true } | { conflict: readonly string[]; set: string }): string;
  /** In an upsert's assignments: the value the row would have been inserted with. */
  inserted(column: string): string;
  /** The larger / smaller of two values (both NULL-propagating: wrap in COALESCE). */
  readonly greatest: string;
  readonly least: string;
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
  const quote = mysql ? (name: string) => `\`${name}\`` : (name: string) => `"${name}"`;
  const inserted = mysql ? (name: string) => `VALUES(${quote(name)})` : (name: string) => `excluded.${quote(name)}`;
  return {
    mysql,
    maxParams: mysql ? Number.MAX_SAFE_INTEGER : 30_000,
    bodyFactor: mysql ? 2 : 1,
    quote,
    insertValues(table, columns, values, mode) {
      const head = `${quote(table)} (${columns.map(quote).join(', ')}) VALUES ${values}`;
      if ('ignore' in mode) return mysql ? `INSERT IGNORE INTO ${head}` : `INSERT OR IGNORE INTO ${head}`;
      return mysql
        ? `INSERT INTO ${head} ON DUPLICATE KEY UPDATE ${mode.set}`
        : `INSERT INTO ${head} ON CONFLICT (${mode.conflict.map(quote).join(', ')}) DO UPDATE SET ${mode.set}`;
    },
    inserted,
    greatest: mysql ? 'GREATEST' : 'MAX',
    least: mysql ? 'LEAST' : 'MIN',
    time(value) {
      if (value === null || value === undefined) return null;
      return formatTime(typeof value === 'number' ? value : value.getTime());
    },
  };
}

const DAY_MS = 86_400_000;
const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
let dayStart = Number.NaN;
let dayPrefix = '';

/**
 * 'YYYY-MM-DD HH:MM:SS.mmm' (UTC) of epoch ms >= 0: the date part is formatted once per day, the
 * rest by arithmetic, since a batch formats a few timestamps per event.
 */
export function formatTime(value: number): string {
  const ms = Math.floor(value);
  let rem = ms - dayStart;
  if (!(rem >= 0 && rem < DAY_MS)) {
    if (!(ms >= 0)) return `${new Date(ms).toISOString().slice(0, 10)} ${new Date(ms).toISOString().slice(11, 23)}`;
    dayStart = ms - (ms % DAY_MS);
    dayPrefix = `${new Date(dayStart).toISOString().slice(0, 10)} `;
    rem = ms - dayStart;
  }
  const h = Math.floor(rem / 3_600_000);
  rem -= h * 3_600_000;
  const m = Math.floor(rem / 60_000);
  rem -= m * 60_000;
  const s = Math.floor(rem / 1000);
  return `${dayPrefix}${TWO_DIGITS[h]}:${TWO_DIGITS[m]}:${TWO_DIGITS[s]}.${THREE_DIGITS[rem - s * 1000]}`;
}

/** The escape of each character MySQL needs escaped in a quoted string, as mysql2 escapes them. */
const ESCAPES = new Map<number, string>([
  [0x00, '\\0'],
  [0x08, '\\b'],
  [0x09, '\\t'],
  [0x0a, '\\n'],
  [0x0d, '\\r'],
  [0x1a, '\\Z'],
  [0x22, '\\"'],
  [0x27, "\\'"],
  [0x5c, '\\\\'],
]);
const NEEDS_ESCAPE = new Uint8Array(0x5d);
for (const c of ESCAPES.keys()) NEEDS_ESCAPE[c] = 1;

/** A MySQL string literal, escaped as mysql2 escapes bound strings (backslash escapes). */
export function mysqlString(value: string): string {
  let out: string | undefined;
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 0x5c || NEEDS_ESCAPE[c] === 0) continue;
    out = (out ?? '') + value.slice(from, i) + ESCAPES.get(c)!;
    from = i + 1;
  }
  return out === undefined ? `'${value}'` : `'${out}${value.slice(from)}'`;
}

/**
 * The rows of one statement: on MySQL written out as literals (strings escaped, bodies as hex,
 * numbers as they are), on SQLite as `?` tuples with their parameters. Values are strings,
 * finite numbers, null, or bytes (Uint8Array).
 */
export class Values {
  private readonly parts: string[] = [];
  readonly params: unknown[] = [];
  private readonly tuple: string;

  constructor(
    private readonly mysql: boolean,
    columns: number,
  ) {
    this.tuple = `(${new Array<string>(columns).fill('?').join(', ')})`;
  }

  get rows(): number {
    return this.parts.length;
  }

  row(values: readonly unknown[]): void {
    if (!this.mysql) {
      for (const v of values) this.params.push(v);
      this.parts.push(this.tuple);
      return;
    }
    let text = '(';
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (i > 0) text += ', ';
      if (v === null || v === undefined) text += 'NULL';
      else if (typeof v === 'string') text += mysqlString(v);
      else if (typeof v === 'number') text += Number.isFinite(v) ? String(v) : 'NULL';
      else if (v instanceof Uint8Array) text += `X'${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}'`;
      else throw new TypeError(`history SQL: cannot write a ${typeof v} value`);
    }
    this.parts.push(`${text})`);
  }

  text(): string {
    return this.parts.join(', ');
  }
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
