import type { Socket} from 'node:net';
import { connect as netConnect, isIP } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { FrameType, MAGIC_V2, NSQD_DEFAULTS, RESPONSE_HEARTBEAT, RESPONSE_OK } from '../protocol/constants.js';
import { encodeAuth, encodeIdentify, encodeNop } from '../protocol/commands.js';
import type {
  NsqServerError} from '../protocol/errors.js';
import {
  NsqConnectionError,
  NsqFrameError,
  NsqIdentifyError,
  NsqTimeoutError,
  NsqValidationError,
  serverErrorFromFrame,
} from '../protocol/errors.js';
import { FrameDecoder } from '../protocol/frame.js';
import type { ConnectionOptions } from './options.js';

/** nsqd's answer to IDENTIFY with feature_negotiation (protocol_v2.go IDENTIFY). */
export interface IdentifyResponse {
  max_rdy_count: number;
  version: string;
  max_msg_timeout: number;
  msg_timeout: number;
  tls_v1: boolean;
  deflate: boolean;
  deflate_level: number;
  max_deflate_level: number;
  snappy: boolean;
  sample_rate: number;
  auth_required: boolean;
  output_buffer_size: number;
  output_buffer_timeout: number;
}

/** What nsqd < 0.2.20 (no feature negotiation) implies; nsqjs assumes the same. */
const LEGACY_IDENTIFY: IdentifyResponse = {
  max_rdy_count: NSQD_DEFAULTS.maxRdyCount,
  version: 'unknown',
  max_msg_timeout: NSQD_DEFAULTS.maxMsgTimeout,
  msg_timeout: 60_000,
  tls_v1: false,
  deflate: false,
  deflate_level: 0,
  max_deflate_level: NSQD_DEFAULTS.maxDeflateLevel,
  snappy: false,
  sample_rate: 0,
  auth_required: false,
  output_buffer_size: 16_384,
  output_buffer_timeout: 250,
};

export interface AuthResponse {
  identity: string;
  identity_url?: string;
  permission_count: number;
}

/** Receives what a connection reads; keeps the connection ignorant of who uses it (go-nsq's ConnDelegate). */
export interface ConnectionDelegate {
  /** A message frame's payload (a view into the read buffer). */
  onMessage(data: Buffer): void;
  /** A response frame other than a heartbeat (OK, CLOSE_WAIT). */
  onResponse(data: Buffer): void;
  /** An error frame. Fatal errors are followed by the connection closing. */
  onServerError(error: NsqServerError): void;
  /** Called once when the connection is gone; `error` is undefined after a clean close(). */
  onClose(error: Error | undefined): void;
}

type Phase = 'idle' | 'handshake' | 'ready' | 'closing' | 'closed';

interface PendingFrame {
  resolve(frame: { type: number; data: Buffer }): void;
  reject(error: Error): void;
}

/** Parses "host:port", "[::1]:port" or "port" (defaults to 127.0.0.1). */
export function parseAddress(address: string, what = 'address'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address.trim()) ?? /^()()(\d+)$/.exec(address.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new NsqValidationError(what, `${what} ${JSON.stringify(address)} is not host:port`);
  }
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

/**
 * One TCP connection to nsqd speaking protocol V2: magic, IDENTIFY with feature negotiation, TLS and
 * deflate upgrades, AUTH when nsqd requires it, heartbeats answered with NOP, a missed-heartbeat
 * timeout, and batched writes (everything written in one turn of the event loop goes out in one
 * socket write).
 */
export class Connection {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** nsqd's IDENTIFY answer, available once connect() resolved. */
  identity: IdentifyResponse = LEGACY_IDENTIFY;
  auth: AuthResponse | undefined;

  private socket: Socket | TLSSocket | undefined;
  private readonly decoder: FrameDecoder;
  private inflater: InflateRaw | undefined;
  private deflater: DeflateRaw | undefined;
  private phase: Phase = 'idle';
  private pendingFrame: PendingFrame | undefined;
  /** Rejects the handshake step in progress (dial, TLS) when the connection dies under it. */
  private abortStep: ((error: Error) => void) | undefined;
  /** During the handshake, decoding stops after each frame: what follows may be TLS or deflate bytes. */
  private paused = false;
  private held: Buffer[] = [];
  private outQueue: Buffer[] = [];
  private outLength = 0;
  private flushScheduled = false;
  private lastReadAt = 0;
  private readTimer: NodeJS.Timeout | undefined;
  private closeError: Error | undefined;
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;
  private readonly onFrame = (type: number, data: Buffer): boolean | void => this.handleFrame(type, data);
  private readonly onDecoded = (chunk: Buffer): void => this.decode(chunk);
  private readonly flushNow = (): void => this.flush();

  constructor(
    address: string,
    private readonly options: ConnectionOptions,
    private readonly delegate: ConnectionDelegate,
  ) {
    const { host, port } = parseAddress(address, 'nsqd address');
    this.host = host;
    this.port = port;
    this.address = `${host}:${port}`;
    this.decoder = new FrameDecoder(Math.max(options.maxBodySize, options.maxMsgSize) + 1024);
  }

  get isReady(): boolean {
    return this.phase === 'ready';
  }

  get maxRdyCount(): number {
    return this.identity.max_rdy_count;
  }

  /** Opens the socket and completes the handshake. Rejects (and closes) on any failure. */
  async connect(): Promise<IdentifyResponse> {
    if (this.phase !== 'idle') throw new NsqConnectionError(`connection to ${this.address} was already started`);
    this.phase = 'handshake';
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    try {
      await this.dial();
      this.lastReadAt = Date.now();
      this.startReadTimer();
      this.writeRaw(Buffer.concat([MAGIC_V2, encodeIdentify(this.identifyBody())]));
      const first = await this.nextFrame();
      if (first.data.length > 0 && first.data[0] === 0x7b /* { */) {
        this.identity = { ...LEGACY_IDENTIFY, ...(JSON.parse(first.data.toString('utf8')) as Partial<IdentifyResponse>) };
      } else if (first.data.toString('latin1') !== RESPONSE_OK) {
        throw new NsqIdentifyError('E_IDENTIFY_FAILED', `unexpected IDENTIFY response ${JSON.stringify(first.data.toString('utf8'))}`, true);
      }
      if (this.options.tls) {
        if (!this.identity.tls_v1) {
          throw new NsqIdentifyError(
            'E_IDENTIFY_FAILED',
            `TLS was requested but nsqd at ${this.address} does not offer it (start nsqd with --tls-cert and --tls-key, or set tls: false)`,
            true,
          );
        }
        await this.upgradeTls();
        await this.expectOk('TLS upgrade');
      }
      if (this.identity.deflate) {
        this.upgradeDeflate();
        await this.expectOk('deflate upgrade');
      }
      if (this.identity.auth_required) await this.authenticate();
      this.phase = 'ready';
      this.resumeDecoding();
      return this.identity;
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      this.destroy(err);
      throw err;
    }
  }

  /** Queues bytes; everything written in the same event-loop turn leaves in one socket write. */
  write(data: Buffer): void {
    if (this.phase !== 'ready') {
      throw new NsqConnectionError(`connection to ${this.address} is not open`);
    }
    this.outQueue.push(data);
    this.outLength += data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** Writes queued bytes now. */
  flush(): void {
    this.flushScheduled = false;
    if (this.outLength === 0 || this.phase === 'closed') return;
    const data = this.outQueue.length === 1 ? this.outQueue[0]! : Buffer.concat(this.outQueue, this.outLength);
    this.outQueue = [];
    this.outLength = 0;
    this.writeRaw(data);
  }

  /** Flushes, half-closes and waits for nsqd to close its side; destroys after a bound. Idempotent. */
  close(timeoutMs = 1000): Promise<void> {
    if (this.phase === 'idle') {
      this.phase = 'closed';
      return Promise.resolve();
    }
    if (this.phase === 'handshake') {
      this.destroy(new NsqConnectionError(`connection to ${this.address} closed during the handshake`));
    }
    if (this.phase === 'ready') {
      this.phase = 'closing';
      this.flush();
      if (this.deflater) this.deflater.end();
      else this.socket?.end();
      const timer = setTimeout(() => this.destroy(undefined), timeoutMs);
      timer.unref();
    }
    return this.closedPromise ?? Promise.resolve();
  }

  /** Closes at once. Pending work is the caller's to fail; `error` is reported to the delegate. */
  destroy(error: Error | undefined): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.closeError = error;
    if (this.readTimer) clearInterval(this.readTimer);
    this.outQueue = [];
    this.outLength = 0;
    this.inflater?.destroy();
    this.deflater?.destroy();
    this.socket?.destroy();
    const reason = error ?? new NsqConnectionError(`connection to ${this.address} closed`);
    this.pendingFrame?.reject(reason);
    this.pendingFrame = undefined;
    this.abortStep?.(reason);
    this.abortStep = undefined;
    this.resolveClosed?.();
    this.delegate.onClose(this.closeError);
  }

  private identifyBody(): Record<string, unknown> {
    const o = this.options;
    const body: Record<string, unknown> = {
      client_id: o.clientId,
      hostname: o.hostname,
      user_agent: o.userAgent,
      feature_negotiation: true,
      heartbeat_interval: o.heartbeatInterval,
      output_buffer_size: o.outputBufferSize,
      output_buffer_timeout: o.outputBufferTimeout,
      sample_rate: o.sampleRate,
      tls_v1: Boolean(o.tls),
      deflate: o.deflate,
      deflate_level: o.deflateLevel,
      snappy: false,
    };
    if (o.msgTimeout > 0) body.msg_timeout = o.msgTimeout;
    return body;
  }

  private dial(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: this.host, port: this.port });
      this.socket = socket;
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        this.destroy(new NsqTimeoutError(`connecting to nsqd at ${this.address} timed out after ${this.options.dialTimeout} ms`));
      }, this.options.dialTimeout);
      this.abortStep = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('connect', () => {
        clearTimeout(timer);
        this.abortStep = undefined;
        resolve();
      });
      this.attachSocket(socket, 'cannot connect to');
    });
  }

  private attachSocket(socket: Socket | TLSSocket, failure: string): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => {
      this.destroy(new NsqConnectionError(`${failure} nsqd at ${this.address}: ${error.message}`, { cause: error }));
    });
    socket.on('close', () => {
      if (this.phase === 'closing') this.destroy(undefined);
      else this.destroy(this.closeError ?? new NsqConnectionError(`nsqd at ${this.address} closed the connection`));
    });
  }

  private onData(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    if (this.inflater) this.inflater.write(chunk);
    else this.decode(chunk);
  }

  private decode(chunk: Buffer): void {
    if (this.paused) {
      this.held.push(chunk);
      return;
    }
    try {
      this.decoder.push(chunk, this.onFrame);
    } catch (error) {
      this.destroy(error as Error);
    }
  }

  private handleFrame(type: number, data: Buffer): boolean | void {
    if (this.phase === 'handshake') {
      if (type === FrameType.Response && isHeartbeat(data)) {
        this.writeRaw(encodeNop());
        return;
      }
      if (type === FrameType.Error) {
        const err = serverErrorFromFrame(data);
        this.pendingFrame?.reject(err);
        this.pendingFrame = undefined;
        return false;
      }
      this.paused = true;
      const waiter = this.pendingFrame;
      this.pendingFrame = undefined;
      waiter?.resolve({ type, data });
      return false;
    }
    if (this.phase === 'closed') return false;
    switch (type) {
      case FrameType.Message:
        this.delegate.onMessage(data);
        return;
      case FrameType.Response:
        if (isHeartbeat(data)) {
          if (this.phase === 'ready') {
            this.write(encodeNop());
            this.flush();
          }
        } else {
          this.delegate.onResponse(data);
        }
        return;
      case FrameType.Error: {
        const error = serverErrorFromFrame(data);
        this.delegate.onServerError(error);
        // nsqd closes after a fatal error: write nothing more on this connection.
        if (error.fatal) {
          this.destroy(error);
          return false;
        }
        return;
      }
      default:
        this.destroy(new NsqFrameError(`unknown frame type ${type} from nsqd at ${this.address}`));
        return false;
    }
  }

  private nextFrame(): Promise<{ type: number; data: Buffer }> {
    return new Promise((resolve, reject) => {
      this.pendingFrame = { resolve, reject };
      this.resumeDecoding();
    });
  }

  /** Bytes received after the last handshake frame and not yet decoded. */
  private takeUndecoded(): Buffer[] {
    const out = this.decoder.buffered > 0 ? [this.decoder.takeRemainder()] : [];
    out.push(...this.held);
    this.held = [];
    return out;
  }

  private resumeDecoding(): void {
    this.paused = false;
    for (const chunk of this.takeUndecoded()) this.decode(chunk);
  }

  private async expectOk(step: string): Promise<void> {
    const frame = await this.nextFrame();
    if (frame.type !== FrameType.Response || frame.data.toString('latin1') !== RESPONSE_OK) {
      throw new NsqIdentifyError('E_IDENTIFY_FAILED', `${step}: expected OK, got ${JSON.stringify(frame.data.toString('utf8'))}`, true);
    }
  }

  private upgradeTls(): Promise<void> {
    const raw = this.socket!;
    raw.removeAllListeners('data');
    raw.removeAllListeners('error');
    raw.removeAllListeners('close');
    const leftover = this.takeUndecoded();
    if (leftover.length > 0) {
      return Promise.reject(new NsqFrameError(`nsqd at ${this.address} sent unexpected bytes before the TLS handshake`));
    }
    const tlsOptions = typeof this.options.tls === 'object' ? this.options.tls : {};
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({
        ...(isIP(this.host) ? {} : { servername: this.host }),
        ...tlsOptions,
        socket: raw,
      });
      this.socket = secure;
      this.abortStep = reject;
      secure.once('secureConnect', () => {
        this.abortStep = undefined;
        resolve();
      });
      this.attachSocket(secure, 'TLS connection failed with');
    });
  }

  private upgradeDeflate(): void {
    const leftover = this.takeUndecoded();
    const inflater = createInflateRaw();
    inflater.on('data', this.onDecoded);
    inflater.on('error', (error) => this.destroy(new NsqFrameError(`invalid deflate stream from nsqd at ${this.address}: ${error.message}`)));
    this.inflater = inflater;
    const deflater = createDeflateRaw({ level: this.identity.deflate_level || this.options.deflateLevel });
    const socket = this.socket!;
    deflater.on('data', (chunk: Buffer) => socket.write(chunk));
    deflater.on('end', () => socket.end());
    deflater.on('error', (error) => this.destroy(new NsqConnectionError(`deflate failed: ${error.message}`)));
    this.deflater = deflater;
    for (const chunk of leftover) inflater.write(chunk);
  }

  private async authenticate(): Promise<void> {
    const secret = this.options.authSecret;
    if (!secret) {
      throw new NsqValidationError('authSecret', `nsqd at ${this.address} requires AUTH: set the authSecret option`);
    }
    this.writeRaw(encodeAuth(secret));
    const frame = await this.nextFrame();
    this.auth = JSON.parse(frame.data.toString('utf8')) as AuthResponse;
  }

  private writeRaw(data: Buffer): void {
    if (this.deflater) {
      this.deflater.write(data);
      this.deflater.flush(zlibConstants.Z_SYNC_FLUSH);
    } else {
      this.socket?.write(data);
    }
  }

  private startReadTimer(): void {
    const timeout = this.options.readTimeout;
    this.readTimer = setInterval(() => {
      if (Date.now() - this.lastReadAt > timeout) {
        this.destroy(new NsqTimeoutError(`no data from nsqd at ${this.address} for ${timeout} ms (missed heartbeats)`));
      }
    }, Math.max(50, Math.min(timeout / 4, 5000)));
    this.readTimer.unref();
  }
}

function isHeartbeat(data: Buffer): boolean {
  return data.length === RESPONSE_HEARTBEAT.length && data.toString('latin1') === RESPONSE_HEARTBEAT;
}
