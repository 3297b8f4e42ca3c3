import type { ConnectionOptions, ConsumerOptions, NsqLogger, ProducerInput, RequeueDelay } from '../../nsq/src/index.js';
import type { NsqPublishStrategy } from './publisher.js';
import type { NsqBodyMode } from './wire/payload.js';
import type { NsqPacketDeserializer, NsqPayloadSerializer } from './wire/serializer.js';
import type { NsqTransportHooks } from './hooks.js';

/** Where nsqd is, and how to connect to it. */
export interface NsqConnectionConfig {
  /** nsqd TCP addresses (host:port). Publishing needs at least one. */
  nsqdTCPAddresses?: string[];
  /** nsqlookupd HTTP addresses (host:port or URL); subscriptions discover nsqd through them. */
  lookupdHTTPAddresses?: string[];
  /**
   * Options for every nsqd connection (libs/nsq CONNECTION_OPTIONS): tls, authSecret, clientId,
   * heartbeatInterval, msgTimeout, outputBufferSize, deflate, …
   */
  connection?: Partial<ConnectionOptions>;
  /** Where libs/nsq logs; default: Nest's Logger with the class name as context. */
  logger?: NsqLogger;
  /** Observers of publishes and of each message's fate (used by message history). */
  hooks?: NsqTransportHooks;
}

/** Per-subscription settings: server-wide defaults, overridden per handler by the decorator's extras. */
export interface NsqSubscriptionOptions {
  /** The NSQ channel. Each channel gets every message of the topic; consumers on one channel share them. */
  channel?: string;
  /** Messages in flight from nsqd at once (RDY), over all nsqd connections. Default 100. */
  maxInFlight?: number;
  /** Handlers running at once. Default: maxInFlight. */
  concurrency?: number;
  /** Deliveries per message; a message that fails its last attempt is dead-lettered. 0 = unlimited. Default 5. */
  maxAttempts?: number;
  /** Delay before a failed message is redelivered: ms, or (attempts) => ms. Default go-nsq's: 90 s x attempts, at most 15 min. */
  requeueDelay?: RequeueDelay;
  /** After a failure, pause the whole subscription (RDY 0) with exponential backoff, as go-nsq does. Default true. */
  backoff?: boolean;
  /** Dead-letter topic: a name, a function of (topic, channel), or false to finish (drop, with an error log) instead. Default `<topic>.dead`. */
  deadLetterTopic?: string | false | ((topic: string, channel: string) => string);
  /** How bodies are read: 'json' (default), 'text' or 'buffer'. See NsqBodyMode. */
  body?: NsqBodyMode;
  /** The handler answers through NsqContext (finish/requeue); the transport does not FIN on success. Default false. */
  manualAck?: boolean;
  /** TOUCH messages whose handler runs past half of msg_timeout, so long work is not redelivered. Default true. */
  autoTouch?: boolean;
  /** Further libs/nsq Consumer options (backoffMultiplier, maxBackoffDuration, lookupdPollInterval, …). */
  consumer?: Partial<Omit<ConsumerOptions, 'topic' | 'channel' | 'handler'>>;
}

export interface NsqServerOptions extends NsqConnectionConfig, Omit<NsqSubscriptionOptions, 'channel'> {
  /** The channel of every handler that does not name its own. Required: an unnamed ephemeral channel loses messages while the service is down. */
  channel: string;
  /** ms close() waits for running handlers after it stopped taking messages. Default 10 000. */
  closeTimeout?: number;
  /** Producer options for replies and dead letters. */
  producer?: ProducerInput;
  /** Turns a delivered message into { pattern, data, id, metadata }. Default NsqDeserializer. */
  deserializer?: NsqPacketDeserializer;
  /** Encodes replies to requests. Default NsqSerializer. */
  serializer?: NsqPayloadSerializer;
}

export interface NsqClientOptions extends NsqConnectionConfig {
  /** Always wrap messages in the envelope (message-key, timestamp, metadata). Default false: plain bodies, unless headers are given. */
  envelope?: boolean;
  /** How publishes choose among several nsqd. Default 'failover'. */
  strategy?: NsqPublishStrategy;
  /** Producer options (maxOutstanding, retries, coalescePublishes, …). */
  producer?: ProducerInput;
  /** ms send() waits for a reply. Default 30 000. */
  requestTimeout?: number;
  /** First part of the client's reply topic, `<prefix>.<random>#ephemeral`. Default 'reply'. */
  replyTopicPrefix?: string;
  /** Encodes emitted and sent data. Default NsqSerializer. */
  serializer?: NsqPayloadSerializer;
  /** Reads replies (the body mode of replies is json). */
  deserializer?: NsqPacketDeserializer;
}
