import { historyOptionsFromUrl, type HistoryDataSourceOptions } from '../../../libs/message-history/src/index.js';

/** A bad environment variable; the service prints the message and exits with code 2. */
export class SampleConfigError extends Error {
  constructor(
    /** The variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'SampleConfigError';
  }
}

export type Env = Record<string, string | undefined>;

/** Where an HTTP service listens. Port 0 lets the OS pick (the log line tells which). */
export interface ListenAddress {
  host: string;
  port: number;
}

/** The sample services' database: the embedded sql.js file, or MySQL / MariaDB. Same URL forms as HISTORY_DB_URL. */
export type DatabaseConnectionOptions = HistoryDataSourceOptions;

function splitHostPort(variable: string, text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  if (i <= 0 || i === text.length - 1) throw new SampleConfigError(variable, `expected host:port, got ${JSON.stringify(text)}`);
  let host = text.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const portText = text.slice(i + 1);
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new SampleConfigError(variable, `port must be 0-65535, got ${JSON.stringify(portText)}`);
  if (/[\s/]/.test(host)) throw new SampleConfigError(variable, `expected host:port (no scheme, no path), got ${JSON.stringify(text)}`);
  return { host, port };
}

/** `host:port` to listen on (port 0 allowed); `fallback` when unset or empty. */
export function listenAddressFromEnv(env: Env, variable: string, fallback: string): ListenAddress {
  const text = env[variable]?.trim() || fallback;
  return splitHostPort(variable, text);
}

/**
 * A comma-separated list of `host:port` (nsqd TCP or nsqlookupd HTTP addresses; an `http://`
 * prefix is accepted for lookupd). Undefined when the variable is unset or empty.
 */
export function addressListFromEnv(env: Env, variable: string, options: { allowHttp?: boolean } = {}): string[] | undefined {
  const text = env[variable]?.trim();
  if (!text) return undefined;
  const items = text.split(',').map((s) => s.trim());
  return items.map((item) => {
    if (item === '') throw new SampleConfigError(variable, `empty entry in ${JSON.stringify(text)}`);
    const bare = options.allowHttp ? item.replace(/^https?:\/\//, '').replace(/\/$/, '') : item;
    const { port } = splitHostPort(variable, bare);
    if (port === 0) throw new SampleConfigError(variable, `port 0 cannot be dialled (${JSON.stringify(item)})`);
    return options.allowHttp ? item : bare;
  });
}

/**
 * A database URL: `mysql://user:pass@host:port/db`, `mariadb://…`, `sqljs:<path>` or a plain file
 * path (sql.js). Unset or empty: the sql.js file at `defaultLocation`.
 */
export function databaseFromEnv(env: Env, variable: string, defaultLocation: string): DatabaseConnectionOptions {
  try {
    return historyOptionsFromUrl(env[variable], defaultLocation);
  } catch (err) {
    throw new SampleConfigError(variable, (err as Error).message);
  }
}

/** A description of a database for log lines, without the password. */
export function describeDatabase(options: DatabaseConnectionOptions): string {
  if (options.type === 'sqljs') return `sql.js file ${options.location}`;
  return `${options.type}://${options.username ?? 'root'}@${options.host ?? '127.0.0.1'}:${options.port ?? 3306}/${options.database}`;
}
