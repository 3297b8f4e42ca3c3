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
import type { NsqLogger } from '../client/logger.js';
import {
  type ApiRoute,
  type Reply,
  type Send,
  HttpError,
  apiRoute,
  clientErrorHandler,
  goJson,
  lazyQuery,
  msToNsString,
  parseGoQuery as parseQuery,
  resolveRoute,
  runHandler,
  sendReply,
  sendUnrouted,
  sendV1Error,
  serveRequest,
  writeResponse,
} from '../internal/http-api.js';
import { boundAddress, formatAddress, listen } from '../internal/listen.js';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import {
  type RegistrationDB,
  filterByActive,
  listNodes,
  peerInfoJson,
  registration,
  tombstone,
} from './registration-db.js';

/** lookupd.ts writes its IDENTIFY answer with it. */
export { goJson };

export interface LookupdHttpHost {
  readonly db: RegistrationDB;
  readonly logger: NsqLogger;
  readonly version: string;
  /** ms */
  readonly inactiveProducerTimeout: number;
  /** ms */
  readonly tombstoneLifetime: number;
}

/** Go's time.Time{}.UnixNano(), what nsqlookupd reports as `tombstoned_at` for a producer never tombstoned. */
const GO_ZERO_TIME_UNIX_NANO = '-6795364578871345152';

type Handler = (req: LookupdRequest) => Reply;
type Route = ApiRoute & { readonly handler: Handler };

interface LookupdRequest {
  /** Query parameters, parsed on first use (as Go's handlers parse them only when they need them). */
  params(): Map<string, string>;
}

/** url.ParseQuery: `&`-separated, `+` is a space, `%XX` escapes; an error is remembered and parsing goes on. */
export function parseGoQuery(raw: string): { values: Map<string, string>; error: boolean } {
  const { values, error } = parseQuery(raw);
  return { values, error: error !== undefined };
}

export class LookupdHttpServer {
  private readonly server: Server;
  private readonly routes: readonly Route[];

  constructor(
    private readonly host: LookupdHttpHost,
    private readonly onError: (err: Error) => void,
  ) {
    const route = (method: string, pattern: string, handler: Handler): Route => apiRoute(method, pattern, { handler });
    this.routes = [
      route('GET', '/ping', () => ({ text: 'OK', plain: true })),
      route('GET', '/info', () => ({ json: goJson({ version: host.version }) })),
      route('GET', '/debug', () => this.debug()),
      route('GET', '/lookup', (r) => this.lookup(r)),
      route('GET', '/topics', () => this.topics()),
      route('GET', '/channels', (r) => this.channels(r)),
      route('GET', '/nodes', () => this.nodes()),
      route('POST', '/topic/create', (r) => this.createTopic(r)),
      route('POST', '/topic/delete', (r) => this.deleteTopic(r)),
      route('POST', '/channel/create', (r) => this.createChannel(r)),
      route('POST', '/channel/delete', (r) => this.deleteChannel(r)),
      route('POST', '/topic/tombstone', (r) => this.tombstoneTopicProducer(r)),
    ];
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('clientError', clientErrorHandler(host.logger));
  }

  listen(host: string | undefined, port: number): Promise<AddressInfo> {
    return listen(this.server, host, port, this.onError);
  }

  get address(): AddressInfo | undefined {
    return boundAddress(this.server);
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
    // Bodies are never used (Go reads and drops them); drain so keep-alive works.
    req.resume();
    const send: Send = (status, headers, body) => writeResponse(res, status, headers, body);
    const remote = (): string => formatAddress(req.socket.remoteAddress, req.socket.remotePort);
    serveRequest(req, res, { logger: this.host.logger, send, remote }, () => this.route(req, res, send));
  }

  /** httprouter's ServeHTTP; returns the status sent. */
  private route(req: IncomingMessage, res: ServerResponse, send: Send): number | Promise<number> {
    const method = req.method ?? 'GET';
    const decision = resolveRoute(this.routes, method, req.url ?? '/', false);
    if (decision.kind !== 'match') return sendUnrouted(res, send, method, decision);
    const request: LookupdRequest = { params: lazyQuery(decision.rawQuery) };
    return runHandler(
      () => decision.route.handler(request),
      (reply) => sendReply(send, reply),
      (err) => sendV1Error(send, err.status, err.code),
    );
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
            `"http_port":${peer.httpPort},"id":${goJson(peer.id)},"last_update":${msToNsString(peer.lastUpdate)},` +
            `"tcp_port":${peer.tcpPort},"tombstoned":${tombstoned},` +
            `"tombstoned_at":${tombstonedAt === 0 ? GO_ZERO_TIME_UNIX_NANO : msToNsString(tombstonedAt)},` +
            `"version":${goJson(peer.version)}}`,
        );
      }
      groups.set(key, list);
    }
    const keys = [...groups.keys()].sort();
    return { json: `{${keys.map((k) => `${goJson(k)}:[${groups.get(k)!.join(',')}]`).join(',')}}` };
  }
}
