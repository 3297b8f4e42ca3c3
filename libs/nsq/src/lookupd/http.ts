/**
 * nsqlookupd's HTTP API (nsq 1.3.0 `nsqlookupd/http.go`, `internal/http_api`), answered the way the
 * Go server does, so go-nsq, nsqjs, nsqadmin and our own client read it unchanged:
 *
 * - `X-NSQ-Content-Type: nsq; version=1.0` on every answer but `/ping` (go-nsq parses the body as the
 *   1.x shape only when it sees that header); JSON with Go's escaping of `<`, `>`, `&`, U+2028/9.
 * - Errors are `{"message":"CODE"}` with the status; routing follows httprouter: unknown path 404
 *   `NOT_FOUND`, known path with another method 405 `METHOD_NOT_ALLOWED` + `Allow`, `OPTIONS`
 *   answers `Allow`, a trailing slash or wrong letter case is redirected (301 for GET, 307 else).
 * - Query parameters are parsed like Go's url.ParseQuery (first value wins; `;` or a bad `%`
 *   escape ⇒ 400 `INVALID_REQUEST`). Nothing is read from request bodies.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import type { NsqLogger } from '../client/logger.js';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import {
  type RegistrationDB,
  filterByActive,
  listNodes,
  peerInfoJson,
  registration,
  tombstone,
} from './registration-db.js';
import { formatAddress } from './tcp.js';

export interface LookupdHttpHost {
  readonly db: RegistrationDB;
  readonly logger: NsqLogger;
  readonly version: string;
  /** ms */
  readonly inactiveProducerTimeout: number;
  /** ms */
  readonly tombstoneLifetime: number;
}

const V1_CONTENT_TYPE = 'nsq; version=1.0';
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
/** Go's time.Time{}.UnixNano(), what nsqlookupd reports as `tombstoned_at` for a producer never tombstoned. */
const GO_ZERO_TIME_UNIX_NANO = '-6795364578871345152';

/** JSON.stringify with encoding/json's HTML-safe escaping. */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

/** What a handler answers with: marshalled JSON, nothing (empty 200), or plain text (/ping). */
type Reply = { json: string } | { empty: true } | { text: string };
type Handler = (req: LookupdRequest) => Reply;

interface LookupdRequest {
  /** Query parameters, parsed on first use (as Go's handlers parse them only when they need them). */
  params(): Map<string, string>;
}

/** url.ParseQuery: `&`-separated, `+` is a space, `%XX` escapes; an error is remembered and parsing goes on. */
export function parseGoQuery(raw: string): { values: Map<string, string>; error: boolean } {
  const values = new Map<string, string>();
  let error = false;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) {
      error = true;
      continue;
    }
    const eq = part.indexOf('=');
    const key = unescapeGo(eq === -1 ? part : part.slice(0, eq), true);
    const value = unescapeGo(eq === -1 ? '' : part.slice(eq + 1), true);
    if (key === undefined || value === undefined) {
      error = true;
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
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function htmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' })[c]!);
}

const STATUS_TEXT: Record<number, string> = { 301: 'Moved Permanently', 307: 'Temporary Redirect' };

export class LookupdHttpServer {
  private readonly server: Server;
  private readonly routes: ReadonlyMap<string, ReadonlyMap<string, Handler>>;
  /** Lower-cased path -> path, per method (for httprouter's case-insensitive redirect). */
  private readonly folded: ReadonlyMap<string, ReadonlyMap<string, string>>;

  constructor(
    private readonly host: LookupdHttpHost,
    private readonly onError: (err: Error) => void,
  ) {
    const table: Array<[string, string, Handler]> = [
      ['GET', '/ping', () => ({ text: 'OK' })],
      ['GET', '/info', () => ({ json: goJson({ version: host.version }) })],
      ['GET', '/debug', () => this.debug()],
      ['GET', '/lookup', (r) => this.lookup(r)],
      ['GET', '/topics', () => this.topics()],
      ['GET', '/channels', (r) => this.channels(r)],
      ['GET', '/nodes', () => this.nodes()],
      ['POST', '/topic/create', (r) => this.createTopic(r)],
      ['POST', '/topic/delete', (r) => this.deleteTopic(r)],
      ['POST', '/channel/create', (r) => this.createChannel(r)],
      ['POST', '/channel/delete', (r) => this.deleteChannel(r)],
      ['POST', '/topic/tombstone', (r) => this.tombstoneTopicProducer(r)],
    ];
    const routes = new Map<string, Map<string, Handler>>();
    const folded = new Map<string, Map<string, string>>();
    for (const [method, path, handler] of table) {
      if (!routes.has(path)) routes.set(path, new Map());
      routes.get(path)!.set(method, handler);
      if (!folded.has(method)) folded.set(method, new Map());
      folded.get(method)!.set(path.toLowerCase(), path);
    }
    this.routes = routes;
    this.folded = folded;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('clientError', (err, socket) => {
      host.logger.debug(`HTTP: client error - ${err.message}`);
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request');
      else socket.destroy();
    });
  }

  listen(host: string | undefined, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        this.server.on('error', this.onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get address(): AddressInfo | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /** Stops listening and drops every connection, idle keep-alive ones included. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.host.logger.info(`HTTP: closing ${formatAddress(this.address?.address, this.address?.port)}`);
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    // Bodies are never used (Go reads and drops them); drain so keep-alive works.
    req.resume();
    let status: number;
    try {
      status = this.route(req, res);
    } catch (err) {
      this.host.logger.error(`panic in HTTP handler - ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      status = 500;
      if (!res.headersSent) this.sendV1Error(res, 500, 'INTERNAL_ERROR');
      else res.destroy();
    }
    const elapsedUs = Number(process.hrtime.bigint() - started) / 1000;
    this.host.logger.debug(
      `${status} ${req.method ?? ''} ${req.url ?? ''} (${formatAddress(req.socket.remoteAddress, req.socket.remotePort)}) ${elapsedUs.toFixed(0)}µs`,
    );
  }

  /** httprouter's ServeHTTP; returns the status sent. */
  private route(req: IncomingMessage, res: ServerResponse): number {
    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    let rawPath = target;
    let rawQuery = '';
    let hasQuery = false;
    if (!target.startsWith('/') && /^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
      // absolute-form request target
      const afterScheme = target.indexOf('//') + 2;
      const slash = target.indexOf('/', afterScheme);
      rawPath = slash === -1 ? '/' : target.slice(slash);
    }
    const q = rawPath.indexOf('?');
    if (q !== -1) {
      rawQuery = rawPath.slice(q + 1);
      rawPath = rawPath.slice(0, q);
      hasQuery = true;
    }
    const hash = rawQuery.indexOf('#');
    if (hash !== -1) rawQuery = rawQuery.slice(0, hash);
    const path = unescapeGo(rawPath, false);
    if (path === undefined) {
      res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', 'Content-Length': 15 });
      res.end('400 Bad Request');
      return 400;
    }

    const methods = this.routes.get(path);
    const handler = methods?.get(method);
    if (handler) {
      let parsed: Map<string, string> | undefined;
      const request: LookupdRequest = {
        params: () => {
          if (parsed === undefined) {
            const { values, error } = parseGoQuery(rawQuery);
            if (error) throw new HttpError(400, 'INVALID_REQUEST');
            parsed = values;
          }
          return parsed;
        },
      };
      let reply: Reply;
      try {
        reply = handler(request);
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        this.sendV1Error(res, err.status, err.code);
        return err.status;
      }
      if ('text' in reply) {
        // http_api.PlainText (only /ping): no X-NSQ-Content-Type
        send(res, 200, { 'Content-Type': 'text/plain; charset=utf-8' }, reply.text);
      } else if ('json' in reply) {
        send(res, 200, { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, reply.json);
      } else {
        send(res, 200, { 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, '');
      }
      return 200;
    }

    const byMethod = this.folded.get(method);
    if (byMethod && method !== 'CONNECT' && path !== '/') {
      const code = method === 'GET' ? 301 : 307;
      const query = hasQuery ? `?${rawQuery}` : '';
      if (path.length > 1 && path.endsWith('/') && this.routes.get(path.slice(0, -1))?.has(method)) {
        return this.redirect(res, method, code, path.slice(0, -1) + query);
      }
      let cleaned = posix.normalize(path.startsWith('/') ? path : `/${path}`);
      if (cleaned.length > 1 && cleaned.endsWith('/')) cleaned = cleaned.slice(0, -1);
      const fixed = byMethod.get(cleaned.toLowerCase());
      if (fixed !== undefined) return this.redirect(res, method, code, fixed + query);
    }

    const allowed = methods ? [...methods.keys()].filter((m) => m !== method) : [];
    if (allowed.length > 0) {
      const allow = [...allowed, 'OPTIONS'].sort().join(', ');
      if (method === 'OPTIONS') {
        send(res, 200, { Allow: allow }, '');
        return 200;
      }
      res.setHeader('Allow', allow);
      this.sendV1Error(res, 405, 'METHOD_NOT_ALLOWED');
      return 405;
    }
    this.sendV1Error(res, 404, 'NOT_FOUND');
    return 404;
  }

  /** Go's http.Redirect: an HTML body for GET, none otherwise. */
  private redirect(res: ServerResponse, method: string, code: number, location: string): number {
    const html = method === 'GET' || method === 'HEAD';
    const body = method === 'GET' ? `<a href="${htmlEscape(location)}">${STATUS_TEXT[code]}</a>.\n\n` : '';
    send(res, code, html ? { 'Content-Type': 'text/html; charset=utf-8', Location: location } : { Location: location }, body);
    return code;
  }

  private sendV1Error(res: ServerResponse, status: number, code: string): void {
    send(res, status, { 'Content-Type': JSON_CONTENT_TYPE, 'X-NSQ-Content-Type': V1_CONTENT_TYPE }, goJson({ message: code }));
  }

  // -------------------------------------------------------------------------------------------
  // handlers (nsqlookupd/http.go)

  private requireParam(req: LookupdRequest, name: string, code: string): string {
    const value = req.params().get(name);
    if (value === undefined) throw new HttpError(400, code);
    return value;
  }

  /** http_api.GetTopicChannelArgs */
  private topicChannelArgs(req: LookupdRequest): { topic: string; channel: string } {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    if (!isValidTopicName(topic)) throw new HttpError(400, 'INVALID_ARG_TOPIC');
    const channel = this.requireParam(req, 'channel', 'MISSING_ARG_CHANNEL');
    if (!isValidChannelName(channel)) throw new HttpError(400, 'INVALID_ARG_CHANNEL');
    return { topic, channel };
  }

  private topics(): Reply {
    return { json: goJson({ topics: this.host.db.findRegistrations('topic', '*', '').map((r) => r.key) }) };
  }

  private channels(req: LookupdRequest): Reply {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    return { json: goJson({ channels: this.host.db.findRegistrations('channel', topic, '*').map((r) => r.subKey) }) };
  }

  private lookup(req: LookupdRequest): Reply {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    const { db, inactiveProducerTimeout, tombstoneLifetime } = this.host;
    if (db.findRegistrations('topic', topic, '').length === 0) throw new HttpError(404, 'TOPIC_NOT_FOUND');
    const channels = db.findRegistrations('channel', topic, '*').map((r) => r.subKey);
    const producers = filterByActive(db.findProducers('topic', topic, ''), inactiveProducerTimeout, tombstoneLifetime);
    return { json: goJson({ channels, producers: producers.map((p) => peerInfoJson(p.peer)) }) };
  }

  private nodes(): Reply {
    const { db, inactiveProducerTimeout, tombstoneLifetime } = this.host;
    return { json: goJson({ producers: listNodes(db, inactiveProducerTimeout, tombstoneLifetime) }) };
  }

  private createTopic(req: LookupdRequest): Reply {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    if (!isValidTopicName(topic)) throw new HttpError(400, 'INVALID_ARG_TOPIC');
    this.host.logger.info(`DB: adding topic(${topic})`);
    this.host.db.addRegistration(registration('topic', topic));
    return { empty: true };
  }

  private deleteTopic(req: LookupdRequest): Reply {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    const { db, logger } = this.host;
    for (const r of db.findRegistrations('channel', topic, '*')) {
      logger.info(`DB: removing channel(${r.subKey}) from topic(${topic})`);
      db.removeRegistration(r);
    }
    for (const r of db.findRegistrations('topic', topic, '')) {
      logger.info(`DB: removing topic(${topic})`);
      db.removeRegistration(r);
    }
    return { empty: true };
  }

  private createChannel(req: LookupdRequest): Reply {
    const { topic, channel } = this.topicChannelArgs(req);
    const { db, logger } = this.host;
    logger.info(`DB: adding channel(${channel}) in topic(${topic})`);
    db.addRegistration(registration('channel', topic, channel));
    logger.info(`DB: adding topic(${topic})`);
    db.addRegistration(registration('topic', topic));
    return { empty: true };
  }

  private deleteChannel(req: LookupdRequest): Reply {
    const { topic, channel } = this.topicChannelArgs(req);
    const { db, logger } = this.host;
    const found = db.findRegistrations('channel', topic, channel);
    if (found.length === 0) throw new HttpError(404, 'CHANNEL_NOT_FOUND');
    logger.info(`DB: removing channel(${channel}) from topic(${topic})`);
    for (const r of found) db.removeRegistration(r);
    return { empty: true };
  }

  private tombstoneTopicProducer(req: LookupdRequest): Reply {
    const topic = this.requireParam(req, 'topic', 'MISSING_ARG_TOPIC');
    const node = this.requireParam(req, 'node', 'MISSING_ARG_NODE');
    this.host.logger.info(`DB: setting tombstone for producer@${node} of topic(${topic})`);
    for (const p of this.host.db.findProducers('topic', topic, '')) {
      if (`${p.peer.broadcastAddress}:${p.peer.httpPort}` === node) tombstone(p);
    }
    return { empty: true };
  }

  /** Every registration with producers, keyed `category:key:subkey`; times in ns like Go's. */
  private debug(): Reply {
    const groups = new Map<string, string[]>();
    for (const [r, producers] of this.host.db.all()) {
      if (producers.length === 0) continue;
      const key = `${r.category}:${r.key}:${r.subKey}`;
      const list = groups.get(key) ?? [];
      for (const { peer, tombstoned, tombstonedAt } of producers) {
        // keys in Go's map order (sorted); ns timestamps exceed 2^53, so they are written by hand
        list.push(
          `{"broadcast_address":${goJson(peer.broadcastAddress)},"hostname":${goJson(peer.hostname)},` +
            `"http_port":${peer.httpPort},"id":${goJson(peer.id)},"last_update":${msToNs(peer.lastUpdate)},` +
            `"tcp_port":${peer.tcpPort},"tombstoned":${tombstoned},` +
            `"tombstoned_at":${tombstonedAt === 0 ? GO_ZERO_TIME_UNIX_NANO : msToNs(tombstonedAt)},` +
            `"version":${goJson(peer.version)}}`,
        );
      }
      groups.set(key, list);
    }
    const keys = [...groups.keys()].sort();
    return { json: `{${keys.map((k) => `${goJson(k)}:[${groups.get(k)!.join(',')}]`).join(',')}}` };
  }
}

function msToNs(ms: number): string {
  return (BigInt(Math.trunc(ms)) * 1_000_000n).toString();
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, { ...headers, 'Content-Length': String(buf.length) });
  res.end(buf);
}
