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
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import type { Channel } from './channel.js';
import { nowNanos } from './message.js';
import type { NSQD } from './nsqd.js';
import { listen } from './nsqd.js';
import { SERVER_VERSION } from './options.js';
import { formatStatsText, nsqdStats } from './stats.js';
import type { Topic } from './topic.js';
import { TopicExitingError } from './topic.js';

const V1_CONTENT_TYPE = 'nsq; version=1.0';
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
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
const STATUS_TEXT: Readonly<Record<number, string>> = { 301: 'Moved Permanently', 307: 'Temporary Redirect' };

/** An error answer: `{"message":code}` with `status` (or, for /ping, the text itself). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

/**
 * What a handler answers with: JSON, text as http_api.V1 sends it (with the X-NSQ header), text as
 * http_api.PlainText sends it (without), or an empty 200.
 */
type Reply = { json: string } | { text: string | Buffer; plain?: boolean } | { empty: true };

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

interface Route {
  readonly method: string;
  readonly pattern: string;
  readonly segments: readonly string[];
  /** The handler reads the request body itself; otherwise it is discarded at once. */
  readonly readsBody: boolean;
  readonly handler: Handler;
}

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
    const route = (method: string, pattern: string, handler: Handler, readsBody = false): Route => ({
      method,
      pattern,
      segments: pattern.split('/').slice(1),
      readsBody,
      handler,
    });
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
    this.server.on('clientError', (err: Error, socket: Duplex) => {
      this.nsqd.logger.debug(`HTTP: client error - ${err.message}`);
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request');
      else socket.destroy();
    });

    if (isHttps) {
      this.listener = createNetServer((raw) => this.onTlsConnection(raw));
    } else {
      this.listener = this.server;
      this.server.on('connection', (socket: Socket) => this.track(socket));
    }
  }

  listen(address: string): Promise<void> {
    return listen(this.listener, address);
  }

  /** '<host>:<port>' of the listener ('' before listen). */
  get address(): string {
    const a = this.listener.address();
    if (a === null || typeof a === 'string') return a ?? '';
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  get port(): number {
    return (this.listener.address() as AddressInfo | null)?.port ?? 0;
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
    const started = process.hrtime.bigint();
    const logDone = (status: number): void => {
      const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
      this.nsqd.logger.debug(`${status} ${req.method ?? ''} ${req.url ?? ''} (${this.remoteOf(req)}) ${elapsedUs.toFixed(0)}µs`);
    };
    let result: number | Promise<number>;
    try {
      result = this.route(req, res);
    } catch (err) {
      result = this.internalError(req, res, err);
    }
    if (typeof result === 'number') {
      logDone(result);
      return;
    }
    result.then(logDone, (err: unknown) => logDone(this.internalError(req, res, err)));
  }

  /** httprouter's PanicHandler: 500 INTERNAL_ERROR. */
  private internalError(req: IncomingMessage, res: ServerResponse, err: unknown): number {
    this.nsqd.logger.error(`panic in HTTP handler - ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (!res.headersSent) this.sendError(req, res, 500, 'INTERNAL_ERROR');
    else res.destroy();
    return 500;
  }

  private remoteOf(req: IncomingMessage): string {
    return this.remoteAddresses.get(req.socket) ?? peerAddress(req.socket);
  }

  /** httprouter's ServeHTTP; returns the status sent (a promise when the handler waits for the body). */
  private route(req: IncomingMessage, res: ServerResponse): number | Promise<number> {
    const method = req.method ?? 'GET';
    if (!this.isHttps && this.nsqd.options.tlsRequired === 'true') {
      req.resume();
      const httpsPort = Number(/:(\d+)$/.exec(this.nsqd.httpsAddress ?? '')?.[1] ?? 0);
      // nsqd writes this body by hand, spaces included
      this.send(req, res, 403, { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, `{"message": "TLS_REQUIRED", "https_port": ${httpsPort}}`);
      return 403;
    }

    const target = splitTarget(req.url ?? '/');
    const path = unescapeGo(target.path, false);
    if (path === undefined) {
      req.resume();
      this.send(req, res, 400, { 'Content-Type': TEXT_CONTENT_TYPE, Connection: 'close' }, '400 Bad Request');
      return 400;
    }

    for (const r of this.routes) {
      if (r.method !== method) continue;
      const params = matchRoute(r.segments, path);
      if (params === undefined) continue;
      if (!r.readsBody) req.resume();
      return this.run(r, req, res, method, path, params, target.query);
    }

    req.resume();
    const sameMethod = this.routes.filter((r) => r.method === method);
    if (sameMethod.length > 0 && method !== 'CONNECT' && path !== '/') {
      const code = method === 'GET' ? 301 : 307;
      const query = target.hasQuery ? `?${target.query}` : '';
      if (path.length > 1 && path.endsWith('/') && sameMethod.some((r) => matchRoute(r.segments, path.slice(0, -1)) !== undefined)) {
        return this.redirect(req, res, method, code, escapePath(path.slice(0, -1)) + query);
      }
      const fixed = findCaseInsensitive(sameMethod, cleanPath(path));
      if (fixed !== undefined) return this.redirect(req, res, method, code, escapePath(fixed) + query);
    }

    const allowed = new Set(this.routes.filter((r) => r.method !== method && matchRoute(r.segments, path) !== undefined).map((r) => r.method));
    if (allowed.size > 0) {
      const allow = [...allowed, 'OPTIONS'].sort().join(', ');
      if (method === 'OPTIONS') {
        this.send(req, res, 200, { Allow: allow }, '');
        return 200;
      }
      res.setHeader('Allow', allow);
      this.sendError(req, res, 405, 'METHOD_NOT_ALLOWED');
      return 405;
    }
    this.sendError(req, res, 404, 'NOT_FOUND');
    return 404;
  }

  private run(
    route: Route,
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    params: Record<string, string>,
    rawQuery: string,
  ): number | Promise<number> {
    let parsed: Map<string, string> | undefined;
    const ctx: RequestContext = {
      req,
      method,
      path,
      params,
      remoteAddress: this.remoteOf(req),
      query: () => {
        if (parsed === undefined) {
          const { values, error } = parseGoQuery(rawQuery);
          if (error) {
            this.nsqd.logger.error(`failed to parse request params - ${error}`);
            throw new HttpError(400, 'INVALID_REQUEST');
          }
          parsed = values;
        }
        return parsed;
      },
    };
    const answer = (reply: Reply): number => {
      this.sendReply(req, res, reply);
      return 200;
    };
    const fail = (err: unknown): number => {
      if (!(err instanceof HttpError)) throw err;
      if (route.pattern === '/ping') {
        this.send(req, res, err.status, { 'Content-Type': TEXT_CONTENT_TYPE }, err.code);
      } else {
        this.sendError(req, res, err.status, err.code);
      }
      return err.status;
    };
    let reply: Reply | Promise<Reply>;
    try {
      reply = route.handler(ctx);
    } catch (err) {
      return fail(err);
    }
    if (reply instanceof Promise) return reply.then(answer, fail);
    return answer(reply);
  }

  private sendReply(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
    if ('json' in reply) {
      this.send(req, res, 200, { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, reply.json);
    } else if ('text' in reply) {
      // Go sniffs text/plain for these bodies; PlainText (/ping) adds no X-NSQ header
      const headers: Record<string, string> = reply.plain ? {} : { 'X-NSQ-Content-Type': V1_CONTENT_TYPE };
      if (reply.text.length > 0) headers['Content-Type'] = TEXT_CONTENT_TYPE;
      this.send(req, res, 200, headers, reply.text);
    } else {
      this.send(req, res, 200, { 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, '');
    }
  }

  private sendError(req: IncomingMessage, res: ServerResponse, status: number, code: string): void {
    this.send(req, res, status, { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, goJson({ message: code }));
  }

  /** Go's http.Redirect: an HTML body for GET, none otherwise. */
  private redirect(req: IncomingMessage, res: ServerResponse, method: string, code: number, location: string): number {
    const html = method === 'GET' || method === 'HEAD';
    const body = method === 'GET' ? `<a href="${htmlEscape(location)}">${STATUS_TEXT[code]}</a>.\n\n` : '';
    this.send(req, res, code, html ? { 'Content-Type': 'text/html; charset=utf-8', Location: location } : { Location: location }, body);
    return code;
  }

  private send(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body: string | Buffer): void {
    if (res.headersSent || res.destroyed) return;
    const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    res.writeHead(status, { ...headers, 'Content-Length': String(buf.length) });
    res.end(buf);
    if (!req.readableEnded) this.discardRest(req);
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

  /** The TCP path: messages from the topic, put in one go, then the lifecycle events. */
  private publish(ctx: RequestContext, topic: Topic, bodies: Buffer[], deferMs: number): void {
    const ts = nowNanos();
    const messages = bodies.map((b) => topic.newMessage(b, ts));
    try {
      topic.put(messages, deferMs);
    } catch (err) {
      if (err instanceof TopicExitingError || this.nsqd.isExiting) throw new HttpError(503, 'EXITING');
      this.nsqd.logger.error(`TOPIC(${topic.name}): HTTP publish failed - ${(err as Error).message}`);
      throw new HttpError(500, 'INTERNAL_ERROR');
    }
    const events = this.nsqd.events;
    if (!events.active) return;
    const at = Date.now();
    const producer = `http:${ctx.remoteAddress}`;
    for (const m of messages) {
      events.emit(
        deferMs > 0
          ? { type: 'published', at, topic: topic.name, id: m.id, producer, body: m.body, deferMs }
          : { type: 'published', at, topic: topic.name, id: m.id, producer, body: m.body },
      );
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

// ---- Go-compatible helpers -------------------------------------------------------------------------

function msToNs(ms: number): number {
  return ms * 1_000_000;
}

/** JSON.stringify with encoding/json's HTML-safe escaping. */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

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

/** The path and raw query of a request target (origin-form or absolute-form). */
function splitTarget(target: string): { path: string; query: string; hasQuery: boolean } {
  let rest = target;
  if (!rest.startsWith('/') && /^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    const afterScheme = rest.indexOf('//') + 2;
    const slash = rest.indexOf('/', afterScheme);
    rest = slash === -1 ? '/' : rest.slice(slash);
  }
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  if (q === -1) return { path: rest, query: '', hasQuery: false };
  return { path: rest.slice(0, q), query: rest.slice(q + 1), hasQuery: true };
}

/** httprouter: static segments match exactly, `:name` matches one non-empty segment. */
function matchRoute(segments: readonly string[], path: string): Record<string, string> | undefined {
  if (!path.startsWith('/')) return undefined;
  const parts = path.slice(1).split('/');
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if (seg.startsWith(':')) {
      if (part === '') return undefined;
      params[seg.slice(1)] = part;
    } else if (seg !== part) {
      return undefined;
    }
  }
  return params;
}

/** httprouter's findCaseInsensitivePath (with trailing-slash fixing); parameters keep their text. */
function findCaseInsensitive(routes: readonly Route[], path: string): string | undefined {
  const candidates = path.length > 1 && path.endsWith('/') ? [path, path.slice(0, -1)] : [path];
  for (const candidate of candidates) {
    const parts = candidate.slice(1).split('/');
    for (const r of routes) {
      if (parts.length !== r.segments.length) continue;
      const fixed: string[] = [];
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = r.segments[i]!;
        const part = parts[i]!;
        if (seg.startsWith(':')) {
          ok = part !== '';
          fixed.push(part);
        } else {
          ok = seg.toLowerCase() === part.toLowerCase();
          fixed.push(seg);
        }
      }
      if (ok) return `/${fixed.join('/')}`;
    }
  }
  return undefined;
}

/** httprouter's CleanPath: path.Clean that keeps a trailing slash. */
function cleanPath(path: string): string {
  return posix.normalize(path.startsWith('/') ? path : `/${path}`);
}

/** Go's URL.EscapedPath (shouldEscape in encodePath mode) for the Location of a redirect. */
function escapePath(path: string): string {
  return path.replace(/[^A-Za-z0-9\-._~$&+,;=:@/]/g, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c]!);
}

/** url.ParseQuery: `&`-separated, `+` is a space, `%XX` escapes; the first error is kept and parsing goes on. */
function parseGoQuery(raw: string): { values: Map<string, string>; error: string | undefined } {
  const values = new Map<string, string>();
  let error: string | undefined;
  for (const part of raw.split('&')) {
    if (part.includes(';')) {
      error ??= 'invalid semicolon separator in query';
      continue;
    }
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = unescapeGo(eq === -1 ? part : part.slice(0, eq), true);
    const value = unescapeGo(eq === -1 ? '' : part.slice(eq + 1), true);
    if (key === undefined || value === undefined) {
      error ??= `invalid URL escape in ${JSON.stringify(part)}`;
      continue;
    }
    if (!values.has(key)) values.set(key, value);
  }
  return { values, error };
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** Go's url unescape: `%XX` must be valid; in a query component `+` is a space. Undefined on error. */
function unescapeGo(s: string, query: boolean): string | undefined {
  if (!s.includes('%') && !(query && s.includes('+'))) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (i + 2 >= s.length || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return undefined;
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === 0x2b && query) {
      bytes.push(0x20);
    } else {
      // Node hands over the request target as latin1: one char per byte
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
