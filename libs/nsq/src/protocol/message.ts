import { MESSAGE_HEADER_LENGTH, MESSAGE_ID_LENGTH } from './constants.js';
import { NsqFrameError } from './errors.js';

/**
 * The payload of a message frame:
 * `[int64 timestamp ns][uint16 attempts][16-byte ASCII id][body]` (nsqd/message.go).
 * Decoding only checks the length; the fields are read on demand from the frame's bytes, so a
 * delivered message costs no copy of its body.
 */
export function assertMessagePayload(data: Buffer): void {
  if (data.length < MESSAGE_HEADER_LENGTH) {
    throw new NsqFrameError(
      `message frame of ${data.length} bytes is shorter than the ${MESSAGE_HEADER_LENGTH}-byte message header`,
    );
  }
}

export function readTimestamp(data: Buffer): bigint {
  return data.readBigInt64BE(0);
}

export function readAttempts(data: Buffer): number {
  return data.readUInt16BE(8);
}

export function readId(data: Buffer): Buffer {
  return data.subarray(10, 10 + MESSAGE_ID_LENGTH);
}

export function readBody(data: Buffer): Buffer {
  return data.subarray(MESSAGE_HEADER_LENGTH);
}

export interface DecodedMessage {
  /** Nanoseconds since the epoch, set by nsqd when the message was published. */
  timestamp: bigint;
  attempts: number;
  id: string;
  body: Buffer;
}

export function decodeMessage(data: Buffer): DecodedMessage {
  assertMessagePayload(data);
  return {
    timestamp: readTimestamp(data),
    attempts: readAttempts(data),
    id: readId(data).toString('latin1'),
    body: readBody(data),
  };
}

/** Encodes a message payload (what nsqd sends in a message frame and stores in its disk queue). */
export function encodeMessage(message: { timestamp: bigint; attempts: number; id: string | Buffer; body: Buffer }): Buffer {
  const id = typeof message.id === 'string' ? Buffer.from(message.id, 'latin1') : message.id;
  if (id.length !== MESSAGE_ID_LENGTH) {
    throw new NsqFrameError(`message id must be ${MESSAGE_ID_LENGTH} bytes, got ${id.length}`);
  }
  const out = Buffer.allocUnsafe(MESSAGE_HEADER_LENGTH + message.body.length);
  out.writeBigInt64BE(message.timestamp, 0);
  out.writeUInt16BE(message.attempts, 8);
  id.copy(out, 10);
  message.body.copy(out, MESSAGE_HEADER_LENGTH);
  return out;
}
