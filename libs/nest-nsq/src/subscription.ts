import { Consumer, type Message, type NsqLogger, isValidTopicName, isValidChannelName, EPHEMERAL_SUFFIX } from '../../nsq/src/index.js';
import { NsqDecodeError, NsqTransportConfigError } from './errors.js';
import type { NsqTransportHooks, NsqMessageEvent } from './hooks.js';
import type { NsqConnectionConfig, NsqSubscriptionOptions } from './interfaces.js';
import { NsqContext } from './nsq.context.js';
import type { NsqPublisher } from './publisher.js';
import { HEADER, type NsqHeaders, encodeEnvelope } from './wire/envelope.js';
import type { NsqBodyMode } from './wire/payload.js';
import { type NsqIncomingPacket, type NsqPacketDeserializer, splitBody } from './wire/serializer.js';

export const DEFAULT_MAX_IN_FLIGHT = 100;
export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEAD_LETTER_SUFFIX = '.dead';

/** Settings of one subscription once defaults and extras are merged. */
export interface ResolvedSubscription {
  topic: string;
  channel: string;
  maxInFlight: number;
  concurrency: number;
  maxAttempts: number;
  backoff: boolean;
  body: NsqBodyMode;
  manualAck: boolean;
  autoTouch: boolean;
  deadLetterTopic: string | undefined;
  requeueDelay: NsqSubscriptionOptions['requeueDelay'];
  consumer: NonNullable<NsqSubscriptionOptions['consumer']>;
}

/** Runs the handler; resolves when it succeeded, rejects with what it raised. */
export type NsqDispatch = (packet: NsqIncomingPacket, ctx: NsqContext) => Promise<void>;

/** Merges server-wide defaults with a handler's extras and checks the result. */
export function resolveSubscription(topic: string, defaults: NsqSubscriptionOptions, extras: NsqSubscriptionOptions): ResolvedSubscription {
  const pick = <K extends keyof NsqSubscriptionOptions>(key: K): NsqSubscriptionOptions[K] => (extras[key] !== undefined ? extras[key] : defaults[key]);
  const channel = pick('channel');
  if (typeof topic !== 'string' || !isValidTopicName(topic)) {
    throw new NsqTransportConfigError(`pattern ${JSON.stringify(topic)} is not a valid NSQ topic name (1-64 of [.a-zA-Z0-9_-], optionally ending in #ephemeral)`);
  }
  if (channel === undefined || channel === '') {
    throw new NsqTransportConfigError(`handler for topic "${topic}" has no channel: set NsqServer's channel option or the handler's extras { channel }`);
  }
  if (!isValidChannelName(channel)) throw new NsqTransportConfigError(`channel ${JSON.stringify(channel)} of topic "${topic}" is not a valid NSQ channel name`);
  const maxInFlight = pick('maxInFlight') ?? DEFAULT_MAX_IN_FLIGHT;
  const dl = pick('deadLetterTopic');
  let deadLetterTopic: string | undefined;
  if (dl === false) deadLetterTopic = undefined;
  else if (typeof dl === 'string') deadLetterTopic = dl;
  else if (typeof dl === 'function') deadLetterTopic = dl(topic, channel);
  else deadLetterTopic = defaultDeadLetterTopic(topic);
  if (deadLetterTopic !== undefined && !isValidTopicName(deadLetterTopic)) {
    throw new NsqTransportConfigError(
      `dead-letter topic ${JSON.stringify(deadLetterTopic)} for "${topic}" is not a valid topic name (at most 64 characters); set deadLetterTopic`,
    );
  }
  const body = pick('body') ?? 'json';
  if (body !== 'json' && body !== 'text' && body !== 'buffer') throw new NsqTransportConfigError(`body must be 'json', 'text' or 'buffer', got ${JSON.stringify(body)}`);
  return {
    topic,
    channel,
    maxInFlight,
    concurrency: pick('concurrency') ?? 0,
    maxAttempts: pick('maxAttempts') ?? DEFAULT_MAX_ATTEMPTS,
    backoff: pick('backoff') ?? true,
    body,
    manualAck: pick('manualAck') ?? false,
    autoTouch: pick('autoTouch') ?? true,
    deadLetterTopic,
    requeueDelay: pick('requeueDelay'),
    consumer: { ...defaults.consumer, ...extras.consumer },
  };
}

/** `<topic>.dead`, keeping an ephemeral topic's suffix at the end. */
export function defaultDeadLetterTopic(topic: string): string {
  return topic.endsWith(EPHEMERAL_SUFFIX)
    ? `${topic.slice(0, -EPHEMERAL_SUFFIX.length)}${DEAD_LETTER_SUFFIX}${EPHEMERAL_SUFFIX}`
    : `${topic}${DEAD_LETTER_SUFFIX}`;
}

/** Last handler errors, so a message dead-lettered on a later delivery still carries why it failed. */
const LAST_ERRORS_KEPT = 10_000;

interface Running {
  message: Message;
  lastTouch: number;
  /** Manual ack: the handler returned; waiting for its answer. */
  settle?: () => void;
}

/**
 * One topic/channel: a Consumer plus what the transport adds on top — decoding, dead letters,
 * TOUCH for long handlers, manual acks, hooks. NsqServer and NsqBroker.subscribe() both use it.
 */
export class NsqSubscription {
  readonly consumer: Consumer;
  private readonly running = new Set<Running>();
  private touchTimer: NodeJS.Timeout | undefined;
  private readonly lastErrors = new Map<string, string>();
  private closed: Promise<void> | undefined;

  constructor(
    readonly settings: ResolvedSubscription,
    connection: NsqConnectionConfig,
    private readonly deserializer: NsqPacketDeserializer,
    private readonly publisher: NsqPublisher,
    private readonly dispatch: NsqDispatch,
    private readonly logger: NsqLogger,
    private readonly hooks: NsqTransportHooks | undefined,
  ) {
    const s = settings;
    this.consumer = new Consumer({
      // nsqd would hold a lightly loaded consumer's messages for up to 250 ms (its output buffer
      // timer, 25 ms at the least); unbuffered, an event reaches its handler in well under a millisecond.
      outputBufferSize: -1,
      ...connection.connection,
      ...s.consumer,
      logger,
      topic: s.topic,
      channel: s.channel,
      nsqdTCPAddresses: connection.nsqdTCPAddresses ?? [],
      lookupdHTTPAddresses: connection.lookupdHTTPAddresses ?? [],
      maxInFlight: s.maxInFlight,
      concurrency: s.concurrency,
      // Attempts are checked here, where the dead-letter topic and the last error are known.
      maxAttempts: 0,
      ...(s.requeueDelay !== undefined ? { requeueDelay: s.requeueDelay } : {}),
      handler: (message) => this.handle(message),
    });
  }

  get name(): string {
    return `${this.settings.topic}/${this.settings.channel}`;
  }

  start(): Promise<void> {
    return this.consumer.start();
  }

  /** CLS, wait up to timeoutMs for running handlers, close. Idempotent. */
  close(timeoutMs: number): Promise<void> {
    this.closed ??= this.consumer.close(timeoutMs).finally(() => {
      clearInterval(this.touchTimer);
      this.touchTimer = undefined;
      for (const r of this.running) r.settle?.();
    });
    return this.closed;
  }

  private async handle(message: Message): Promise<void> {
    const s = this.settings;
    const hooks = this.hooks;
    let packet: NsqIncomingPacket;
    try {
      // The default deserializer is synchronous: no extra microtask per message unless one is async.
      const decoded = this.deserializer.deserialize(message, { topic: s.topic, channel: s.channel, body: s.body });
      packet = decoded instanceof Promise ? await decoded : decoded;
    } catch (error) {
      if (hooks?.delivered) this.emitHook('delivered', { ...this.eventOf(message, safeHeaders(message)), body: message.body });
      await this.deadLetter(message, 'decode_failed', error instanceof NsqDecodeError ? error.message : `deserializer failed: ${describe(error)}`);
      return;
    }
    if (hooks?.delivered) this.emitHook('delivered', { ...this.eventOf(message, packet.metadata), body: message.body });
    if (s.maxAttempts > 0 && message.attempts > s.maxAttempts) {
      const last = this.lastErrors.get(message.id);
      this.lastErrors.delete(message.id);
      await this.deadLetter(message, 'max_attempts', last ?? `delivered ${message.attempts} times (maxAttempts ${s.maxAttempts})`, packet.metadata);
      return;
    }
    const deadline = packet.id !== undefined ? Number(packet.metadata[HEADER.deadline]) : NaN;
    if (deadline > 0 && Date.now() > deadline) {
      this.logger.debug(`${this.name}: request ${packet.id} expired before it was handled; finishing it unhandled`);
      this.finished(message, packet.metadata);
      return;
    }
    const ctx = new NsqContext([message, packet.metadata]);
    const entry: Running = { message, lastTouch: Date.now() };
    if (s.autoTouch || s.manualAck) this.track(entry);
    try {
      await this.dispatch(packet, ctx);
    } catch (error) {
      this.untrack(entry);
      await this.failed(message, packet.metadata, error);
      return;
    }
    if (s.manualAck && !message.hasResponded) {
      // The handler answers later through its context; hold its slot until it does or nsqd times it out.
      await new Promise<void>((resolve) => (entry.settle = resolve));
      if (!message.hasResponded) {
        this.logger.warn(`${this.name}: manualAck handler left message ${message.id} unanswered past msg_timeout; nsqd redelivers it`);
        message.abandon();
      }
    }
    this.untrack(entry);
    if (!message.hasResponded || !s.manualAck) this.finished(message, packet.metadata);
  }

  private finished(message: Message, headers: NsqHeaders): void {
    this.lastErrors.delete(message.id);
    if (this.hooks?.finished && !message.hasResponded) this.emitHook('finished', this.eventOf(message, headers));
  }

  private async failed(message: Message, headers: NsqHeaders, error: unknown): Promise<void> {
    const s = this.settings;
    const text = describe(error);
    if (message.hasResponded) return;
    if (s.maxAttempts > 0 && message.attempts >= s.maxAttempts) {
      this.lastErrors.delete(message.id);
      await this.deadLetter(message, 'max_attempts', text, headers);
      return;
    }
    this.remember(message.id, text);
    const delay = this.consumer.requeueDelayFor(message.attempts);
    this.logger.warn(`${this.name}: handler failed for message ${message.id} (attempt ${message.attempts}): ${text}; requeued with ${delay} ms delay`);
    if (this.hooks?.requeued) this.emitHook('requeued', { ...this.eventOf(message, headers), delayMs: delay, error: text });
    message.requeue(delay, { backoff: s.backoff });
  }

  /**
   * Publishes the message to the dead-letter topic, then lets the consumer FIN it. If the
   * publish fails this throws, and the consumer requeues the message: it is never dropped.
   */
  private async deadLetter(message: Message, reason: string, error: string, known?: NsqHeaders): Promise<void> {
    const s = this.settings;
    const target = s.deadLetterTopic;
    let headers: NsqHeaders;
    let payload: Buffer;
    try {
      ({ headers, payload } = known ? { headers: known, payload: splitBody(message.body).payload } : splitBody(message.body));
    } catch {
      // A broken envelope: dead-letter the body exactly as it arrived.
      headers = {};
      payload = message.body;
    }
    if (target === undefined) {
      this.logger.error(`${this.name}: message ${message.id} dropped (${reason}: ${error}); deadLetterTopic is off`);
      if (this.hooks?.deadLettered) this.emitHook('deadLettered', { ...this.eventOf(message, headers), deadLetterTopic: '', reason, error });
      return;
    }
    const letter = encodeEnvelope(
      {
        ...headers,
        [HEADER.deadLetterReason]: reason,
        [HEADER.deadLetterError]: error.length > 2000 ? `${error.slice(0, 2000)}…` : error,
        [HEADER.originalTopic]: s.topic,
        [HEADER.originalChannel]: s.channel,
        [HEADER.originalMessageId]: message.id,
        [HEADER.originalAttempts]: String(message.attempts),
        [HEADER.originalTimestamp]: message.timestamp.toString(),
        [HEADER.originalNsqd]: message.nsqdAddress,
        [HEADER.deadLetteredAt]: new Date().toISOString(),
      },
      payload,
    );
    try {
      await this.publisher.publishVia(message.nsqdAddress, target, letter);
    } catch (publishError) {
      this.logger.error(`${this.name}: cannot dead-letter message ${message.id} to "${target}" (${describe(publishError)}); requeueing it`);
      throw publishError;
    }
    this.logger.warn(`${this.name}: message ${message.id} dead-lettered to "${target}" (${reason}: ${error})`);
    if (this.hooks?.deadLettered) this.emitHook('deadLettered', { ...this.eventOf(message, headers), deadLetterTopic: target, reason, error });
  }

  private remember(id: string, text: string): void {
    this.lastErrors.delete(id);
    this.lastErrors.set(id, text);
    if (this.lastErrors.size > LAST_ERRORS_KEPT) this.lastErrors.delete(this.lastErrors.keys().next().value as string);
  }

  private track(entry: Running): void {
    this.running.add(entry);
    if (this.touchTimer === undefined) {
      const tick = Math.min(5000, Math.max(25, Math.floor(entry.message.msgTimeout / 4)));
      this.touchTimer = setInterval(() => this.sweep(), tick);
      this.touchTimer.unref();
    }
  }

  private untrack(entry: Running): void {
    this.running.delete(entry);
  }

  /** TOUCHes handlers past half their msg_timeout; settles manual answers. */
  private sweep(): void {
    const now = Date.now();
    for (const r of this.running) {
      const m = r.message;
      if (m.hasResponded) {
        r.settle?.();
        continue;
      }
      if (r.settle) {
        if (now - r.lastTouch >= m.msgTimeout) r.settle();
        continue;
      }
      if (this.settings.autoTouch && now - r.lastTouch >= m.msgTimeout / 2) {
        m.touch();
        r.lastTouch = now;
      }
    }
  }

  private eventOf(message: Message, headers: NsqHeaders): NsqMessageEvent {
    return {
      topic: this.settings.topic,
      channel: this.settings.channel,
      messageId: message.id,
      nsqdAddress: message.nsqdAddress,
      attempts: message.attempts,
      headers,
      timestamp: Number(message.timestamp / 1_000_000n),
      at: new Date(),
    };
  }

  private emitHook<K extends keyof NsqTransportHooks>(name: K, event: Parameters<NonNullable<NsqTransportHooks[K]>>[0]): void {
    try {
      (this.hooks![name] as (e: typeof event) => void)(event);
    } catch (error) {
      this.logger.error(`${this.name}: hook ${name} threw: ${describe(error)}`);
    }
  }
}

function safeHeaders(message: Message): NsqHeaders {
  try {
    return splitBody(message.body).headers;
  } catch {
    return {};
  }
}

/** Error text for logs and dead-letter headers; Nest's RPC errors are plain objects. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}
