import { NsqDecodeError, NsqEncodeError } from '../errors.js';

/**
 * The opt-in envelope: NSQ has no message headers, so headers travel in the body, framed as
 *
 *   magic   6 bytes  00 4E 53 51 45 01   ("\0NSQE" + format version 1)
 *   length  4 bytes  uint32 big-endian: byte length of the header block
 *   headers length bytes, a UTF-8 JSON object whose values are all strings
 *   payload the rest: the payload exactly as it would be sent without an envelope
 *
 * A plain body never starts with the magic: JSON and text cannot start with a NUL byte, and a
 * binary payload that happens to start with it is always sent inside an envelope (with no
 * headers), so a receiver can tell the two apart from the first six bytes alone.
 */
export const ENVELOPE_MAGIC = Buffer.from([0x00, 0x4e, 0x53, 0x51, 0x45, 0x01]);
const PREFIX = ENVELOPE_MAGIC.length + 4;
/** Header blocks larger than this are refused: headers are for keys and trace ids, not data. */
export const MAX_HEADER_BYTES = 64 * 1024;

export type NsqHeaders = Record<string, string>;

/** Header names the transport reads and writes. Others pass through untouched. */
export const HEADER = {
  /** Unique per published message (UUID); links a publish to its deliveries (message history). */
  messageKey: 'message-key',
  /** Publish time, ms since the epoch, as a decimal string. */
  timestamp: 'timestamp',
  /** How the payload is encoded: application/json, text/plain; charset=utf-8 or application/octet-stream. */
  contentType: 'content-type',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** On a request: the topic the reply goes to. */
  replyTo: 'reply-to',
  /** On a request and its replies: the id that pairs them. */
  correlationId: 'correlation-id',
  /** On a request: ms since the epoch after which the caller no longer waits; handlers skip it. */
  deadline: 'deadline',
  /** On a reply: 'true' when the payload is the error the handler raised. */
  error: 'error',
  /** On a reply: 'true' on the last reply to a request. */
  isDisposed: 'is-disposed',
  /** On a dead-lettered message: why (max_attempts, decode_failed), the error text, where it came from. */
  deadLetterReason: 'dead-letter-reason',
  deadLetterError: 'dead-letter-error',
  originalTopic: 'original-topic',
  originalChannel: 'original-channel',
  originalMessageId: 'original-message-id',
  originalAttempts: 'original-attempts',
  originalTimestamp: 'original-timestamp',
  originalNsqd: 'original-nsqd',
  deadLetteredAt: 'dead-lettered-at',
} as const;

export const CONTENT_TYPE = {
  json: 'application/json',
  text: 'text/plain; charset=utf-8',
  binary: 'application/octet-stream',
} as const;

export function isEnvelope(body: Buffer): boolean {
  return body.length >= ENVELOPE_MAGIC.length && body[0] === 0x00 && body.subarray(0, ENVELOPE_MAGIC.length).equals(ENVELOPE_MAGIC);
}

export function encodeEnvelope(headers: NsqHeaders, payload: Buffer): Buffer {
  for (const [key, value] of Object.entries(headers)) {
    if (typeof value !== 'string') throw new NsqEncodeError(`header "${key}" must be a string, got ${typeof value}`);
  }
  const json = Buffer.from(JSON.stringify(headers), 'utf8');
  if (json.length > MAX_HEADER_BYTES) throw new NsqEncodeError(`headers take ${json.length} bytes; at most ${MAX_HEADER_BYTES} are allowed`);
  const out = Buffer.allocUnsafe(PREFIX + json.length + payload.length);
  ENVELOPE_MAGIC.copy(out, 0);
  out.writeUInt32BE(json.length, ENVELOPE_MAGIC.length);
  json.copy(out, PREFIX);
  payload.copy(out, PREFIX + json.length);
  return out;
}

/** Splits an envelope into headers and payload (a view, not a copy). Throws NsqDecodeError when it is broken. */
export function decodeEnvelope(body: Buffer): { headers: NsqHeaders; payload: Buffer } {
  if (body.length < PREFIX) throw new NsqDecodeError(`envelope cut short: ${body.length} bytes, the header length alone needs ${PREFIX}`);
  const length = body.readUInt32BE(ENVELOPE_MAGIC.length);
  if (length > MAX_HEADER_BYTES || PREFIX + length > body.length) {
    throw new NsqDecodeError(`envelope header block of ${length} bytes does not fit in a ${body.length}-byte body`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(PREFIX, PREFIX + length)));
  } catch (error) {
    throw new NsqDecodeError(`envelope headers are not UTF-8 JSON: ${(error as Error).message}`, { cause: error });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new NsqDecodeError('envelope headers must be a JSON object');
  const headers: NsqHeaders = Object.create(null) as NsqHeaders;
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new NsqDecodeError(`envelope header "${key}" is not a string`);
    headers[key] = value;
  }
  return { headers, payload: body.subarray(PREFIX + length) };
}
