import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { NsqLogger } from '../client/logger.js';
import { NsqClosedError, NsqError, NsqValidationError } from '../protocol/errors.js';
import { SERVER_VERSION } from '../nsqd/options.js';
import { LookupdHttpServer, goJson } from './http.js';
import { type NsqlookupdInput, type NsqlookupdOptions, resolveNsqlookupdOptions } from './options.js';
import { type NodeInfo, type RegisteredPeer, RegistrationDB, listNodes } from './registration-db.js';
import { LookupTcpServer, formatAddress } from './tcp.js';

/** Bound on close(): listeners stop and connections are dropped well within it. */
const CLOSE_TIMEOUT_MS = 5000;

export interface LookupdRegistrationEvent {
  peer: RegisteredPeer;
  topic: string;
  /** Undefined for the topic's own registration. */
  channel: string | undefined;
}

export interface NsqlookupdEvents {
  /** An nsqd registered a topic (channel undefined) or a channel. */
  register: [LookupdRegistrationEvent];
  /** A registration of an nsqd went away: UNREGISTER, or its connection closed. */
  unregister: [LookupdRegistrationEvent];
  /** An nsqd identified itself. */
  'peer-connect': [RegisteredPeer];
  /** An identified nsqd's connection closed (after its 'unregister' events). */
  'peer-disconnect': [RegisteredPeer];
  /** A listener failed after start (never emitted when nobody listens: it is logged instead). */
  error: [Error];
}

function parseListenAddress(address: string, what: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(typeof address === 'string' ? address.trim() : '');
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port > 65_535) {
    throw new NsqValidationError(what, `NSQLookupd: ${what} ${JSON.stringify(address)} is not <host>:<port> (port 0 = OS-picked)`);
  }
  return { host: (match[1] ?? match[2]) || undefined, port };
}

/**
 * nsqlookupd in TypeScript, wire-compatible with nsqlookupd 1.3.0: nsqd registers over TCP
 * (protocol V1, tcp.ts), consumers and nsqadmin discover over HTTP (http.ts), both backed by one
 * registration database (registration-db.ts). State lives in memory only, as in nsqlookupd.
 */
export class NSQLookupd extends EventEmitter<NsqlookupdEvents> {
  readonly options: NsqlookupdOptions;
  readonly db = new RegistrationDB();
  private readonly logger: NsqLogger;
  private readonly tcp: LookupTcpServer;
  private readonly http: LookupdHttpServer;
  private identifyAnswer: Buffer | undefined;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(input?: NsqlookupdInput) {
    super();
    this.options = resolveNsqlookupdOptions(input);
    this.logger = this.options.logger;
    // validated now so a typo fails at construction, not at start()
    parseListenAddress(this.options.tcpAddress, 'tcpAddress');
    parseListenAddress(this.options.httpAddress, 'httpAddress');
    const onError = (err: Error): void => this.fail(err);
    this.tcp = new LookupTcpServer(
      {
        db: this.db,
        logger: this.logger,
        identifyResponse: () => this.identifyResponse(),
        onPeerConnect: (peer) => this.emitSafely('peer-connect', peer),
        onPeerDisconnect: (peer) => this.emitSafely('peer-disconnect', peer),
        onRegister: (peer, topic, channel) => this.emitSafely('register', { peer, topic, channel }),
        onUnregister: (peer, topic, channel) => this.emitSafely('unregister', { peer, topic, channel }),
      },
      onError,
    );
    this.http = new LookupdHttpServer(
      {
        db: this.db,
        logger: this.logger,
        version: SERVER_VERSION,
        inactiveProducerTimeout: this.options.inactiveProducerTimeout,
        tombstoneLifetime: this.options.tombstoneLifetime,
      },
      onError,
    );
  }

  /** Listens on TCP and HTTP; resolves when both listen. Calling it again returns the same promise. */
  start(): Promise<void> {
    this.starting ??= this.listen();
    return this.starting;
  }

  /** `host:port` the TCP listener is bound to (e.g. '127.0.0.1:4160'), for nsqd's --lookupd-tcp-address. */
  get tcpAddress(): string {
    const a = this.tcp.address;
    if (!a) throw new NsqError('ERR_NSQ_NOT_STARTED', 'NSQLookupd: tcpAddress is known once start() has resolved');
    return formatAddress(a.address, a.port);
  }

  /** `host:port` of the HTTP API, without a scheme. */
  get httpAddress(): string {
    const a = this.http.address;
    if (!a) throw new NsqError('ERR_NSQ_NOT_STARTED', 'NSQLookupd: httpAddress is known once start() has resolved');
    return formatAddress(a.address, a.port);
  }

  /** Stops both listeners and closes every connection; idempotent, bounded by 5 s. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** Every topic registration (with or without producers), as `GET /topics`. */
  topics(): string[] {
    return this.db.findRegistrations('topic', '*', '').map((r) => r.key);
  }

  /** The channels registered for `topic`, as `GET /channels`. */
  channels(topic: string): string[] {
    return this.db.findRegistrations('channel', topic, '*').map((r) => r.subKey);
  }

  /** Active nsqd nodes with their topics and tombstones, as `GET /nodes`. */
  nodes(): NodeInfo[] {
    return listNodes(this.db, this.options.inactiveProducerTimeout, this.options.tombstoneLifetime);
  }

  private async listen(): Promise<void> {
    if (this.closing) throw new NsqClosedError('NSQLookupd: start() after close()');
    const tcp = parseListenAddress(this.options.tcpAddress, 'tcpAddress');
    const http = parseListenAddress(this.options.httpAddress, 'httpAddress');
    this.logger.info(`nsqlookupd v${SERVER_VERSION} (TypeScript)`);
    try {
      const t = await this.tcp.listen(tcp.host, tcp.port);
      this.logger.info(`TCP: listening on ${formatAddress(t.address, t.port)}`);
      const h = await this.http.listen(http.host, http.port);
      this.logger.info(`HTTP: listening on ${formatAddress(h.address, h.port)}`);
    } catch (err) {
      await Promise.all([this.tcp.close(), this.http.close()]);
      throw err;
    }
  }

  private async shutdown(): Promise<void> {
    await this.starting?.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn(`NSQLookupd: close did not finish within ${CLOSE_TIMEOUT_MS} ms; giving up waiting`);
        resolve();
      }, CLOSE_TIMEOUT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all([this.tcp.close(), this.http.close()]), bounded]);
    clearTimeout(timer);
  }

  /** nsqlookupd's IDENTIFY answer; Go marshals a map, so the keys are sorted. */
  private identifyResponse(): Buffer {
    if (!this.identifyAnswer) {
      const tcp = this.tcp.address;
      const http = this.http.address;
      this.identifyAnswer = Buffer.from(
        goJson({
          broadcast_address: this.options.broadcastAddress,
          hostname: hostname(),
          http_port: http?.port ?? 0,
          tcp_port: tcp?.port ?? 0,
          version: SERVER_VERSION,
        }),
        'utf8',
      );
    }
    return this.identifyAnswer;
  }

  /** A throwing listener must not take down the connection handling that emitted the event. */
  private emitSafely<K extends 'register' | 'unregister' | 'peer-connect' | 'peer-disconnect'>(
    event: K,
    ...args: NsqlookupdEvents[K]
  ): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.logger.error(`NSQLookupd: '${event}' listener threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.logger.error(`NSQLookupd: ${err.message}`);
  }
}
