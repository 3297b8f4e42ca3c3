import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, RpcException, type WritePacket } from '@nestjs/microservices';
import { Consumer, type Message, type NsqLogger, isValidTopicName } from '../../../nsq/src/index.js';
import { DEFAULT_REPLY_TOPIC_PREFIX, DEFAULT_REQUEST_TIMEOUT, NsqStatus, REPLY_CHANNEL } from '../constants.js';
import { NsqEncodeError, NsqRequestTimeoutError, NsqTransportConfigError } from '../errors.js';
import type { NsqClientOptions } from '../interfaces.js';
import { NestNsqLogger } from '../nest-logger.js';
import { NsqRecord, type NsqRecordOptions } from '../nsq.record.js';
import { NsqPublisher } from '../publisher.js';
import { describe } from '../subscription.js';
import { HEADER, type NsqHeaders } from '../wire/envelope.js';
import { decodePayload } from '../wire/payload.js';
import {
  NsqDeserializer,
  type NsqPacketDeserializer,
  type NsqPayloadSerializer,
  NsqSerializer,
  buildBody,
  splitBody,
  toPayload,
} from '../wire/serializer.js';

export type NsqClientEvents = {
  connect: (nsqdAddress: string) => void;
  disconnect: (nsqdAddress: string) => void;
  error: (error: Error) => void;
};

/**
 * The NSQ ClientProxy. `emit(topic, data)` publishes and completes when nsqd acknowledged the
 * message; `send(topic, data)` publishes a request and emits the replies of the
 * `@MessagePattern(topic)` handler, which come back on this client's ephemeral reply topic.
 * Per-message options (DPUB delay, MPUB batch, headers) travel in an NsqRecord as the data.
 */
export class NsqClient extends ClientProxy<NsqClientEvents, string> {
  protected readonly logger = new Logger(NsqClient.name);
  private readonly nsqLogger: NsqLogger;
  private readonly emitter = new EventEmitter();
  private readonly payloadSerializer: NsqPayloadSerializer;
  private readonly replyDeserializer: NsqPacketDeserializer;
  private readonly requestTimeout: number;
  private readonly replyTopicPrefix: string;
  private publisher: NsqPublisher | undefined;
  private connecting: Promise<NsqPublisher> | undefined;
  private replies: { consumer: Consumer; topic: string; ready: Promise<void> } | undefined;

  constructor(protected readonly options: NsqClientOptions) {
    super();
    if (!options?.nsqdTCPAddresses?.length) throw new NsqTransportConfigError('NsqClient: nsqdTCPAddresses must name at least one nsqd');
    this.nsqLogger = options.logger ?? new NestNsqLogger(NsqClient.name);
    this.payloadSerializer = options.serializer ?? new NsqSerializer();
    this.replyDeserializer = options.deserializer ?? new NsqDeserializer();
    this.requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    this.replyTopicPrefix = options.replyTopicPrefix ?? DEFAULT_REPLY_TOPIC_PREFIX;
    if (!isValidTopicName(`${this.replyTopicPrefix}.0123456789abcdef#ephemeral`)) {
      throw new NsqTransportConfigError(`NsqClient: replyTopicPrefix ${JSON.stringify(this.replyTopicPrefix)} does not make a valid topic name`);
    }
    this.emitter.on('error', () => undefined);
  }

  /** Connects to the nsqd (publishes connect lazily too). Rejects when none can be reached; a later call tries again. */
  connect(): Promise<NsqPublisher> {
    this.connecting ??= this.open().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  /** Fails pending requests, closes the reply subscription and the producers. Idempotent; the client can connect again. */
  async close(): Promise<void> {
    const publisher = this.publisher;
    const replies = this.replies;
    this.publisher = undefined;
    this.replies = undefined;
    this.connecting = undefined;
    for (const callback of this.routingMap.values()) callback({ err: new Error('Connection closed'), isDisposed: true });
    this.routingMap.clear();
    await replies?.consumer.close(1000);
    await publisher?.close();
    this._status$.next(NsqStatus.DISCONNECTED);
  }

  override on<K extends keyof NsqClientEvents>(event: K, callback: NsqClientEvents[K]): void {
    this.emitter.on(event, callback as (...args: unknown[]) => void);
  }

  /** The publisher (one libs/nsq Producer per nsqd). */
  unwrap<T = NsqPublisher>(): T {
    if (!this.publisher) throw new Error('Not initialized. Please call the "connect" method first.');
    return this.publisher as T;
  }

  /**
   * Publishes `data` (or an NsqRecord) to `topic` and resolves on nsqd's OK; what emit() does,
   * as a promise. NsqBroker publishes through it.
   */
  async publishRecord(topic: string, data: unknown, metadata?: NsqHeaders): Promise<void> {
    const publisher = this.publisher ?? (await this.connect());
    if (typeof topic !== 'string' || !isValidTopicName(topic)) throw new NsqEncodeError(`topic ${JSON.stringify(topic)} is not a valid NSQ topic name`);
    let options: NsqRecordOptions = {};
    if (data instanceof NsqRecord) {
      options = data.options;
      data = data.data;
    }
    const hooks = this.options.hooks;
    if (options.batch) {
      if (!Array.isArray(data)) throw new NsqEncodeError('a batch NsqRecord needs an array of messages as its data');
      if (options.delayMs !== undefined) throw new NsqEncodeError('NSQ has no deferred MPUB: a batch cannot have delayMs');
      if (data.length === 0) return;
      const encoded = await Promise.all(data.map((item: unknown) => this.encode(topic, item, metadata, options.headers, undefined)));
      await publisher.publishMany(topic, encoded.map((e) => e.body));
      hooks?.published?.({ topic, messageKeys: encoded.map((e) => e.key), bodies: encoded.map((e) => e.body), at: new Date() });
      return;
    }
    const { body, key } = await this.encode(topic, data, metadata, options.headers, undefined);
    if (options.delayMs !== undefined) await publisher.publishDeferred(topic, options.delayMs, body);
    else await publisher.publish(topic, body);
    if (hooks?.published) {
      const event = { topic, messageKeys: [key], bodies: [body], at: new Date() };
      hooks.published(options.delayMs !== undefined ? { ...event, delayMs: options.delayMs } : event);
    }
  }

  protected dispatchEvent<T = unknown>(packet: ReadPacket): Promise<T> {
    const publisher = this.publisher;
    // The common emit(): a plain body to a connected client, with no hooks. Every allocation saved
    // here is one less object kept alive until nsqd's OK.
    if (
      publisher !== undefined &&
      this.options.envelope !== true &&
      this.options.hooks?.published === undefined &&
      packet.metadata === undefined &&
      !(packet.data instanceof NsqRecord) &&
      typeof packet.pattern === 'string' &&
      isValidTopicName(packet.pattern)
    ) {
      const serialized = this.payloadSerializer.serialize({ pattern: packet.pattern, data: packet.data });
      if (!(serialized instanceof Promise)) {
        return publisher.publish(packet.pattern, buildBody(toPayload(serialized).payload, undefined)) as Promise<T>;
      }
    }
    return this.publishRecord(packet.pattern as string, packet.data, packet.metadata) as Promise<T>;
  }

  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const request = this.assignPacketId(packet);
    const id = request.id;
    const topic = packet.pattern as string;
    const timeout = this.requestTimeout;
    this.routingMap.set(id, callback);
    // The deadline starts with the timer, not when the request finally leaves (after connecting and
    // subscribing the reply topic), so a handler never works on a request its caller gave up on.
    const deadline = Date.now() + timeout;
    const timer = setTimeout(() => {
      if (this.routingMap.delete(id)) callback({ err: new NsqRequestTimeoutError(String(topic), timeout) });
    }, timeout);
    const fail = (error: unknown): void => {
      clearTimeout(timer);
      if (this.routingMap.delete(id)) callback({ err: error });
    };
    this.sendRequest(topic, request.data, packet.metadata, id, deadline).catch(fail);
    return () => {
      clearTimeout(timer);
      this.routingMap.delete(id);
    };
  }

  /** Errors reach send()'s subscribers as RpcException, whatever raised them. */
  protected override serializeError(err: unknown): unknown {
    if (err instanceof RpcException) return err;
    if (err instanceof Error) {
      const code = (err as { code?: unknown }).code;
      return new RpcException({ status: 'error', message: err.message, ...(typeof code === 'string' ? { code } : {}) });
    }
    return new RpcException(err as object);
  }

  private async open(): Promise<NsqPublisher> {
    const publisher = (this.publisher ??= this.createPublisher());
    await publisher.connect();
    this._status$.next(NsqStatus.CONNECTED);
    return publisher;
  }

  private createPublisher(): NsqPublisher {
    const o = this.options;
    const publisher = new NsqPublisher({
      nsqdTCPAddresses: o.nsqdTCPAddresses!,
      producer: { ...o.connection, ...o.producer },
      strategy: o.strategy ?? 'failover',
      logger: this.nsqLogger,
    });
    publisher.on('connect', (address: string) => {
      this._status$.next(NsqStatus.CONNECTED);
      this.emitter.emit('connect', address);
    });
    publisher.on('disconnect', (address: string) => {
      if (this.publisher === publisher && publisher.connectedAddresses.length === 0) this._status$.next(NsqStatus.RECONNECTING);
      this.emitter.emit('disconnect', address);
    });
    publisher.on('error', (error: Error) => this.emitter.emit('error', error));
    return publisher;
  }

  private async encode(
    topic: string,
    data: unknown,
    metadata: NsqHeaders | undefined,
    headers: NsqHeaders | undefined,
    request: NsqHeaders | undefined,
  ): Promise<{ body: Buffer; key: string | undefined }> {
    const { payload, contentType } = toPayload(await this.payloadSerializer.serialize({ pattern: topic, data }));
    const wrap =
      this.options.envelope === true ||
      request !== undefined ||
      (metadata !== undefined && Object.keys(metadata).length > 0) ||
      (headers !== undefined && Object.keys(headers).length > 0);
    if (!wrap) return { body: buildBody(payload, undefined), key: undefined };
    const key = randomUUID();
    const all: NsqHeaders = { [HEADER.messageKey]: key, [HEADER.timestamp]: String(Date.now()), ...metadata, ...headers, ...request };
    if (contentType !== undefined) all[HEADER.contentType] = contentType;
    return { body: buildBody(payload, all), key: all[HEADER.messageKey] };
  }

  private async sendRequest(topic: string, data: unknown, metadata: NsqHeaders | undefined, id: string, deadline: number): Promise<void> {
    if (typeof topic !== 'string' || !isValidTopicName(topic)) throw new NsqEncodeError(`pattern ${JSON.stringify(topic)} is not a valid NSQ topic name`);
    const publisher = this.publisher ?? (await this.connect());
    const replies = await this.replyChannel();
    let headers: NsqHeaders | undefined;
    if (data instanceof NsqRecord) {
      if (data.options.delayMs !== undefined || data.options.batch) {
        throw new NsqEncodeError('send() takes an NsqRecord for its headers only: a request cannot be delayed or batched');
      }
      headers = data.options.headers;
      data = data.data;
    }
    const request = { [HEADER.replyTo]: replies.topic, [HEADER.correlationId]: id, [HEADER.deadline]: String(deadline) };
    const { body } = await this.encode(topic, data, metadata, headers, request);
    // Publish where the reply subscription is: the handler replies through the nsqd that delivered the request.
    const subscribed = replies.consumer.connectedAddresses();
    await publisher.publishVia(subscribed.find((a) => publisher.addresses.includes(a)), topic, body);
  }

  /** The reply topic's subscription, made on the first send() on every configured nsqd. */
  private replyChannel(): Promise<{ consumer: Consumer; topic: string }> {
    if (!this.replies) {
      const topic = `${this.replyTopicPrefix}.${randomBytes(8).toString('hex')}#ephemeral`;
      const consumer = new Consumer({
        ...this.options.connection,
        logger: this.nsqLogger,
        topic,
        channel: REPLY_CHANNEL,
        nsqdTCPAddresses: this.options.nsqdTCPAddresses!,
        maxInFlight: 1000,
        // Replies are never retried: a late or unreadable one is dropped with a log line.
        maxAttempts: 1,
        outputBufferSize: -1,
        handler: (message) => this.onReply(message),
      });
      consumer.on('error', (error: Error) => this.nsqLogger.debug(`reply subscription ${topic}: ${error.message}`));
      const replies = { consumer, topic, ready: consumer.start() };
      this.replies = replies;
      replies.ready.catch(() => {
        if (this.replies === replies) this.replies = undefined;
      });
    }
    const replies = this.replies;
    return replies.ready.then(() => replies);
  }

  private onReply(message: Message): void {
    let headers: NsqHeaders;
    let payload: Buffer;
    try {
      ({ headers, payload } = splitBody(message.body));
    } catch (error) {
      this.logger.warn(`unreadable reply on ${message.topic}: ${describe(error)}`);
      return;
    }
    const id = headers[HEADER.correlationId];
    const callback = id === undefined ? undefined : this.routingMap.get(id);
    if (!callback) return; // a reply after the caller stopped waiting
    const isDisposed = headers[HEADER.isDisposed] === 'true';
    try {
      if (headers[HEADER.error] === 'true') {
        callback({ err: decodePayload(payload, 'json', headers[HEADER.contentType]), isDisposed: true });
        this.routingMap.delete(id!);
        return;
      }
      let response: unknown;
      if (payload.length > 0) {
        const packet = this.replyDeserializer.deserialize(message, { topic: message.topic, channel: message.channel, body: 'json' });
        if (packet instanceof Promise) throw new NsqTransportConfigError('NsqClient: the reply deserializer must be synchronous');
        response = packet.data;
      }
      callback(response === undefined ? { isDisposed } : { response, isDisposed });
    } catch (error) {
      callback({ err: error, isDisposed: true });
    }
    if (isDisposed) this.routingMap.delete(id!);
  }
}
