/**
 * nsqd's side of nsqlookupd's protocol V1 (nsq 1.3.0 `nsqd/lookup.go`, `lookup_peer.go`): one TCP
 * connection per lookupd address, on which nsqd identifies itself and registers its topics and
 * channels, and PINGs every 15 s so that lookupd keeps it in its answers.
 *
 * On every (re)connect: magic `"  V1"`, IDENTIFY (its JSON answer is kept as the peer info), then a
 * REGISTER per current registration (`REGISTER t` for a topic without channels, `REGISTER t c` per
 * channel). Later register()/unregister() calls are queued behind those. A lost connection is
 * redialled with a growing delay (1 s doubling to 15 s) and everything is registered again; while
 * disconnected, register()/unregister() calls are dropped, since the next connect registers the
 * state as it then is.
 *
 * V1 is strictly request/response with unframed answers, so each connection has one command in
 * flight and a FIFO of the rest. Errors from lookupd (`E_...`) are logged, never thrown; lookupd
 * closes the connection after any of them, which leads to a reconnect.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { LookupdHttpClient } from '../client/http.js';
import type { NsqLogger } from '../client/logger.js';
import { parseAddress } from '../client/connection.js';
import { MAGIC_V1 } from '../protocol/constants.js';
import { isEphemeral } from '../protocol/names.js';

export interface LookupRegistration {
  topic: string;
  channel?: string;
}

/** What a lookupd said about itself in its IDENTIFY answer. */
export interface LookupPeerInfo {
  broadcastAddress: string;
  tcpPort: number;
  httpPort: number;
  version: string;
}

export interface LookupPeersOptions {
  /** lookupd TCP addresses (`host:port`). */
  addresses: string[];
  /** The IDENTIFY body, as nsqd sends it. */
  identify: { broadcast_address: string; hostname: string; tcp_port: number; http_port: number; version: string };
  /** Everything to REGISTER after each (re)connect. */
  registrations: () => LookupRegistration[];
  logger: NsqLogger;
  /** ms between PINGs (nsqd: 15 s). */
  pingIntervalMs?: number;
  /** ms to establish a connection (nsqd: 1 s). */
  dialTimeoutMs?: number;
  /** ms for each `/channels` query of channelsFor(). */
  httpTimeoutMs?: number;
  /**
   * ms a command may wait for its answer before the connection is dropped. nsqd uses 1 s read
   * deadlines; the default is looser because a busy Node event loop (ours or lookupd's) can stall
   * longer than that without anything being wrong.
   */
  responseTimeoutMs?: number;
}

export interface LookupPeersEvents {
  /** A lookupd answered IDENTIFY. */
  connect: [{ address: string; info: LookupPeerInfo }];
  /** A connection to a lookupd closed (a reconnect is scheduled unless closing). */
  disconnect: [{ address: string; reason: string }];
}

const DEFAULT_PING_INTERVAL_MS = 15_000;
const DEFAULT_DIAL_TIMEOUT_MS = 1000;
const DEFAULT_HTTP_TIMEOUT_MS = 5000;
const DEFAULT_RESPONSE_TIMEOUT_MS = 5000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15_000;
/** nsqd bounds a lookupd answer by --max-body-size. */
const MAX_RESPONSE_SIZE = 5 * 1024 * 1024;
/** Bound on close() waiting for sockets to finish closing. */
const CLOSE_TIMEOUT_MS = 1000;

interface Command {
  /** For logs: `REGISTER t c`. */
  readonly label: string;
  readonly bytes: Buffer;
  readonly onResponse?: (data: Buffer) => void;
}

function line(text: string): Command {
  return { label: text, bytes: Buffer.from(`${text}\n`, 'utf8') };
}

function registerLine(verb: 'REGISTER' | 'UNREGISTER', topic: string, channel?: string): Command {
  return line(channel ? `${verb} ${topic} ${channel}` : `${verb} ${topic}`);
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One lookupd: its connection, command queue and reconnect schedule. */
class LookupPeer {
  info: LookupPeerInfo | undefined;
  private state: 'idle' | 'connecting' | 'connected' | 'closed' = 'idle';
  private socket: Socket | undefined;
  private queue: Command[] = [];
  private inflight: Command | undefined;
  private input: Buffer = Buffer.alloc(0);
  private identified = false;
  private failures = 0;
  private dialTimer: NodeJS.Timeout | undefined;
  private responseTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed: Promise<void> = Promise.resolve();

  constructor(
    readonly address: string,
    private readonly owner: LookupPeers,
    private readonly opts: LookupPeersOptions,
  ) {}

  /** Connected and identified: its info is current. */
  get ready(): boolean {
    return this.state === 'connected' && this.identified;
  }

  connect(): void {
    if (this.state !== 'idle') return;
    let target: { host: string; port: number };
    try {
      target = parseAddress(this.address, 'lookupd TCP address');
    } catch (err) {
      this.opts.logger.error(`LOOKUP(${this.address}): ${describe(err)}; not connecting`);
      return;
    }
    this.state = 'connecting';
    this.opts.logger.info(`LOOKUP connecting to ${this.address}`);
    const socket = connect({ host: target.host, port: target.port });
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.dialTimer = setTimeout(() => this.drop(socket, `dial timeout after ${this.opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS} ms`), this.opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS);
    socket.once('connect', () => this.onConnect(socket));
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => this.drop(socket, err.message));
    socket.once('close', () => this.drop(socket, 'connection closed'));
  }

  /** Queues a command if connected (a disconnected peer re-registers everything on connect). */
  send(cmd: Command): void {
    if (this.state !== 'connected') return;
    this.queue.push(cmd);
    this.pump();
  }

  /** Whether a PING is queued or in flight (so a slow lookupd does not pile them up). */
  get pinging(): boolean {
    return this.inflight?.label === 'PING' || this.queue.some((c) => c.label === 'PING');
  }

  close(): Promise<void> {
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.dialTimer);
    clearTimeout(this.responseTimer);
    this.queue = [];
    this.inflight = undefined;
    this.socket?.destroy();
    this.socket = undefined;
    return this.closed;
  }

  private onConnect(socket: Socket): void {
    if (socket !== this.socket) return;
    clearTimeout(this.dialTimer);
    socket.setNoDelay(true);
    this.state = 'connected';
    this.identified = false;
    socket.write(MAGIC_V1);
    const identify: Command = {
      label: 'IDENTIFY',
      bytes: identifyBytes(this.opts.identify),
      onResponse: (data) => this.onIdentified(socket, data),
    };
    let registrations: LookupRegistration[];
    try {
      registrations = this.opts.registrations();
    } catch (err) {
      this.opts.logger.error(`LOOKUPD(${this.address}): registrations() failed - ${describe(err)}`);
      registrations = [];
    }
    this.queue = [identify, ...registrations.map((r) => registerLine('REGISTER', r.topic, r.channel))];
    this.pump();
  }

  private onIdentified(socket: Socket, data: Buffer): void {
    let info: LookupPeerInfo;
    try {
      const parsed = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      info = {
        broadcastAddress: typeof parsed.broadcast_address === 'string' ? parsed.broadcast_address : '',
        tcpPort: typeof parsed.tcp_port === 'number' ? parsed.tcp_port : 0,
        httpPort: typeof parsed.http_port === 'number' ? parsed.http_port : 0,
        version: typeof parsed.version === 'string' ? parsed.version : '',
      };
    } catch {
      this.opts.logger.error(`LOOKUPD(${this.address}): parsing response - ${data.toString('utf8').slice(0, 200)}`);
      this.drop(socket, 'bad IDENTIFY answer');
      return;
    }
    this.info = info;
    this.identified = true;
    this.failures = 0;
    this.opts.logger.info(`LOOKUPD(${this.address}): peer info ${JSON.stringify(info)}`);
    if (info.broadcastAddress === '') this.opts.logger.error(`LOOKUPD(${this.address}): no broadcast address`);
    this.owner.emitSafely('connect', { address: this.address, info });
  }

  private pump(): void {
    const socket = this.socket;
    if (this.state !== 'connected' || !socket || this.inflight) return;
    const cmd = this.queue.shift();
    if (!cmd) return;
    this.inflight = cmd;
    if (cmd.label !== 'PING' && cmd.label !== 'IDENTIFY') this.opts.logger.info(`LOOKUPD(${this.address}): ${cmd.label}`);
    socket.write(cmd.bytes);
    const timeout = this.opts.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS;
    this.responseTimer = setTimeout(() => this.drop(socket, `no answer to ${cmd.label} within ${timeout} ms`), timeout);
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    while (this.input.length >= 4 && socket === this.socket) {
      const size = this.input.readInt32BE(0);
      if (size < 0 || size > MAX_RESPONSE_SIZE) {
        this.drop(socket, `response size ${size} out of range 0-${MAX_RESPONSE_SIZE}`);
        return;
      }
      if (this.input.length < 4 + size) return;
      const data = this.input.subarray(4, 4 + size);
      this.input = this.input.subarray(4 + size);
      this.onResponse(socket, data);
    }
  }

  private onResponse(socket: Socket, data: Buffer): void {
    const cmd = this.inflight;
    if (!cmd) {
      this.drop(socket, 'answer with no command in flight');
      return;
    }
    this.inflight = undefined;
    clearTimeout(this.responseTimer);
    if (data.length >= 2 && data[0] === 0x45 && data[1] === 0x5f) {
      // "E_...": lookupd closes the connection after it; the close schedules the reconnect
      this.opts.logger.error(`LOOKUPD(${this.address}): ${cmd.label} - ${data.toString('utf8')}`);
      if (cmd.label === 'IDENTIFY') this.drop(socket, 'IDENTIFY rejected');
      return;
    }
    try {
      cmd.onResponse?.(data);
    } catch (err) {
      this.opts.logger.error(`LOOKUPD(${this.address}): handling answer to ${cmd.label} failed - ${describe(err)}`);
    }
    this.pump();
  }

  /** Ends the current connection (once) and schedules the reconnect. */
  private drop(socket: Socket, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    clearTimeout(this.dialTimer);
    clearTimeout(this.responseTimer);
    socket.destroy();
    const wasConnected = this.state === 'connected';
    this.queue = [];
    this.inflight = undefined;
    this.input = Buffer.alloc(0);
    this.identified = false;
    if (this.state === 'closed') return;
    this.state = 'idle';
    this.failures++;
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(this.failures - 1, 10));
    this.opts.logger.warn(`LOOKUPD(${this.address}): ${wasConnected ? 'disconnected' : 'connect failed'} - ${reason}; retrying in ${delay} ms`);
    if (wasConnected) this.owner.emitSafely('disconnect', { address: this.address, reason });
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.reconnectTimer.unref();
  }
}

function identifyBytes(identify: LookupPeersOptions['identify']): Buffer {
  // the key order of nsqd's IDENTIFY (a Go map, marshalled with sorted keys)
  const body = Buffer.from(
    JSON.stringify({
      broadcast_address: identify.broadcast_address,
      hostname: identify.hostname,
      http_port: identify.http_port,
      tcp_port: identify.tcp_port,
      version: identify.version,
    }),
    'utf8',
  );
  const out = Buffer.allocUnsafe(9 + 4 + body.length);
  out.write('IDENTIFY\n', 0, 'latin1');
  out.writeInt32BE(body.length, 9);
  body.copy(out, 13);
  return out;
}

/** nsqd's connections to its nsqlookupds (`--lookupd-tcp-address`). */
export class LookupPeers extends EventEmitter<LookupPeersEvents> {
  private readonly opts: LookupPeersOptions;
  private peers: LookupPeer[] = [];
  private started = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: LookupPeersOptions) {
    super();
    this.opts = { ...opts };
    this.peers = dedupe(opts.addresses).map((a) => new LookupPeer(a, this, this.opts));
  }

  /** Connects to every lookupd and starts the PINGs. */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    for (const p of this.peers) p.connect();
    this.pingTimer = setInterval(() => this.ping(), this.opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
    this.pingTimer.unref();
  }

  get addresses(): string[] {
    return this.peers.map((p) => p.address);
  }

  /** REGISTER on every connected lookupd, in call order. */
  register(topic: string, channel?: string): void {
    const cmd = registerLine('REGISTER', topic, channel);
    for (const p of this.peers) p.send(cmd);
  }

  /** UNREGISTER on every connected lookupd, in call order. */
  unregister(topic: string, channel?: string): void {
    const cmd = registerLine('UNREGISTER', topic, channel);
    for (const p of this.peers) p.send(cmd);
  }

  /** Replaces the lookupd list: removed ones are disconnected, new ones connected. */
  setAddresses(addresses: string[]): void {
    if (this.closing) return;
    const wanted = dedupe(addresses);
    const kept: LookupPeer[] = [];
    for (const p of this.peers) {
      if (wanted.includes(p.address)) {
        kept.push(p);
      } else {
        this.opts.logger.info(`LOOKUP(${p.address}): removing peer`);
        void p.close();
      }
    }
    const next = wanted.map((a) => kept.find((p) => p.address === a) ?? new LookupPeer(a, this, this.opts));
    for (const p of next) {
      if (!kept.includes(p)) {
        this.opts.logger.info(`LOOKUP(${p.address}): adding peer`);
        if (this.started) p.connect();
      }
    }
    this.peers = next;
  }

  /**
   * The non-ephemeral channels of `topic` known to the connected lookupds (union of their
   * `GET /channels?topic=`, asked at the HTTP address each gave in its IDENTIFY answer). A lookupd
   * that fails or is slow is left out (logged).
   */
  async channelsFor(topic: string): Promise<string[]> {
    const targets = this.peers.filter((p) => p.ready && p.info && p.info.broadcastAddress !== '' && p.info.httpPort > 0);
    const timeoutMs = this.opts.httpTimeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
    const results = await Promise.allSettled(
      targets.map((p) => new LookupdHttpClient(joinHostPort(p.info!.broadcastAddress, p.info!.httpPort), { timeoutMs }).channels(topic)),
    );
    const out = new Set<string>();
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        for (const c of r.value) if (!isEphemeral(c)) out.add(c);
      } else {
        this.opts.logger.warn(`LOOKUPD(${targets[i]!.address}): channels query for topic ${topic} failed - ${describe(r.reason)}`);
      }
    });
    return [...out];
  }

  /** Disconnects from every lookupd; idempotent, bounded. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.pingTimer);
      const closed = Promise.all(this.peers.map((p) => p.close()));
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        timer.unref();
      });
      await Promise.race([closed, bound]);
      clearTimeout(timer);
    })();
    return this.closing;
  }

  /** @internal A throwing listener must not break the connection handling that emitted. */
  emitSafely<K extends keyof LookupPeersEvents>(event: K, ...args: LookupPeersEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.opts.logger.error(`LookupPeers: '${event}' listener threw: ${describe(err)}`);
    }
  }

  private ping(): void {
    for (const p of this.peers) {
      if (p.ready && !p.pinging) p.send(line('PING'));
    }
  }
}

function dedupe(addresses: readonly string[]): string[] {
  return [...new Set(addresses.map((a) => a.trim()).filter((a) => a !== ''))];
}
