import { MESSAGE_ID_LENGTH, NSQD_DEFAULTS } from './constants.js';
import { NsqValidationError } from './errors.js';
import { assertValidChannel, assertValidTopic } from './names.js';

/**
 * Encoders for every V2 command (`NAME[ param]*\n[int32 size][body]`). Each returns one Buffer
 * ready for the socket and validates its arguments first, so bad input becomes an
 * NsqValidationError here instead of a fatal error frame from nsqd.
 */

export type Body = Buffer | string;

export interface BodyLimits {
  /** nsqd --max-msg-size (default 1 MiB). */
  maxMsgSize?: number;
  /** nsqd --max-body-size (default 5 MiB), the bound on an MPUB's whole body. */
  maxBodySize?: number;
}

const NL = 0x0a;

function bodyLength(body: Body, field: string, maxMsgSize: number): number {
  let len: number;
  if (typeof body === 'string') len = Buffer.byteLength(body, 'utf8');
  else if (Buffer.isBuffer(body)) len = body.length;
  else throw new NsqValidationError(field, `${field} must be a Buffer or a string, got ${typeof body}`);
  if (len === 0) throw new NsqValidationError(field, `${field} is empty: nsqd rejects empty messages`);
  if (len > maxMsgSize) {
    throw new NsqValidationError(field, `${field} is ${len} bytes, over the maximum message size of ${maxMsgSize} bytes (nsqd --max-msg-size)`);
  }
  return len;
}

function writeBody(out: Buffer, offset: number, body: Body, len: number): number {
  if (typeof body === 'string') out.write(body, offset, len, 'utf8');
  else body.copy(out, offset);
  return offset + len;
}

/** A command line with no body: `NAME p1 p2\n`. Parameters are plain ASCII. */
function line(text: string): Buffer {
  return Buffer.from(text + '\n', 'latin1');
}

function withBody(header: string, body: Buffer): Buffer {
  const headerLen = header.length + 1;
  const out = Buffer.allocUnsafe(headerLen + 4 + body.length);
  out.write(header, 0, 'latin1');
  out[headerLen - 1] = NL;
  out.writeInt32BE(body.length, headerLen);
  body.copy(out, headerLen + 4);
  return out;
}

// A topic is validated once, then its command prefix is cached: publishing is a hot path.
const prefixes = { PUB: new Map<string, Buffer>(), MPUB: new Map<string, Buffer>() };
const PREFIX_CACHE_LIMIT = 4096;

function prefix(command: 'PUB' | 'MPUB', topic: string): Buffer {
  const cache = prefixes[command];
  let cached = cache.get(topic);
  if (cached === undefined) {
    assertValidTopic(topic);
    if (cache.size >= PREFIX_CACHE_LIMIT) cache.clear();
    cached = Buffer.from(`${command} ${topic}\n`, 'latin1');
    cache.set(topic, cached);
  }
  return cached;
}

/** Checks a PUB's topic and body without encoding it; returns the body's byte length. */
export function validatePub(topic: string, body: Body, limits?: BodyLimits): number {
  prefix('PUB', topic);
  return bodyLength(body, 'body', limits?.maxMsgSize ?? NSQD_DEFAULTS.maxMsgSize);
}

export function encodeIdentify(data: Record<string, unknown>): Buffer {
  return withBody('IDENTIFY', Buffer.from(JSON.stringify(data), 'utf8'));
}

export function encodeAuth(secret: string | Buffer): Buffer {
  const body = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (body.length === 0) throw new NsqValidationError('authSecret', 'authSecret is empty: nsqd requires a secret for AUTH');
  return withBody('AUTH', body);
}

export function encodeSub(topic: string, channel: string): Buffer {
  assertValidTopic(topic);
  assertValidChannel(channel);
  return line(`SUB ${topic} ${channel}`);
}

export function encodePub(topic: string, body: Body, limits?: BodyLimits): Buffer {
  const head = prefix('PUB', topic);
  const len = bodyLength(body, 'body', limits?.maxMsgSize ?? NSQD_DEFAULTS.maxMsgSize);
  const out = Buffer.allocUnsafe(head.length + 4 + len);
  head.copy(out, 0);
  out.writeInt32BE(len, head.length);
  writeBody(out, head.length + 4, body, len);
  return out;
}

export function encodeMpub(topic: string, bodies: readonly Body[], limits?: BodyLimits): Buffer {
  const head = prefix('MPUB', topic);
  if (!Array.isArray(bodies) || bodies.length === 0) {
    throw new NsqValidationError('bodies', 'MPUB needs at least one message body');
  }
  const maxMsgSize = limits?.maxMsgSize ?? NSQD_DEFAULTS.maxMsgSize;
  const maxBodySize = limits?.maxBodySize ?? NSQD_DEFAULTS.maxBodySize;
  const lengths = new Array<number>(bodies.length);
  let total = 4;
  for (let i = 0; i < bodies.length; i++) {
    const len = bodyLength(bodies[i]!, `bodies[${i}]`, maxMsgSize);
    lengths[i] = len;
    total += 4 + len;
  }
  if (total > maxBodySize) {
    throw new NsqValidationError(
      'bodies',
      `MPUB body of ${total} bytes exceeds the maximum body size of ${maxBodySize} bytes (nsqd --max-body-size): split the batch`,
    );
  }
  const out = Buffer.allocUnsafe(head.length + 4 + total);
  head.copy(out, 0);
  let offset = head.length;
  offset = out.writeInt32BE(total, offset);
  offset = out.writeInt32BE(bodies.length, offset);
  for (let i = 0; i < bodies.length; i++) {
    offset = out.writeInt32BE(lengths[i]!, offset);
    offset = writeBody(out, offset, bodies[i]!, lengths[i]!);
  }
  return out;
}

function assertDuration(field: string, ms: number, max: number): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > max) {
    throw new NsqValidationError(field, `${field} must be an integer number of milliseconds in 0..${max}, got ${ms}`);
  }
}

export function encodeDpub(topic: string, delayMs: number, body: Body, limits?: BodyLimits & { maxReqTimeout?: number }): Buffer {
  assertValidTopic(topic);
  assertDuration('delayMs', delayMs, limits?.maxReqTimeout ?? NSQD_DEFAULTS.maxReqTimeout);
  const header = `DPUB ${topic} ${delayMs}\n`;
  const len = bodyLength(body, 'body', limits?.maxMsgSize ?? NSQD_DEFAULTS.maxMsgSize);
  const out = Buffer.allocUnsafe(header.length + 4 + len);
  out.write(header, 0, 'latin1');
  out.writeInt32BE(len, header.length);
  writeBody(out, header.length + 4, body, len);
  return out;
}

export function encodeRdy(count: number, maxRdyCount: number = NSQD_DEFAULTS.maxRdyCount): Buffer {
  if (!Number.isInteger(count) || count < 0 || count > maxRdyCount) {
    throw new NsqValidationError('count', `RDY count must be an integer in 0..${maxRdyCount}, got ${count}`);
  }
  return line(`RDY ${count}`);
}

function idBytes(id: string | Buffer): Buffer {
  const buf = typeof id === 'string' ? Buffer.from(id, 'latin1') : id;
  if (buf.length !== MESSAGE_ID_LENGTH) {
    throw new NsqValidationError('id', `message id must be ${MESSAGE_ID_LENGTH} bytes, got ${buf.length}`);
  }
  return buf;
}

const FIN_PREFIX = Buffer.from('FIN ', 'latin1');
const REQ_PREFIX = Buffer.from('REQ ', 'latin1');
const TOUCH_PREFIX = Buffer.from('TOUCH ', 'latin1');

// FIN is written once per message consumed: copy fixed bytes, no string building.
function idCommand(prefix: Buffer, id: string | Buffer, suffix = ''): Buffer {
  const raw = idBytes(id);
  const out = Buffer.allocUnsafe(prefix.length + MESSAGE_ID_LENGTH + suffix.length + 1);
  prefix.copy(out, 0);
  raw.copy(out, prefix.length);
  let offset = prefix.length + MESSAGE_ID_LENGTH;
  if (suffix) offset += out.write(suffix, offset, 'latin1');
  out[offset] = NL;
  return out;
}

export function encodeFin(id: string | Buffer): Buffer {
  return idCommand(FIN_PREFIX, id);
}

/** REQ with a delay; nsqd clamps it to --max-req-timeout, so only the sign and type are checked here. */
export function encodeReq(id: string | Buffer, delayMs: number): Buffer {
  if (!Number.isInteger(delayMs) || delayMs < 0) {
    throw new NsqValidationError('delayMs', `requeue delay must be a non-negative integer of milliseconds, got ${delayMs}`);
  }
  return idCommand(REQ_PREFIX, id, ' ' + delayMs);
}

export function encodeTouch(id: string | Buffer): Buffer {
  return idCommand(TOUCH_PREFIX, id);
}

const CLS = line('CLS');
const NOP = line('NOP');

export function encodeCls(): Buffer {
  return CLS;
}

export function encodeNop(): Buffer {
  return NOP;
}
