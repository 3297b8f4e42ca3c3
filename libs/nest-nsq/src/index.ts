export { NsqServer, type NsqServerEvents } from './server/nsq.server.js';
export { NsqClient, type NsqClientEvents } from './client/nsq.client.js';
export { NsqContext, type NsqContextArgs } from './nsq.context.js';
export { NsqBroker, type NsqBrokerHandler, type NsqBrokerSubscription, type NsqPublishOptions } from './nsq.broker.js';
export { NsqModule } from './nsq.module.js';
export { NSQ_MODULE_OPTIONS, NSQ_OPTIONS_TYPE, NSQ_ASYNC_OPTIONS_TYPE, type NsqModuleOptions } from './nsq.module-definition.js';
export { NsqRecord, NsqRecordBuilder, type NsqRecordOptions } from './nsq.record.js';
export { NsqPublisher, type NsqPublishStrategy, type NsqPublisherOptions } from './publisher.js';
export { NestNsqLogger } from './nest-logger.js';
export { NSQ_TRANSPORT, NsqStatus, NO_MESSAGE_HANDLER, DEFAULT_CLOSE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT } from './constants.js';
export { NsqDecodeError, NsqEncodeError, NsqRequestTimeoutError, NsqTransportConfigError } from './errors.js';
export type { NsqClientOptions, NsqConnectionConfig, NsqServerOptions, NsqSubscriptionOptions } from './interfaces.js';
export type { NsqTransportHooks, NsqPublishedEvent, NsqMessageEvent } from './hooks.js';
export { DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_IN_FLIGHT, defaultDeadLetterTopic } from './subscription.js';
export {
  ENVELOPE_MAGIC,
  HEADER,
  CONTENT_TYPE,
  MAX_HEADER_BYTES,
  type NsqHeaders,
  decodeEnvelope,
  encodeEnvelope,
  isEnvelope,
} from './wire/envelope.js';
export { type NsqBodyMode, decodePayload, encodePayload } from './wire/payload.js';
export {
  NsqDeserializer,
  NsqSerializer,
  buildBody,
  splitBody,
  type NsqDeserializeOptions,
  type NsqIncomingPacket,
  type NsqPacketDeserializer,
  type NsqPayloadSerializer,
  type NsqSerializedPayload,
} from './wire/serializer.js';
