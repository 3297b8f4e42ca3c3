import { Inject, Injectable } from '@nestjs/common';
import { DEFAULT_CLOSE_TIMEOUT } from './constants.js';
import type { NsqSubscriptionOptions } from './interfaces.js';
import { NestNsqLogger } from './nest-logger.js';
import { NsqClient } from './client/nsq.client.js';
import type { NsqContext } from './nsq.context.js';
import { NSQ_MODULE_OPTIONS, type NsqModuleOptions } from './nsq.module-definition.js';
import { NsqRecord } from './nsq.record.js';
import { NsqSubscription, resolveSubscription } from './subscription.js';
import type { NsqHeaders } from './wire/envelope.js';
import { NsqDeserializer } from './wire/serializer.js';

export interface NsqPublishOptions {
  /** DPUB: deliver after this many ms. */
  delayMs?: number;
  /** Envelope headers (message-key, traceparent, your own). */
  headers?: NsqHeaders;
}

export type NsqBrokerHandler<T> = (payload: T, ctx: NsqContext) => unknown;

/** A subscription made with NsqBroker.subscribe(). */
export interface NsqBrokerSubscription {
  readonly topic: string;
  readonly channel: string;
  /** CLS, wait for running handlers (up to closeTimeout), close. */
  close(): Promise<void>;
}

/**
 * The publish service, Kratos broker style: publish without decorators or observables, and
 * subscribe from code (a handler function instead of an @EventPattern method). Subscriptions have
 * the same semantics as NsqServer's: FIN, REQ with backoff, dead letters, TOUCH.
 */
@Injectable()
export class NsqBroker {
  private readonly subscriptions = new Set<NsqSubscription>();
  private readonly logger = new NestNsqLogger(NsqBroker.name);

  constructor(
    @Inject(NSQ_MODULE_OPTIONS) private readonly options: NsqModuleOptions,
    @Inject(NsqClient) private readonly client: NsqClient,
  ) {}

  /** Publishes one message; resolves when nsqd acknowledged it. */
  publish<T>(topic: string, payload: T, options: NsqPublishOptions = {}): Promise<void> {
    const record = options.delayMs !== undefined || options.headers ? new NsqRecord(payload, options) : payload;
    return this.client.publishRecord(topic, record);
  }

  /** Publishes several messages in one MPUB (all or none). */
  publishMany<T>(topic: string, payloads: readonly T[], options: Pick<NsqPublishOptions, 'headers'> = {}): Promise<void> {
    return this.client.publishRecord(topic, new NsqRecord([...payloads], { ...options, batch: true }));
  }

  /** Subscribes `handler` to topic/channel; resolves once the first connections are made. */
  async subscribe<T = unknown>(topic: string, channel: string, handler: NsqBrokerHandler<T>, options: NsqSubscriptionOptions = {}): Promise<NsqBrokerSubscription> {
    const settings = resolveSubscription(topic, { ...this.options.subscription }, { ...options, channel });
    const publisher = await this.client.connect();
    const subscription = new NsqSubscription(
      settings,
      this.options,
      new NsqDeserializer(),
      publisher,
      async (packet, ctx) => {
        await handler(packet.data as T, ctx);
      },
      this.options.logger ?? this.logger,
      this.options.hooks,
    );
    subscription.consumer.on('error', (error: Error) => this.logger.warn(`${subscription.name}: ${error.message}`));
    this.subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (error) {
      this.subscriptions.delete(subscription);
      await subscription.close(0);
      throw error;
    }
    const timeout = this.options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    return {
      topic,
      channel,
      close: async () => {
        this.subscriptions.delete(subscription);
        await subscription.close(timeout);
      },
    };
  }

  /** Closes every subscription (waiting for running handlers). NsqModule calls it on shutdown, before closing the client. */
  async close(): Promise<void> {
    const timeout = this.options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    const all = [...this.subscriptions];
    this.subscriptions.clear();
    await Promise.all(all.map((s) => s.close(timeout)));
  }
}
