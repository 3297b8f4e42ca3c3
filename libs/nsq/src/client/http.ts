/**
 * Clients for the HTTP APIs of nsqd and nsqlookupd (nsq 1.3.0, `nsqd/http.go`, `nsqlookupd/http.go`).
 *
 * - Base URLs may be given with or without a scheme: `127.0.0.1:4151` means `http://127.0.0.1:4151`.
 * - Topic and channel names are validated before any request (NsqValidationError).
 * - A non-2xx answer becomes an NsqHttpError carrying the status and the server's code
 *   (`{"message":"TOPIC_NOT_FOUND"}` ⇒ `serverMessage === 'TOPIC_NOT_FOUND'`); a refused or broken
 *   connection becomes an NsqConnectionError and an answer slower than `timeoutMs` an NsqTimeoutError.
 * - JSON answers are read both in the 1.x shape and in the pre-1.0 `{"status_code","status_txt","data"}`
 *   envelope (unwrapped unless the response says `X-NSQ-Content-Type: nsq; version=1.0`, like go-nsq).
 *
 * Uses Node's global fetch; no dependency on Nest.
 */
import { NsqConnectionError, NsqError, NsqTimeoutError, NsqValidationError } from '../protocol/errors.js';
import { assertValidChannel, assertValidTopic } from '../protocol/names.js';

/** A non-2xx answer from nsqd or nsqlookupd. */
export class NsqHttpError extends NsqError {
  /** HTTP status (for a legacy envelope answered with 200, the envelope's `status_code`). */
  readonly status: number;
  /** The server's code: the `message` of `{"message":"TOPIC_NOT_FOUND"}`, a legacy `status_txt`, or the raw body text. */
  readonly serverMessage: string;
  readonly method: string;
  readonly url: string;

  constructor(status: number, serverMessage: string, method: string, url: string) {
    super('ERR_NSQ_HTTP', `${method} ${url} failed: ${status} ${serverMessage}`.trimEnd());
    this.status = status;
    this.serverMessage = serverMessage;
    this.method = method;
    this.url = url;
  }
}

export interface NsqHttpClientOptions {
  /** Bound on each request, from dialing to the end of the response body (ms, default 5000). */
  timeoutMs?: number;
  /** Extra request headers (e.g. `Authorization`). */
  headers?: Record<string, string>;
}

export type HttpBody = Buffer | Uint8Array | string;

// ---------------------------------------------------------------------------------------------
// nsqd shapes

/** `GET /info` of nsqd (durations in nanoseconds, as Go marshals time.Duration). */
export interface NsqdInfo {
  version: string;
  broadcast_address: string;
  hostname: string;
  http_port: number;
  tcp_port: number;
  start_time: number;
  max_heartbeat_interval: number;
  max_output_buffer_size: number;
  max_output_buffer_timeout: number;
  max_deflate_level: number;
}

export interface E2eProcessingLatency {
  count: number;
  /** null unless nsqd runs with --e2e-processing-latency-percentile. */
  percentiles: Array<{ quantile: number; value: number }> | null;
}

export interface PubCount {
  topic: string;
  count: number;
}

/** A TCP client of nsqd as reported by /stats (consumer, or producer with `pub_counts`). */
export interface NsqdClientStats {
  client_id: string;
  hostname: string;
  version: string;
  remote_address: string;
  /** 0 init, 1 disconnected, 2 connected, 3 subscribed, 4 closing. */
  state: number;
  ready_count: number;
  in_flight_count: number;
  message_count: number;
  finish_count: number;
  requeue_count: number;
  /** Unix seconds. */
  connect_ts: number;
  sample_rate: number;
  deflate: boolean;
  snappy: boolean;
  user_agent: string;
  authed?: boolean;
  auth_identity?: string;
  auth_identity_url?: string;
  pub_counts?: PubCount[];
  tls: boolean;
  tls_cipher_suite: string;
  tls_version: string;
  tls_negotiated_protocol: string;
  tls_negotiated_protocol_is_mutual: boolean;
}

export interface NsqdChannelStats {
  channel_name: string;
  /** Messages waiting (memory + disk); excludes in-flight and deferred. */
  depth: number;
  backend_depth: number;
  in_flight_count: number;
  deferred_count: number;
  message_count: number;
  requeue_count: number;
  timeout_count: number;
  client_count: number;
  /** null when requested with `includeClients: false`. */
  clients: NsqdClientStats[] | null;
  paused: boolean;
  e2e_processing_latency: E2eProcessingLatency;
}

export interface NsqdTopicStats {
  topic_name: string;
  channels: NsqdChannelStats[];
  depth: number;
  backend_depth: number;
  message_count: number;
  message_bytes: number;
  paused: boolean;
  e2e_processing_latency: E2eProcessingLatency;
}

export interface NsqdMemoryStats {
  heap_objects: number;
  heap_idle_bytes: number;
  heap_in_use_bytes: number;
  heap_released_bytes: number;
  gc_pause_usec_100: number;
  gc_pause_usec_99: number;
  gc_pause_usec_95: number;
  next_gc_bytes: number;
  gc_total_runs: number;
}

/** `GET /stats?format=json` of nsqd. */
export interface NsqdStats {
  version: string;
  /** "OK" or "NOK - <error>". */
  health: string;
  /** Unix seconds. */
  start_time: number;
  /** Sorted by name; `[]` when a `topic` filter matches nothing. */
  topics: NsqdTopicStats[];
  /** Absent with `includeMem: false`. */
  memory?: NsqdMemoryStats;
  /** TCP clients that have published; null when none or with `includeClients: false`. */
  producers: NsqdClientStats[] | null;
}

export interface NsqdStatsOptions {
  /** Only this topic (unknown topic ⇒ `topics: []`). */
  topic?: string;
  /** Only this channel (a topic without it is omitted). */
  channel?: string;
  /** Default true (nsqd's default). */
  includeClients?: boolean;
  /** Default true (nsqd's default). */
  includeMem?: boolean;
}

// ---------------------------------------------------------------------------------------------
// nsqlookupd shapes

/** An nsqd as registered with nsqlookupd. Connect to `broadcast_address:tcp_port`. */
export interface PeerInfo {
  remote_address: string;
  hostname: string;
  broadcast_address: string;
  tcp_port: number;
  http_port: number;
  version: string;
}

export interface LookupResult {
  channels: string[];
  producers: PeerInfo[];
}

/** An entry of nsqlookupd's `GET /nodes`: `tombstones[i]` belongs to `topics[i]`. */
export interface LookupdNode extends PeerInfo {
  topics: string[];
  tombstones: boolean[];
}

// ---------------------------------------------------------------------------------------------

const ACCEPT = 'application/vnd.nsq; version=1.0';
const V1_CONTENT_TYPE = 'nsq; version=1.0';
const DEFAULT_TIMEOUT_MS = 5000;

type Query = Record<string, string | number | boolean | undefined>;

interface HttpAnswer {
  status: number;
  text: string;
  headers: Headers;
  method: string;
  url: string;
}

/** `127.0.0.1:4151`, `http://127.0.0.1:4151/` ⇒ `http://127.0.0.1:4151`. */
export function normalizeHttpBaseUrl(input: string): string {
  if (typeof input !== 'string' || input.trim() === '') {
    throw new NsqValidationError('baseUrl', 'an HTTP address is required, e.g. "127.0.0.1:4151" or "http://127.0.0.1:4151"');
  }
  const text = input.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new NsqValidationError('baseUrl', `${JSON.stringify(input)} is not a valid HTTP address`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new NsqValidationError('baseUrl', `${JSON.stringify(input)}: only http:// and https:// are supported`);
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function toBuffer(body: HttpBody, field: string): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new NsqValidationError(field, `${field} must be a Buffer, a Uint8Array or a string, got ${typeof body}`);
}

/** Shared request machinery of both clients. */
class HttpTransport {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs: number,
    private readonly headers: Record<string, string>,
  ) {}

  /** Performs a request; throws NsqHttpError on a non-2xx status. */
  async request(method: 'GET' | 'POST', path: string, query: Query = {}, body?: Buffer): Promise<HttpAnswer> {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const href = url.toString();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    let answer: HttpAnswer;
    try {
      const headers: Record<string, string> = { Accept: ACCEPT, ...this.headers };
      if (body !== undefined) headers['Content-Type'] = 'application/octet-stream';
      const res = await fetch(href, {
        method,
        headers,
        body: method === 'POST' ? (body ?? Buffer.alloc(0)) : undefined,
        signal: controller.signal,
      });
      const text = await res.text();
      answer = { status: res.status, text, headers: res.headers, method, url: href };
    } catch (err) {
      if (timedOut) throw new NsqTimeoutError(`${method} ${href} timed out after ${this.timeoutMs} ms`);
      // fetch rejects with TypeError('fetch failed') whose cause is the socket error (ECONNREFUSED, ...).
      // Duck-typed: the errors may come from another realm (e.g. Jest's vm context), where instanceof fails.
      const cause = (err as { cause?: unknown }).cause;
      throw new NsqConnectionError(`${method} ${href} failed: ${describeNetworkError(cause ?? err)}`, { cause: cause ?? err });
    } finally {
      clearTimeout(timer);
    }
    if (answer.status < 200 || answer.status > 299) {
      throw new NsqHttpError(answer.status, errorCode(answer.text), method, href);
    }
    return answer;
  }

  /** GET/POST and parse the JSON body (unwrapping the legacy envelope). */
  async json(method: 'GET' | 'POST', path: string, query?: Query): Promise<unknown> {
    const answer = await this.request(method, path, query);
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      throw new NsqHttpError(answer.status, `INVALID_JSON_RESPONSE ${answer.text.slice(0, 100)}`, answer.method, answer.url);
    }
    if (answer.headers.get('x-nsq-content-type') === V1_CONTENT_TYPE || !isRecord(parsed) || !('data' in parsed)) {
      return parsed;
    }
    // Pre-1.0 envelope: {"status_code":200,"status_txt":"OK","data":{...}}
    const statusCode = typeof parsed.status_code === 'number' ? parsed.status_code : 200;
    if (statusCode < 200 || statusCode > 299) {
      const txt = typeof parsed.status_txt === 'string' ? parsed.status_txt : answer.text;
      throw new NsqHttpError(statusCode, txt, answer.method, answer.url);
    }
    return parsed.data;
  }

  /** `GET /ping`: true on `OK`, false on nsqd's `500 NOK - <error>` (reachable but unhealthy). */
  async ping(): Promise<boolean> {
    try {
      const answer = await this.request('GET', '/ping');
      return answer.text.trim() === 'OK';
    } catch (err) {
      if (err instanceof NsqHttpError && err.status === 500 && err.serverMessage.startsWith('NOK')) return false;
      throw err;
    }
  }
}

function describeNetworkError(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const { code, message, errors } = err as { code?: unknown; message?: unknown; errors?: unknown };
  let text = typeof message === 'string' && message !== '' ? message : String(err);
  // AggregateError (several addresses tried) has an empty message and the details in `errors`
  if (Array.isArray(errors) && errors.length > 0 && (typeof message !== 'string' || message === '')) {
    text = errors.map(describeNetworkError).join('; ');
  }
  return typeof code === 'string' && !text.includes(code) ? `${code} ${text}` : text;
}

/** The code in an error body: `{"message":"X"}` (1.x), `{"status_txt":"X"}` (legacy), else the text. */
function errorCode(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed)) {
      if (typeof parsed.message === 'string') return parsed.message;
      if (typeof parsed.status_txt === 'string') return parsed.status_txt;
    }
  } catch {
    // not JSON
  }
  return text.trim();
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function field(value: unknown, name: string): unknown {
  return isRecord(value) ? value[name] : undefined;
}

function transport(baseUrl: string, options: NsqHttpClientOptions): HttpTransport {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new NsqValidationError('timeoutMs', `timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  return new HttpTransport(normalizeHttpBaseUrl(baseUrl), timeoutMs, { ...options.headers });
}

// ---------------------------------------------------------------------------------------------

/** Client for nsqd's HTTP API (default port 4151). */
export class NsqdHttpClient {
  private readonly http: HttpTransport;

  constructor(baseUrl: string, options: NsqHttpClientOptions = {}) {
    this.http = transport(baseUrl, options);
  }

  /** The normalized base URL, e.g. `http://127.0.0.1:4151`. */
  get baseUrl(): string {
    return this.http.baseUrl;
  }

  /** `GET /ping`: true when healthy, false when nsqd answers `500 NOK - ...` (after a disk write failure). */
  ping(): Promise<boolean> {
    return this.http.ping();
  }

  async info(): Promise<NsqdInfo> {
    return (await this.http.json('GET', '/info')) as NsqdInfo;
  }

  /** `POST /pub` (auto-creates the topic). `deferMs`: deliver after this delay (nsqd caps it at --max-req-timeout). */
  async publish(topic: string, body: HttpBody, options: { deferMs?: number } = {}): Promise<void> {
    assertValidTopic(topic);
    const data = toBuffer(body, 'body');
    if (data.length === 0) throw new NsqValidationError('body', 'body is empty: nsqd rejects empty messages');
    const { deferMs } = options;
    if (deferMs !== undefined && (!Number.isInteger(deferMs) || deferMs < 0)) {
      throw new NsqValidationError('deferMs', `deferMs must be a non-negative integer, got ${deferMs}`);
    }
    await this.http.request('POST', '/pub', { topic, defer: deferMs }, data);
  }

  /**
   * `POST /mpub`. Binary (the default) sends `[int32 count]([int32 size][bytes])*` and carries any
   * bytes; text (`binary: false`) sends the bodies separated by `\n`, so a body may not contain `\n`.
   * Empty bodies are rejected in both modes (text mode would silently drop them).
   */
  async publishMany(topic: string, bodies: readonly HttpBody[], options: { binary?: boolean } = {}): Promise<void> {
    assertValidTopic(topic);
    if (!Array.isArray(bodies) || bodies.length === 0) {
      throw new NsqValidationError('bodies', 'publishMany needs at least one message body');
    }
    const buffers = bodies.map((body, i) => {
      const data = toBuffer(body, `bodies[${i}]`);
      if (data.length === 0) throw new NsqValidationError(`bodies[${i}]`, `bodies[${i}] is empty: nsqd rejects empty messages`);
      return data;
    });
    const binary = options.binary ?? true;
    let payload: Buffer;
    if (binary) {
      const total = buffers.reduce((sum, b) => sum + 4 + b.length, 4);
      payload = Buffer.allocUnsafe(total);
      let offset = payload.writeInt32BE(buffers.length, 0);
      for (const b of buffers) {
        offset = payload.writeInt32BE(b.length, offset);
        offset += b.copy(payload, offset);
      }
    } else {
      buffers.forEach((b, i) => {
        if (b.includes(0x0a)) {
          throw new NsqValidationError(
            `bodies[${i}]`,
            `bodies[${i}] contains a newline, which the text format of /mpub uses as the separator: use binary: true`,
          );
        }
      });
      const parts: Buffer[] = [];
      const newline = Buffer.from('\n');
      buffers.forEach((b, i) => {
        if (i > 0) parts.push(newline);
        parts.push(b);
      });
      payload = Buffer.concat(parts);
    }
    await this.http.request('POST', '/mpub', { topic, binary: binary ? 'true' : 'false' }, payload);
  }

  /** `GET /stats?format=json`. */
  async stats(options: NsqdStatsOptions = {}): Promise<NsqdStats> {
    if (options.topic !== undefined) assertValidTopic(options.topic);
    if (options.channel !== undefined) assertValidChannel(options.channel);
    const stats = (await this.http.json('GET', '/stats', {
      format: 'json',
      topic: options.topic,
      channel: options.channel,
      include_clients: options.includeClients,
      include_mem: options.includeMem,
    })) as NsqdStats;
    if (isRecord(stats) && !Array.isArray(stats.topics)) stats.topics = [];
    return stats;
  }

  createTopic(topic: string): Promise<void> {
    return this.topicAction('create', topic);
  }
  /** 404 TOPIC_NOT_FOUND when it does not exist. */
  deleteTopic(topic: string): Promise<void> {
    return this.topicAction('delete', topic);
  }
  /** Drops the topic's queued messages (not its channels'). */
  emptyTopic(topic: string): Promise<void> {
    return this.topicAction('empty', topic);
  }
  /** Stops the topic from copying messages to its channels (they queue in the topic). */
  pauseTopic(topic: string): Promise<void> {
    return this.topicAction('pause', topic);
  }
  unpauseTopic(topic: string): Promise<void> {
    return this.topicAction('unpause', topic);
  }

  /** The topic must exist (404 TOPIC_NOT_FOUND otherwise). */
  createChannel(topic: string, channel: string): Promise<void> {
    return this.channelAction('create', topic, channel);
  }
  deleteChannel(topic: string, channel: string): Promise<void> {
    return this.channelAction('delete', topic, channel);
  }
  emptyChannel(topic: string, channel: string): Promise<void> {
    return this.channelAction('empty', topic, channel);
  }
  /** Stops delivery to the channel's consumers (messages keep queueing). */
  pauseChannel(topic: string, channel: string): Promise<void> {
    return this.channelAction('pause', topic, channel);
  }
  unpauseChannel(topic: string, channel: string): Promise<void> {
    return this.channelAction('unpause', topic, channel);
  }

  private async topicAction(action: string, topic: string): Promise<void> {
    assertValidTopic(topic);
    await this.http.request('POST', `/topic/${action}`, { topic });
  }

  private async channelAction(action: string, topic: string, channel: string): Promise<void> {
    assertValidTopic(topic);
    assertValidChannel(channel);
    await this.http.request('POST', `/channel/${action}`, { topic, channel });
  }
}

/** Client for nsqlookupd's HTTP API (default port 4161). */
export class LookupdHttpClient {
  private readonly http: HttpTransport;

  constructor(baseUrl: string, options: NsqHttpClientOptions = {}) {
    this.http = transport(baseUrl, options);
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  ping(): Promise<boolean> {
    return this.http.ping();
  }

  async info(): Promise<{ version: string }> {
    return (await this.http.json('GET', '/info')) as { version: string };
  }

  /** Channels and active producers of `topic`; an unknown topic gives empty lists (not an error). */
  async lookup(topic: string): Promise<LookupResult> {
    assertValidTopic(topic);
    let data: unknown;
    try {
      data = await this.http.json('GET', '/lookup', { topic });
    } catch (err) {
      if (err instanceof NsqHttpError && err.serverMessage === 'TOPIC_NOT_FOUND') return { channels: [], producers: [] };
      throw err;
    }
    const producers = field(data, 'producers');
    return {
      channels: stringArray(field(data, 'channels')),
      producers: Array.isArray(producers) ? (producers.filter(isRecord) as unknown as PeerInfo[]) : [],
    };
  }

  async topics(): Promise<string[]> {
    return stringArray(field(await this.http.json('GET', '/topics'), 'topics'));
  }

  async channels(topic: string): Promise<string[]> {
    assertValidTopic(topic);
    return stringArray(field(await this.http.json('GET', '/channels', { topic }), 'channels'));
  }

  /** All active nsqd nodes with their topics. */
  async nodes(): Promise<LookupdNode[]> {
    const producers = field(await this.http.json('GET', '/nodes'), 'producers');
    if (!Array.isArray(producers)) return [];
    return producers.filter(isRecord).map((p) => ({
      ...(p as unknown as PeerInfo),
      topics: stringArray(p.topics),
      tombstones: Array.isArray(p.tombstones) ? p.tombstones.map(Boolean) : [],
    }));
  }

  async createTopic(topic: string): Promise<void> {
    assertValidTopic(topic);
    await this.http.request('POST', '/topic/create', { topic });
  }

  async deleteTopic(topic: string): Promise<void> {
    assertValidTopic(topic);
    await this.http.request('POST', '/topic/delete', { topic });
  }

  async createChannel(topic: string, channel: string): Promise<void> {
    assertValidTopic(topic);
    assertValidChannel(channel);
    await this.http.request('POST', '/channel/create', { topic, channel });
  }

  async deleteChannel(topic: string, channel: string): Promise<void> {
    assertValidTopic(topic);
    assertValidChannel(channel);
    await this.http.request('POST', '/channel/delete', { topic, channel });
  }

  /**
   * Hides the producer `node` (`<broadcast_address>:<http_port>`) of `topic` from lookups for
   * nsqlookupd's --tombstone-lifetime (default 45 s), e.g. before deleting the topic on that nsqd.
   */
  async tombstoneTopicProducer(topic: string, node: string): Promise<void> {
    assertValidTopic(topic);
    if (typeof node === 'string') node = node.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
    if (typeof node !== 'string' || !/^.+:\d+$/.test(node)) {
      throw new NsqValidationError('node', `node must be "<broadcast_address>:<http_port>", got ${JSON.stringify(node)}`);
    }
    await this.http.request('POST', '/topic/tombstone', { topic, node });
  }
}
