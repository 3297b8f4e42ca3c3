import { hostname } from 'node:os';
import type { NsqLogger } from '../client/logger.js';
import { defaultLogger } from '../client/logger.js';
import { type OptionTable, resolveOptions } from '../client/options.js';

/** nsqlookupd's options, named after nsqlookupd 1.3.0's flags in camelCase; durations in ms. */
export const NSQLOOKUPD_OPTIONS = {
  tcpAddress: { type: 'string', default: '127.0.0.1:4160', doc: '<host>:<port> of the TCP (protocol V1) listener; port 0 = OS-picked.' },
  httpAddress: { type: 'string', default: '127.0.0.1:4161', doc: '<host>:<port> of the HTTP API listener; port 0 = OS-picked.' },
  broadcastAddress: { type: 'string', default: hostname(), doc: 'Address of this lookupd told to nsqd in the IDENTIFY answer.' },
  inactiveProducerTimeout: { type: 'number', integer: true, default: 300_000, min: 1, max: 2 ** 31 - 1, doc: 'ms since its last PING after which an nsqd is left out of answers.' },
  tombstoneLifetime: { type: 'number', integer: true, default: 45_000, min: 1, max: 2 ** 31 - 1, doc: 'ms a tombstoned producer stays out of /lookup answers.' },
  logger: { type: 'object', default: defaultLogger, doc: 'Object with debug/info/warn/error methods.' },
} as const satisfies OptionTable;

export interface NsqlookupdOptions {
  tcpAddress: string;
  httpAddress: string;
  broadcastAddress: string;
  inactiveProducerTimeout: number;
  tombstoneLifetime: number;
  logger: NsqLogger;
}

export type NsqlookupdInput = Partial<NsqlookupdOptions>;

export function resolveNsqlookupdOptions(input: NsqlookupdInput | undefined): NsqlookupdOptions {
  return resolveOptions<NsqlookupdOptions>(NSQLOOKUPD_OPTIONS, input, 'NSQLookupd');
}
