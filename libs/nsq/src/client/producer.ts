import { EventEmitter } from 'node:events';
import { type Body, encodeDpub, encodeMpub, encodePub, validatePub } from '../protocol/commands.js';
import {
  NsqBackpressureError,
  NsqClosedError,
  NsqConnectionError,
  NsqServerError,
  NsqValidationError,
} from '../protocol/errors.js';
import { Connection, type ConnectionDelegate, parseAddress } from './connection.js';
import { PRODUCER_OPTIONS, type ProducerOptions, connectionOptionsOf, resolveOptions } from './options.js';
import { reconnectDelay } from './backoff.js';

/** One publish (or a coalesced group of PUBs) and the promise waiting for nsqd's answer. */
interface Transaction {
  /** The encoded command; undefined for a PUB that is encoded when it leaves the queue. */
  command: Buffer | undefined;
  /** For a PUB that may be coalesced with its neighbours: topic, body and body length. */
  topic?: string;
  body?: Body;
  size?: number;
  /** The PUBs a coalesced MPUB carries; they settle together. */
  members?: Transaction[];
  resolve(): void;
  reject(error: Error): void;
  /** Times the command was written to a connection that was then lost. */
  sends: number;
}

/** Coalesced MPUBs carry at most this many messages. */
const MAX_COALESCED = 1000;

export type ProducerInput = Partial<ProducerOptions>;

/**
 * Publishes to one nsqd over one connection, pipelined: up to `maxOutstanding` commands are on the
 * wire at once and nsqd's answers (OK or an error frame, always in order) settle them first-in
 * first-out. Publishes beyond the window wait in a queue bounded by `maxQueued`.
 *
 * A publish resolves only on nsqd's OK. It rejects with the typed server error on an E_* frame,
 * with NsqConnectionError when the connection is lost first (after `retries` re-sends), and with
 * NsqValidationError, before anything is written, on bad input.
 *
 * Events: 'connect' (address), 'close' (error?), 'error' (error; only emitted when listened to).
 */
export class Producer extends EventEmitter {
  readonly address: string;
  private readonly options: ProducerOptions;
  private connection: Connection | undefined;
  private connecting: Promise<void> | undefined;
  private readonly queue: Transaction[] = [];
  private queueHead = 0;
  private readonly inflight: Transaction[] = [];
  private inflightHead = 0;
  private failures = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private pumpScheduled = false;
  private readonly pumpNow = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  constructor(address: string, options?: ProducerInput) {
    super();
    this.options = resolveOptions<ProducerOptions>(PRODUCER_OPTIONS, options, 'Producer');
    this.address = address;
    parseAddress(address, 'nsqd address'); // fail now rather than on the first publish
  }

  /** Connects now (publishing connects lazily). Rejects if nsqd cannot be reached. */
  async connect(): Promise<void> {
    if (this.closed) throw new NsqClosedError('producer is closed');
    await this.ensureConnection();
  }

  get isConnected(): boolean {
    return this.connection?.isReady ?? false;
  }

  /** Publishes awaiting nsqd's answer plus those queued. */
  get pending(): number {
    return this.queue.length - this.queueHead + this.inflight.length - this.inflightHead;
  }

  /**
   * PUB one message. With `coalescePublishes` (default), PUBs to the same topic issued in the same
   * event-loop turn travel as one MPUB, which nsqd stores all or none: every promise settles on
   * nsqd's answer for the command that carried its message, so a message nsqd refuses (possible
   * only when maxMsgSize is set above nsqd's --max-msg-size) fails the publishes sent with it.
   * Nothing is acknowledged that nsqd did not store.
   */
  publish(topic: string, body: Body): Promise<void> {
    if (!this.options.coalescePublishes) return this.send(() => encodePub(topic, body, this.options));
    if (this.closed) return Promise.reject(new NsqClosedError('producer is closed: create a new Producer to publish'));
    let size: number;
    try {
      size = validatePub(topic, body, this.options);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.enqueue({ command: undefined, topic, body, size, resolve: noop, reject: noop, sends: 0 });
  }

  /** MPUB: several messages to one topic, atomically (all or none). */
  publishMany(topic: string, bodies: readonly Body[]): Promise<void> {
    return this.send(() => encodeMpub(topic, bodies, this.options));
  }

  /** DPUB: deliver after `delayMs` (0..nsqd --max-req-timeout, 1 h by default). */
  publishDeferred(topic: string, delayMs: number, body: Body): Promise<void> {
    return this.send(() => encodeDpub(topic, delayMs, body, this.options));
  }

  /**
   * Waits (up to closeTimeout) for outstanding publishes, then closes. Publishes still pending at
   * the bound reject with NsqConnectionError. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    if (this.connecting) await this.connecting.catch(() => undefined);
    if (this.pending > 0 && this.connection?.isReady) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.closeTimeout);
        timer.unref();
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.failAll(new NsqClosedError('producer closed before nsqd answered'));
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close();
  }

  private send(encode: () => Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new NsqClosedError('producer is closed: create a new Producer to publish'));
    let command: Buffer;
    try {
      command = encode();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.enqueue({ command, resolve: noop, reject: noop, sends: 0 });
  }

  private enqueue(txn: Transaction): Promise<void> {
    const queued = this.queue.length - this.queueHead;
    if (queued >= this.options.maxQueued && queued > 0) {
      return Promise.reject(
        new NsqBackpressureError(
          `producer queue is full (${queued} publishes waiting, maxQueued ${this.options.maxQueued}): await earlier publishes before adding more`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      txn.resolve = resolve;
      txn.reject = reject;
      this.queue.push(txn);
      this.schedulePump();
    });
  }

  /** Pumps once per event-loop turn, after every publish of the turn is queued (so PUBs can coalesce). */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(this.pumpNow);
  }

  /** Moves queued commands onto the wire while the window allows. */
  private pump(): void {
    const connection = this.connection;
    if (!connection?.isReady) {
      if (!this.connecting && !this.reconnectTimer && !this.closed) this.ensureConnection().catch(() => undefined);
      return;
    }
    const max = this.options.maxOutstanding;
    let wrote = false;
    while (this.queueHead < this.queue.length && this.inflight.length - this.inflightHead < max) {
      let txn = this.takeQueued();
      if (txn.command === undefined) txn = this.coalesce(txn);
      if (txn.members) for (const m of txn.members) m.sends++;
      else txn.sends++;
      this.inflight.push(txn);
      connection.write(txn.command!);
      wrote = true;
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (wrote) connection.flush();
  }

  private takeQueued(): Transaction {
    const txn = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = undefined as unknown as Transaction;
    return txn;
  }

  /** Joins the PUBs queued right after `first` for the same topic into one MPUB (within nsqd's body limit). */
  private coalesce(first: Transaction): Transaction {
    const topic = first.topic!;
    const members = [first];
    let bytes = 4 + 4 + first.size!;
    while (this.queueHead < this.queue.length && members.length < MAX_COALESCED) {
      const next = this.queue[this.queueHead]!;
      if (next.topic !== topic || bytes + 4 + next.size! > this.options.maxBodySize) break;
      bytes += 4 + next.size!;
      members.push(this.takeQueued());
    }
    if (members.length === 1) {
      first.command = encodePub(topic, first.body!, this.options);
      return first;
    }
    return {
      command: encodeMpub(topic, members.map((m) => m.body!), this.options),
      members,
      resolve: () => {
        for (const m of members) m.resolve();
      },
      reject: (error) => {
        for (const m of members) m.reject(error);
      },
      sends: 0,
    };
  }

  private ensureConnection(): Promise<void> {
    if (this.connection?.isReady) return Promise.resolve();
    if (this.connecting) return this.connecting;
    const state = { ready: false };
    const connection: Connection = new Connection(this.address, connectionOptionsOf(this.options), this.delegateFor(state));
    this.connection = connection;
    this.connecting = connection
      .connect()
      .then(() => {
        state.ready = true;
        this.connecting = undefined;
        this.failures = 0;
        this.emit('connect', this.address);
        this.pump();
      })
      .catch((error: Error) => {
        this.connecting = undefined;
        if (this.connection === connection) this.connection = undefined;
        this.failures++;
        this.onConnectFailed(error);
        throw error;
      });
    return this.connecting;
  }

  /** Queued publishes that have used their tries fail; the rest wait for a reconnect with backoff. */
  private onConnectFailed(error: Error): void {
    // A refusal (AUTH, IDENTIFY, a missing authSecret) reaches the caller as itself; network trouble as NsqConnectionError.
    const reason =
      error instanceof NsqServerError || error instanceof NsqValidationError
        ? error
        : new NsqConnectionError(`cannot publish: ${error.message}`, { cause: error });
    const keep: Transaction[] = [];
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const txn = this.queue[i]!;
      txn.sends++;
      if (txn.sends > this.options.retries) txn.reject(reason);
      else keep.push(txn);
    }
    this.queue.length = 0;
    this.queueHead = 0;
    for (const txn of keep) this.queue.push(txn);
    this.emitError(error);
    if (keep.length > 0) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = reconnectDelay(this.failures, this.options.reconnectDelay, this.options.maxReconnectDelay);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.ensureConnection().catch(() => undefined);
    }, delay);
  }

  private delegateFor(state: { ready: boolean }): ConnectionDelegate {
    return {
      onMessage: () => undefined,
      onResponse: (data) => {
        const txn = this.shiftInflight();
        if (!txn) {
          this.emitError(new NsqConnectionError(`unexpected response ${JSON.stringify(data.toString('utf8'))} from nsqd with no publish pending`));
          return;
        }
        if (data.length === 2 && data[0] === 0x4f && data[1] === 0x4b /* OK */) txn.resolve();
        else txn.reject(new NsqConnectionError(`unexpected response ${JSON.stringify(data.toString('utf8'))} to a publish`));
        this.afterAnswer();
      },
      onServerError: (error: NsqServerError) => {
        const txn = this.shiftInflight();
        if (txn) txn.reject(error);
        else this.emitError(error);
        this.afterAnswer();
      },
      onClose: (error) => {
        // A failed handshake is handled by ensureConnection's rejection.
        if (state.ready) this.connectionLost(error);
      },
    };
  }

  private afterAnswer(): void {
    if (this.queueHead < this.queue.length) this.schedulePump();
    if (this.pending === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private shiftInflight(): Transaction | undefined {
    if (this.inflightHead >= this.inflight.length) return undefined;
    const txn = this.inflight[this.inflightHead]!;
    this.inflight[this.inflightHead++] = undefined as unknown as Transaction;
    if (this.inflightHead === this.inflight.length) {
      this.inflight.length = 0;
      this.inflightHead = 0;
    } else if (this.inflightHead > 1024 && this.inflightHead * 2 > this.inflight.length) {
      this.inflight.splice(0, this.inflightHead);
      this.inflightHead = 0;
    }
    return txn;
  }

  /** Publishes written but unanswered either go back to the head of the queue (retries) or reject. */
  private connectionLost(error: Error | undefined): void {
    this.connection = undefined;
    const reason = new NsqConnectionError(
      `connection to nsqd at ${this.address} was lost before nsqd answered${error ? `: ${error.message}` : ''}`,
      { cause: error },
    );
    const retry: Transaction[] = [];
    for (let i = this.inflightHead; i < this.inflight.length; i++) {
      for (const txn of this.inflight[i]!.members ?? [this.inflight[i]!]) {
        if (txn.sends <= this.options.retries && !this.closed) retry.push(txn);
        else txn.reject(reason);
      }
    }
    this.inflight.length = 0;
    this.inflightHead = 0;
    if (retry.length > 0) {
      // Retried publishes go first, in their original order (no spread: the lists can be long).
      const rest = this.queue.slice(this.queueHead);
      this.queue.length = 0;
      this.queueHead = 0;
      for (const txn of retry) this.queue.push(txn);
      for (const txn of rest) this.queue.push(txn);
    }
    this.emit('close', error);
    if (error) this.emitError(error);
    if (!this.closed && this.queue.length > this.queueHead) {
      this.failures++;
      this.scheduleReconnect();
    }
    this.afterAnswer();
  }

  private failAll(error: Error): void {
    for (let i = this.inflightHead; i < this.inflight.length; i++) this.inflight[i]!.reject(error);
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(error);
    this.inflight.length = 0;
    this.inflightHead = 0;
    this.queue.length = 0;
    this.queueHead = 0;
  }

  private emitError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

const noop = (): void => undefined;

