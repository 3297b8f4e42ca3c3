import { hostname } from 'node:os';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { NSQD_DEFAULTS } from '../protocol/constants.js';
import { NsqValidationError } from '../protocol/errors.js';
import { type NsqLogger, defaultLogger } from './logger.js';

/**
 * Every option is declared once, go-nsq config.go style: name, default, bounds and a doc line.
 * The same tables validate user input (resolveOptions) and generate the README's option reference
 * (optionsMarkdown), so code, validation and docs cannot drift apart.
 */
export interface OptionSpec {
  default: unknown;
  doc: string;
  type: 'number' | 'boolean' | 'string' | 'string[]' | 'function' | 'object' | 'tls';
  min?: number;
  max?: number;
  integer?: boolean;
  /** Values allowed besides [min, max] (e.g. -1 to disable). */
  also?: readonly number[];
  /** The option has no default value and must be given. */
  required?: boolean;
  /** An empty string is a valid value (it means "off", e.g. no HTTPS listener). */
  allowEmpty?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export const USER_AGENT = 'nsq-for-nestjs/0.1.0';
const shortHostname = hostname().split('.')[0] ?? 'localhost';

export const CONNECTION_OPTIONS = {
  clientId: { type: 'string', default: shortHostname, doc: 'IDENTIFY client_id, shown in nsqd stats and nsqadmin.' },
  hostname: { type: 'string', default: hostname(), doc: 'IDENTIFY hostname.' },
  userAgent: { type: 'string', default: USER_AGENT, doc: 'IDENTIFY user_agent.' },
  heartbeatInterval: {
    type: 'number', integer: true, default: 30_000, min: 1000, max: NSQD_DEFAULTS.maxHeartbeatInterval,
    doc: 'ms between nsqd heartbeats (answered with NOP); nsqd closes the connection after two missed NOPs.',
  },
  readTimeout: {
    type: 'number', integer: true, default: undefined, min: 100, max: 300_000,
    doc: 'ms without any bytes from nsqd after which the connection is considered dead (missed heartbeats); default 2 x heartbeatInterval. Must be >= heartbeatInterval.',
  },
  dialTimeout: { type: 'number', integer: true, default: 1000, min: 10, max: 60_000, doc: 'ms allowed for the TCP connect; the handshake (IDENTIFY, TLS, AUTH) is bounded by readTimeout.' },
  outputBufferSize: {
    type: 'number', integer: true, default: 16_384, min: 64, max: NSQD_DEFAULTS.maxOutputBufferSize, also: [-1],
    doc: 'IDENTIFY output_buffer_size: bytes nsqd buffers before writing to this client; -1 disables buffering.',
  },
  outputBufferTimeout: {
    type: 'number', integer: true, default: 250, min: NSQD_DEFAULTS.minOutputBufferTimeout, max: NSQD_DEFAULTS.maxOutputBufferTimeout, also: [-1],
    doc: 'IDENTIFY output_buffer_timeout: ms after which nsqd flushes buffered messages; -1 disables timed flushes.',
  },
  msgTimeout: {
    type: 'number', integer: true, default: 0, min: 1000, max: NSQD_DEFAULTS.maxMsgTimeout, also: [0],
    doc: 'IDENTIFY msg_timeout: ms a delivered message may stay in flight before nsqd redelivers it; 0 = nsqd --msg-timeout.',
  },
  sampleRate: { type: 'number', integer: true, default: 0, min: 0, max: 99, doc: 'IDENTIFY sample_rate: deliver only this percentage of the channel to this consumer (0 = all).' },
  tls: {
    type: 'tls', default: false,
    doc: 'Upgrade to TLS when nsqd supports it: true, or node:tls options (ca, cert, key, servername, rejectUnauthorized).',
  },
  deflate: { type: 'boolean', default: false, doc: 'Negotiate raw DEFLATE compression of the stream (nsqd --deflate).' },
  deflateLevel: { type: 'number', integer: true, default: 6, min: 1, max: 9, doc: 'Requested deflate level; nsqd caps it at --max-deflate-level.' },
  authSecret: { type: 'string', default: undefined, doc: 'Secret sent with AUTH, only when nsqd answers IDENTIFY with auth_required.' },
  maxMsgSize: {
    type: 'number', integer: true, default: NSQD_DEFAULTS.maxMsgSize, min: 1, max: 2 ** 31 - 1,
    doc: 'Largest message body accepted before it reaches the wire; match nsqd --max-msg-size.',
  },
  maxBodySize: {
    type: 'number', integer: true, default: NSQD_DEFAULTS.maxBodySize, min: 1, max: 2 ** 31 - 1,
    doc: 'Largest MPUB body accepted before it reaches the wire; match nsqd --max-body-size.',
  },
  logger: { type: 'object', default: defaultLogger, doc: 'Object with debug/info/warn/error methods.' },
} as const satisfies OptionTable;

const RECONNECT_OPTIONS = {
  reconnectDelay: { type: 'number', integer: true, default: 100, min: 1, max: 600_000, doc: 'ms before the first reconnect attempt; doubles per failure (with jitter).' },
  maxReconnectDelay: { type: 'number', integer: true, default: 10_000, min: 1, max: 3_600_000, doc: 'Upper bound of the reconnect delay.' },
} as const satisfies OptionTable;

export const PRODUCER_OPTIONS = {
  ...CONNECTION_OPTIONS,
  ...RECONNECT_OPTIONS,
  maxOutstanding: {
    type: 'number', integer: true, default: 1000, min: 1, max: 1_000_000,
    doc: 'Commands written and awaiting nsqd\'s answer (the pipelining window). Further publishes wait in the queue.',
  },
  maxQueued: {
    type: 'number', integer: true, default: 100_000, min: 0, max: 100_000_000,
    doc: 'Publishes waiting for the window; beyond this a publish rejects at once with NsqBackpressureError.',
  },
  retries: {
    type: 'number', integer: true, default: 0, min: 0, max: 1000,
    doc: 'Times a publish is sent again after its connection was lost before nsqd answered (at-least-once: may duplicate). 0 rejects with NsqConnectionError.',
  },
  closeTimeout: { type: 'number', integer: true, default: 5000, min: 0, max: 600_000, doc: 'ms close() waits for outstanding publishes before closing the connection.' },
  coalescePublishes: {
    type: 'boolean', default: true,
    doc: 'Send PUBs to one topic issued in the same event-loop turn as one MPUB (nsqd stores all or none; each promise settles on the answer to the command that carried it). Lifts single-publish throughput past nsqd\'s one-flush-per-PUB limit.',
  },
} as const satisfies OptionTable;

export type RequeueDelay = number | ((attempts: number) => number);

export const CONSUMER_OPTIONS = {
  ...CONNECTION_OPTIONS,
  ...RECONNECT_OPTIONS,
  topic: { type: 'string', default: undefined, required: true, doc: 'Topic to subscribe to.' },
  channel: { type: 'string', default: undefined, required: true, doc: 'Channel to subscribe to (each channel gets every message of the topic).' },
  handler: {
    type: 'function', default: undefined, required: true,
    doc: 'Called per message. Resolving FINs the message (unless it was already answered); throwing REQueues it and backs off.',
  },
  nsqdTCPAddresses: { type: 'string[]', default: [], doc: 'nsqd TCP addresses (host:port) to connect to directly.' },
  lookupdHTTPAddresses: { type: 'string[]', default: [], doc: 'nsqlookupd HTTP addresses; the union of all their answers is used.' },
  lookupdPollInterval: { type: 'number', integer: true, default: 60_000, min: 10, max: 300_000, doc: 'ms between lookupd queries.' },
  lookupdPollJitter: { type: 'number', default: 0.3, min: 0, max: 1, doc: 'Fraction of lookupdPollInterval added at random to each wait, so consumers do not query in step.' },
  lookupdPollTimeout: { type: 'number', integer: true, default: 5000, min: 10, max: 300_000, doc: 'ms allowed for one lookupd HTTP query.' },
  maxInFlight: {
    type: 'number', integer: true, default: 1, min: 0, max: 1_000_000,
    doc: 'Messages in flight across all connections; RDY is spread so the sum over connections equals it.',
  },
  concurrency: { type: 'number', integer: true, default: 0, min: 0, max: 1_000_000, doc: 'Handlers running at once; 0 = maxInFlight.' },
  maxAttempts: { type: 'number', integer: true, default: 0, min: 0, max: 65_535, doc: 'Deliveries allowed per message; beyond it onMaxAttempts gets the message, then it is FINed. 0 = unlimited.' },
  onMaxAttempts: {
    type: 'function', default: undefined,
    doc: 'Receives each message over maxAttempts (e.g. to dead-letter it). If it throws, the message is requeued, never dropped.',
  },
  defaultRequeueDelay: { type: 'number', integer: true, default: 90_000, min: 0, max: NSQD_DEFAULTS.maxReqTimeout, doc: 'ms; a failed message is requeued after defaultRequeueDelay x attempts ...' },
  maxRequeueDelay: { type: 'number', integer: true, default: 900_000, min: 0, max: NSQD_DEFAULTS.maxReqTimeout, doc: '... capped at maxRequeueDelay.' },
  requeueDelay: { type: 'function', default: undefined, doc: 'Overrides the two above: a number of ms, or (attempts) => ms.' },
  backoffStrategy: { type: 'string', default: 'exponential', doc: '"exponential" (multiplier x 2^n) or "full_jitter" (random up to that).' },
  backoffMultiplier: { type: 'number', integer: true, default: 1000, min: 0, max: 3_600_000, doc: 'ms unit of the backoff after handler failures.' },
  maxBackoffDuration: { type: 'number', integer: true, default: 120_000, min: 0, max: 3_600_000, doc: 'Upper bound of one backoff wait.' },
  rdyRedistributeInterval: {
    type: 'number', integer: true, default: 5000, min: 1, max: 600_000,
    doc: 'ms between RDY rotations when connections outnumber maxInFlight (idle connections hand their RDY to others).',
  },
  closeTimeout: { type: 'number', integer: true, default: 30_000, min: 0, max: 3_600_000, doc: 'ms close() waits for in-flight handlers after CLS.' },
} as const satisfies OptionTable;

export interface ConnectionOptions {
  clientId: string;
  hostname: string;
  userAgent: string;
  heartbeatInterval: number;
  readTimeout: number;
  dialTimeout: number;
  outputBufferSize: number;
  outputBufferTimeout: number;
  msgTimeout: number;
  sampleRate: number;
  tls: boolean | TlsConnectionOptions;
  deflate: boolean;
  deflateLevel: number;
  authSecret: string | undefined;
  maxMsgSize: number;
  maxBodySize: number;
  logger: NsqLogger;
}

interface ReconnectOptions {
  reconnectDelay: number;
  maxReconnectDelay: number;
}

export interface ProducerOptions extends ConnectionOptions, ReconnectOptions {
  maxOutstanding: number;
  maxQueued: number;
  retries: number;
  closeTimeout: number;
  coalescePublishes: boolean;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `array ${JSON.stringify(value)}`;
  return String(value);
}

function checkOne(owner: string, name: string, spec: OptionSpec, value: unknown): void {
  const fail = (what: string): never => {
    throw new NsqValidationError(name, `${owner}: option ${name} ${what}, got ${describeValue(value)}`);
  };
  switch (spec.type) {
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) fail('must be a number');
      const n = value as number;
      if (spec.also?.includes(n)) return;
      if (spec.integer && !Number.isInteger(n)) fail('must be an integer');
      const range = `${spec.min ?? '-inf'}..${spec.max ?? 'inf'}` + (spec.also?.length ? ` or ${spec.also.join(', ')}` : '');
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) fail(`must be in ${range}`);
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail('must be true or false');
      return;
    case 'string':
      if (typeof value !== 'string' || (value.length === 0 && !spec.allowEmpty)) fail('must be a non-empty string');
      return;
    case 'string[]':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) fail('must be an array of non-empty strings');
      return;
    case 'function':
      if (typeof value !== 'function') fail('must be a function');
      return;
    case 'object':
      if (typeof value !== 'object' || value === null) fail('must be an object');
      return;
    case 'tls':
      if (typeof value !== 'boolean' && (typeof value !== 'object' || value === null)) fail('must be a boolean or node:tls options');
      return;
  }
}

/**
 * Merges `input` over the table's defaults and validates every value. Unknown option names are
 * rejected (a misspelt option would otherwise be silently ignored).
 */
export function resolveOptions<T>(table: OptionTable, input: object | undefined, owner: string): T {
  const out: Record<string, unknown> = {};
  const given = (input ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!(key in table)) {
      throw new NsqValidationError(key, `${owner}: unknown option ${key}; known options: ${Object.keys(table).join(', ')}`);
    }
  }
  for (const [name, spec] of Object.entries(table)) {
    const value = given[name] === undefined ? spec.default : given[name];
    if (value === undefined) {
      if (spec.required) throw new NsqValidationError(name, `${owner}: option ${name} is required`);
      out[name] = undefined;
      continue;
    }
    if (name === 'requeueDelay' && typeof value === 'number') {
      checkOne(owner, name, { ...spec, type: 'number', integer: true, min: 0, max: NSQD_DEFAULTS.maxReqTimeout }, value);
    } else {
      checkOne(owner, name, spec, value);
    }
    out[name] = value;
  }
  if (out.readTimeout === undefined && typeof out.heartbeatInterval === 'number' && 'readTimeout' in table) {
    out.readTimeout = 2 * out.heartbeatInterval;
  }
  if (typeof out.readTimeout === 'number' && typeof out.heartbeatInterval === 'number' && out.readTimeout < out.heartbeatInterval) {
    throw new NsqValidationError(
      'readTimeout',
      `${owner}: readTimeout (${out.readTimeout} ms) must be >= heartbeatInterval (${out.heartbeatInterval} ms), or every connection would time out between heartbeats`,
    );
  }
  if (typeof out.maxReconnectDelay === 'number' && typeof out.reconnectDelay === 'number' && out.maxReconnectDelay < out.reconnectDelay) {
    throw new NsqValidationError('maxReconnectDelay', `${owner}: maxReconnectDelay must be >= reconnectDelay`);
  }
  return out as T;
}

/** Picks the connection options out of a producer's or consumer's resolved options. */
export function connectionOptionsOf(options: ConnectionOptions): ConnectionOptions {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CONNECTION_OPTIONS)) out[key] = (options as unknown as Record<string, unknown>)[key];
  return out as unknown as ConnectionOptions;
}

/** A markdown table of an option table, for the README. */
export function optionsMarkdown(table: OptionTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    let def: string;
    if (spec.required) def = 'required';
    else if (spec.default === undefined) def = '-';
    else if (name === 'clientId' || name === 'hostname') def = 'os hostname';
    else if (name === 'logger') def = 'console (warn, error)';
    else def = '`' + JSON.stringify(spec.default) + '`';
    const bounds =
      spec.min !== undefined ? `${spec.min}..${spec.max}${spec.also?.length ? ` or ${spec.also.join(', ')}` : ''}` : '';
    return `| \`${name}\` | ${def} | ${bounds} | ${spec.doc} |`;
  });
  return ['| option | default | range | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

function without(table: OptionTable, base: OptionTable): OptionTable {
  return Object.fromEntries(Object.entries(table).filter(([name]) => !(name in base)));
}

/** The whole option reference (libs/nsq/OPTIONS.md is this text; a unit test keeps them equal). */
export function optionsReference(): string {
  return [
    '# libs/nsq options',
    '',
    'Generated from the option tables in `libs/nsq/src/client/options.ts` (`npm run docs:options`).',
    'Names and defaults follow go-nsq and nsqd flags; durations are milliseconds.',
    '',
    '## Connection options (Producer and Consumer)',
    '',
    optionsMarkdown(CONNECTION_OPTIONS),
    '',
    '## Producer options',
    '',
    optionsMarkdown(without(PRODUCER_OPTIONS, CONNECTION_OPTIONS)),
    '',
    '## Consumer options (plus reconnectDelay and maxReconnectDelay as for the Producer)',
    '',
    optionsMarkdown(without(CONSUMER_OPTIONS, PRODUCER_OPTIONS)),
    '',
  ].join('\n');
}
