import type { SecureContextOptions } from 'node:tls';
import { hostname } from 'node:os';
import { createHash } from 'node:crypto';
import type { NsqLogger } from '../client/logger.js';
import { defaultLogger } from '../client/logger.js';
import { type OptionTable, resolveOptions } from '../client/options.js';
import { NSQD_DEFAULTS } from '../protocol/constants.js';

/**
 * nsqd's options, named after nsqd 1.3.0's flags in camelCase (`--mem-queue-size` → memQueueSize),
 * with the same defaults. Durations are milliseconds here; apps/broker parses Go durations
 * ("60s", "250ms") from the command line.
 */
export const NSQD_OPTIONS = {
  tcpAddress: { type: 'string', default: '127.0.0.1:4150', doc: '<host>:<port> of the TCP (protocol V2) listener; port 0 = OS-picked.' },
  httpAddress: { type: 'string', allowEmpty: true, default: '127.0.0.1:4151', doc: '<host>:<port> of the HTTP API listener; port 0 = OS-picked; empty = no HTTP.' },
  httpsAddress: { type: 'string', allowEmpty: true, default: '', doc: '<host>:<port> of the HTTPS listener (needs tlsCert/tlsKey); empty = none.' },
  broadcastAddress: { type: 'string', default: hostname(), doc: 'Address this nsqd registers with nsqlookupd (default the OS hostname).' },
  broadcastTcpPort: { type: 'number', integer: true, default: 0, min: 0, max: 65535, doc: 'TCP port registered with nsqlookupd; 0 = the listening port.' },
  broadcastHttpPort: { type: 'number', integer: true, default: 0, min: 0, max: 65535, doc: 'HTTP port registered with nsqlookupd; 0 = the listening port.' },
  lookupdTcpAddresses: { type: 'string[]', default: [], doc: 'nsqlookupd TCP addresses to register with (--lookupd-tcp-address, repeatable).' },
  dataPath: { type: 'string', allowEmpty: true, default: '', doc: 'Directory for nsqd.dat and the disk queues; empty = the current directory.' },
  nodeId: { type: 'number', integer: true, default: undefined, min: 0, max: 1023, doc: 'Node id in message ids; default crc32-like hash of the hostname % 1024.' },
  memQueueSize: { type: 'number', integer: true, default: 10_000, min: 0, max: 2 ** 31 - 1, doc: 'Messages kept in memory per topic and per channel; the rest go to disk. 0 = every message to disk before OK.' },
  maxBytesPerFile: { type: 'number', integer: true, default: 104_857_600, min: 1024, max: 2 ** 40, doc: 'Bytes per disk queue file before rolling.' },
  syncEvery: { type: 'number', integer: true, default: 2500, min: 1, max: 2 ** 31 - 1, doc: 'Disk queue reads+writes between fsyncs.' },
  syncTimeout: { type: 'number', integer: true, default: 2000, min: 1, max: 3_600_000, doc: 'ms between fsyncs of a disk queue with unsynced writes.' },
  queueScanInterval: { type: 'number', integer: true, default: 100, min: 1, max: 60_000, doc: 'ms between scans for timed-out in-flight and due deferred messages.' },
  msgTimeout: { type: 'number', integer: true, default: 60_000, min: 1, max: NSQD_DEFAULTS.maxMsgTimeout, doc: 'Default ms a delivered message may stay in flight before it is redelivered.' },
  maxMsgTimeout: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxMsgTimeout, min: 1, max: 2 ** 31 - 1, doc: 'Largest msg_timeout (ms) a client may ask for, and the bound of TOUCH.' },
  maxMsgSize: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxMsgSize, min: 1, max: 2 ** 31 - 1, doc: 'Largest message body in bytes.' },
  maxBodySize: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxBodySize, min: 1, max: 2 ** 31 - 1, doc: 'Largest command body (MPUB, IDENTIFY, AUTH) in bytes.' },
  maxReqTimeout: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxReqTimeout, min: 0, max: 2 ** 31 - 1, doc: 'Largest REQ / DPUB / HTTP defer delay in ms.' },
  maxRdyCount: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxRdyCount, min: 1, max: 2 ** 31 - 1, doc: 'Largest RDY a client may send.' },
  maxHeartbeatInterval: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxHeartbeatInterval, min: 1000, max: 2 ** 31 - 1, doc: 'Largest heartbeat_interval a client may ask for (ms).' },
  maxOutputBufferSize: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxOutputBufferSize, min: 64, max: 2 ** 31 - 1, doc: 'Largest output_buffer_size a client may ask for (bytes).' },
  minOutputBufferTimeout: { type: 'number', integer: true, default: NSQD_DEFAULTS.minOutputBufferTimeout, min: 1, max: 2 ** 31 - 1, doc: 'Smallest output_buffer_timeout a client may ask for (ms).' },
  maxOutputBufferTimeout: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxOutputBufferTimeout, min: 1, max: 2 ** 31 - 1, doc: 'Largest output_buffer_timeout a client may ask for (ms).' },
  outputBufferTimeout: { type: 'number', integer: true, default: 250, min: 1, max: 2 ** 31 - 1, doc: 'Default ms before buffered messages are flushed to a client.' },
  maxChannelConsumers: { type: 'number', integer: true, default: 0, min: 0, max: 2 ** 31 - 1, doc: 'Consumers allowed per channel; 0 = unlimited.' },
  deflate: { type: 'boolean', default: true, doc: 'Allow clients to negotiate deflate.' },
  maxDeflateLevel: { type: 'number', integer: true, default: NSQD_DEFAULTS.maxDeflateLevel, min: 1, max: 9, doc: 'Largest deflate level a client may ask for.' },
  snappy: { type: 'boolean', default: false, doc: 'Snappy is not implemented: IDENTIFY always answers snappy:false (clients fall back).' },
  tlsCert: { type: 'string', allowEmpty: true, default: '', doc: 'PEM certificate (path) for TLS upgrades and HTTPS.' },
  tlsKey: { type: 'string', allowEmpty: true, default: '', doc: 'PEM private key (path) for TLS upgrades and HTTPS.' },
  tlsRootCaFile: { type: 'string', allowEmpty: true, default: '', doc: 'CA bundle (path) used to verify client certificates.' },
  tlsClientAuthPolicy: { type: 'string', allowEmpty: true, default: '', doc: '"require" or "require-verify"; implies tlsRequired.' },
  tlsRequired: { type: 'string', default: 'false', doc: '"false", "tcp-https" (TCP must upgrade) or "true" (TCP and HTTP).' },
  tlsMinVersion: { type: 'string', default: 'tls1.2', doc: 'Lowest TLS version: tls1.2 or tls1.3 (Node refuses older ones by default).' },
  authHttpAddresses: { type: 'string[]', default: [], doc: 'authd addresses (--auth-http-address); when set, clients must AUTH.' },
  httpClientConnectTimeout: { type: 'number', integer: true, default: 2000, min: 1, max: 600_000, doc: 'ms to connect to authd / nsqlookupd HTTP.' },
  httpClientRequestTimeout: { type: 'number', integer: true, default: 5000, min: 1, max: 600_000, doc: 'ms for an authd / nsqlookupd HTTP request.' },
  logger: { type: 'object', default: defaultLogger, doc: 'Object with debug/info/warn/error methods.' },
} as const satisfies OptionTable;

export interface NsqdOptions {
  tcpAddress: string;
  httpAddress: string;
  httpsAddress: string;
  broadcastAddress: string;
  broadcastTcpPort: number;
  broadcastHttpPort: number;
  lookupdTcpAddresses: string[];
  dataPath: string;
  nodeId: number;
  memQueueSize: number;
  maxBytesPerFile: number;
  syncEvery: number;
  syncTimeout: number;
  queueScanInterval: number;
  msgTimeout: number;
  maxMsgTimeout: number;
  maxMsgSize: number;
  maxBodySize: number;
  maxReqTimeout: number;
  maxRdyCount: number;
  maxHeartbeatInterval: number;
  maxOutputBufferSize: number;
  minOutputBufferTimeout: number;
  maxOutputBufferTimeout: number;
  outputBufferTimeout: number;
  maxChannelConsumers: number;
  deflate: boolean;
  maxDeflateLevel: number;
  snappy: boolean;
  tlsCert: string;
  tlsKey: string;
  tlsRootCaFile: string;
  tlsClientAuthPolicy: '' | 'require' | 'require-verify';
  tlsRequired: 'false' | 'tcp-https' | 'true';
  tlsMinVersion: 'tls1.2' | 'tls1.3';
  authHttpAddresses: string[];
  httpClientConnectTimeout: number;
  httpClientRequestTimeout: number;
  logger: NsqLogger;
  /** Extra TLS options for the TCP upgrade and HTTPS (instead of, or on top of, tlsCert/tlsKey files). */
  tls?: SecureContextOptions;
}

export type NsqdInput = Partial<NsqdOptions>;

const CRC32_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC32_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** nsqd's default --node-id: crc32(md5(hostname)) % 1024. */
export function defaultNodeId(host = hostname()): number {
  return crc32(createHash('md5').update(host).digest()) % 1024;
}

export function resolveNsqdOptions(input: NsqdInput | undefined): NsqdOptions {
  const { tls, ...rest } = input ?? {};
  const out = resolveOptions<NsqdOptions>(NSQD_OPTIONS, rest, 'NSQD');
  if (out.nodeId === undefined) out.nodeId = defaultNodeId();
  if (!['false', 'tcp-https', 'true'].includes(out.tlsRequired)) {
    throw new TypeError(`NSQD: tlsRequired must be "false", "tcp-https" or "true", got ${String(out.tlsRequired)}`);
  }
  if (!['', 'require', 'require-verify'].includes(out.tlsClientAuthPolicy)) {
    throw new TypeError(`NSQD: tlsClientAuthPolicy must be "require" or "require-verify", got ${String(out.tlsClientAuthPolicy)}`);
  }
  if (out.tlsClientAuthPolicy !== '' && out.tlsRequired === 'false') out.tlsRequired = 'true';
  if (tls) out.tls = tls;
  return out;
}

/** The version both servers report (they speak NSQ 1.3.0's protocols). */
export const SERVER_VERSION = '1.3.0';
