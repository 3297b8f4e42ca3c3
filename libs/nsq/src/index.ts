export * from './protocol/index.js';
export { Connection, parseAddress, type ConnectionDelegate, type IdentifyResponse, type AuthResponse } from './client/connection.js';
export { Producer, type ProducerInput } from './client/producer.js';
export { Consumer, type ConsumerInput, type ConsumerOptions, type ConsumerStats, type MessageHandler } from './client/consumer.js';
export { Message, type MessageResponder } from './client/message.js';
export { LookupdPoller, type LookupdPollerOptions } from './client/lookupd.js';
export { BackoffPolicy, reconnectDelay, requeueDelayFor, type BackoffStrategy } from './client/backoff.js';
export { distributeRdy, rotateRdy, planRdy, type RdyConnectionState, type RdyPlan } from './client/rdy.js';
export {
  CONNECTION_OPTIONS,
  PRODUCER_OPTIONS,
  CONSUMER_OPTIONS,
  optionsMarkdown,
  resolveOptions,
  type ConnectionOptions,
  type ProducerOptions,
  type OptionSpec,
  type OptionTable,
  type RequeueDelay,
} from './client/options.js';
export { defaultLogger, silentLogger, type NsqLogger } from './client/logger.js';
export * from './client/http.js';
export * from './nsqd/index.js';
export * from './lookupd/index.js';
