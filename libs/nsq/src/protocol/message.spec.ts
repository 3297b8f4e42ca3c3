import { describe, it, expect } from '@jest/globals';
import { FrameType, MESSAGE_HEADER_LENGTH } from './constants.js';
import { NsqFrameError } from './errors.js';
import { FrameDecoder, encodeFrame } from './frame.js';
import {
  assertMessagePayload,
  decodeMessage,
  encodeMessage,
  readAttempts,
  readBody,
  readId,
  readTimestamp,
} from './message.js';

const ID = '0a1b2c3d4e5f6789';

/** A message payload built by hand: [int64 ts][uint16 attempts][16-byte id][body]. */
function rawPayload(ts: bigint, attempts: number, id: string, body: Buffer): Buffer {
  const header = Buffer.alloc(26);
  let t = BigInt.asUintN(64, ts);
  for (let i = 7; i >= 0; i--) {
    header[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  header[8] = (attempts >> 8) & 0xff;
  header[9] = attempts & 0xff;
  header.write(id, 10, 'latin1');
  return Buffer.concat([header, body]);
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

describe('encodeMessage', () => {
  it('writes [int64 BE timestamp][uint16 BE attempts][16-byte id][body]', () => {
    const out = encodeMessage({ timestamp: 0x0102030405060708n, attempts: 0x0a0b, id: ID, body: Buffer.from('xyz') });
    expect(out).toEqual(
      Buffer.concat([
        Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]),
        Buffer.from([0x0a, 0x0b]),
        Buffer.from(ID, 'latin1'),
        Buffer.from('xyz'),
      ]),
    );
    expect(out.length).toBe(MESSAGE_HEADER_LENGTH + 3);
  });

  it('matches a hand-built payload', () => {
    const body = Buffer.from([0, 0xff, 0x0a]);
    expect(encodeMessage({ timestamp: 1700000000123456789n, attempts: 3, id: ID, body })).toEqual(
      rawPayload(1700000000123456789n, 3, ID, body),
    );
  });

  it('accepts the id as a Buffer', () => {
    const out = encodeMessage({ timestamp: 1n, attempts: 1, id: Buffer.from(ID), body: Buffer.from('b') });
    expect(out.subarray(10, 26).toString('latin1')).toBe(ID);
  });

  it('rejects an id that is not 16 bytes', () => {
    for (const id of ['short', '0123456789abcdef0', Buffer.alloc(15)]) {
      const err = catchError(() => encodeMessage({ timestamp: 1n, attempts: 1, id, body: Buffer.from('b') }));
      expect(err).toBeInstanceOf(NsqFrameError);
      expect((err as NsqFrameError).message).toContain(`got ${id.length}`);
    }
  });
});

describe('decodeMessage', () => {
  it('reads every field of a hand-built payload', () => {
    const body = Buffer.from('the body \u00e9', 'utf8');
    const msg = decodeMessage(rawPayload(1700000000123456789n, 7, ID, body));
    expect(msg).toEqual({ timestamp: 1700000000123456789n, attempts: 7, id: ID, body });
  });

  it('round-trips encodeMessage for assorted values', () => {
    const cases = [
      { timestamp: 0n, attempts: 0, id: '0000000000000000', body: Buffer.from('a') },
      { timestamp: 1n, attempts: 1, id: ID, body: Buffer.alloc(0) },
      { timestamp: 9223372036854775807n, attempts: 65535, id: 'ffffffffffffffff', body: Buffer.alloc(70000, 0xab) },
      { timestamp: 1732170000000000000n, attempts: 256, id: '0123456789abcdef', body: Buffer.from([0, 1, 2, 3]) },
    ];
    for (const c of cases) {
      expect(decodeMessage(encodeMessage(c))).toEqual(c);
    }
  });

  it('reads attempts as an unsigned 16-bit number', () => {
    expect(decodeMessage(rawPayload(1n, 0xffff, ID, Buffer.from('x'))).attempts).toBe(65535);
    expect(decodeMessage(rawPayload(1n, 0x8000, ID, Buffer.from('x'))).attempts).toBe(32768);
    expect(decodeMessage(rawPayload(1n, 0x0100, ID, Buffer.from('x'))).attempts).toBe(256);
  });

  it('reads the timestamp as a bigint without losing precision above 2^53', () => {
    const ts = 1732170000123456789n; // nanoseconds: not representable as a double
    expect(BigInt(Number(ts))).not.toBe(ts); // sanity: a double cannot hold it exactly
    const msg = decodeMessage(rawPayload(ts, 1, ID, Buffer.from('x')));
    expect(typeof msg.timestamp).toBe('bigint');
    expect(msg.timestamp).toBe(ts);
  });

  it('returns the 16-byte id as a string', () => {
    const msg = decodeMessage(rawPayload(1n, 1, 'abcdef0123456789', Buffer.from('body')));
    expect(msg.id).toBe('abcdef0123456789');
    expect(msg.id).toHaveLength(16);
  });

  it('returns the body as a view of the payload (no copy)', () => {
    const payload = rawPayload(1n, 1, ID, Buffer.from('view'));
    const msg = decodeMessage(payload);
    expect(msg.body.buffer).toBe(payload.buffer);
    expect(msg.body.byteOffset).toBe(payload.byteOffset + 26);
    payload[26] = 0x56; // 'V'
    expect(msg.body.toString()).toBe('View');
  });

  it('accepts a payload of exactly 26 bytes (empty body)', () => {
    const msg = decodeMessage(rawPayload(5n, 2, ID, Buffer.alloc(0)));
    expect(msg.body.length).toBe(0);
    expect(msg.attempts).toBe(2);
  });

  it('rejects a payload shorter than the 26-byte header with NsqFrameError', () => {
    for (const length of [0, 1, 10, 25]) {
      const err = catchError(() => decodeMessage(Buffer.alloc(length)));
      expect(err).toBeInstanceOf(NsqFrameError);
      expect((err as NsqFrameError).code).toBe('ERR_NSQ_FRAME');
      expect((err as NsqFrameError).message).toContain(`${length} bytes`);
      expect((err as NsqFrameError).message).toContain('26-byte');
    }
  });

  it('decodes a message frame received through the FrameDecoder, body still a view of the socket chunk', () => {
    const payload = encodeMessage({ timestamp: 42n, attempts: 3, id: ID, body: Buffer.from('over the wire') });
    const chunk = Buffer.concat([encodeFrame(FrameType.Response, '_heartbeat_'), encodeFrame(FrameType.Message, payload)]);
    const messages: ReturnType<typeof decodeMessage>[] = [];
    new FrameDecoder().push(chunk, (type, data) => {
      if (type === FrameType.Message) messages.push(decodeMessage(data));
    });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toEqual({ timestamp: 42n, attempts: 3, id: ID, body: Buffer.from('over the wire') });
    const bodyOffset = encodeFrame(FrameType.Response, '_heartbeat_').length + 8 + 26;
    expect(messages[0]!.body.byteOffset).toBe(chunk.byteOffset + bodyOffset);
    expect(messages[0]!.body.buffer).toBe(chunk.buffer);
  });
});

describe('field readers', () => {
  const payload = rawPayload(123456789012345678n, 513, ID, Buffer.from('abc'));

  it('read each field at its offset', () => {
    assertMessagePayload(payload);
    expect(readTimestamp(payload)).toBe(123456789012345678n);
    expect(readAttempts(payload)).toBe(513);
    expect(readId(payload)).toEqual(Buffer.from(ID));
    expect(readBody(payload)).toEqual(Buffer.from('abc'));
  });

  it('readId returns a view of the payload', () => {
    const id = readId(payload);
    expect(id.buffer).toBe(payload.buffer);
    expect(id.byteOffset).toBe(payload.byteOffset + 10);
  });

  it('assertMessagePayload rejects 25 bytes and accepts 26', () => {
    expect(() => assertMessagePayload(Buffer.alloc(25))).toThrow(NsqFrameError);
    expect(() => assertMessagePayload(Buffer.alloc(26))).not.toThrow();
  });
});
