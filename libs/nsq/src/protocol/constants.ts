/** Magic bytes a client sends first to select nsqd's protocol V2. */
export const MAGIC_V2 = Buffer.from('  V2', 'ascii');
/** Magic bytes for nsqlookupd's protocol V1. */
export const MAGIC_V1 = Buffer.from('  V1', 'ascii');

/** Frame types of protocol V2 (`[int32 size][int32 frameType][data]`). */
export const FrameType = {
  Response: 0,
  Error: 1,
  Message: 2,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const RESPONSE_OK = 'OK';
export const RESPONSE_CLOSE_WAIT = 'CLOSE_WAIT';
export const RESPONSE_HEARTBEAT = '_heartbeat_';

/** nsqd 1.3.0 defaults that bound what a client may send (nsqd/options.go NewOptions). */
export const NSQD_DEFAULTS = {
  maxMsgSize: 1024 * 1024,
  maxBodySize: 5 * 1024 * 1024,
  maxRdyCount: 2500,
  maxMsgTimeout: 15 * 60 * 1000,
  maxReqTimeout: 60 * 60 * 1000,
  maxHeartbeatInterval: 60 * 1000,
  maxOutputBufferSize: 64 * 1024,
  minOutputBufferTimeout: 25,
  maxOutputBufferTimeout: 30 * 1000,
  maxDeflateLevel: 6,
} as const;

/** Length of a message id on the wire (16 ASCII hex characters). */
export const MESSAGE_ID_LENGTH = 16;
/** timestamp (8) + attempts (2) + id (16) */
export const MESSAGE_HEADER_LENGTH = 26;
