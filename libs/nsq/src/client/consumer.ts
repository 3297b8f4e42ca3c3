import { EventEmitter } from 'node:events';
import { encodeCls, encodeRdy, encodeSub } from '../protocol/commands.js';
import { RESPONSE_CLOSE_WAIT, RESPONSE_OK } from '../protocol/constants.js';
import { NsqConnectionError, NsqValidationError, type NsqServerError } from '../protocol/errors.js';
import { assertMessagePayload } from '../protocol/message.js';
import { assertValidChannel, assertValidTopic } from '../protocol/names.js';
import { BackoffPolicy, type BackoffStrategy, reconnectDelay, requeueDelayFor } from './backoff.js';
import { Connection, parseAddress } from './connection.js';
import { LookupdPoller } from './lookupd.js';
import { Message, type MessageResponder } from './message.js';
import { CONSUMER_OPTIONS, type ConnectionOptions, type RequeueDelay, connectionOptionsOf, resolveOptions } from './options.js';
import { planRdy } from './rdy.js';

/** Consecutive lookupd polls an nsqd must be missing from before the consumer drops it. */
const LOOKUP_MISSES_BEFORE_REMOVAL = 2;

export type MessageHandler = (message: Message) => void | Promise<void>;

export interface ConsumerOptions extends ConnectionOptions {
  topic: string;
  channel: string;
  handler: MessageHandler;
  nsqdTCPAddresses: string[];
  lookupdHTTPAddresses: string[];
  lookupdPollInterval: number;
  lookupdPollJitter: number;
  lookupdPollTimeout: number;
  maxInFlight: number;
  concurrency: number;
  maxAttempts: number;
  onMaxAttempts: MessageHandler | undefined;
  defaultRequeueDelay: number;
  maxRequeueDelay: number;
  requeueDelay: RequeueDelay | undefined;
  backoffStrategy: BackoffStrategy;
  backoffMultiplier: number;
  maxBackoffDuration: number;
  rdyRedistributeInterval: number;
  closeTimeout: number;
  reconnectDelay: number;
  maxReconnectDelay: number;
}

export type ConsumerInput = Partial<ConsumerOptions> & Pick<ConsumerOptions, 'topic' | 'channel' | 'handler'>;

export interface ConsumerStats {
  connections: number;
  /** Messages delivered and not yet answered. */
  inFlight: number;
  /** Handlers running. */
  running: number;
  received: number;
  finished: number;
  requeued: number;
  /** Messages handed to onMaxAttempts (or discarded) after maxAttempts. */
  overMaxAttempts: number;
  backoffLevel: number;
}

/** One nsqd connection of a consumer; answers the messages that came on it. */
class Subscription implements MessageResponder {
  rdy = 0;
  inFlight = 0;
  lastMessageAt = 0;
  subscribed = false;
  closing = false;

  constructor(
    readonly address: string,
    readonly connection: Connection,
    private readonly consumer: Consumer,
  ) {}

  finish(message: Message): void {
    this.send(message.encodeFin());
    this.answered();
    this.consumer.onFinished();
  }

  requeue(message: Message, delayMs: number | undefined, backoff: boolean): void {
    // A negative or missing delay means the consumer's default (go-nsq's Requeue(-1)); never throw here,
    // or the message would stay unanswered.
    const delay =
      delayMs !== undefined && Number.isFinite(delayMs) && delayMs >= 0
        ? Math.round(delayMs)
        : this.consumer.requeueDelayFor(message.attempts);
    const command = message.encodeReq(delay);
    // Backoff's RDY 0 goes out before the REQ, so nsqd cannot redeliver inside the backoff window.
    this.consumer.onRequeued(backoff);
    this.send(command);
    this.answered();
  }

  touch(message: Message): void {
    this.send(message.encodeTouch());
  }

  abandon(): void {
    this.answered();
    this.consumer.onAbandoned();
  }

  get msgTimeout(): number {
    return this.connection.identity.msg_timeout;
  }

  setRdy(count: number): void {
    if (count === this.rdy || !this.subscribed || this.closing || !this.connection.isReady) return;
    this.rdy = count;
    this.connection.write(encodeRdy(count, this.connection.maxRdyCount));
  }

  private send(command: Buffer): void {
    // Once the connection is gone nsqd redelivers the message after its timeout; nothing to send.
    if (this.connection.isReady) this.connection.write(command);
  }

  private answered(): void {
    this.inFlight--;
    if (this.closing && this.inFlight === 0) void this.connection.close();
  }
}

/**
 * Consumes one topic/channel from nsqd given directly or discovered through nsqlookupd.
 *
 * - RDY: maxInFlight is spread so the sum over connections equals it; with more connections than
 *   maxInFlight, RDY 1 rotates over them every rdyRedistributeInterval.
 * - Handler results: resolve → FIN, throw → REQ after requeueDelay(attempts) and backoff (all
 *   connections RDY 0 for multiplier x 2^n, then an RDY 1 probe; successes step back down).
 * - maxAttempts: a message delivered more often goes to onMaxAttempts instead of the handler, then FIN.
 * - close(): CLS on every connection, waits for running handlers (closeTimeout), closes.
 *
 * Events: 'connect' (address), 'disconnect' (address, error?), 'backoff' (ms), 'error' (error;
 * only emitted when listened to).
 */
export class Consumer extends EventEmitter {
  readonly topic: string;
  readonly channel: string;
  private readonly options: ConsumerOptions;
  private readonly connectionOptions: ConnectionOptions;
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly wanted = new Set<string>();
  private readonly direct: Set<string>;
  private readonly reconnectTimers = new Map<string, NodeJS.Timeout>();
  private readonly connecting = new Set<string>();
  /** Connections between connect() and a confirmed SUB; close() destroys them. */
  private readonly handshaking = new Set<Connection>();
  private readonly backoff: BackoffPolicy;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** After a backoff wait: one connection gets RDY 1 and the next result decides. */
  private probing = false;
  private rotationTimer: NodeJS.Timeout | undefined;
  private rdyCursor = 0;
  private poller: LookupdPoller | undefined;
  /** Delivered messages waiting for a free handler slot (concurrency < maxInFlight). */
  private readonly waiting: Array<{ message: Message; sub: Subscription }> = [];
  private waitingHead = 0;
  private running = 0;
  private readonly concurrency: number;
  private started = false;
  private closing = false;
  private closed: Promise<void> | undefined;
  private idle: (() => void) | undefined;
  private readonly counters = { received: 0, finished: 0, requeued: 0, overMaxAttempts: 0 };
  /** Messages delivered and not answered yet, over all connections (including lost ones). */
  private unanswered = 0;
  /** Connections started by the first lookup, awaited by start(). */
  private discovered: Promise<void>[] = [];
  private startingUp = true;

  constructor(options: ConsumerInput) {
    super();
    this.options = resolveOptions<ConsumerOptions>(CONSUMER_OPTIONS, options, 'Consumer');
    const o = this.options;
    assertValidTopic(o.topic);
    assertValidChannel(o.channel);
    if (o.nsqdTCPAddresses.length === 0 && o.lookupdHTTPAddresses.length === 0) {
      throw new NsqValidationError('nsqdTCPAddresses', 'Consumer: give nsqdTCPAddresses or lookupdHTTPAddresses (or both)');
    }
    if (o.backoffStrategy !== 'exponential' && o.backoffStrategy !== 'full_jitter') {
      throw new NsqValidationError('backoffStrategy', `Consumer: backoffStrategy must be "exponential" or "full_jitter", got ${JSON.stringify(o.backoffStrategy)}`);
    }
    this.topic = o.topic;
    this.channel = o.channel;
    this.direct = new Set(o.nsqdTCPAddresses.map((a) => normalize(a)));
    this.connectionOptions = connectionOptionsOf(o);
    this.concurrency = o.concurrency > 0 ? o.concurrency : Math.max(1, o.maxInFlight);
    this.backoff = new BackoffPolicy(o.backoffMultiplier, o.maxBackoffDuration, o.backoffStrategy);
  }

  /**
   * Connects to the given nsqd and runs the first lookupd query. Resolves once that first round has
   * settled; addresses that failed keep being retried in the background (see 'error' events).
   */
  async start(): Promise<void> {
    if (this.started) throw new NsqValidationError('start', 'Consumer.start() was already called');
    this.started = true;
    for (const address of this.direct) this.wanted.add(address);
    const first = [...this.direct].map((a) => this.connectTo(a));
    if (this.options.lookupdHTTPAddresses.length > 0) {
      this.poller = new LookupdPoller({
        topic: this.topic,
        lookupdHTTPAddresses: this.options.lookupdHTTPAddresses,
        pollInterval: this.options.lookupdPollInterval,
        pollJitter: this.options.lookupdPollJitter,
        pollTimeout: this.options.lookupdPollTimeout,
        logger: this.options.logger,
        onProducers: (found) => this.onLookup(found),
      });
      first.push(this.poller.start());
    }
    await Promise.allSettled(first);
    // Connections to nsqd found by the first lookup.
    this.startingUp = false;
    await Promise.allSettled(this.discovered.splice(0));
  }

  stats(): ConsumerStats {
    let connections = 0;
    for (const s of this.subscriptions.values()) if (s.subscribed) connections++;
    return { connections, inFlight: this.unanswered, running: this.running, ...this.counters, backoffLevel: this.backoff.level };
  }

  /** nsqd addresses with a subscribed connection. */
  connectedAddresses(): string[] {
    return [...this.subscriptions.values()].filter((s) => s.subscribed).map((s) => s.address);
  }

  /**
   * Stops taking messages (CLS), waits up to `timeoutMs` (default closeTimeout) for running
   * handlers to answer their messages, then closes every connection. Messages not yet handed to
   * the handler are requeued at once. Idempotent.
   */
  close(timeoutMs = this.options.closeTimeout): Promise<void> {
    this.closed ??= this.shutdown(timeoutMs);
    return this.closed;
  }

  /** @internal */
  requeueDelayFor(attempts: number): number {
    const r = this.options.requeueDelay;
    const fallback = (): number => requeueDelayFor(attempts, this.options.defaultRequeueDelay, this.options.maxRequeueDelay);
    if (typeof r === 'number') return r;
    if (typeof r !== 'function') return fallback();
    let value: number;
    try {
      value = r(attempts);
    } catch (error) {
      this.options.logger.error(`consumer ${this.topic}/${this.channel}: requeueDelay threw (${String(error)}); using the default delay`);
      return fallback();
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      this.options.logger.error(`consumer ${this.topic}/${this.channel}: requeueDelay returned ${String(value)}; using the default delay`);
      return fallback();
    }
    return Math.round(value);
  }

  /** @internal */
  onFinished(): void {
    this.counters.finished++;
    this.unanswered--;
    this.handlerDone();
    if (this.backoff.level > 0 && !this.backoffTimer) this.enterBackoff(this.backoff.success());
  }

  /** @internal */
  onRequeued(backoff: boolean): void {
    this.counters.requeued++;
    this.unanswered--;
    this.handlerDone();
    if (backoff && !this.backoffTimer && !this.closing) this.enterBackoff(this.backoff.failure());
    else if (!backoff && this.probing && !this.backoffTimer) this.enterBackoff(this.backoff.duration());
  }

  /** @internal */
  onAbandoned(): void {
    this.unanswered--;
    this.handlerDone();
  }

  private handlerDone(): void {
    if (this.idle && this.unanswered === 0) this.idle();
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.poller?.stop();
    clearTimeout(this.backoffTimer);
    clearInterval(this.rotationTimer);
    for (const t of this.reconnectTimers.values()) clearTimeout(t);
    this.reconnectTimers.clear();
    for (const c of this.handshaking) c.destroy(undefined);
    for (const s of this.subscriptions.values()) {
      if (s.subscribed && s.connection.isReady) s.connection.write(encodeCls());
    }
    // Messages not yet started go back to nsqd now, for other consumers.
    this.drainWaiting();
    if (this.unanswered > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const stillRunning = this.unanswered;
    if (stillRunning > 0) {
      this.options.logger.warn(
        `consumer ${this.topic}/${this.channel}: closing with ${stillRunning} message(s) still in handlers after ${timeoutMs} ms; nsqd will redeliver them after their timeout`,
      );
    }
    await Promise.all([...this.subscriptions.values()].map((s) => s.connection.close()));
    this.subscriptions.clear();
  }

  private drainWaiting(): void {
    while (this.waitingHead < this.waiting.length) {
      const { message } = this.waiting[this.waitingHead++]!;
      message.requeue(0, { backoff: false });
    }
    this.waiting.length = 0;
    this.waitingHead = 0;
  }

  private onLookup(found: Set<string>): void {
    if (this.closing) return;
    for (const address of found) {
      this.lookupMisses.delete(address);
      if (!this.wanted.has(address)) {
        this.wanted.add(address);
        const connecting = this.connectTo(address);
        if (this.startingUp) this.discovered.push(connecting);
      }
    }
    for (const address of [...this.wanted]) {
      if (found.has(address) || this.direct.has(address)) continue;
      // Gone from every lookupd twice in a row (one miss can be a lookupd that just restarted and
      // has not heard from its nsqd yet): stop taking messages there, close once they are answered.
      const misses = (this.lookupMisses.get(address) ?? 0) + 1;
      if (misses < LOOKUP_MISSES_BEFORE_REMOVAL) {
        this.lookupMisses.set(address, misses);
        continue;
      }
      this.lookupMisses.delete(address);
      this.wanted.delete(address);
      clearTimeout(this.reconnectTimers.get(address));
      this.reconnectTimers.delete(address);
      const s = this.subscriptions.get(address);
      if (s) this.retire(s);
    }
  }

  private retire(s: Subscription): void {
    s.closing = true;
    if (s.connection.isReady && s.subscribed) s.connection.write(encodeCls());
    if (s.inFlight === 0) void s.connection.close();
    this.rebalance();
  }

  private async connectTo(address: string): Promise<void> {
    if (this.closing || this.connecting.has(address) || this.subscriptions.has(address)) return;
    this.connecting.add(address);
    const previousFailures = this.failureCounts.get(address) ?? 0;
    // The delegate runs only after connect() starts, by which time `sub` exists.
    const connection = new Connection(address, this.connectionOptions, {
      onMessage: (data) => this.onMessage(sub, data),
      onResponse: (data) => this.onResponse(sub, data),
      onServerError: (error) => this.onServerError(sub, error),
      onClose: (error) => this.onConnectionClosed(sub, address, error),
    });
    const sub = new Subscription(address, connection, this);
    this.handshaking.add(connection);
    try {
      await connection.connect();
      if (this.closing) {
        await connection.close();
        return;
      }
      this.subscriptions.set(address, sub);
      const subscribed = new Promise<void>((resolve, reject) => {
        this.pendingSub.set(sub, { resolve, reject });
      });
      connection.write(encodeSub(this.topic, this.channel));
      await subscribed;
      if (!connection.isReady) throw new NsqConnectionError(`nsqd at ${address} closed the connection right after SUB`);
      sub.subscribed = true;
      this.failureCounts.delete(address);
      this.emit('connect', address);
      if (this.closing || !this.wanted.has(address)) {
        this.retire(sub);
      } else {
        this.ensureRotation();
        this.rebalance();
      }
    } catch (error) {
      this.failureCounts.set(address, previousFailures + 1);
      this.emitError(error as Error);
      this.options.logger.warn(`consumer ${this.topic}/${this.channel}: cannot subscribe at ${address}: ${(error as Error).message}`);
      if (this.subscriptions.get(address) === sub) this.subscriptions.delete(address);
      connection.destroy(error as Error);
      this.scheduleReconnect(address);
    } finally {
      this.connecting.delete(address);
      this.handshaking.delete(connection);
    }
  }

  private readonly failureCounts = new Map<string, number>();
  private readonly lookupMisses = new Map<string, number>();
  private readonly pendingSub = new Map<Subscription, { resolve(): void; reject(error: Error): void }>();

  private scheduleReconnect(address: string): void {
    if (this.closing || !this.wanted.has(address) || this.reconnectTimers.has(address)) return;
    const failures = this.failureCounts.get(address) ?? 1;
    const delay = reconnectDelay(failures, this.options.reconnectDelay, this.options.maxReconnectDelay);
    const timer = setTimeout(() => {
      this.reconnectTimers.delete(address);
      void this.connectTo(address);
    }, delay);
    this.reconnectTimers.set(address, timer);
  }

  private onResponse(sub: Subscription, data: Buffer): void {
    const text = data.toString('latin1');
    const pending = this.pendingSub.get(sub);
    if (pending && text === RESPONSE_OK) {
      this.pendingSub.delete(sub);
      pending.resolve();
      return;
    }
    if (text === RESPONSE_CLOSE_WAIT) {
      sub.closing = true;
      if (sub.inFlight === 0) void sub.connection.close();
    }
  }

  private onServerError(sub: Subscription, error: NsqServerError): void {
    const pending = this.pendingSub.get(sub);
    if (pending) {
      this.pendingSub.delete(sub);
      pending.reject(error);
      return;
    }
    if (error.fatal) this.options.logger.error(`consumer ${this.topic}/${this.channel}: nsqd ${sub.address}: ${error.message}`);
    else this.options.logger.warn(`consumer ${this.topic}/${this.channel}: nsqd ${sub.address}: ${error.message}`);
    this.emitError(error);
  }

  private onConnectionClosed(sub: Subscription, address: string, error: Error | undefined): void {
    const pending = this.pendingSub.get(sub);
    if (pending) {
      this.pendingSub.delete(sub);
      pending.reject(error ?? new NsqConnectionError(`nsqd at ${address} closed the connection during SUB`));
    }
    if (this.subscriptions.get(address) !== sub) return;
    this.subscriptions.delete(address);
    if (!sub.subscribed) return;
    // Messages still in handlers on this connection can no longer be answered; nsqd redelivers them.
    sub.closing = true;
    this.emit('disconnect', address, error);
    if (this.closing) return;
    if (error) this.options.logger.warn(`consumer ${this.topic}/${this.channel}: lost nsqd ${address}: ${error.message}`);
    this.failureCounts.set(address, 1);
    this.scheduleReconnect(address);
    void this.poller?.poll();
    this.rebalance();
    if (this.idle && this.unanswered === 0) this.idle();
  }

  private onMessage(sub: Subscription, data: Buffer): void {
    try {
      assertMessagePayload(data);
    } catch (error) {
      sub.connection.destroy(error as Error);
      return;
    }
    const message = new Message(data, this.topic, this.channel, sub, sub.address);
    sub.inFlight++;
    this.unanswered++;
    sub.lastMessageAt = Date.now();
    this.counters.received++;
    if (this.closing || sub.closing) {
      message.requeue(0, { backoff: false });
      return;
    }
    if (this.running < this.concurrency) this.run(message);
    else this.waiting.push({ message, sub });
  }

  private run(message: Message): void {
    this.running++;
    const o = this.options;
    let result: void | Promise<void>;
    const overLimit = o.maxAttempts > 0 && message.attempts > o.maxAttempts;
    try {
      if (overLimit) {
        this.counters.overMaxAttempts++;
        result = o.onMaxAttempts ? o.onMaxAttempts(message) : this.discard(message);
      } else {
        result = o.handler(message);
      }
    } catch (error) {
      this.settle(message, error, overLimit);
      return;
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => this.settle(message, undefined, overLimit),
        (error: unknown) => this.settle(message, error ?? new Error('handler rejected'), overLimit),
      );
    } else {
      this.settle(message, undefined, overLimit);
    }
  }

  private discard(message: Message): void {
    this.options.logger.warn(
      `consumer ${this.topic}/${this.channel}: message ${message.id} reached ${message.attempts} attempts (maxAttempts ${this.options.maxAttempts}) and no onMaxAttempts hook is set; finishing it`,
    );
  }

  private settle(message: Message, error: unknown, overLimit: boolean): void {
    this.running--;
    if (error === undefined) {
      message.finish();
    } else if (!message.hasResponded) {
      const text = error instanceof Error ? error.message : String(error);
      if (overLimit) {
        this.options.logger.error(
          `consumer ${this.topic}/${this.channel}: onMaxAttempts failed for message ${message.id} (${text}); requeueing it`,
        );
        message.requeue(undefined, { backoff: false });
      } else {
        this.options.logger.debug(`consumer ${this.topic}/${this.channel}: handler failed for ${message.id}: ${text}`);
        message.requeue(undefined, { backoff: true });
      }
    }
    while (this.waitingHead < this.waiting.length && this.running < this.concurrency && !this.closing) {
      const { message: next, sub } = this.waiting[this.waitingHead]!;
      this.waiting[this.waitingHead++] = undefined as unknown as { message: Message; sub: Subscription };
      if (this.waitingHead === this.waiting.length) {
        this.waiting.length = 0;
        this.waitingHead = 0;
      } else if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead);
        this.waitingHead = 0;
      }
      if (sub.connection.isReady) {
        this.run(next);
        return;
      }
      // Its connection is gone: nsqd redelivers it after its timeout, so handling it now would only duplicate work.
      sub.inFlight--;
      this.unanswered--;
      this.handlerDone();
    }
  }

  private enterBackoff(duration: number): void {
    if (this.closing) return;
    clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    if (duration <= 0) {
      this.probing = false;
      this.rebalance();
      return;
    }
    this.probing = false;
    this.emit('backoff', duration);
    // The timer first: rebalance() sends RDY 0 only while it is set.
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      this.probing = true;
      this.rebalance();
    }, duration);
    this.rebalance();
  }

  private ensureRotation(): void {
    if (this.rotationTimer) return;
    this.rotationTimer = setInterval(() => {
      if (this.ready().length > this.options.maxInFlight || this.probing) this.rebalance();
    }, this.options.rdyRedistributeInterval);
    this.rotationTimer.unref();
  }

  private ready(): Subscription[] {
    const out: Subscription[] = [];
    for (const s of this.subscriptions.values()) if (s.subscribed && !s.closing && s.connection.isReady) out.push(s);
    return out;
  }

  /** Sends each connection the RDY the current state calls for. */
  private rebalance(): void {
    if (this.closing) return;
    const subs = this.ready();
    if (subs.length === 0) return;
    if (this.backoffTimer) {
      for (const s of subs) s.setRdy(0);
      return;
    }
    if (this.probing) {
      const i = this.rdyCursor++ % subs.length;
      subs.forEach((s, j) => s.setRdy(j === i ? 1 : 0));
      return;
    }
    const plan = planRdy(
      this.options.maxInFlight,
      subs.map((s) => ({ maxRdyCount: s.connection.maxRdyCount, rdy: s.rdy, lastMessageAt: s.lastMessageAt })),
      this.rdyCursor,
      Date.now(),
      this.options.rdyRedistributeInterval,
    );
    this.rdyCursor = plan.cursor;
    subs.forEach((s, i) => s.setRdy(plan.rdy[i]!));
  }

  private emitError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

function normalize(address: string): string {
  const { host, port } = parseAddress(address, 'nsqd address');
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
