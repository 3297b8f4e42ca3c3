/** transportId of NsqServer: bind handlers to it with `@EventPattern('topic', NSQ_TRANSPORT)` in hybrid apps. */
export const NSQ_TRANSPORT = Symbol('NSQ_TRANSPORT');

export const DEFAULT_CLOSE_TIMEOUT = 10_000;
export const DEFAULT_REQUEST_TIMEOUT = 30_000;
export const DEFAULT_REPLY_TOPIC_PREFIX = 'reply';
export const REPLY_CHANNEL = 'reply#ephemeral';
export const NO_MESSAGE_HANDLER = 'There is no matching message handler defined in the remote service.';

/** Status values of NsqServer and NsqClient (`app.status`, `client.status`). */
export const NsqStatus = {
  CONNECTED: 'connected',
  DISCONNECTED: 'disconnected',
  RECONNECTING: 'reconnecting',
} as const;
export type NsqStatus = (typeof NsqStatus)[keyof typeof NsqStatus];
