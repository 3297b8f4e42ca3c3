/**
 * nsqd's HTTP API (nsq 1.3.0 `nsqd/http.go`, `internal/http_api`), answered the way the Go server
 * does so go-nsq, nsqjs, nsqadmin, to_nsq and our NsqdHttpClient read it unchanged:
 *
 * - `X-NSQ-Content-Type: nsq; version=1.0` on every answer but `/ping` and router-level answers
 *   (redirects, OPTIONS); `OK` as text, empty bodies for actions, JSON with Go's HTML-safe escaping,
 *   errors as `{"message":"CODE"}` with the status.
 * - Routing as httprouter: unknown path 404 `NOT_FOUND`; known path with another method 405
 *   `METHOD_NOT_ALLOWED` + `Allow`; OPTIONS answers `Allow`; a trailing slash or wrong letter case
 *   is redirected (301 for GET, 307 otherwise). No HEAD routes (HEAD gets 405, as in nsqd).
 * - Query parameters as Go's url.ParseQuery (first value wins; `;` or a bad `%` escape ⇒ 400
 *   `INVALID_REQUEST` where nsqd parses them).
 * - Bodies are read with a bound (at most limit + 1 bytes are kept); what a handler does not read
 *   is discarded, and a connection whose unread rest exceeds 256 KiB is closed, as Go's server does.
 * - `tlsRequired: 'true'`: the plain listener answers everything with 403 TLS_REQUIRED.
 *
 * Publishing goes through the same path as the TCP protocol (topic.newMessage + topic.put) and
 * emits the 'published' lifecycle event with producer `http:<remote address>`.
 * The /debug/pprof routes of nsqd (Go runtime profiles) have no counterpart here.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { TLSSocket } from 'node:tls';
import {
  type ApiRoute,
  type Reply,
  type Send,
  HttpError,
  V1_JSON_HEADERS,
  TEXT_CONTENT_TYPE,
  apiRoute,
  clientErrorHandler,
  goJson,
  lazyQuery,
  msToNs,
  resolveRoute,
  runHandler,
  sendReply,
  sendUnrouted,
  sendV1Error,
  serveRequest,
  writeResponse,
} from '../internal/http-api.js';
import { boundAddress, listenerAddress, listenOn } from '../internal/listen.js';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import type { Channel } from './channel.js';
import type { NSQD } from './nsqd.js';
import { SERVER_VERSION } from './options.js';
import { formatStatsText, nsqdStats } from './stats.js';
import type { Topic } from './topic.js';
import { TopicExitingError } from './topic.js';

/** Go's server discards up to this much of an unread request body before it closes the connection. */
const DISCARD_LIMIT = 256 * 1024;
/** Go's closeWriteAndWait: after the half-close, the peer gets this long to read the answer. */
const CLOSE_GRACE_MS = 500;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
const BOOL_PARAMS: ReadonlyMap<string, boolean> = new Map([
  ['true', true],
  ['1', true],
  ['false', false],
  ['0', false],
]);
const LOG_LEVELS: ReadonlyMap<string, number> = new Map([
  ['debug', 1],
  ['info', 2],
  ['warn', 3],
  ['error', 4],
  ['fatal', 5],
]);

interface RequestContext {
  readonly req: IncomingMessage;
  readonly method: string;
  readonly path: string;
  /** httprouter's named parameters (`:opt`). */
  readonly params: Readonly<Record<string, string>>;
  /** url.ParseQuery of the raw query; throws 400 INVALID_REQUEST if it does not parse. */
  query(): ReadonlyMap<string, string>;
  /** `ip:port` of the peer. */
  readonly remoteAddress: string;
}

type Handler = (ctx: RequestContext) => Reply | Promise<Reply>;

type Route = ApiRoute & {
  /** The handler reads the request body itself; otherwise it is discarded at once. */
  readonly readsBody: boolean;
  readonly handler: Handler;
};

/** Runtime config that only the HTTP API changes (PUT /config), shared by the HTTP and HTTPS servers. */
interface RuntimeConfig {
  logLevel: number;
  /** PUT nsqlookupd_tcp_addresses with `null` (Go then reports null, not []). */
  lookupdAddressesNull: boolean;
}
const runtimeConfigs = new WeakMap<NSQD, RuntimeConfig>();

function runtimeConfig(nsqd: NSQD): RuntimeConfig {
  let config = runtimeConfigs.get(nsqd);
  if (config === undefined) {
    config = { logLevel: LOG_LEVELS.get('info')!, lookupdAddressesNull: false };
    runtimeConfigs.set(nsqd, config);
  }
  return config;
}

export class NsqdHttpServer {
  /** Parses and answers requests; for HTTPS it is fed TLS sockets by `listener`. */
  private readonly server: HttpServer;
  private readonly listener: HttpServer | NetServer;
  private readonly sockets = new Set<Socket>();
  private readonly routes: readonly Route[];
  private readonly remoteAddresses = new WeakMap<object, string>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly nsqd: NSQD,
    private readonly isHttps: boolean,
  ) {
    const route = (method: string, pattern: string, handler: Handler, readsBody = false): Route => apiRoute(method, pattern, { readsBody, handler });
    this.routes = [
      route('GET', '/ping', () => this.ping()),
      route('GET', '/info', () => this.info()),
      route('POST', '/pub', (c) => this.pub(c), true),
      route('POST', '/mpub', (c) => this.mpub(c), true),
      route('GET', '/stats', (c) => this.stats(c)),
      route('POST', '/topic/create', (c) => this.createTopic(c)),
      route('POST', '/topic/delete', (c) => this.deleteTopic(c)),
      route('POST', '/topic/empty', (c) => this.emptyTopic(c)),
      route('POST', '/topic/pause', (c) => this.pauseTopic(c, true)),
      route('POST', '/topic/unpause', (c) => this.pauseTopic(c, false)),
      route('POST', '/channel/create', (c) => this.createChannel(c)),
      route('POST', '/channel/delete', (c) => this.deleteChannel(c)),
      route('POST', '/channel/empty', (c) => this.emptyChannel(c)),
      route('POST', '/channel/pause', (c) => this.pauseChannel(c, true)),
      route('POST', '/channel/unpause', (c) => this.pauseChannel(c, false)),
      route('GET', '/config/:opt', (c) => this.config(c)),
      route('PUT', '/config/:opt', (c) => this.config(c), true),
    ];

    this.server = createHttpServer((req, res) => this.handle(req, res));
    this.server.on('clientError', clientErrorHandler(this.nsqd.logger));

    if (isHttps) {
      this.listener = createNetServer((raw) => this.onTlsConnection(raw));
    } else {
      this.listener = this.server;
      this.server.on('connection', (socket: Socket) => this.track(socket));
    }
  }

  listen(address: string): Promise<void> {
    return listenOn(this.listener, address);
  }

  /** '<host>:<port>' of the listener ('' before listen). */
  get address(): string {
    return listenerAddress(this.listener);
  }

  get port(): number {
    return boundAddress(this.listener)?.port ?? 0;
  }

  /** Stops listening and drops every connection, idle keep-alive ones included. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const listening = this.listener.listening;
      if (listening) this.listener.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
      this.server.closeAllConnections();
      if (!listening) resolve();
    });
    return this.closing;
  }

  private track(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.remoteAddresses.set(socket, peerAddress(socket));
  }

  /** HTTPS: nsqd's own TLS context (and client certificate policy), then plain HTTP on top. */
  private onTlsConnection(raw: Socket): void {
    this.track(raw);
    raw.on('error', () => raw.destroy());
    const policy = this.nsqd.options.tlsClientAuthPolicy;
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.nsqd.tlsContext!,
      requestCert: policy !== '',
      rejectUnauthorized: policy === 'require-verify',
    });
    this.remoteAddresses.set(tls, peerAddress(raw));
    const timer = setTimeout(() => raw.destroy(), TLS_HANDSHAKE_TIMEOUT_MS);
    tls.on('error', (err) => {
      this.nsqd.logger.debug(`HTTPS: ${peerAddress(raw)} - ${err.message}`);
      tls.destroy();
      raw.destroy();
    });
    tls.once('close', () => clearTimeout(timer));
    tls.once('secure', () => {
      clearTimeout(timer);
      if (policy === 'require' && !tls.getPeerCertificate()?.raw) {
        tls.destroy();
        return;
      }
      this.server.emit('connection', tls);
    });
  }

  // ---- dispatch ----------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // a peer that goes away mid-body must not become an unhandled 'error'
    req.on('error', () => undefined);
    const send: Send = (status, headers, body) => this.send(req, res, status, headers, body);
    serveRequest(req, res, { logger: this.nsqd.logger, send, remote: () => this.remoteOf(req) }, () => this.route(req, res, send));
  }

  private remoteOf(req: IncomingMessage): string {
    return this.remoteAddresses.get(req.socket) ?? peerAddress(req.socket);
  }

  /** httprouter's ServeHTTP; returns the status sent (a promise when the handler waits for the body). */
  private route(req: IncomingMessage, res: ServerResponse, send: Send): number | Promise<number> {
    const method = req.method ?? 'GET';
    if (!this.isHttps && this.nsqd.options.tlsRequired === 'true') {
      req.resume();
      const httpsPort = Number(/:(\d+)$/.exec(this.nsqd.httpsAddress ?? '')?.[1] ?? 0);
      // nsqd writes this body by hand, spaces included
      send(403, V1_JSON_HEADERS, `{"message": "TLS_REQUIRED", "https_port": ${httpsPort}}`);
      return 403;
    }

    const decision = resolveRoute(this.routes, method, req.url ?? '/', true);
    if (decision.kind !== 'match') {
      req.resume();
      return sendUnrouted(res, send, method, decision);
    }
    const { route, path, params, rawQuery } = decision;
    if (!route.readsBody) req.resume();
    const ctx: RequestContext = {
      req,
      method,
      path,
      params,
      remoteAddress: this.remoteOf(req),
      query: lazyQuery(rawQuery, (error) => this.nsqd.logger.error(`failed to parse request params - ${error}`)),
    };
    return runHandler(
      () => route.handler(ctx),
      (reply) => sendReply(send, reply),
      (err) => {
        // /ping fails with its health text as the body, as nsqd's PlainText does
        if (route.pattern === '/ping') send(err.status, { 'Content-Type': TEXT_CONTENT_TYPE }, err.code);
        else sendV1Error(send, err.status, err.code);
      },
    );
  }

  /** writeResponse, unless an answer went out already; then what is left of the body is discarded. */
  private send(req: IncomingMessage, res: ServerResponse, status: number, headers: Readonly<Record<string, string>>, body: string | Buffer): void {
    if (res.headersSent || res.destroyed) return;
    const unread = !req.readableEnded;
    // like Go's net/http: when a large part of the body stays unread, the connection is not kept
    // alive (a client would otherwise reuse a socket we are about to close)
    const length = Number(req.headers['content-length'] ?? NaN);
    const closeAfter = unread && !(length <= DISCARD_LIMIT);
    writeResponse(res, status, closeAfter ? { ...headers, Connection: 'close' } : headers, body);
    if (unread) this.discardRest(req);
  }

  /**
   * The answer went out before the whole request body arrived (too big, or not needed): drop the
   * rest. Past DISCARD_LIMIT the connection is half-closed and dropped after a grace period, so the
   * peer still reads the answer instead of a reset (Go's closeWriteAndWait).
   */
  private discardRest(req: IncomingMessage): void {
    let discarded = 0;
    let closing = false;
    const socket = req.socket;
    req.on('data', (chunk: Buffer) => {
      discarded += chunk.length;
      if (closing || discarded <= DISCARD_LIMIT) return;
      closing = true;
      socket.end();
      setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
    });
    req.resume();
  }

  // ---- handlers (nsqd/http.go) ---------------------------------------------------------------

  private ping(): Reply {
    if (!this.nsqd.isHealthy) throw new HttpError(500, this.nsqd.health);
    return { text: this.nsqd.health, plain: true };
  }

  private info(): Reply {
    const n = this.nsqd;
    const o = n.options;
    return {
      json: goJson({
        version: SERVER_VERSION,
        broadcast_address: o.broadcastAddress,
        hostname: hostname(),
        http_port: n.httpPort,
        tcp_port: n.tcpPort,
        start_time: n.startTime,
        max_heartbeat_interval: msToNs(o.maxHeartbeatInterval),
        max_output_buffer_size: o.maxOutputBufferSize,
        max_output_buffer_timeout: msToNs(o.maxOutputBufferTimeout),
        max_deflate_level: o.maxDeflateLevel,
      }),
    };
  }

  /** getTopicFromQuery: validates `topic` and gets (creates) the topic. */
  private topicFromQuery(ctx: RequestContext): { query: ReadonlyMap<string, string>; topic: Topic } {
    const query = ctx.query();
    const name = query.get('topic');
    if (name === undefined) throw new HttpError(400, 'MISSING_ARG_TOPIC');
    if (!isValidTopicName(name)) throw new HttpError(400, 'INVALID_TOPIC');
    let topic: Topic;
    try {
      topic = this.nsqd.getTopic(name);
    } catch {
      throw new HttpError(503, 'EXITING');
    }
    return { query, topic };
  }

  /** getExistingTopicFromQuery: GetTopicChannelArgs, then the topic must exist. */
  private existingTopicFromQuery(ctx: RequestContext): { topic: Topic; channelName: string } {
    const query = ctx.query();
    const topicName = query.get('topic');
    if (topicName === undefined) throw new HttpError(400, 'MISSING_ARG_TOPIC');
    if (!isValidTopicName(topicName)) throw new HttpError(400, 'INVALID_ARG_TOPIC');
    const channelName = query.get('channel');
    if (channelName === undefined) throw new HttpError(400, 'MISSING_ARG_CHANNEL');
    if (!isValidChannelName(channelName)) throw new HttpError(400, 'INVALID_ARG_CHANNEL');
    const topic = this.nsqd.getExistingTopic(topicName);
    if (topic === undefined) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    return { topic, channelName };
  }

  private existingChannelFromQuery(ctx: RequestContext): { topic: Topic; channel: Channel } {
    const { topic, channelName } = this.existingTopicFromQuery(ctx);
    const channel = topic.channels.get(channelName);
    if (channel === undefined) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
    return { topic, channel };
  }

  /** POST /pub: the body is read and size-checked before the topic is looked at, as nsqd does. */
  private async pub(ctx: RequestContext): Promise<Reply> {
    const max = this.nsqd.options.maxMsgSize;
    if (contentLength(ctx.req) > max) throw new HttpError(413, 'MSG_TOO_BIG');
    const body = await this.readBody(ctx.req, max + 1);
    if (body.length === max + 1) throw new HttpError(413, 'MSG_TOO_BIG');
    if (body.length === 0) throw new HttpError(400, 'MSG_EMPTY');
    const { query, topic } = this.topicFromQuery(ctx);
    let deferMs = 0;
    const deferParam = query.get('defer');
    if (deferParam !== undefined) deferMs = this.parseDefer(deferParam);
    this.publish(ctx, topic, [body], deferMs);
    return { text: 'OK' };
  }

  /** strconv.ParseInt(s, 10, 64) ms, as a time.Duration (int64 ns), within 0..maxReqTimeout. */
  private parseDefer(text: string): number {
    if (!/^[+-]?\d+$/.test(text)) throw new HttpError(400, 'INVALID_DEFER');
    const ms = BigInt(text);
    if (ms < -(2n ** 63n) || ms >= 2n ** 63n) throw new HttpError(400, 'INVALID_DEFER');
    const ns = BigInt.asIntN(64, ms * 1_000_000n);
    if (ns < 0n || ns > BigInt(this.nsqd.options.maxReqTimeout) * 1_000_000n) throw new HttpError(400, 'INVALID_DEFER');
    return Number(ns / 1_000_000n);
  }

  /**
   * POST /mpub. Text (default): `\n`-separated, empty lines skipped. Binary (`binary=true|1`, or any
   * value but false/0): `[int32 count]([int32 size][bytes])*` as the TCP MPUB body, trailing bytes
   * ignored; its errors answer 413 with the TCP code minus `E_`. Unlike nsqd we also bound a
   * chunked binary body by maxBodySize (nsqd bounds only the Content-Length).
   */
  private async mpub(ctx: RequestContext): Promise<Reply> {
    const o = this.nsqd.options;
    if (contentLength(ctx.req) > o.maxBodySize) throw new HttpError(413, 'BODY_TOO_BIG');
    const { query, topic } = this.topicFromQuery(ctx);
    let binary = false;
    const binaryParam = query.get('binary');
    if (binaryParam !== undefined) {
      const value = BOOL_PARAMS.get(binaryParam);
      if (value === undefined) this.nsqd.logger.warn(`deprecated value '${binaryParam}' used for /mpub binary param`);
      binary = value ?? true;
    }
    const body = await this.readBody(ctx.req, o.maxBodySize + 1);
    const bodies = binary ? parseBinaryMpub(body, o.maxMsgSize, o.maxBodySize) : splitTextMpub(body, o.maxMsgSize, o.maxBodySize);
    this.publish(ctx, topic, bodies, 0);
    return { text: 'OK' };
  }

  /** The TCP path: Topic.publish (messages, lifecycle events, put). */
  private publish(ctx: RequestContext, topic: Topic, bodies: Buffer[], deferMs: number): void {
    try {
      topic.publish(bodies, deferMs, `http:${ctx.remoteAddress}`);
    } catch (err) {
      if (err instanceof TopicExitingError || this.nsqd.isExiting) throw new HttpError(503, 'EXITING');
      this.nsqd.logger.error(`TOPIC(${topic.name}): HTTP publish failed - ${(err as Error).message}`);
      throw new HttpError(500, 'INTERNAL_ERROR');
    }
  }

  private stats(ctx: RequestContext): Reply {
    const query = ctx.query();
    const snapshot = nsqdStats(this.nsqd, {
      topic: query.get('topic') ?? '',
      channel: query.get('channel') ?? '',
      includeClients: BOOL_PARAMS.get(query.get('include_clients') ?? '') ?? true,
      includeMem: BOOL_PARAMS.get(query.get('include_mem') ?? '') ?? true,
    });
    if (query.get('format') === 'json') return { json: goJson(snapshot) };
    return { text: formatStatsText(snapshot) };
  }

  private createTopic(ctx: RequestContext): Reply {
    this.topicFromQuery(ctx);
    return { empty: true };
  }

  /** nsqd does not validate the name here: an invalid one is simply not found. */
  private requiredTopicName(ctx: RequestContext): string {
    const name = ctx.query().get('topic');
    if (name === undefined) throw new HttpError(400, 'MISSING_ARG_TOPIC');
    return name;
  }

  private deleteTopic(ctx: RequestContext): Reply {
    if (!this.nsqd.deleteTopic(this.requiredTopicName(ctx))) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    return { empty: true };
  }

  private emptyTopic(ctx: RequestContext): Reply {
    const name = this.requiredTopicName(ctx);
    if (!isValidTopicName(name)) throw new HttpError(400, 'INVALID_TOPIC');
    const topic = this.nsqd.getExistingTopic(name);
    if (topic === undefined) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    this.guard(ctx, () => topic.empty());
    return { empty: true };
  }

  private pauseTopic(ctx: RequestContext, pause: boolean): Reply {
    const topic = this.nsqd.getExistingTopic(this.requiredTopicName(ctx));
    if (topic === undefined) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    this.guard(ctx, () => (pause ? topic.pause() : topic.unpause()));
    this.persistMetadata();
    return { empty: true };
  }

  private createChannel(ctx: RequestContext): Reply {
    const { topic, channelName } = this.existingTopicFromQuery(ctx);
    topic.getChannel(channelName);
    return { empty: true };
  }

  private deleteChannel(ctx: RequestContext): Reply {
    const { topic, channelName } = this.existingTopicFromQuery(ctx);
    if (!topic.deleteChannel(channelName)) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
    return { empty: true };
  }

  private emptyChannel(ctx: RequestContext): Reply {
    const { channel } = this.existingChannelFromQuery(ctx);
    this.guard(ctx, () => channel.empty());
    return { empty: true };
  }

  private pauseChannel(ctx: RequestContext, pause: boolean): Reply {
    const { channel } = this.existingChannelFromQuery(ctx);
    this.guard(ctx, () => (pause ? channel.pause() : channel.unpause()));
    this.persistMetadata();
    return { empty: true };
  }

  /** An action that can fail (disk): 500 INTERNAL_ERROR, logged. */
  private guard(ctx: RequestContext, action: () => void): void {
    try {
      action();
    } catch (err) {
      this.nsqd.logger.error(`failure in ${ctx.path} - ${(err as Error).message}`);
      throw new HttpError(500, 'INTERNAL_ERROR');
    }
  }

  /** (Un)pause is persisted at once, so a crash does not silently undo it (nsqd does the same). */
  private persistMetadata(): void {
    try {
      this.nsqd.persistMetadata();
    } catch (err) {
      this.nsqd.logger.error(`failed to persist metadata - ${(err as Error).message}`);
    }
  }

  /** GET /config/:opt, PUT /config/:opt (only nsqlookupd_tcp_addresses and log_level). */
  private async config(ctx: RequestContext): Promise<Reply> {
    const opt = ctx.params.opt ?? '';
    if (ctx.method === 'PUT') {
      const max = this.nsqd.options.maxMsgSize;
      const body = await this.readBody(ctx.req, max + 1);
      if (body.length === max + 1 || body.length === 0) throw new HttpError(413, 'INVALID_VALUE');
      const runtime = runtimeConfig(this.nsqd);
      if (opt === 'nsqlookupd_tcp_addresses') {
        const addresses = parseStringArray(body);
        if (addresses === undefined) throw new HttpError(400, 'INVALID_VALUE');
        this.nsqd.setLookupdAddresses(addresses ?? []);
        runtime.lookupdAddressesNull = addresses === null;
      } else if (opt === 'log_level') {
        const level = LOG_LEVELS.get(body.toString('utf8').toLowerCase());
        if (level === undefined) throw new HttpError(400, 'INVALID_VALUE');
        runtime.logLevel = level;
      } else {
        throw new HttpError(400, 'INVALID_OPTION');
      }
    }
    const value = configValue(this.nsqd, opt);
    if (value === undefined) throw new HttpError(400, 'INVALID_OPTION');
    // http_api.V1 sends a string as raw text, everything else as JSON
    return typeof value === 'string' ? { text: value } : { json: goJson(value) };
  }

  /**
   * Up to `limit` bytes of the body (what arrives beyond stays unread: send() discards it).
   * A body that cannot be read (peer gone) is 500 INTERNAL_ERROR, as in nsqd.
   */
  private readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (err?: Error): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('close', onClose);
        req.off('error', onError);
        if (err) reject(err);
        else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      };
      const onData = (chunk: Buffer): void => {
        const room = limit - size;
        if (chunk.length >= room) {
          chunks.push(chunk.subarray(0, room));
          size += room;
          req.pause();
          done();
          return;
        }
        chunks.push(chunk);
        size += chunk.length;
      };
      const onEnd = (): void => done();
      const onClose = (): void => {
        if (!req.complete) done(new HttpError(500, 'INTERNAL_ERROR'));
      };
      const onError = (): void => done(new HttpError(500, 'INTERNAL_ERROR'));
      if (limit <= 0 || req.readableEnded) {
        req.resume();
        resolve(Buffer.alloc(0));
        return;
      }
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('close', onClose);
      req.on('error', onError);
    });
  }
}

// ---- body formats ------------------------------------------------------------------------------

/** The text /mpub loop of nsqd: lines up to `\n`; an input that reaches maxBody + 1 bytes is too big. */
function splitTextMpub(body: Buffer, maxMsgSize: number, maxBodySize: number): Buffer[] {
  const readMax = maxBodySize + 1;
  const bodies: Buffer[] = [];
  let total = 0;
  let start = 0;
  while (true) {
    const nl = body.indexOf(0x0a, start);
    const end = nl === -1 ? body.length : nl + 1;
    total += end - start;
    if (total === readMax) throw new HttpError(413, 'BODY_TOO_BIG');
    const line = body.subarray(start, nl === -1 ? end : nl);
    if (line.length > 0) {
      if (line.length > maxMsgSize) throw new HttpError(413, 'MSG_TOO_BIG');
      bodies.push(line);
    }
    if (nl === -1) return bodies;
    start = end;
  }
}

/**
 * readMPUB over at most maxBody + 1 buffered bytes. Running out of bytes is the error nsqd gives
 * at that point for a short body, or BODY_TOO_BIG when the body went on past maxBodySize.
 */
function parseBinaryMpub(body: Buffer, maxMsgSize: number, maxBodySize: number): Buffer[] {
  const truncated = body.length > maxBodySize;
  let offset = 0;
  const need = (n: number, code: string): void => {
    if (offset + n <= body.length) return;
    throw new HttpError(413, truncated ? 'BODY_TOO_BIG' : code);
  };
  need(4, 'BAD_BODY');
  const count = body.readInt32BE(offset);
  offset += 4;
  const maxMessages = Math.floor((maxBodySize - 4) / 5);
  if (count <= 0 || count > maxMessages) throw new HttpError(413, 'BAD_BODY');
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    need(4, 'BAD_MESSAGE');
    const size = body.readInt32BE(offset);
    offset += 4;
    if (size <= 0 || size > maxMsgSize) throw new HttpError(413, 'BAD_MESSAGE');
    need(size, 'BAD_MESSAGE');
    bodies.push(body.subarray(offset, offset + size));
    offset += size;
  }
  return bodies;
}

/** json.Unmarshal into []string: an array of strings, or null; undefined when it does not fit. */
function parseStringArray(body: Buffer): string[] | null | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (value === null) return null;
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) return undefined;
  return value;
}

// ---- /config -------------------------------------------------------------------------------------

const GO_TLS_VERSIONS: Readonly<Record<string, number>> = { 'tls1.2': 0x0303, 'tls1.3': 0x0304 };
const GO_TLS_REQUIRED: Readonly<Record<string, number>> = { false: 0, 'tcp-https': 1, true: 2 };

/**
 * The value nsqd's getOptByCfgName gives for `name` (the flag name with `-` → `_`, or its cfg tag),
 * as Go marshals it: durations in ns. Options nsqd has but we do not implement (statsd, queue scan
 * workers, e2e latency, log prefix) report nsqd's defaults, resolved as nsqd resolves them at start
 * (broadcast ports, the statsd prefix with the host key).
 */
function configValue(nsqd: NSQD, name: string): unknown {
  const o = nsqd.options;
  const runtime = runtimeConfig(nsqd);
  switch (name) {
    case 'id': return o.nodeId;
    case 'log_level': return runtime.logLevel;
    case 'log_prefix': return '[nsqd] ';
    case 'tcp_address': return o.tcpAddress;
    case 'http_address': return o.httpAddress;
    case 'https_address': return o.httpsAddress;
    case 'broadcast_address': return o.broadcastAddress;
    case 'broadcast_tcp_port': return nsqd.broadcastTcpPort;
    case 'broadcast_http_port': return nsqd.broadcastHttpPort;
    case 'nsqlookupd_tcp_addresses': return runtime.lookupdAddressesNull ? null : nsqd.lookupdAddresses;
    case 'auth_http_addresses': return o.authHttpAddresses;
    case 'http_client_connect_timeout': return msToNs(o.httpClientConnectTimeout);
    case 'http_client_request_timeout': return msToNs(o.httpClientRequestTimeout);
    case 'data_path': return o.dataPath;
    case 'mem_queue_size': return o.memQueueSize;
    case 'max_bytes_per_file': return o.maxBytesPerFile;
    case 'sync_every': return o.syncEvery;
    case 'sync_timeout': return msToNs(o.syncTimeout);
    case 'queue_scan_selection_count': return 20;
    case 'queue_scan_worker_pool_max': return 4;
    case 'msg_timeout': return msToNs(o.msgTimeout);
    case 'max_msg_timeout': return msToNs(o.maxMsgTimeout);
    case 'max_msg_size': return o.maxMsgSize;
    case 'max_body_size': return o.maxBodySize;
    case 'max_req_timeout': return msToNs(o.maxReqTimeout);
    case 'max_heartbeat_interval': return msToNs(o.maxHeartbeatInterval);
    case 'max_rdy_count': return o.maxRdyCount;
    case 'max_output_buffer_size': return o.maxOutputBufferSize;
    case 'max_output_buffer_timeout': return msToNs(o.maxOutputBufferTimeout);
    case 'min_output_buffer_timeout': return msToNs(o.minOutputBufferTimeout);
    case 'output_buffer_timeout': return msToNs(o.outputBufferTimeout);
    case 'max_channel_consumers': return o.maxChannelConsumers;
    case 'statsd_address': return '';
    case 'statsd_prefix': return `nsq.${`${o.broadcastAddress}:${nsqd.broadcastHttpPort}`.replace(/[.:]/g, '_')}.`;
    case 'statsd_interval': return msToNs(60_000);
    case 'statsd_mem_stats': return true;
    case 'statsd_udp_packet_size': return 508;
    case 'statsd_exclude_ephemeral': return false;
    case 'e2e_processing_latency_window_time': return msToNs(600_000);
    case 'e2e_processing_latency_percentiles': return [];
    case 'tls_cert': return o.tlsCert;
    case 'tls_key': return o.tlsKey;
    case 'tls_client_auth_policy': return o.tlsClientAuthPolicy;
    case 'tls_root_ca_file': return o.tlsRootCaFile;
    case 'tls_required': return GO_TLS_REQUIRED[o.tlsRequired] ?? 0;
    case 'tls_min_version': return GO_TLS_VERSIONS[o.tlsMinVersion] ?? 0x0303;
    case 'deflate': return o.deflate;
    case 'max_deflate_level': return o.maxDeflateLevel;
    case 'snappy': return o.snappy;
    default: return undefined;
  }
}

// ---- helpers --------------------------------------------------------------------------------------

/** req.ContentLength: -1 when unknown (chunked). */
function contentLength(req: IncomingMessage): number {
  const header = req.headers['content-length'];
  if (header === undefined) return -1;
  const n = Number(header);
  return Number.isFinite(n) ? n : -1;
}

function peerAddress(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`.replace(/^::ffff:/, '');
}
