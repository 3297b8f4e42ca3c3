/**
 * Command line and environment of the broker, derived from the option tables of libs/nsq
 * (NSQD_OPTIONS, NSQLOOKUPD_OPTIONS) so that a new option becomes a flag, an env variable and a
 * `--help` line without a second list of names.
 *
 * Naming follows the Go binaries: flag = kebab-case of the option (`memQueueSize` →
 * `--mem-queue-size`), repeatable list options take the singular (`lookupdTcpAddresses` →
 * `--lookupd-tcp-address`). In role `all` nsqd keeps its own names and nsqlookupd's flags carry
 * the prefix `--nsqlookupd-` (both have `--tcp-address`); in role `lookupd` nsqlookupd's own names
 * apply. Env: `NSQD_<FLAG>` / `NSQLOOKUPD_<FLAG>` (flag name without prefix, upper snake case, lists
 * comma-separated); flags win over env.
 */
import { join } from 'node:path';
import type { OptionSpec, OptionTable } from '../../../libs/nsq/src/index.js';
import { historyOptionsFromUrl, type HistoryDataSourceOptions } from '../../../libs/message-history/src/index.js';
import { NsqValidationError, silentLogger } from '../../../libs/nsq/src/index.js';
import { NSQD_OPTIONS, NSQLOOKUPD_OPTIONS, type NsqdInput, type NsqlookupdInput, resolveNsqdOptions, resolveNsqlookupdOptions, SERVER_VERSION } from '../../../libs/nsq/src/index.js';

export const ROLES = ['all', 'nsqd', 'lookupd'] as const;
export type Role = (typeof ROLES)[number];
/** nsqd's --log-level values. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'] as const;
export type BrokerLogLevel = (typeof LOG_LEVELS)[number];

/** Message history of the broker's nsqd (roles all and nsqd). */
export interface BrokerHistoryConfig {
  /** The database; undefined = history off (`--history-db=off`). */
  db: HistoryDataSourceOptions | undefined;
  spoolPath: string;
  /** A HistoryJournal in front of the recorder (events survive a SIGKILL). */
  journal: boolean;
  storeBodies: boolean;
  maxBodySize: number;
  /** ms; 0 keeps rows forever. */
  retention: number;
}

/** The admin HTTP listener (API and page). */
export interface BrokerAdminConfig {
  /** host:port; undefined = no admin listener (`--admin-address=off`). */
  address: string | undefined;
  /** Required on /api/* when set. */
  token: string | undefined;
}

export interface BrokerConfig {
  role: Role;
  logLevel: BrokerLogLevel;
  /** Only what the user gave (plus the derived broadcast address); the libs apply the defaults. */
  nsqd: NsqdInput;
  lookupd: NsqlookupdInput;
  /** Roles all and nsqd only. */
  history: BrokerHistoryConfig | undefined;
  admin: BrokerAdminConfig;
}

export type ParsedCommandLine =
  | { action: 'run'; config: BrokerConfig }
  | { action: 'help'; text: string }
  | { action: 'version'; text: string };

/** A flag or env value the broker cannot use; main prints the message and exits with code 2. */
export class BrokerFlagError extends NsqValidationError {}

type Server = 'nsqd' | 'lookupd';
type FlagKind = 'string' | 'int' | 'number' | 'duration' | 'bool' | 'list';

interface FlagSpec {
  /** Name without dashes, as typed in this role (`nsqlookupd-tcp-address` in role all). */
  flag: string;
  /** Env variable read for it. */
  env: string;
  server: Server;
  option: string;
  kind: FlagKind;
  spec: OptionSpec;
}

const TABLES: Record<Server, { table: OptionTable; envPrefix: string; flagPrefixInAll: string }> = {
  nsqd: { table: NSQD_OPTIONS, envPrefix: 'NSQD_', flagPrefixInAll: '' },
  lookupd: { table: NSQLOOKUPD_OPTIONS, envPrefix: 'NSQLOOKUPD_', flagPrefixInAll: 'nsqlookupd-' },
};

/**
 * nsqd's `--tls-required` is a Go bool flag that also takes "tcp-https": bare means "true", and any
 * Go boolean spelling is accepted. Keyed by the table so a renamed option fails to compile here.
 */
interface BareStringFlag {
  bare: string;
  normalize: (v: string) => string | undefined;
}
const BARE_STRING_FLAGS: { readonly [K in keyof typeof NSQD_OPTIONS]?: BareStringFlag } = {
  tlsRequired: {
    bare: 'true',
    normalize: (v) => (v === 'tcp-https' ? v : parseGoBool(v)?.toString()),
  },
};

function bareStringFlag(f: FlagSpec): BareStringFlag | undefined {
  return f.server === 'nsqd' ? BARE_STRING_FLAGS[f.option as keyof typeof NSQD_OPTIONS] : undefined;
}

const ROLE_ENV = 'BROKER_ROLE';
const LOG_LEVEL_ENV = 'BROKER_LOG_LEVEL';

/** Options whose doc speaks of milliseconds take Go durations on the command line. */
function isDurationOption(spec: OptionSpec): boolean {
  return spec.type === 'number' && /\bms\b/.test(spec.doc);
}

function kindOf(spec: OptionSpec): FlagKind | undefined {
  switch (spec.type) {
    case 'boolean':
      return 'bool';
    case 'string[]':
      return 'list';
    case 'string':
      return 'string';
    case 'number':
      return isDurationOption(spec) ? 'duration' : spec.integer ? 'int' : 'number';
    default:
      // logger, tls objects: not expressible on a command line
      return undefined;
  }
}

/** `memQueueSize` → `mem-queue-size`; lists are repeatable flags named in the singular, as in nsqd. */
export function flagNameOf(option: string, spec: OptionSpec): string {
  let name = option;
  if (spec.type === 'string[]') name = name.endsWith('sses') ? name.slice(0, -2) : name.replace(/s$/, '');
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function envNameOf(server: Server, flag: string): string {
  return TABLES[server].envPrefix + flag.replace(/-/g, '_').toUpperCase();
}

const flagsByRole = new Map<Role, ReadonlyMap<string, FlagSpec>>();

/** The flags of `role`, by name. */
export function flagsFor(role: Role): ReadonlyMap<string, FlagSpec> {
  let flags = flagsByRole.get(role);
  if (!flags) {
    flags = buildFlags(role);
    flagsByRole.set(role, flags);
  }
  return flags;
}

function buildFlags(role: Role): Map<string, FlagSpec> {
  const out = new Map<string, FlagSpec>();
  const servers: Server[] = role === 'all' ? ['nsqd', 'lookupd'] : [role];
  for (const server of servers) {
    const { table, flagPrefixInAll } = TABLES[server];
    for (const [option, spec] of Object.entries(table)) {
      const kind = kindOf(spec);
      if (kind === undefined) continue;
      const base = flagNameOf(option, spec);
      const flag = role === 'all' ? flagPrefixInAll + base : base;
      if (out.has(flag)) throw new Error(`flag --${flag} is declared twice (option tables clash)`);
      out.set(flag, { flag, env: envNameOf(server, base), server, option, kind, spec });
    }
  }
  return out;
}

/** The broker's own flags beyond --role and --log-level: message history and the admin listener. */
interface BrokerFlag {
  flag: string;
  env: string;
  kind: 'string' | 'bool' | 'int' | 'duration';
  doc: string;
  /** As shown in --help. */
  defaultText: string;
  /** Roles that take the flag (history needs an nsqd). */
  roles: readonly Role[];
}

export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:4170';
const DEFAULT_HISTORY_RETENTION = 7 * 24 * 3600 * 1000;
const DEFAULT_HISTORY_MAX_BODY = 64 * 1024;
const WITH_NSQD: readonly Role[] = ['all', 'nsqd'];

export const BROKER_FLAGS: readonly BrokerFlag[] = [
  {
    flag: 'history-db',
    env: 'HISTORY_DB_URL',
    kind: 'string',
    doc: 'Message history database: mysql://user:pass@host:port/db, mariadb://..., sqljs:<file>, a file path (embedded sql.js), or off',
    defaultText: '<data-path>/history.sqlite',
    roles: WITH_NSQD,
  },
  {
    flag: 'history-spool',
    env: 'BROKER_HISTORY_SPOOL',
    kind: 'string',
    doc: 'Append-only file that holds history events while the database is down or behind',
    defaultText: '<data-path>/history.spool',
    roles: WITH_NSQD,
  },
  {
    flag: 'history-journal',
    env: 'BROKER_HISTORY_JOURNAL',
    kind: 'bool',
    doc: 'Write-ahead journal of history events (<history-spool>.journal.N), so a killed broker loses none it held in memory',
    defaultText: 'true',
    roles: WITH_NSQD,
  },
  { flag: 'history-store-bodies', env: 'BROKER_HISTORY_STORE_BODIES', kind: 'bool', doc: 'Store message bodies in the history', defaultText: 'true', roles: WITH_NSQD },
  {
    flag: 'history-max-body-size',
    env: 'BROKER_HISTORY_MAX_BODY_SIZE',
    kind: 'int',
    doc: 'Bodies longer than this many bytes are stored truncated',
    defaultText: String(DEFAULT_HISTORY_MAX_BODY),
    roles: WITH_NSQD,
  },
  { flag: 'history-retention', env: 'BROKER_HISTORY_RETENTION', kind: 'duration', doc: 'History rows older than this are deleted; 0 keeps them', defaultText: '168h', roles: WITH_NSQD },
  {
    flag: 'admin-address',
    env: 'BROKER_ADMIN_ADDRESS',
    kind: 'string',
    doc: 'host:port of the admin page and JSON API, or off',
    defaultText: JSON.stringify(DEFAULT_ADMIN_ADDRESS),
    roles: WITH_NSQD,
  },
  { flag: 'admin-token', env: 'BROKER_ADMIN_TOKEN', kind: 'string', doc: 'Access token the admin API requires (Authorization: Bearer <token>); empty = none', defaultText: '', roles: WITH_NSQD },
];
const BROKER_FLAG_BY_NAME = new Map(BROKER_FLAGS.map((f) => [f.flag, f]));

const BROKER_BARE_FLAGS = new Set(['help', 'h', 'version', ...BROKER_FLAGS.filter((f) => f.kind === 'bool').map((f) => f.flag)]);
const BROKER_VALUE_FLAGS = new Set(['role', 'log-level', ...BROKER_FLAGS.filter((f) => f.kind !== 'bool').map((f) => f.flag)]);

/**
 * Whether `name` never takes the next argument as its value (Go bool flags); undefined when no
 * role knows the flag. Decided before the role is known, so it looks at every role.
 */
function isBareFlag(name: string): boolean | undefined {
  if (BROKER_BARE_FLAGS.has(name)) return true;
  if (BROKER_VALUE_FLAGS.has(name)) return false;
  let known = false;
  for (const role of ROLES) {
    const spec = flagsFor(role).get(name);
    if (spec && (spec.kind === 'bool' || bareStringFlag(spec))) return true;
    known ||= spec !== undefined;
  }
  return known ? false : undefined;
}

interface Token {
  name: string;
  /** undefined = given bare (`--deflate`) */
  value: string | undefined;
}

/** Go's flag syntax: `-name`, `--name`, `--name=value`, `--name value` (not for bool flags), `--` ends flags. */
function tokenize(argv: readonly string[]): Token[] {
  const tokens: Token[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      if (i + 1 < argv.length) throw new BrokerFlagError(argv[i + 1] ?? '', `unexpected argument "${argv[i + 1]}": the broker takes flags only`);
      break;
    }
    const match = /^--?([^-=][^=]*)(?:=([\s\S]*))?$/.exec(arg);
    if (!match?.[1]) throw new BrokerFlagError(arg, `unexpected argument "${arg}": the broker takes flags only (--name=value)`);
    const name = match[1];
    let value = match[2];
    const bare = isBareFlag(name);
    if (bare === undefined) throw new BrokerFlagError(`--${name}`, `flag provided but not defined: --${name}; see --help`);
    if (value === undefined && !bare) {
      if (i + 1 >= argv.length) throw new BrokerFlagError(`--${name}`, `flag needs an argument: --${name}`);
      value = argv[++i];
    }
    tokens.push({ name, value });
  }
  return tokens;
}

/** Go's strconv.ParseBool. */
function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(text)) return false;
  return undefined;
}

const NS_PER_UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n,
  'μs': 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/**
 * A Go duration ("60s", "250ms", "1m30s", "1.5h") in milliseconds. A plain integer is taken as
 * milliseconds (Go would reject it; being lenient here costs nothing and matches the option tables).
 * Throws on anything else, and on values that are not a whole number of milliseconds.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^[+-]?\d+$/.test(trimmed)) return Number(trimmed);
  const sign = trimmed.startsWith('-') ? -1n : 1n;
  const body = trimmed.replace(/^[+-]/, '');
  const part = /(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/y;
  let ns = 0n;
  let pos = 0;
  while (pos < body.length) {
    part.lastIndex = pos;
    const m = part.exec(body);
    const unit = m?.[3];
    if (!m || unit === undefined || (!m[1] && !m[2])) throw new Error(`invalid duration "${text}" (use e.g. 250ms, 60s, 1m30s, 1h)`);
    const scale = NS_PER_UNIT[unit] ?? 1n;
    const frac = m[2] ?? '';
    ns += BigInt(m[1] || '0') * scale;
    if (frac) ns += (BigInt(frac) * scale) / 10n ** BigInt(frac.length);
    pos = part.lastIndex;
  }
  if (pos === 0) throw new Error(`invalid duration "${text}" (use e.g. 250ms, 60s, 1m30s, 1h)`);
  if (ns % 1_000_000n !== 0n) throw new Error(`duration "${text}" is not a whole number of milliseconds`);
  return Number((sign * ns) / 1_000_000n);
}

/** ms → the shortest Go duration text ("1m", "2s", "1m30s", "250ms"); parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const units: Array<[string, number]> = [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ];
  let rest = Math.abs(ms);
  let out = ms < 0 ? '-' : '';
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

function describeBounds(f: FlagSpec): string {
  const fmt = (n: number): string => (f.kind === 'duration' ? `${formatDuration(n)} (${n} ms)` : String(n));
  return `between ${fmt(f.spec.min ?? -Infinity)} and ${fmt(f.spec.max ?? Infinity)}`;
}

/** One flag or env value → the option's value; `where` names the source in errors. */
function convert(f: FlagSpec, raw: string | undefined, where: string): unknown {
  const bad = (why: string): never => {
    throw new BrokerFlagError(where.split('=')[0] ?? where, `invalid value ${JSON.stringify(raw ?? '')} for ${where}: ${why}`);
  };
  const special = bareStringFlag(f);
  if (special) {
    if (raw === undefined) return special.bare;
    return special.normalize(raw) ?? bad('expected true, false or tcp-https');
  }
  switch (f.kind) {
    case 'bool': {
      if (raw === undefined) return true;
      return parseGoBool(raw) ?? bad('expected true or false');
    }
    case 'string':
      return raw ?? '';
    case 'list':
      return raw === undefined || raw === '' ? bad('expected a non-empty value') : raw;
    case 'int':
    case 'number':
    case 'duration': {
      const text = (raw ?? '').trim();
      let n: number;
      if (f.kind === 'duration') {
        try {
          n = parseDuration(text);
        } catch (err) {
          return bad((err as Error).message);
        }
      } else if (f.kind === 'int' ? /^[+-]?\d+$/.test(text) : text !== '' && Number.isFinite(Number(text))) {
        n = Number(text);
      } else {
        return bad(f.kind === 'int' ? 'expected an integer' : 'expected a number');
      }
      if ((f.spec.min !== undefined && n < f.spec.min) || (f.spec.max !== undefined && n > f.spec.max)) {
        if (!f.spec.also?.includes(n)) bad(`must be ${describeBounds(f)}`);
      }
      return n;
    }
  }
}

function hostOf(address: string): string {
  const bracketed = /^\[([^\]]*)\]:\d*$/.exec(address);
  if (bracketed) return bracketed[1] ?? '';
  const i = address.lastIndexOf(':');
  return i < 0 ? address : address.slice(0, i);
}

/**
 * The address a server tells its peers. Go's default (the OS hostname) points at an interface
 * where our default listeners (127.0.0.1) do not listen, so the broker defaults to the listening
 * host unless that is a wildcard.
 */
function defaultBroadcastAddress(tcpAddress: string): string | undefined {
  const host = hostOf(tcpAddress);
  return host === '' || host === '0.0.0.0' || host === '::' ? undefined : host;
}

function pickRole(tokens: readonly Token[], env: Readonly<Record<string, string | undefined>>): Role {
  let role: string = env[ROLE_ENV] || 'all';
  let where = ROLE_ENV;
  for (const t of tokens) {
    if (t.name === 'role') {
      role = t.value ?? '';
      where = '--role';
    }
  }
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new BrokerFlagError(where, `invalid value ${JSON.stringify(role)} for ${where}: expected one of ${ROLES.join(', ')}`);
  }
  return role as Role;
}

function pickLogLevel(tokens: readonly Token[], env: Readonly<Record<string, string | undefined>>): BrokerLogLevel {
  let level: string = env[LOG_LEVEL_ENV] || 'info';
  let where = LOG_LEVEL_ENV;
  for (const t of tokens) {
    if (t.name === 'log-level') {
      level = (t.value ?? '').toLowerCase();
      where = '--log-level';
    }
  }
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new BrokerFlagError(where, `invalid value ${JSON.stringify(level)} for ${where}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as BrokerLogLevel;
}

/**
 * Parses the broker's command line (`argv` without node and the script) and environment.
 * Throws BrokerFlagError for unknown flags and bad values, naming the flag or env variable.
 */
export function parseCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedCommandLine {
  const tokens = tokenize(argv);
  const role = pickRole(tokens, env);
  if (tokens.some((t) => t.name === 'help' || t.name === 'h')) return { action: 'help', text: helpText(role) };
  if (tokens.some((t) => t.name === 'version')) return { action: 'version', text: versionText() };
  const logLevel = pickLogLevel(tokens, env);

  const flags = flagsFor(role);
  const inputs: Record<Server, Record<string, unknown>> = { nsqd: {}, lookupd: {} };

  for (const f of flags.values()) {
    const raw = env[f.env];
    if (raw === undefined || raw === '') continue;
    inputs[f.server][f.option] =
      f.kind === 'list'
        ? raw
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== '')
        : convert(f, raw, f.env);
  }

  const listsFromFlags = new Set<string>();
  const brokerValues = new Map<string, { raw: string | undefined; where: string }>();
  for (const f of BROKER_FLAGS) {
    const raw = env[f.env];
    if (raw !== undefined && raw !== '' && f.roles.includes(role)) brokerValues.set(f.flag, { raw, where: f.env });
  }
  for (const t of tokens) {
    if (t.name === 'role' || t.name === 'log-level') continue;
    const bf = BROKER_FLAG_BY_NAME.get(t.name);
    if (bf) {
      if (!bf.roles.includes(role)) throw new BrokerFlagError(`--${t.name}`, unknownFlagMessage(t.name, role));
      brokerValues.set(bf.flag, { raw: t.value, where: t.value === undefined ? `--${t.name}` : `--${t.name}=${t.value}` });
      continue;
    }
    const f = flags.get(t.name);
    if (!f) throw new BrokerFlagError(`--${t.name}`, unknownFlagMessage(t.name, role));
    const value = convert(f, t.value, t.value === undefined ? `--${t.name}` : `--${t.name}=${t.value}`);
    const target = inputs[f.server];
    if (f.kind === 'list') {
      // flags replace the env list rather than adding to it
      if (!listsFromFlags.has(f.flag)) target[f.option] = [];
      listsFromFlags.add(f.flag);
      (target[f.option] as string[]).push(value as string);
    } else {
      target[f.option] = value;
    }
  }

  for (const server of ['nsqd', 'lookupd'] as const) {
    const input = inputs[server];
    if (role !== 'all' && role !== server) continue;
    if (input.broadcastAddress === undefined) {
      const table = TABLES[server].table;
      const tcpAddress = (input.tcpAddress as string | undefined) ?? (table.tcpAddress?.default as string);
      const derived = defaultBroadcastAddress(tcpAddress);
      if (derived !== undefined) input.broadcastAddress = derived;
    }
    validate(server, input, flags);
  }
  const nsqd = inputs.nsqd as NsqdInput;
  const hasNsqd = role !== 'lookupd';
  return {
    action: 'run',
    config: {
      role,
      logLevel,
      nsqd,
      lookupd: inputs.lookupd as NsqlookupdInput,
      history: hasNsqd ? historyConfig(brokerValues, nsqd.dataPath || process.cwd()) : undefined,
      admin: hasNsqd ? adminConfig(brokerValues) : { address: undefined, token: undefined },
    },
  };
}

type BrokerValues = ReadonlyMap<string, { raw: string | undefined; where: string }>;

function brokerValue(values: BrokerValues, flag: string): string | number | boolean | undefined {
  const given = values.get(flag);
  const spec = BROKER_FLAG_BY_NAME.get(flag);
  if (!given || !spec) return undefined;
  const { raw, where } = given;
  const bad = (why: string): never => {
    throw new BrokerFlagError(where.split('=')[0] ?? where, `invalid value ${JSON.stringify(raw ?? '')} for ${where}: ${why}`);
  };
  switch (spec.kind) {
    case 'bool':
      return raw === undefined ? true : (parseGoBool(raw) ?? bad('expected true or false'));
    case 'int': {
      const text = (raw ?? '').trim();
      return /^\d+$/.test(text) ? Number(text) : bad('expected a whole number >= 0');
    }
    case 'duration': {
      let ms: number;
      try {
        ms = parseDuration(raw ?? '');
      } catch (err) {
        return bad((err as Error).message);
      }
      return ms < 0 ? bad('must not be negative') : ms;
    }
    case 'string':
      return raw ?? '';
  }
}

function historyConfig(values: BrokerValues, dataPath: string): BrokerHistoryConfig {
  const url = brokerValue(values, 'history-db') as string | undefined;
  let db: HistoryDataSourceOptions | undefined;
  if (url !== undefined && /^(off|none|false)$/i.test(url.trim())) {
    db = undefined;
  } else {
    try {
      db = historyOptionsFromUrl(url, join(dataPath, 'history.sqlite'));
    } catch (err) {
      const where = values.get('history-db')?.where.split('=')[0] ?? '--history-db';
      throw new BrokerFlagError(where, `${where}: ${(err as Error).message}`);
    }
  }
  const spool = brokerValue(values, 'history-spool') as string | undefined;
  return {
    db,
    spoolPath: spool || join(dataPath, 'history.spool'),
    journal: (brokerValue(values, 'history-journal') as boolean | undefined) ?? true,
    storeBodies: (brokerValue(values, 'history-store-bodies') as boolean | undefined) ?? true,
    maxBodySize: (brokerValue(values, 'history-max-body-size') as number | undefined) ?? DEFAULT_HISTORY_MAX_BODY,
    retention: (brokerValue(values, 'history-retention') as number | undefined) ?? DEFAULT_HISTORY_RETENTION,
  };
}

function adminConfig(values: BrokerValues): BrokerAdminConfig {
  const given = brokerValue(values, 'admin-address') as string | undefined;
  const token = (brokerValue(values, 'admin-token') as string | undefined) || undefined;
  const text = (given ?? DEFAULT_ADMIN_ADDRESS).trim();
  if (/^(off|none|false|)$/i.test(text)) return { address: undefined, token };
  const where = values.get('admin-address')?.where ?? '--admin-address';
  const match = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new BrokerFlagError(where.split('=')[0] ?? where, `invalid value ${JSON.stringify(text)} for ${where}: expected host:port (e.g. ${DEFAULT_ADMIN_ADDRESS}) or off`);
  }
  return { address: text, token };
}

/** Runs the libs' own validation now, so a bad combination is a flag error (exit 2) and not a failed start. */
function validate(server: Server, input: Record<string, unknown>, flags: ReadonlyMap<string, FlagSpec>): void {
  try {
    if (server === 'nsqd') resolveNsqdOptions({ ...input, logger: silentLogger });
    else resolveNsqlookupdOptions({ ...input, logger: silentLogger });
  } catch (err) {
    const field = err instanceof NsqValidationError ? err.field : '';
    const flag = [...flags.values()].find((f) => f.server === server && f.option === field);
    const name = flag ? `--${flag.flag}` : server;
    throw new BrokerFlagError(name, `${name}: ${(err as Error).message}`);
  }
}

function unknownFlagMessage(name: string, role: Role): string {
  const other = ROLES.filter((r) => r !== role).find((r) => flagsFor(r).has(name) || BROKER_FLAG_BY_NAME.get(name)?.roles.includes(r));
  const hint = other ? ` (it exists in --role ${other})` : '';
  return `flag provided but not defined: --${name}${hint}; see --help`;
}

function defaultText(f: FlagSpec): string {
  if (f.option === 'broadcastAddress') return 'the host of --tcp-address, or the OS hostname if that is a wildcard';
  const d = f.spec.default;
  if (d === undefined) return '';
  if (f.kind === 'duration' && typeof d === 'number') return formatDuration(d);
  if (Array.isArray(d)) return d.length === 0 ? '' : d.join(',');
  if (typeof d === 'string') return d === '' ? '' : JSON.stringify(d);
  return String(d);
}

const KIND_ARG: Record<FlagKind, string> = {
  string: ' string',
  int: ' int',
  number: ' number',
  duration: ' duration',
  bool: '',
  list: ' value (repeatable)',
};

function section(title: string, flags: FlagSpec[]): string[] {
  const lines = [title];
  for (const f of flags) {
    lines.push(`  --${f.flag}${KIND_ARG[f.kind]}`);
    const def = defaultText(f);
    lines.push(`      ${f.spec.doc}${def ? ` (default ${def})` : ''} [env ${f.env}]`);
  }
  return lines;
}

export function helpText(role: Role = 'all'): string {
  const flags = [...flagsFor(role).values()];
  const lines = [
    'Usage: npm run broker -- [flags]   (or: node dist/apps/broker/src/main.js [flags])',
    '',
    'Runs an nsqd and an nsqlookupd (TypeScript) in one process, or either alone. Flags follow the Go',
    'binaries: --name=value or --name value; bool flags --name or --name=false; durations as in Go',
    '(250ms, 60s, 1m30s, 1h; a plain integer is milliseconds). Env variables are read when the flag is',
    'absent (lists comma-separated). In role all, nsqd registers with the in-process nsqlookupd as well as',
    'with every --lookupd-tcp-address.',
    '',
    'Broker:',
    `  --role string`,
    `      Servers to run: all (nsqd + nsqlookupd), nsqd or lookupd (default "all") [env ${ROLE_ENV}]`,
    `  --log-level string`,
    `      debug, info, warn, error or fatal (default "info") [env ${LOG_LEVEL_ENV}]`,
    '  --help, -h',
    '      Print this text (for another role: --role <role> --help) and exit',
    '  --version',
    '      Print the version and exit',
    '',
  ];
  const own = BROKER_FLAGS.filter((f) => f.roles.includes(role));
  if (own.length > 0) {
    lines.push('Message history and admin (roles all and nsqd):');
    for (const f of own) {
      lines.push(`  --${f.flag}${f.kind === 'bool' ? '' : ` ${f.kind}`}`);
      lines.push(`      ${f.doc}${f.defaultText ? ` (default ${f.defaultText})` : ''} [env ${f.env}]`);
    }
    lines.push('');
  }
  const nsqd = flags.filter((f) => f.server === 'nsqd');
  const lookupd = flags.filter((f) => f.server === 'lookupd');
  if (nsqd.length > 0) lines.push(...section('nsqd (role all and nsqd):', nsqd), '');
  if (lookupd.length > 0) {
    const title =
      role === 'all'
        ? 'nsqlookupd (role all; in role lookupd the same flags without the "nsqlookupd-" prefix):'
        : 'nsqlookupd (role lookupd; in role all these flags take the prefix --nsqlookupd-):';
    lines.push(...section(title, lookupd), '');
  }
  return lines.join('\n');
}

export function versionText(): string {
  return `nsq-for-nestjs broker (nsqd and nsqlookupd speaking NSQ ${SERVER_VERSION}), node ${process.version}`;
}
