import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { createDeflateRaw, createInflateRaw, constants as zlibConstants, type DeflateRaw, type InflateRaw } from 'node:zlib';
import type { Duplex } from 'node:stream';
import { FrameType, MESSAGE_HEADER_LENGTH, MESSAGE_ID_LENGTH } from '../protocol/constants.js';
import { isValidChannelName, isValidTopicName } from '../protocol/names.js';
import { type AuthState, queryAnyAuthd } from './auth.js';
import type { Channel } from './channel.js';
import { ChannelStateError } from './channel.js';
import type { ChannelConsumer } from './context.js';
import type { NsqdMessage } from './message.js';
import type { NsqdOptions } from './options.js';
import { SERVER_VERSION } from './options.js';
import type { Topic } from './topic.js';
import type { MessageEvents } from './events.js';
import type { NsqLogger } from '../client/logger.js';

/** Client states as nsqd numbers them (shown as `state` in /stats). */
export const ClientState = { Init: 0, Disconnected: 1, Connected: 2, Subscribed: 3, Closing: 4 } as const;

/** nsqd's client read buffer; a command line longer than this closes the connection. */
const MAX_LINE = 16 * 1024;
/** nsqd's ClientTimeout / 2. */
const DEFAULT_HEARTBEAT_INTERVAL = 30_000;
const DEFAULT_OUTPUT_BUFFER_SIZE = 16 * 1024;
const TLS_HANDSHAKE_TIMEOUT = 5000;
/** Bytes per output slab frames are written into. */
const OUTPUT_SLAB = 64 * 1024;
/** Stop reading a client whose unsent output exceeds this (it does not read its responses). */
const WRITE_HIGH_WATER = 4 * 1024 * 1024;
const OK = Buffer.from('OK');
const CLOSE_WAIT = Buffer.from('CLOSE_WAIT');
const HEARTBEAT = Buffer.from('_heartbeat_');

/** An error sent to the client as an Error frame: `<code> <description>`; fatal ones close the connection. */
export class ProtocolError extends Error {
  constructor(
    readonly code: string,
    readonly description: string,
    readonly fatal = true,
  ) {
    super(`${code} ${description}`);
  }
}

/** What a client connection needs from its NSQD. */
export interface ClientHost {
  readonly options: NsqdOptions;
  readonly logger: NsqLogger;
  readonly events: MessageEvents;
  readonly authEnabled: boolean;
  readonly tlsContext: SecureContext | undefined;
  getTopic(name: string): Topic;
  /** SUB: topic and channel created as needed; throws ProtocolError(E_SUB_FAILED) */
  subscribe(topicName: string, channelName: string, client: ClientV2): Channel;
  /** The connection ended: leave the channel (ephemeral cleanup), forget the client. */
  clientClosed(client: ClientV2): void;
}

interface PendingRead {
  need: number;
  fn: (data: Buffer) => void;
  /** The error nsqd sends when the client stops sending before this read completes. */
  eof: [code: string, text: string];
}

/**
 * One TCP connection speaking protocol V2 (nsqd's protocol_v2.go + client_v2.go). Commands are
 * parsed from the byte stream in order; one method per command, named as the command. Commands that
 * wait (AUTH asks authd, IDENTIFY may upgrade to TLS) stop parsing until they are done, so replies
 * keep the order of the requests as in nsqd.
 */
export class ClientV2 implements ChannelConsumer {
  readonly remoteAddress: string;
  readonly connectTs = Math.floor(Date.now() / 1000);
  state: number = ClientState.Init;
  clientId: string;
  hostname: string;
  userAgent = '';
  heartbeatInterval = DEFAULT_HEARTBEAT_INTERVAL;
  msgTimeout: number;
  outputBufferSize = DEFAULT_OUTPUT_BUFFER_SIZE;
  outputBufferTimeout: number;
  sampleRate = 0;
  tls = false;
  tlsVersion = '';
  tlsCipher = '';
  deflate = false;
  authState: AuthState | undefined;
  private authSecret = '';
  readyCount = 0;
  inFlightCount = 0;
  messageCount = 0;
  finishCount = 0;
  requeueCount = 0;
  readonly pubCounts = new Map<string, number>();
  channel: Channel | undefined;

  private input: Duplex | InflateRaw;
  private transport: Duplex;
  private deflater: DeflateRaw | undefined;
  private chunks: Buffer[] = [];
  /** Offset of the first unparsed byte in chunks[0]. */
  private head = 0;
  private available = 0;
  private pendingRead: PendingRead | undefined;
  private busy = false;
  /**
   * While a chunk of input is being parsed, responses are collected and written once at the end,
   * and FIN/REQ/RDY only mark the channel for delivery: a chunk of 1,000 FINs then costs one
   * delivery round and one socket write instead of 1,000 (nsqd's goroutines batch the same way
   * through its buffered writer).
   */
  private inBatch = false;
  private pumpAfterBatch = false;
  /** The client half-closed: finish what was received, answer a cut-off command as nsqd does, close. */
  private inputEnded = false;
  private closed = false;
  private ending = false;
  /** Frames to write: full output slabs, then the slab being filled (outBuf up to outPos). */
  private outChunks: Buffer[] = [];
  private outBuf: Buffer | undefined;
  private outPos = 0;
  private outBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushImmediate: NodeJS.Immediate | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readDeadline: NodeJS.Timeout | undefined;
  private readonly onInput = (chunk: Buffer): void => this.onData(chunk);
  private readonly onInputEnd = (): void => {
    this.inputEnded = true;
    this.process();
  };

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly host: ClientHost,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`.replace(/^::ffff:/, '');
    const ip = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    this.clientId = ip;
    this.hostname = ip;
    this.msgTimeout = host.options.msgTimeout;
    this.outputBufferTimeout = host.options.outputBufferTimeout;
    this.input = socket;
    this.transport = socket;
    socket.setNoDelay(true);
    socket.on('data', this.onInput);
    socket.on('error', (err) => {
      this.host.logger.debug(`[${this.remoteAddress}] socket error: ${err.message}`);
      this.destroy();
    });
    socket.on('close', () => this.destroy());
    socket.on('end', this.onInputEnd);
    socket.on('drain', () => {
      if (!this.closed) this.input.resume();
    });
    this.startTimers();
  }

  /** The name lifecycle events carry: the consumer's address. */
  get name(): string {
    return this.remoteAddress;
  }

  /** Bytes already received before the V2 magic was consumed by the server. */
  feed(initial: Buffer): void {
    if (initial.length > 0) this.onData(initial);
  }

  // ---- input ---------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closed || this.ending) return;
    this.readDeadline?.refresh();
    this.chunks.push(chunk);
    this.available += chunk.length;
    this.process();
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.skip(n);
      return out;
    }
    out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.skip(k);
    }
    return out;
  }

  /** Consumes n bytes of the first chunk (n <= what it has left). */
  private skip(n: number): void {
    this.head += n;
    this.available -= n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Everything received and not parsed yet, as one buffer; the input is left empty. */
  private takeAll(): Buffer | undefined {
    if (this.available === 0) return undefined;
    return this.take(this.available);
  }

  /** All unparsed bytes as one contiguous view (copied together only if they span chunks). */
  private contiguous(): Buffer {
    if (this.chunks.length > 1) {
      const all = this.take(this.available);
      this.chunks = [all];
      this.head = 0;
      this.available = all.length;
      return all;
    }
    return this.chunks[0]!.subarray(this.head);
  }

  /** Index of '\n' within the first `limit` available bytes, or -1. */
  private findNewline(limit: number): number {
    let offset = 0;
    for (let k = 0; k < this.chunks.length; k++) {
      const c = this.chunks[k]!;
      const start = k === 0 ? this.head : 0;
      const idx = c.indexOf(10, start);
      if (idx >= 0 && offset + idx - start < limit) return offset + idx - start;
      offset += c.length - start;
      if (offset >= limit) break;
    }
    return -1;
  }

  private process(): void {
    this.inBatch = true;
    try {
      this.parseInput();
    } finally {
      this.inBatch = false;
    }
    if (this.pumpAfterBatch && !this.closed) {
      this.pumpAfterBatch = false;
      this.channel?.pump();
    }
    this.flush();
    this.afterInput();
  }

  private parseInput(): void {
    while (!this.closed && !this.ending && !this.busy) {
      const pending = this.pendingRead;
      if (pending !== undefined) {
        if (this.available < pending.need) break;
        this.pendingRead = undefined;
        const data = this.take(pending.need);
        this.run(() => pending.fn(data));
        continue;
      }
      if (this.available === 0) break;
      if (this.finFastPath()) continue;
      const nl = this.findNewline(Math.min(this.available, MAX_LINE));
      if (nl < 0) {
        if (this.available >= MAX_LINE) {
          this.host.logger.error(`[${this.remoteAddress}] - failed to read command - bufio: buffer full`);
          this.destroy();
          return;
        }
        break;
      }
      let line = this.take(nl + 1);
      line = line.subarray(0, line.length - 1);
      if (line.length > 0 && line[line.length - 1] === 13) line = line.subarray(0, line.length - 1);
      const params = splitParams(line);
      this.run(() => this.exec(params));
    }
  }

  /**
   * `FIN <16-byte id>\n` is most of what a busy consumer sends: handled without splitting the
   * line into parameter buffers. Anything unusual goes the general way.
   */
  private finFastPath(): boolean {
    const c = this.chunks[0]!;
    const h = this.head;
    if (c.length - h < 21 || c[h] !== 70 || c[h + 1] !== 73 || c[h + 2] !== 78 || c[h + 3] !== 32 || c[h + 20] !== 10) return false;
    if (this.host.options.tlsRequired !== 'false' && !this.tls) return false;
    const id = c.toString('latin1', h + 4, h + 20);
    if (id.includes(' ')) return false;
    this.skip(21);
    try {
      this.finish(id);
    } catch (err) {
      this.fail(err);
    }
    return true;
  }

  private afterInput(): void {
    if (this.inputEnded && !this.busy && !this.closed && !this.ending) {
      // like nsqd's io.ReadFull hitting EOF: a cut-off body gets its error, a cut-off line nothing
      const cut = this.pendingRead;
      if (cut !== undefined) this.fail(new ProtocolError(cut.eof[0], cut.eof[1]));
      else this.endGracefully();
      return;
    }
    if (this.transport.writableLength > WRITE_HIGH_WATER) this.input.pause();
  }

  /** Runs a command step, turning its ProtocolError into an error frame (and a close if fatal). */
  private run(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (!(err instanceof ProtocolError)) {
      this.host.logger.error(`[${this.remoteAddress}] - internal error: ${(err as Error).stack ?? String(err)}`);
      err = new ProtocolError('E_INVALID', 'internal error');
    }
    const e = err as ProtocolError;
    this.host.logger.error(`[${this.remoteAddress}] - ${e.message}`);
    this.sendFrame(FrameType.Error, Buffer.from(e.message, 'latin1'));
    if (e.fatal) this.endGracefully();
  }

  /**
   * nsqd closes the socket right after a fatal error; with unread input the kernel then sends a
   * reset and the error frame can be lost. We half-close instead, discard further input and
   * destroy the socket shortly after, so the client reliably reads the error.
   */
  private endGracefully(): void {
    if (this.closed || this.ending) return;
    this.flush();
    this.ending = true;
    this.pendingRead = undefined;
    this.chunks = [];
    this.head = 0;
    this.available = 0;
    this.leaveChannel();
    this.stopTimers();
    this.transport.end();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  private exec(params: Buffer[]): void {
    const cmd = params[0]!.toString('latin1');
    if (cmd === 'IDENTIFY') return this.IDENTIFY();
    if (this.host.options.tlsRequired !== 'false' && !this.tls) {
      throw new ProtocolError('E_INVALID', `cannot ${params[0]!.toString('latin1')} in current state (TLS required)`);
    }
    switch (cmd) {
      case 'FIN':
        return this.FIN(params);
      case 'RDY':
        return this.RDY(params);
      case 'REQ':
        return this.REQ(params);
      case 'PUB':
        return this.PUB(params);
      case 'MPUB':
        return this.MPUB(params);
      case 'DPUB':
        return this.DPUB(params);
      case 'NOP':
        return;
      case 'TOUCH':
        return this.TOUCH(params);
      case 'SUB':
        return this.SUB(params);
      case 'CLS':
        return this.CLS();
      case 'AUTH':
        return this.AUTH(params);
    }
    throw new ProtocolError('E_INVALID', `invalid command ${params[0]!.toString('latin1')}`);
  }

  /** Reads a 4-byte big-endian int32 length, then calls `fn` with it. */
  private readLen(eof: PendingRead['eof'], fn: (len: number) => void): void {
    this.pendingRead = { need: 4, fn: (data) => fn(data.readInt32BE(0)), eof };
  }

  private readBody(len: number, eof: PendingRead['eof'], fn: (body: Buffer) => void): void {
    this.pendingRead = { need: len, fn, eof };
  }

  // ---- commands --------------------------------------------------------------------------------

  private IDENTIFY(): void {
    if (this.state !== ClientState.Init) throw new ProtocolError('E_INVALID', 'cannot IDENTIFY in current state');
    const max = this.host.options.maxBodySize;
    this.readLen(['E_BAD_BODY', 'IDENTIFY failed to read body size'], (len) => {
      if (len > max) throw new ProtocolError('E_BAD_BODY', `IDENTIFY body too big ${len} > ${max}`);
      if (len <= 0) throw new ProtocolError('E_BAD_BODY', `IDENTIFY invalid body size ${len}`);
      this.readBody(len, ['E_BAD_BODY', 'IDENTIFY failed to read body'], (body) => this.identify(body));
    });
  }

  private identify(body: Buffer): void {
    const data = parseIdentify(body);
    if (data === undefined) throw new ProtocolError('E_BAD_BODY', 'IDENTIFY failed to decode JSON body');
    const o = this.host.options;
    const problem = this.applyIdentify(data, o);
    if (problem) throw new ProtocolError('E_BAD_BODY', `IDENTIFY ${problem}`);
    this.host.logger.info(`[${this.remoteAddress}] IDENTIFY: client_id=${this.clientId} hostname=${this.hostname} user_agent=${this.userAgent}`);
    this.startTimers();
    if (!data.feature_negotiation) {
      this.sendFrame(FrameType.Response, OK);
      return;
    }
    const tlsv1 = this.host.tlsContext !== undefined && data.tls_v1 === true;
    const deflate = o.deflate && data.deflate === true;
    let deflateLevel = 6;
    if (deflate && typeof data.deflate_level === 'number' && data.deflate_level > 0) deflateLevel = data.deflate_level;
    if (o.maxDeflateLevel < deflateLevel) deflateLevel = o.maxDeflateLevel;
    const response = JSON.stringify({
      max_rdy_count: o.maxRdyCount,
      version: SERVER_VERSION,
      max_msg_timeout: o.maxMsgTimeout,
      msg_timeout: this.msgTimeout,
      tls_v1: tlsv1,
      deflate,
      deflate_level: deflateLevel,
      max_deflate_level: o.maxDeflateLevel,
      snappy: false,
      sample_rate: this.sampleRate,
      auth_required: this.host.authEnabled,
      output_buffer_size: this.outputBufferSize,
      output_buffer_timeout: this.outputBufferTimeout,
    });
    this.sendFrame(FrameType.Response, Buffer.from(response));
    if (!tlsv1 && !deflate) return;
    this.busy = true;
    const finish = (): void => {
      if (deflate) this.upgradeDeflate(deflateLevel);
      this.busy = false;
      this.process();
    };
    if (tlsv1) this.upgradeTLS(finish);
    else finish();
  }

  /** Validates and applies IDENTIFY fields like clientV2.Identify; returns nsqd's error text. */
  private applyIdentify(d: IdentifyData, o: NsqdOptions): string | undefined {
    if (typeof d.client_id === 'string') this.clientId = d.client_id;
    else this.clientId = '';
    this.hostname = typeof d.hostname === 'string' ? d.hostname : '';
    this.userAgent = typeof d.user_agent === 'string' ? d.user_agent : '';
    const hb = d.heartbeat_interval ?? 0;
    if (hb === -1) this.heartbeatInterval = 0;
    else if (hb === 0) {
      /* default */
    } else if (hb >= 1000 && hb <= o.maxHeartbeatInterval) this.heartbeatInterval = hb;
    else return `heartbeat interval (${hb}) is invalid`;
    const timeout = d.output_buffer_timeout ?? 0;
    const size = d.output_buffer_size ?? 0;
    if (timeout === -1) this.outputBufferTimeout = 0;
    else if (timeout === 0) {
      /* default */
    } else if (timeout >= o.minOutputBufferTimeout && timeout <= o.maxOutputBufferTimeout) this.outputBufferTimeout = timeout;
    else return `output buffer timeout (${timeout}) is invalid`;
    if (size === -1) {
      this.outputBufferSize = 1;
      this.outputBufferTimeout = 0;
    } else if (size === 0) {
      /* default */
    } else if (size >= 64 && size <= o.maxOutputBufferSize) this.outputBufferSize = size;
    else return `output buffer size (${size}) is invalid`;
    const rate = d.sample_rate ?? 0;
    if (rate < 0 || rate > 99) return `sample rate (${rate}) is invalid`;
    this.sampleRate = rate;
    const mt = d.msg_timeout ?? 0;
    if (mt === 0) {
      /* default */
    } else if (mt >= 1000 && mt <= o.maxMsgTimeout) this.msgTimeout = mt;
    else return `msg timeout (${mt}) is invalid`;
    return undefined;
  }

  private upgradeTLS(done: () => void): void {
    this.host.logger.info(`PROTOCOL(V2): [${this.remoteAddress}] upgrading connection to TLS`);
    this.flush();
    this.socket.off('data', this.onInput);
    // bytes that arrived after IDENTIFY belong to the TLS handshake
    const early = this.takeAll();
    if (early) this.socket.unshift(early);
    const policy = this.host.options.tlsClientAuthPolicy;
    const tlsSocket = new TLSSocket(this.socket, {
      isServer: true,
      secureContext: this.host.tlsContext!,
      requestCert: policy !== '',
      rejectUnauthorized: policy === 'require-verify',
    });
    const timer = setTimeout(() => {
      this.fail(new ProtocolError('E_IDENTIFY_FAILED', 'IDENTIFY failed tls: handshake timeout'));
    }, TLS_HANDSHAKE_TIMEOUT);
    tlsSocket.once('secure', () => {
      clearTimeout(timer);
      if (policy === 'require' && !tlsSocket.getPeerCertificate()?.raw) {
        this.fail(new ProtocolError('E_IDENTIFY_FAILED', 'IDENTIFY failed tls: client didn\'t provide a certificate'));
        return;
      }
      this.tls = true;
      this.tlsVersion = (tlsSocket.getProtocol() ?? '').replace('TLSv', 'TLS');
      this.tlsCipher = tlsSocket.getCipher()?.standardName ?? '';
      this.input = tlsSocket;
      this.transport = tlsSocket;
      tlsSocket.on('data', this.onInput);
      tlsSocket.on('end', this.onInputEnd);
      tlsSocket.on('drain', () => {
        if (!this.closed) this.input.resume();
      });
      this.sendFrame(FrameType.Response, OK);
      done();
    });
    tlsSocket.on('error', (err) => {
      clearTimeout(timer);
      this.host.logger.error(`[${this.remoteAddress}] - TLS: ${err.message}`);
      this.destroy();
    });
  }

  private upgradeDeflate(level: number): void {
    this.host.logger.info(`PROTOCOL(V2): [${this.remoteAddress}] upgrading connection to deflate (level ${level})`);
    this.flush();
    const transport = this.transport;
    const inflate = createInflateRaw();
    const deflater = createDeflateRaw({ level });
    deflater.on('data', (chunk: Buffer) => {
      if (!this.closed) transport.write(chunk);
    });
    deflater.on('error', () => this.destroy());
    inflate.on('error', (err) => {
      this.host.logger.error(`[${this.remoteAddress}] - failed to read command - ${err.message}`);
      this.destroy();
    });
    transport.off('data', this.onInput);
    transport.on('data', (chunk: Buffer) => {
      this.readDeadline?.refresh();
      inflate.write(chunk);
    });
    inflate.on('data', this.onInput);
    inflate.on('end', this.onInputEnd);
    transport.on('end', () => inflate.end());
    transport.off('end', this.onInputEnd);
    const leftover = this.takeAll();
    this.input = inflate;
    this.deflater = deflater;
    this.deflate = true;
    this.sendFrame(FrameType.Response, OK);
    if (leftover) inflate.write(leftover);
  }

  private AUTH(params: Buffer[]): void {
    if (this.state !== ClientState.Init) throw new ProtocolError('E_INVALID', 'cannot AUTH in current state');
    if (params.length !== 1) throw new ProtocolError('E_INVALID', 'AUTH invalid number of parameters');
    const max = this.host.options.maxBodySize;
    this.readLen(['E_BAD_BODY', 'AUTH failed to read body size'], (len) => {
      if (len > max) throw new ProtocolError('E_BAD_BODY', `AUTH body too big ${len} > ${max}`);
      if (len <= 0) throw new ProtocolError('E_BAD_BODY', `AUTH invalid body size ${len}`);
      this.readBody(len, ['E_BAD_BODY', 'AUTH failed to read body'], (body) => {
        if (this.authState && this.authState.authorizations.length > 0) throw new ProtocolError('E_INVALID', 'AUTH already set');
        if (!this.host.authEnabled) throw new ProtocolError('E_AUTH_DISABLED', 'AUTH disabled');
        this.authSecret = body.toString();
        this.busy = true;
        this.queryAuthd().then(
          () => {
            this.busy = false;
            if (this.closed) return;
            const state = this.authState!;
            if (state.authorizations.length === 0) {
              this.fail(new ProtocolError('E_UNAUTHORIZED', 'AUTH no authorizations found'));
              return;
            }
            const reply = JSON.stringify({ identity: state.identity, identity_url: state.identityUrl, permission_count: state.authorizations.length });
            this.sendFrame(FrameType.Response, Buffer.from(reply));
            this.process();
          },
          (err: unknown) => {
            this.busy = false;
            this.host.logger.warn(`PROTOCOL(V2): [${this.remoteAddress}] AUTH failed ${(err as Error).message}`);
            this.fail(new ProtocolError('E_AUTH_FAILED', 'AUTH failed'));
          },
        );
      });
    });
  }

  private async queryAuthd(): Promise<void> {
    const ip = this.remoteAddress.slice(0, this.remoteAddress.lastIndexOf(':'));
    let commonName = '';
    if (this.transport instanceof TLSSocket) {
      const cert = this.transport.getPeerCertificate();
      commonName = typeof cert?.subject?.CN === 'string' ? cert.subject.CN : '';
    }
    this.authState = await queryAnyAuthd(
      this.host.options.authHttpAddresses,
      { remoteIp: ip, tls: this.tls, commonName, secret: this.authSecret },
      this.host.options.httpClientRequestTimeout,
    );
  }

  /**
   * nsqd's CheckAuth. Authorizations are re-fetched when expired, which is asynchronous here:
   * the command then waits (parsing paused) and runs `then` afterwards.
   */
  private checkAuth(cmd: string, topic: string, channel: string, then: () => void): void {
    if (!this.host.authEnabled) return then();
    if (!this.authState || this.authState.authorizations.length === 0) {
      throw new ProtocolError('E_AUTH_FIRST', `AUTH required before ${cmd}`);
    }
    const decide = (): void => {
      if (!this.authState!.isAllowed(topic, channel)) {
        throw new ProtocolError('E_UNAUTHORIZED', `AUTH failed for ${cmd} on ${goQuote(topic)} ${goQuote(channel)}`);
      }
      then();
    };
    if (!this.authState.expired) return decide();
    this.busy = true;
    this.queryAuthd().then(
      () => {
        this.busy = false;
        if (this.closed) return;
        this.run(decide);
        this.process();
      },
      (err: unknown) => {
        this.busy = false;
        this.host.logger.warn(`PROTOCOL(V2): [${this.remoteAddress}] AUTH failed ${(err as Error).message}`);
        this.fail(new ProtocolError('E_AUTH_FAILED', 'AUTH failed'));
      },
    );
  }

  private SUB(params: Buffer[]): void {
    if (this.state !== ClientState.Init) throw new ProtocolError('E_INVALID', 'cannot SUB in current state');
    if (this.heartbeatInterval <= 0) throw new ProtocolError('E_INVALID', 'cannot SUB with heartbeats disabled');
    if (params.length < 3) throw new ProtocolError('E_INVALID', 'SUB insufficient number of parameters');
    const topicName = params[1]!.toString('latin1');
    if (!isValidTopicName(topicName)) throw new ProtocolError('E_BAD_TOPIC', `SUB topic name ${goQuote(topicName)} is not valid`);
    const channelName = params[2]!.toString('latin1');
    if (!isValidChannelName(channelName)) throw new ProtocolError('E_BAD_CHANNEL', `SUB channel name ${goQuote(channelName)} is not valid`);
    this.checkAuth('SUB', topicName, channelName, () => {
      const channel = this.host.subscribe(topicName, channelName, this);
      this.state = ClientState.Subscribed;
      this.channel = channel;
      this.sendFrame(FrameType.Response, OK);
    });
  }

  private RDY(params: Buffer[]): void {
    if (this.state === ClientState.Closing) {
      this.host.logger.info(`PROTOCOL(V2): [${this.remoteAddress}] ignoring RDY after CLS in state ClientStateV2Closing`);
      return;
    }
    if (this.state !== ClientState.Subscribed) throw new ProtocolError('E_INVALID', 'cannot RDY in current state');
    let count = 1;
    if (params.length > 1) {
      const parsed = parseBase10(params[1]!);
      if (parsed === undefined) throw new ProtocolError('E_INVALID', `RDY could not parse count ${params[1]!.toString('latin1')}`);
      const max = this.host.options.maxRdyCount;
      const asInt64 = BigInt.asIntN(64, parsed);
      if (asInt64 < 0n || asInt64 > BigInt(max)) throw new ProtocolError('E_INVALID', `RDY count ${asInt64} out of range 0-${max}`);
      count = Number(asInt64);
    }
    this.readyCount = count;
    if (this.isReady()) this.pumpAfterBatch = true;
    else this.flush();
  }

  private messageId(param: Buffer | undefined): string {
    if (param === undefined || param.length !== MESSAGE_ID_LENGTH) throw new ProtocolError('E_INVALID', 'invalid message ID');
    return param.toString('latin1');
  }

  private FIN(params: Buffer[]): void {
    if (this.state !== ClientState.Subscribed && this.state !== ClientState.Closing) throw new ProtocolError('E_INVALID', 'cannot FIN in current state');
    if (params.length < 2) throw new ProtocolError('E_INVALID', 'FIN insufficient number of params');
    this.finish(this.messageId(params[1]));
  }

  private finish(id: string): void {
    if (this.state !== ClientState.Subscribed && this.state !== ClientState.Closing) throw new ProtocolError('E_INVALID', 'cannot FIN in current state');
    try {
      this.channel!.finish(this, id);
    } catch (err) {
      if (err instanceof ChannelStateError) throw new ProtocolError('E_FIN_FAILED', `FIN ${id} failed ${err.message}`, false);
      throw err;
    }
    this.finishCount++;
    this.inFlightCount--;
    this.pumpAfterBatch = true;
  }

  private REQ(params: Buffer[]): void {
    if (this.state !== ClientState.Subscribed && this.state !== ClientState.Closing) throw new ProtocolError('E_INVALID', 'cannot REQ in current state');
    if (params.length < 3) throw new ProtocolError('E_INVALID', 'REQ insufficient number of params');
    const id = this.messageId(params[1]);
    const parsed = parseBase10(params[2]!);
    if (parsed === undefined) throw new ProtocolError('E_INVALID', `REQ could not parse timeout ${params[2]!.toString('latin1')}`);
    const max = this.host.options.maxReqTimeout;
    const asInt64 = BigInt.asIntN(64, parsed * 1_000_000n) / 1_000_000n;
    let timeout = asInt64 < 0n ? 0 : asInt64 > BigInt(max) ? max : Number(asInt64);
    if (BigInt(timeout) !== asInt64) {
      this.host.logger.info(`PROTOCOL(V2): [${this.remoteAddress}] REQ timeout ${asInt64} ms out of range 0-${max}. Setting to ${timeout}`);
    }
    timeout = Math.max(0, timeout);
    try {
      this.channel!.requeue(this, id, timeout);
    } catch (err) {
      if (err instanceof ChannelStateError) throw new ProtocolError('E_REQ_FAILED', `REQ ${id} failed ${err.message}`, false);
      throw err;
    }
    this.requeueCount++;
    this.inFlightCount--;
    this.pumpAfterBatch = true;
  }

  private TOUCH(params: Buffer[]): void {
    if (this.state !== ClientState.Subscribed && this.state !== ClientState.Closing) throw new ProtocolError('E_INVALID', 'cannot TOUCH in current state');
    if (params.length < 2) throw new ProtocolError('E_INVALID', 'TOUCH insufficient number of params');
    const id = this.messageId(params[1]);
    try {
      this.channel!.touch(this, id, this.msgTimeout);
    } catch (err) {
      if (err instanceof ChannelStateError) throw new ProtocolError('E_TOUCH_FAILED', `TOUCH ${id} failed ${err.message}`, false);
      throw err;
    }
  }

  private CLS(): void {
    if (this.state !== ClientState.Subscribed) throw new ProtocolError('E_INVALID', 'cannot CLS in current state');
    this.readyCount = 0;
    this.state = ClientState.Closing;
    this.sendFrame(FrameType.Response, CLOSE_WAIT);
  }

  private publishTopic(cmd: string, params: Buffer[], minParams: number): string {
    if (params.length < minParams) throw new ProtocolError('E_INVALID', `${cmd} insufficient number of parameters`);
    const topicName = params[1]!.toString('latin1');
    if (!isValidTopicName(topicName)) {
      // nsqd 1.3.0's MPUB repeats the code in its text
      throw new ProtocolError('E_BAD_TOPIC', `${cmd === 'MPUB' ? 'E_BAD_TOPIC ' : ''}${cmd} topic name ${goQuote(topicName)} is not valid`);
    }
    return topicName;
  }

  private readMessageBody(cmd: string, fn: (body: Buffer) => void): void {
    const max = this.host.options.maxMsgSize;
    this.readLen(['E_BAD_MESSAGE', `${cmd} failed to read message body size`], (len) => {
      if (len <= 0) throw new ProtocolError('E_BAD_MESSAGE', `${cmd} invalid message body size ${len}`);
      if (len > max) throw new ProtocolError('E_BAD_MESSAGE', `${cmd} message too big ${len} > ${max}`);
      // copy: the read chunk may be much larger than the body and would stay alive with it
      this.readBody(len, ['E_BAD_MESSAGE', `${cmd} failed to read message body`], (body) => fn(Buffer.from(body)));
    });
  }

  private PUB(params: Buffer[]): void {
    const topicName = this.publishTopic('PUB', params, 2);
    this.readMessageBody('PUB', (body) => {
      this.checkAuth('PUB', topicName, '', () => this.publish('PUB', topicName, [body], 0));
    });
  }

  private DPUB(params: Buffer[]): void {
    const topicName = this.publishTopic('DPUB', params, 3);
    const parsed = parseBase10(params[2]!);
    if (parsed === undefined) throw new ProtocolError('E_INVALID', `DPUB could not parse timeout ${params[2]!.toString('latin1')}`);
    const max = this.host.options.maxReqTimeout;
    const durationNs = BigInt.asIntN(64, parsed * 1_000_000n);
    if (durationNs < 0n || durationNs > BigInt(max) * 1_000_000n) {
      throw new ProtocolError('E_INVALID', `DPUB timeout ${parsed} out of range 0-${max}`);
    }
    const deferMs = Number(durationNs / 1_000_000n);
    this.readMessageBody('DPUB', (body) => {
      this.checkAuth('DPUB', topicName, '', () => this.publish('DPUB', topicName, [body], deferMs));
    });
  }

  private MPUB(params: Buffer[]): void {
    const topicName = this.publishTopic('MPUB', params, 2);
    this.checkAuth('MPUB', topicName, '', () => {
      // nsqd creates the topic before reading the body
      this.host.getTopic(topicName);
      const o = this.host.options;
      this.readLen(['E_BAD_BODY', 'MPUB failed to read body size'], (bodyLen) => {
        if (bodyLen <= 0) throw new ProtocolError('E_BAD_BODY', `MPUB invalid body size ${bodyLen}`);
        if (bodyLen > o.maxBodySize) throw new ProtocolError('E_BAD_BODY', `MPUB body too big ${bodyLen} > ${o.maxBodySize}`);
        this.readLen(['E_BAD_BODY', 'MPUB failed to read message count'], (count) => {
          const maxMessages = Math.floor((o.maxBodySize - 4) / 5);
          if (count <= 0 || count > maxMessages) throw new ProtocolError('E_BAD_BODY', `MPUB invalid message count ${count}`);
          const bodies: Buffer[] = [];
          const next = (): void => {
            this.takeBufferedMessages(count, bodies, o.maxMsgSize);
            if (bodies.length === count) {
              this.publish('MPUB', topicName, bodies, 0);
              return;
            }
            const i = bodies.length;
            this.readLen(['E_BAD_MESSAGE', `MPUB failed to read message(${i}) body size`], (size) => {
              if (size <= 0) throw new ProtocolError('E_BAD_MESSAGE', `MPUB invalid message(${i}) body size ${size}`);
              if (size > o.maxMsgSize) throw new ProtocolError('E_BAD_MESSAGE', `MPUB message too big ${size} > ${o.maxMsgSize}`);
              this.readBody(size, ['E_BAD_MESSAGE', 'MPUB failed to read message body'], (body) => {
                bodies.push(Buffer.from(body));
                next();
              });
            });
          };
          next();
        });
      });
    });
  }

  /**
   * MPUB's fast path: the sub-messages already received are parsed in one pass (same checks and
   * errors as the one-by-one path) and copied out with a single allocation.
   */
  private takeBufferedMessages(count: number, bodies: Buffer[], maxMsgSize: number): void {
    if (this.available < 4 || bodies.length === count) return;
    const view = this.contiguous();
    const bounds: number[] = [];
    let off = 0;
    let n = bodies.length;
    while (n < count && off + 4 <= view.length) {
      const size = view.readInt32BE(off);
      if (size <= 0) throw new ProtocolError('E_BAD_MESSAGE', `MPUB invalid message(${n}) body size ${size}`);
      if (size > maxMsgSize) throw new ProtocolError('E_BAD_MESSAGE', `MPUB message too big ${size} > ${maxMsgSize}`);
      if (off + 4 + size > view.length) break;
      bounds.push(off + 4, off + 4 + size);
      off += 4 + size;
      n++;
    }
    if (off === 0) return;
    const region = Buffer.from(this.take(off));
    for (let i = 0; i < bounds.length; i += 2) bodies.push(region.subarray(bounds[i]!, bounds[i + 1]!));
  }

  private publish(cmd: string, topicName: string, bodies: Buffer[], deferMs: number): void {
    const failCode = `E_${cmd}_FAILED`;
    let topic: Topic;
    try {
      topic = this.host.getTopic(topicName);
    } catch (err) {
      throw new ProtocolError(failCode, `${cmd} failed ${(err as Error).message}`);
    }
    try {
      topic.publish(bodies, deferMs, `tcp:${this.remoteAddress}`);
    } catch (err) {
      throw new ProtocolError(failCode, `${cmd} failed ${(err as Error).message}`);
    }
    this.pubCounts.set(topicName, (this.pubCounts.get(topicName) ?? 0) + bodies.length);
    this.sendFrame(FrameType.Response, OK);
  }

  // ---- ChannelConsumer --------------------------------------------------------------------------

  isReady(): boolean {
    return this.state === ClientState.Subscribed && this.readyCount > 0 && this.inFlightCount < this.readyCount && !this.closed;
  }

  send(msg: NsqdMessage): void {
    this.inFlightCount++;
    this.messageCount++;
    const size = 8 + MESSAGE_HEADER_LENGTH + msg.body.length;
    const buf = this.reserve(size);
    const at = this.outPos;
    buf.writeInt32BE(size - 4, at);
    buf.writeInt32BE(FrameType.Message, at + 4);
    msg.writeHeader(buf, at + 8);
    msg.body.copy(buf, at + 8 + MESSAGE_HEADER_LENGTH);
    this.outPos += size;
    this.outBytes += size;
    // Unbuffered (output_buffer_size -1 → 1) still writes once per delivery round rather than once per
    // message: the frames leave in the same event-loop turn, so latency is the same and syscalls fewer.
    if ((this.outBytes >= this.outputBufferSize && this.outputBufferSize > 1) || this.inFlightCount >= this.readyCount) {
      this.flush();
    } else if (this.outputBufferTimeout > 0) {
      this.flushTimer ??= setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, this.outputBufferTimeout);
    } else {
      this.flushImmediate ??= setImmediate(() => {
        this.flushImmediate = undefined;
        this.flush();
      });
    }
  }

  settled(): void {
    this.inFlightCount = Math.max(0, this.inFlightCount - 1);
  }

  emptied(): void {
    this.inFlightCount = 0;
  }

  close(): void {
    this.destroy();
  }

  // ---- output ------------------------------------------------------------------------------------

  /** A response or error frame: written at once, after any buffered messages (nsqd flushes on Send). */
  sendFrame(type: number, data: Buffer): void {
    if (this.closed) return;
    const buf = this.reserve(8 + data.length);
    buf.writeInt32BE(4 + data.length, this.outPos);
    buf.writeInt32BE(type, this.outPos + 4);
    data.copy(buf, this.outPos + 8);
    this.outPos += 8 + data.length;
    this.outBytes += 8 + data.length;
    if (!this.inBatch) this.flush();
  }

  /** Room for n more bytes in the output slab (frames are written into slabs, not allocated one by one). */
  private reserve(n: number): Buffer {
    const buf = this.outBuf;
    if (buf !== undefined && this.outPos + n <= buf.length) return buf;
    if (buf !== undefined && this.outPos > 0) this.outChunks.push(buf.subarray(0, this.outPos));
    this.outBuf = Buffer.allocUnsafe(Math.max(OUTPUT_SLAB, n));
    this.outPos = 0;
    return this.outBuf;
  }

  flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.flushImmediate) {
      clearImmediate(this.flushImmediate);
      this.flushImmediate = undefined;
    }
    if (this.outBytes === 0 || this.closed) return;
    const chunks = this.outChunks;
    if (this.outBuf !== undefined && this.outPos > 0) {
      chunks.push(this.outBuf.subarray(0, this.outPos));
      // the rest of the slab is still free for the next frames
      this.outBuf = this.outBuf.length - this.outPos >= 1024 ? this.outBuf.subarray(this.outPos) : undefined;
    }
    this.outChunks = [];
    this.outPos = 0;
    this.outBytes = 0;
    const sink = this.deflater ?? this.transport;
    if (chunks.length > 1) sink.cork();
    for (const chunk of chunks) sink.write(chunk);
    if (chunks.length > 1) sink.uncork();
    if (this.deflater) this.deflater.flush(zlibConstants.Z_SYNC_FLUSH);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  private startTimers(): void {
    this.stopTimers();
    if (this.heartbeatInterval <= 0) return;
    const interval = this.heartbeatInterval;
    this.heartbeatTimer = setInterval(() => this.sendFrame(FrameType.Response, HEARTBEAT), interval);
    this.readDeadline = setTimeout(() => {
      this.host.logger.error(`[${this.remoteAddress}] - failed to read command - read timeout after ${2 * interval} ms`);
      this.destroy();
    }, 2 * interval);
  }

  private stopTimers(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.readDeadline) clearTimeout(this.readDeadline);
    this.heartbeatTimer = undefined;
    this.readDeadline = undefined;
  }

  private leaveChannel(): void {
    this.state = this.state === ClientState.Subscribed ? ClientState.Closing : this.state;
    this.host.clientClosed(this);
  }

  /** Closes the connection now (idempotent). */
  destroy(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.stopTimers();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.host.logger.info(`PROTOCOL(V2): [${this.remoteAddress}] exiting ioloop`);
    if (!this.ending) this.host.clientClosed(this);
    this.transport.destroy();
    this.socket.destroy();
  }
}

interface IdentifyData {
  client_id?: unknown;
  hostname?: unknown;
  user_agent?: unknown;
  feature_negotiation?: boolean;
  heartbeat_interval?: number;
  output_buffer_size?: number;
  output_buffer_timeout?: number;
  tls_v1?: boolean;
  snappy?: boolean;
  deflate?: boolean;
  deflate_level?: number;
  sample_rate?: number;
  msg_timeout?: number;
}

const IDENTIFY_TYPES: Record<string, 'string' | 'bool' | 'int' | 'int32'> = {
  client_id: 'string',
  hostname: 'string',
  user_agent: 'string',
  feature_negotiation: 'bool',
  heartbeat_interval: 'int',
  output_buffer_size: 'int',
  output_buffer_timeout: 'int',
  tls_v1: 'bool',
  snappy: 'bool',
  deflate: 'bool',
  deflate_level: 'int',
  sample_rate: 'int32',
  msg_timeout: 'int',
};

/**
 * Decodes IDENTIFY's JSON the way Go's json.Unmarshal into nsqd's struct does: keys match
 * case-insensitively, unknown keys are ignored, null leaves the default, a wrong type fails.
 */
function parseIdentify(body: Buffer): IdentifyData | undefined {
  let raw: unknown;
  const text = body.toString();
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const name = key.toLowerCase();
    const type = IDENTIFY_TYPES[name];
    if (type === undefined || value === null) continue;
    if (type === 'string' && typeof value !== 'string') return undefined;
    if (type === 'bool' && typeof value !== 'boolean') return undefined;
    if (type === 'int' || type === 'int32') {
      if (typeof value !== 'number' || !intLiteralsFit(text, name, type === 'int32' ? 32 : 64)) return undefined;
    }
    out[name] = value;
  }
  return out as IdentifyData;
}

/**
 * Go decodes a JSON number into an int field only from an integer literal (no fraction, no
 * exponent) that fits the field; JSON.parse has lost the literal, so look at the text.
 */
function intLiteralsFit(text: string, key: string, bits: 32 | 64): boolean {
  const re = new RegExp(`"${key}"\\s*:\\s*(-?[0-9][0-9.eE+-]*)`, 'gi');
  const min = -(2n ** BigInt(bits - 1));
  const max = 2n ** BigInt(bits - 1) - 1n;
  for (const m of text.matchAll(re)) {
    const literal = m[1]!;
    if (!/^-?(0|[1-9][0-9]*)$/.test(literal)) return false;
    const n = BigInt(literal);
    if (n < min || n > max) return false;
  }
  return true;
}

/** bytes.Split(line, " "): consecutive spaces give empty params, as in nsqd. */
function splitParams(line: Buffer): Buffer[] {
  const params: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    if (line[i] === 32) {
      params.push(line.subarray(start, i));
      start = i + 1;
    }
  }
  params.push(line.subarray(start));
  return params;
}

/** nsqd's ByteToBase10: digits only (no sign), empty = 0, wrapping like a uint64. */
export function parseBase10(b: Buffer): bigint | undefined {
  if (b.length <= 15) {
    let n = 0;
    for (let i = 0; i < b.length; i++) {
      const d = b[i]! - 48;
      if (d < 0 || d > 9) return undefined;
      n = n * 10 + d;
    }
    return BigInt(n);
  }
  let n = 0n;
  for (let i = 0; i < b.length; i++) {
    const d = b[i]! - 48;
    if (d < 0 || d > 9) return undefined;
    n = BigInt.asUintN(64, n * 10n + BigInt(d));
  }
  return n;
}

const GO_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 34: '\\"', 92: '\\\\' };

/**
 * Go's %q (strconv.Quote) of a byte string given as latin1 (one char per byte), returned as latin1:
 * printable ASCII and printable UTF-8 runes as they are, other bytes as \xNN, unprintable runes as
 * \uNNNN — so error texts carry exactly nsqd's bytes.
 */
export function goQuote(latin1: string): string {
  const b = Buffer.from(latin1, 'latin1');
  let out = '"';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      const esc = GO_ESCAPES[c];
      if (esc !== undefined) out += esc;
      else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
      else out += '\\x' + c.toString(16).padStart(2, '0');
      i++;
      continue;
    }
    const [cp, size] = decodeRune(b, i);
    if (cp < 0) {
      out += '\\x' + c.toString(16).padStart(2, '0');
      i++;
      continue;
    }
    if (/[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(String.fromCodePoint(cp))) out += b.toString('latin1', i, i + size);
    else out += cp < 0x10000 ? '\\u' + cp.toString(16).padStart(4, '0') : '\\U' + cp.toString(16).padStart(8, '0');
    i += size;
  }
  return out + '"';
}

/** One UTF-8 rune at `i`: [code point, bytes], or [-1, 1] when invalid (as Go's utf8.DecodeRune). */
function decodeRune(b: Buffer, i: number): [number, number] {
  const c = b[i]!;
  const size = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
  if (size === 0 || i + size > b.length) return [-1, 1];
  let cp = size === 2 ? c & 0x1f : size === 3 ? c & 0x0f : c & 0x07;
  for (let k = 1; k < size; k++) {
    const cc = b[i + k]!;
    if ((cc & 0xc0) !== 0x80) return [-1, 1];
    cp = (cp << 6) | (cc & 0x3f);
  }
  const min = size === 2 ? 0x80 : size === 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return [-1, 1];
  return [cp, size];
}
