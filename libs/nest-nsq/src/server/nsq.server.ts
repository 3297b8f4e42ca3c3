import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { type CustomTransportStrategy, type MessageHandler, Server, type WritePacket } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { type Consumer, type NsqLogger, isValidTopicName } from '../../../nsq/src/index.js';
import { DEFAULT_CLOSE_TIMEOUT, NO_MESSAGE_HANDLER, NSQ_TRANSPORT, NsqStatus } from '../constants.js';
import { NsqTransportConfigError } from '../errors.js';
import type { NsqServerOptions, NsqSubscriptionOptions } from '../interfaces.js';
import { NestNsqLogger } from '../nest-logger.js';
import type { NsqContext } from '../nsq.context.js';
import { NsqPublisher } from '../publisher.js';
import { NsqSubscription, describe, resolveSubscription } from '../subscription.js';
import { HEADER, type NsqHeaders, encodeEnvelope } from '../wire/envelope.js';
import { encodePayload } from '../wire/payload.js';
import {
  NsqDeserializer,
  type NsqIncomingPacket,
  type NsqPacketDeserializer,
  type NsqPayloadSerializer,
  NsqSerializer,
  toPayload,
} from '../wire/serializer.js';

/** Events of NsqServer.on(): per nsqd connection of each subscription. */
export type NsqServerEvents = {
  connect: (topic: string, channel: string, nsqdAddress: string) => void;
  disconnect: (topic: string, channel: string, nsqdAddress: string) => void;
  error: (error: Error) => void;
};

interface Route {
  topic: string;
  extras: NsqSubscriptionOptions;
  events: MessageHandler[];
  requests: MessageHandler[];
}

/**
 * The NSQ transport strategy. Each `@EventPattern('topic')` / `@MessagePattern('topic')` handler is
 * a subscription to that topic on the server's channel (or the channel in the handler's extras):
 * FIN when the handler succeeds, REQ with backoff when it fails, the dead-letter topic after
 * maxAttempts or when the body cannot be decoded. Requests (sent by NsqClient.send) are answered
 * on the caller's reply topic.
 *
 * ```ts
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new NsqServer({ nsqdTCPAddresses: ['127.0.0.1:4150'], channel: 'points' }),
 * });
 * ```
 */
export class NsqServer extends Server<NsqServerEvents, string> implements CustomTransportStrategy {
  override transportId = NSQ_TRANSPORT;
  /** Handler failures are observed here (they decide FIN or REQ), so Nest need not log them again. */
  override readonly propagatesEventHandlerErrors = true;
  protected override readonly logger = new Logger(NsqServer.name);
  private readonly nsqLogger: NsqLogger;
  private readonly routes = new Map<string, Route>();
  private readonly configErrors: string[] = [];
  private readonly emitter = new EventEmitter();
  private readonly packetDeserializer: NsqPacketDeserializer;
  private readonly payloadSerializer: NsqPayloadSerializer;
  private subscriptions: NsqSubscription[] = [];
  private publisher: NsqPublisher | undefined;
  private closing: Promise<void> | undefined;
  private listening = false;

  constructor(private readonly options: NsqServerOptions) {
    super();
    if (!options || typeof options.channel !== 'string' || options.channel === '') {
      throw new NsqTransportConfigError('NsqServer: the channel option is required (e.g. the service name); handlers may override it with extras { channel }');
    }
    if (!options.nsqdTCPAddresses?.length && !options.lookupdHTTPAddresses?.length) {
      throw new NsqTransportConfigError('NsqServer: give nsqdTCPAddresses or lookupdHTTPAddresses');
    }
    this.nsqLogger = options.logger ?? new NestNsqLogger(NsqServer.name);
    this.packetDeserializer = options.deserializer ?? new NsqDeserializer();
    this.payloadSerializer = options.serializer ?? new NsqSerializer();
    this.emitter.on('error', () => undefined);
  }

  /** Registers a handler; called by Nest for each decorated method. Patterns are topic names. */
  override addHandler(pattern: unknown, callback: MessageHandler, isEventHandler = false, extras: Record<string, unknown> = {}): void {
    callback.isEventHandler = isEventHandler;
    callback.extras = extras;
    if (typeof pattern !== 'string' || !isValidTopicName(pattern)) {
      this.configErrors.push(
        `pattern ${this.getPatternAsString(pattern)} is not an NSQ topic name: NsqServer patterns are topics (1-64 of [.a-zA-Z0-9_-], optionally ending in #ephemeral)`,
      );
      return;
    }
    const opts = extras as NsqSubscriptionOptions;
    const channel = opts.channel ?? this.options.channel;
    const key = `${pattern}/${channel}`;
    let route = this.routes.get(key);
    if (!route) {
      route = { topic: pattern, extras: { ...opts, channel }, events: [], requests: [] };
      this.routes.set(key, route);
    } else {
      route.extras = { ...route.extras, ...opts, channel };
    }
    (isEventHandler ? route.events : route.requests).push(callback);
    // Kept per topic/channel and never chained through handler.next: each channel is its own subscription.
    this.messageHandlers.set(key, callback);
  }

  /** Subscribes every handler, then calls back (with the error when the configuration cannot work). */
  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      if (this.configErrors.length > 0) throw new NsqTransportConfigError(this.configErrors.join('; '));
      if (this.listening) throw new NsqTransportConfigError('NsqServer is already listening');
      this.listening = true;
      const o = this.options;
      this.publisher = new NsqPublisher({
        nsqdTCPAddresses: o.nsqdTCPAddresses ?? [],
        producer: { ...o.connection, ...o.producer },
        strategy: 'failover',
        logger: this.nsqLogger,
      });
      const defaults: NsqSubscriptionOptions = { ...o, channel: o.channel };
      for (const route of this.routes.values()) {
        const settings = resolveSubscription(route.topic, defaults, route.extras);
        const subscription = new NsqSubscription(
          settings,
          o,
          this.packetDeserializer,
          this.publisher,
          (packet, ctx) => this.dispatch(route, packet, ctx),
          this.nsqLogger,
          o.hooks,
        );
        this.watch(subscription);
        this.subscriptions.push(subscription);
      }
      await Promise.all(this.subscriptions.map((s) => s.start()));
      this.updateStatus();
      const names = this.subscriptions.map((s) => s.name).join(', ');
      this.logger.log(`NSQ subscriptions: ${names || '(none)'}`);
      callback();
    } catch (error) {
      callback(error);
    }
  }

  /** Stops taking messages (CLS), waits up to closeTimeout for running handlers, closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const timeout = this.options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
      await Promise.all(this.subscriptions.map((s) => s.close(timeout)));
      // Replies and dead letters of the last handlers are out; now the producers can go.
      await this.publisher?.close();
      this._status$.next(NsqStatus.DISCONNECTED);
      this.emitter.removeAllListeners();
    })();
    return this.closing;
  }

  on<K extends keyof NsqServerEvents>(event: K, callback: NsqServerEvents[K]): void {
    this.emitter.on(event, callback as (...args: unknown[]) => void);
  }

  /** The libs/nsq consumers (one per topic/channel) and the publisher used for replies and dead letters. */
  unwrap<T = { consumers: Consumer[]; publisher: NsqPublisher }>(): T {
    if (!this.publisher) throw new Error('Not initialized. Please call the "listen"/"startAllMicroservices" method before accessing the server.');
    return { consumers: this.subscriptions.map((s) => s.consumer), publisher: this.publisher } as T;
  }

  private watch(subscription: NsqSubscription): void {
    const { topic, channel } = subscription.settings;
    subscription.consumer.on('connect', (address: string) => {
      this.emitter.emit('connect', topic, channel, address);
      this.updateStatus();
    });
    subscription.consumer.on('disconnect', (address: string) => {
      this.emitter.emit('disconnect', topic, channel, address);
      this.updateStatus();
    });
    subscription.consumer.on('error', (error: Error) => {
      this.nsqLogger.warn(`${subscription.name}: ${error.message}`);
      this.emitter.emit('error', error);
    });
  }

  private updateStatus(): void {
    if (this.closing) return;
    const all = this.subscriptions.every((s) => s.consumer.stats().connections > 0);
    this._status$.next(all ? NsqStatus.CONNECTED : NsqStatus.RECONNECTING);
  }

  private dispatch(route: Route, packet: NsqIncomingPacket, ctx: NsqContext): Promise<void> {
    if (packet.id !== undefined) return this.answer(route, packet, ctx);
    const handlers = route.events.length > 0 ? route.events : route.requests;
    if (handlers.length === 1) return this.invoke(handlers[0]!, packet.data, ctx);
    return Promise.all(handlers.map((h) => this.invoke(h, packet.data, ctx))).then(() => undefined);
  }

  /** Runs an event handler inside Nest's processing hooks; resolves or rejects with the handler's outcome. */
  private invoke(handler: MessageHandler, data: unknown, ctx: NsqContext): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const started = this.runWithProcessingHooks(ctx, async (runEndHook) => {
        try {
          const result = await handler(data, ctx);
          await lastValueFrom(this.transformToObservable(result), { defaultValue: undefined });
          resolve();
        } catch (error) {
          reject(error);
        } finally {
          runEndHook();
        }
      });
      Promise.resolve(started).catch(reject);
    });
  }

  /** A request: the handler's values go to the reply topic; the request is finished after the last reply is out. */
  private answer(route: Route, packet: NsqIncomingPacket, ctx: NsqContext): Promise<void> {
    const replyTo = packet.metadata[HEADER.replyTo]!;
    const id = packet.id!;
    const via = ctx.getNsqdAddress();
    if (!isValidTopicName(replyTo)) {
      this.logger.warn(`request ${id} on ${route.topic} names an invalid reply topic ${JSON.stringify(replyTo)}; not answering it`);
      return Promise.resolve();
    }
    const handler = route.requests[0];
    if (!handler) {
      return this.reply(replyTo, id, via, route.topic, { err: { status: 'error', message: NO_MESSAGE_HANDLER }, isDisposed: true });
    }
    return new Promise<void>((resolve, reject) => {
      let failure: unknown;
      let settled = false;
      const respond = async (out: WritePacket): Promise<void> => {
        try {
          await this.reply(replyTo, id, via, route.topic, out);
        } catch (error) {
          failure ??= error;
        }
        if (out.isDisposed && !settled) {
          settled = true;
          if (failure === undefined) resolve();
          else reject(failure);
        }
      };
      const started = this.handleRequest(ctx, async () => this.transformToObservable(await handler(packet.data, ctx)), respond);
      Promise.resolve(started).catch((error: unknown) => respond({ err: error, isDisposed: true }));
    });
  }

  private async reply(replyTo: string, id: string, via: string, pattern: string, out: WritePacket): Promise<void> {
    const headers: NsqHeaders = { [HEADER.correlationId]: id };
    if (out.isDisposed) headers[HEADER.isDisposed] = 'true';
    let payload: Buffer;
    if (out.err !== undefined) {
      headers[HEADER.error] = 'true';
      const err = out.err instanceof Error ? { status: 'error', message: out.err.message } : out.err;
      ({ payload } = encodePayload(err));
    } else if (out.response !== undefined) {
      const encoded = toPayload(await this.payloadSerializer.serialize({ pattern, data: out.response }));
      payload = encoded.payload;
      if (encoded.contentType) headers[HEADER.contentType] = encoded.contentType;
    } else {
      payload = Buffer.alloc(0);
    }
    try {
      await this.publisher!.publishVia(via, replyTo, encodeEnvelope(headers, payload));
    } catch (error) {
      this.logger.error(`cannot reply to request ${id} on "${replyTo}": ${describe(error)}`);
      throw error;
    }
  }
}
