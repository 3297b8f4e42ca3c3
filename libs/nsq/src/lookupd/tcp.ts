/**
 * nsqlookupd's TCP protocol V1 (nsq 1.3.0 `nsqlookupd/tcp.go`, `lookup_protocol_v1.go`), spoken by
 * nsqd to register its topics and channels.
 *
 * After the magic `"  V1"` the client sends lines (`PING`, `IDENTIFY` + `[int32 len][json]`,
 * `REGISTER topic [channel]`, `UNREGISTER topic [channel]`). Every answer, errors included, is a
 * response `[int32 size][data]` with no frame type. Every error is fatal: the error goes out, then
 * the connection closes. When a connection closes, its peer leaves every registration.
 *
 * Where nsqlookupd trusts its input and we do not: a line is bounded (MAX_LINE_LENGTH), and the
 * IDENTIFY body length must be 1..MAX_IDENTIFY_BODY (a negative length crashes nsqlookupd 1.3.0,
 * a huge one makes it allocate that much). Bytes are never copied more than once while a line or a
 * body is incomplete, so trickled input costs linear time.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { NsqLogger } from '../client/logger.js';
import { boundAddress, formatAddress, listen } from '../internal/listen.js';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import { CLIENT_REGISTRATION, type RegisteredPeer, type RegistrationDB, registration } from './registration-db.js';

/** Longest command line accepted without a newline; a longer one closes the connection. */
export const MAX_LINE_LENGTH = 64 * 1024;
/** Largest IDENTIFY body accepted (an nsqd's is ~150 bytes). */
export const MAX_IDENTIFY_BODY = 1024 * 1024;
/** Bytes queued for a client that does not read before we stop reading from it. */
const MAX_PENDING_WRITE = 1024 * 1024;
/** How long a closing connection may take to flush its last response before it is destroyed. */
const CLOSE_FLUSH_MS = 2000;

const MAGIC_V1 = '  V1';

/** lookupd.ts names its listeners with it. */
export { formatAddress } from '../internal/listen.js';

/** What a V1 connection needs from the lookupd that owns it. */
export interface LookupProtocolHost {
  readonly db: RegistrationDB;
  readonly logger: NsqLogger;
  /** The JSON answer to a successful IDENTIFY. */
  identifyResponse(): Buffer;
  onPeerConnect(peer: RegisteredPeer): void;
  onPeerDisconnect(peer: RegisteredPeer): void;
  onRegister(peer: RegisteredPeer, topic: string, channel: string | undefined): void;
  onUnregister(peer: RegisteredPeer, topic: string, channel: string | undefined): void;
}

/** A fatal client error: `<code> <description>` is sent, then the connection closes. */
class FatalClientError extends Error {
  constructor(
    readonly code: string,
    readonly description: string,
  ) {
    super(`${code} ${description}`);
  }
}

/**
 * Received bytes not yet consumed, kept as the chunks they arrived in, so that waiting for the end
 * of a line or body never re-copies what is already buffered.
 */
class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;
  /** Bytes from the start already known to hold no newline. */
  private scanned = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Offset of the first `\n`, or -1. */
  indexOfNewline(): number {
    let base = 0;
    for (let i = 0; i < this.chunks.length; i++) {
      const chunk = this.chunks[i]!;
      const start = i === 0 ? this.head : 0;
      const size = chunk.length - start;
      if (base + size > this.scanned) {
        const from = start + Math.max(0, this.scanned - base);
        const at = chunk.indexOf(0x0a, from);
        if (at !== -1) return base + (at - start);
      }
      base += size;
    }
    this.scanned = this.length;
    return -1;
  }

  /** Removes and returns the first n bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first !== undefined && first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[0]!;
        const copied = chunk.copy(out, filled, this.head, Math.min(chunk.length, this.head + n - filled));
        filled += copied;
        this.head += copied;
        if (this.head === chunk.length) {
          this.chunks.shift();
          this.head = 0;
        }
      }
    }
    this.length -= n;
    this.scanned = Math.max(0, this.scanned - n);
    return out;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
    this.scanned = 0;
  }
}

// Go's strings.TrimSpace: ASCII white space plus the Unicode spaces, which arrive here as the
// latin1 view of their UTF-8 bytes (lines are handled byte for byte, like Go strings).
const ASCII_SPACE = new Set(['\t', '\n', '\v', '\f', '\r', ' ']);
const UNICODE_SPACES = [
  '\u00c2\u0085', '\u00c2\u00a0', '\u00e1\u009a\u0080', '\u00e2\u0080\u00a8', '\u00e2\u0080\u00a9',
  '\u00e2\u0080\u00af', '\u00e2\u0081\u009f', '\u00e3\u0080\u0080',
  ...Array.from({ length: 11 }, (_, i) => `\u00e2\u0080${String.fromCharCode(0x80 + i)}`),
];

function trimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  leading: while (start < end) {
    if (ASCII_SPACE.has(s[start]!)) {
      start++;
      continue;
    }
    for (const u of UNICODE_SPACES) {
      if (s.startsWith(u, start)) {
        start += u.length;
        continue leading;
      }
    }
    break;
  }
  trailing: while (end > start) {
    if (ASCII_SPACE.has(s[end - 1]!)) {
      end--;
      continue;
    }
    for (const u of UNICODE_SPACES) {
      if (end - u.length >= start && s.endsWith(u, end)) {
        end -= u.length;
        continue trailing;
      }
    }
    break;
  }
  return s.slice(start, end);
}

function response(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

const RESPONSE_OK = response('OK');

type PeerStringField = 'hostname' | 'broadcast_address' | 'version' | 'remote_address';
type PeerIntField = 'tcp_port' | 'http_port';
const PEER_FIELDS: ReadonlyArray<PeerStringField | PeerIntField> = [
  'remote_address', 'hostname', 'broadcast_address', 'tcp_port', 'http_port', 'version',
];
const INT_FIELDS = new Set<string>(['tcp_port', 'http_port']);
const INT64_LIMIT = 2 ** 63;

/**
 * Decodes an IDENTIFY body the way Go's json.Unmarshal fills nsqlookupd's PeerInfo: keys match
 * field names exactly or else case-insensitively, unknown keys are ignored, null leaves a field
 * unset, a value of the wrong type (or a non-integer port) is an error, `null` as the whole body is
 * an empty object. (Go also rejects integer fields written as `1e3` or `4150.0`; we accept them.)
 */
export function decodeIdentifyBody(body: Buffer): Record<PeerStringField, string> & Record<PeerIntField, number> {
  const parsed: unknown = JSON.parse(body.toString('utf8'));
  const out = { remote_address: '', hostname: '', broadcast_address: '', version: '', tcp_port: 0, http_port: 0 };
  if (parsed === null) return out;
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new TypeError('IDENTIFY body is not a JSON object');
  let typeError: TypeError | undefined;
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    const field = PEER_FIELDS.find((f) => f === key) ?? PEER_FIELDS.find((f) => f.toLowerCase() === key.toLowerCase());
    if (field === undefined || value === null) continue;
    if (INT_FIELDS.has(field)) {
      if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < INT64_LIMIT) {
        out[field as PeerIntField] = value;
      } else {
        typeError ??= new TypeError(`IDENTIFY ${field} must be an integer`);
      }
    } else if (typeof value === 'string') {
      out[field as PeerStringField] = value;
    } else {
      typeError ??= new TypeError(`IDENTIFY ${field} must be a string`);
    }
  }
  if (typeError) throw typeError;
  return out;
}

type State = 'magic' | 'line' | 'identify-size' | 'identify-body' | 'closing';

/** One nsqd (or anything else) connected to the TCP listener. */
class LookupConnectionV1 {
  readonly remoteAddress: string;
  private state: State = 'magic';
  private readonly input = new ByteQueue();
  private bodySize = 0;
  private peer: RegisteredPeer | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private markClosed!: () => void;
  /** Resolves once the socket closed and the peer left every registration. */
  readonly closed = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });

  constructor(
    private readonly socket: Socket,
    private readonly host: LookupProtocolHost,
    private readonly onClosed: (conn: LookupConnectionV1) => void,
  ) {
    this.remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
    host.logger.info(`TCP: new client(${this.remoteAddress})`);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => {
      if (this.isOpen()) socket.resume();
    });
    socket.on('error', (err) => host.logger.debug(`client(${this.remoteAddress}) - ${err.message}`));
    socket.once('close', () => this.cleanup());
  }

  /** Closes the connection now (lookupd shutdown). */
  destroy(): void {
    this.state = 'closing';
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing') return;
    this.input.push(chunk);
    try {
      this.process();
    } catch (err) {
      if (err instanceof FatalClientError) {
        this.fail(err);
      } else {
        // a bug must cost this connection, not the process
        this.host.logger.error(`client(${this.remoteAddress}) - internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        this.destroy();
      }
    }
    // A client that sends commands without reading the answers stops being read from.
    if (this.isOpen() && this.socket.writableLength > MAX_PENDING_WRITE) this.socket.pause();
  }

  private isOpen(): boolean {
    return this.state !== 'closing';
  }

  /** The client half-closed: like nsqlookupd, answer a truncated IDENTIFY, drop a partial line, close. */
  private onEnd(): void {
    if (this.state === 'identify-size') {
      this.fail(new FatalClientError('E_BAD_BODY', 'IDENTIFY failed to read body size'));
    } else if (this.state === 'identify-body') {
      this.fail(new FatalClientError('E_BAD_BODY', 'IDENTIFY failed to read body'));
    } else {
      this.close();
    }
  }

  private process(): void {
    while (true) {
      switch (this.state) {
        case 'magic': {
          if (this.input.length < 4) return;
          const magic = this.input.take(4).toString('latin1');
          this.host.logger.info(`CLIENT(${this.remoteAddress}): desired protocol magic '${magic}'`);
          if (magic !== MAGIC_V1) {
            this.host.logger.error(`client(${this.remoteAddress}) bad protocol magic '${magic}'`);
            this.send(response('E_BAD_PROTOCOL'));
            this.close();
            return;
          }
          this.state = 'line';
          break;
        }
        case 'line': {
          const nl = this.input.indexOfNewline();
          if (nl === -1) {
            if (this.input.length > MAX_LINE_LENGTH) {
              this.host.logger.error(`client(${this.remoteAddress}) sent more than ${MAX_LINE_LENGTH} bytes without a newline; closing`);
              this.close();
            }
            return;
          }
          const line = this.input.take(nl + 1).toString('latin1');
          this.exec(trimSpace(line).split(' '));
          break;
        }
        case 'identify-size': {
          if (this.input.length < 4) return;
          const size = this.input.take(4).readInt32BE(0);
          if (size < 0 || size > MAX_IDENTIFY_BODY) {
            throw new FatalClientError('E_BAD_BODY', `IDENTIFY invalid body size ${size}`);
          }
          this.bodySize = size;
          this.state = 'identify-body';
          break;
        }
        case 'identify-body': {
          if (this.input.length < this.bodySize) return;
          this.state = 'line';
          this.IDENTIFY(this.input.take(this.bodySize));
          break;
        }
        case 'closing':
          return;
      }
    }
  }

  private exec(params: string[]): void {
    const [command = '', ...args] = params;
    switch (command) {
      case 'PING':
        return this.PING();
      case 'IDENTIFY':
        if (this.peer) throw new FatalClientError('E_INVALID', 'cannot IDENTIFY again');
        this.state = 'identify-size';
        return;
      case 'REGISTER':
        return this.REGISTER(args);
      case 'UNREGISTER':
        return this.UNREGISTER(args);
      default:
        throw new FatalClientError('E_INVALID', `invalid command ${command}`);
    }
  }

  private PING(): void {
    if (this.peer) {
      const now = Date.now();
      this.host.logger.debug(`CLIENT(${this.peer.id}): pinged (last ping ${now - this.peer.lastUpdate}ms)`);
      this.peer.lastUpdate = now;
    }
    this.send(RESPONSE_OK);
  }

  private IDENTIFY(body: Buffer): void {
    let fields: ReturnType<typeof decodeIdentifyBody>;
    try {
      fields = decodeIdentifyBody(body);
    } catch {
      throw new FatalClientError('E_BAD_BODY', 'IDENTIFY failed to decode JSON body');
    }
    if (fields.broadcast_address === '' || fields.tcp_port === 0 || fields.http_port === 0 || fields.version === '') {
      throw new FatalClientError('E_BAD_BODY', 'IDENTIFY missing fields');
    }
    const peer: RegisteredPeer = {
      id: this.remoteAddress,
      remoteAddress: this.remoteAddress,
      hostname: fields.hostname,
      broadcastAddress: fields.broadcast_address,
      tcpPort: fields.tcp_port,
      httpPort: fields.http_port,
      version: fields.version,
      lastUpdate: Date.now(),
    };
    const { logger, db } = this.host;
    logger.info(
      `CLIENT(${this.remoteAddress}): IDENTIFY Address:${peer.broadcastAddress} TCP:${peer.tcpPort} HTTP:${peer.httpPort} Version:${peer.version}`,
    );
    this.peer = peer;
    if (db.addProducer(CLIENT_REGISTRATION, peer)) {
      logger.info(`DB: client(${this.remoteAddress}) REGISTER category:client key: subkey:`);
    }
    this.host.onPeerConnect(peer);
    this.send(response(this.host.identifyResponse()));
  }

  private REGISTER(args: string[]): void {
    const peer = this.requirePeer();
    const { topic, channel } = topicAndChannel('REGISTER', args);
    const { db, logger } = this.host;
    if (channel !== '' && db.addProducer(registration('channel', topic, channel), peer)) {
      logger.info(`DB: client(${this.remoteAddress}) REGISTER category:channel key:${topic} subkey:${channel}`);
      this.host.onRegister(peer, topic, channel);
    }
    if (db.addProducer(registration('topic', topic), peer)) {
      logger.info(`DB: client(${this.remoteAddress}) REGISTER category:topic key:${topic} subkey:`);
      this.host.onRegister(peer, topic, undefined);
    }
    this.send(RESPONSE_OK);
  }

  private UNREGISTER(args: string[]): void {
    const peer = this.requirePeer();
    const { topic, channel } = topicAndChannel('UNREGISTER', args);
    const { db, logger } = this.host;
    if (channel !== '') {
      const key = registration('channel', topic, channel);
      const { removed, left } = db.removeProducer(key, peer.id);
      if (removed) {
        logger.info(`DB: client(${this.remoteAddress}) UNREGISTER category:channel key:${topic} subkey:${channel}`);
        this.host.onUnregister(peer, topic, channel);
      }
      // an ephemeral channel disappears with its last producer
      if (left === 0 && channel.endsWith('#ephemeral')) db.removeRegistration(key);
    } else {
      // A topic UNREGISTER normally comes after its channels' UNREGISTERs; leftovers are dropped
      // here, with a warning as nsqlookupd does.
      for (const r of db.findRegistrations('channel', topic, '*')) {
        if (db.removeProducer(r, peer.id).removed) {
          logger.warn(`client(${this.remoteAddress}) unexpected UNREGISTER category:channel key:${topic} subkey:${r.subKey}`);
          this.host.onUnregister(peer, topic, r.subKey);
        }
      }
      const key = registration('topic', topic);
      const { removed, left } = db.removeProducer(key, peer.id);
      if (removed) {
        logger.info(`DB: client(${this.remoteAddress}) UNREGISTER category:topic key:${topic} subkey:`);
        this.host.onUnregister(peer, topic, undefined);
      }
      if (left === 0 && topic.endsWith('#ephemeral')) db.removeRegistration(key);
    }
    this.send(RESPONSE_OK);
  }

  private requirePeer(): RegisteredPeer {
    if (!this.peer) throw new FatalClientError('E_INVALID', 'client must IDENTIFY');
    return this.peer;
  }

  private send(data: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  private fail(err: FatalClientError): void {
    if (this.state === 'closing') return;
    this.host.logger.error(`[${this.remoteAddress}] - ${err.message}`);
    this.send(response(err.message));
    this.close();
  }

  /** Flushes what was written, then closes; bounded by CLOSE_FLUSH_MS. */
  private close(): void {
    if (this.state === 'closing') return;
    this.state = 'closing';
    this.input.clear();
    this.socket.end();
    // Keep reading (and dropping) so the peer's unread bytes do not turn our FIN into a reset.
    this.socket.resume();
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_FLUSH_MS);
    this.closeTimer.unref();
  }

  private cleanup(): void {
    this.state = 'closing';
    clearTimeout(this.closeTimer);
    this.input.clear();
    const { logger, db } = this.host;
    logger.info(`PROTOCOL(V1): [${this.remoteAddress}] exiting ioloop`);
    const peer = this.peer;
    if (peer) {
      for (const r of db.lookupRegistrations(peer.id)) {
        if (!db.removeProducer(r, peer.id).removed) continue;
        logger.info(`DB: client(${this.remoteAddress}) UNREGISTER category:${r.category} key:${r.key} subkey:${r.subKey}`);
        if (r.category !== 'client') this.host.onUnregister(peer, r.key, r.category === 'channel' ? r.subKey : undefined);
      }
      this.host.onPeerDisconnect(peer);
    }
    this.onClosed(this);
    this.markClosed();
  }
}

function topicAndChannel(command: string, params: string[]): { topic: string; channel: string } {
  const [topic, channel = ''] = params;
  if (topic === undefined) throw new FatalClientError('E_INVALID', `${command} insufficient number of params`);
  if (!isValidTopicName(topic)) throw new FatalClientError('E_BAD_TOPIC', `${command} topic name '${topic}' is not valid`);
  if (channel !== '' && !isValidChannelName(channel)) {
    throw new FatalClientError('E_BAD_CHANNEL', `${command} channel name '${channel}' is not valid`);
  }
  return { topic, channel };
}

/** The TCP listener and its connections. */
export class LookupTcpServer {
  private readonly server: Server;
  private readonly connections = new Set<LookupConnectionV1>();

  constructor(
    private readonly host: LookupProtocolHost,
    private readonly onError: (err: Error) => void,
  ) {
    // allowHalfOpen: a client that shuts down its side mid-IDENTIFY still gets its error answer.
    this.server = createServer({ allowHalfOpen: true }, (socket) => {
      this.connections.add(new LookupConnectionV1(socket, host, (c) => this.connections.delete(c)));
    });
  }

  listen(host: string | undefined, port: number): Promise<AddressInfo> {
    return listen(this.server, host, port, this.onError);
  }

  get address(): AddressInfo | undefined {
    return boundAddress(this.server);
  }

  /** Stops listening and closes every connection; resolves once their peers left the registrations. */
  async close(): Promise<void> {
    const stopped = new Promise<void>((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.host.logger.info(`TCP: closing ${formatAddress(this.address?.address, this.address?.port)}`);
      this.server.close(() => resolve());
    });
    const connections = [...this.connections];
    for (const c of connections) c.destroy();
    await Promise.all([stopped, ...connections.map((c) => c.closed)]);
  }
}
