import { describe, it, expect } from '@jest/globals';
import {
  encodeAuth,
  encodeCls,
  encodeDpub,
  encodeFin,
  encodeIdentify,
  encodeMpub,
  encodeNop,
  encodePub,
  encodeRdy,
  encodeReq,
  encodeSub,
  encodeTouch,
} from './commands.js';
import type { Body } from './commands.js';
import { NsqError, NsqValidationError } from './errors.js';

const MIB = 1024 * 1024;
const ID = '0a1b2c3d4e5f6789';

/** Big-endian int32 bytes, written by hand. */
function int32(n: number): Buffer {
  return Buffer.from([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** Expected bytes of a command with a body: `line\n[int32 len][body]`. */
function withBody(line: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(line + '\n', 'latin1'), int32(body.length), body]);
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

/** Asserts that `fn` throws an NsqValidationError for `field` (and, optionally, a message matching `message`). */
function expectValidation(fn: () => unknown, field: string, message?: RegExp): NsqValidationError {
  const err = catchError(fn);
  expect(err).toBeInstanceOf(NsqValidationError);
  expect(err).toBeInstanceOf(NsqError);
  const v = err as NsqValidationError;
  expect({ field: v.field, code: v.code }).toEqual({ field, code: 'ERR_NSQ_VALIDATION' });
  if (message) expect(v.message).toMatch(message);
  return v;
}

/** Parses an MPUB command independently of the encoder, per the wire layout. */
function parseMpub(buf: Buffer): { line: string; total: number; bodies: Buffer[]; trailing: number } {
  const nl = buf.indexOf(0x0a);
  const line = buf.subarray(0, nl).toString('latin1');
  let offset = nl + 1;
  const total = buf.readInt32BE(offset);
  offset += 4;
  const bodyStart = offset;
  const n = buf.readInt32BE(offset);
  offset += 4;
  const bodies: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(offset);
    offset += 4;
    bodies.push(buf.subarray(offset, offset + len));
    offset += len;
  }
  expect(offset - bodyStart).toBe(total);
  return { line, total, bodies, trailing: buf.length - offset };
}

describe('encodeIdentify', () => {
  it('writes IDENTIFY\\n[int32 len][JSON]', () => {
    const data = { client_id: 'c1', heartbeat_interval: 30000, feature_negotiation: true };
    const json = '{"client_id":"c1","heartbeat_interval":30000,"feature_negotiation":true}';
    expect(encodeIdentify(data)).toEqual(withBody('IDENTIFY', Buffer.from(json)));
  });

  it('measures the JSON in UTF-8 bytes', () => {
    const out = encodeIdentify({ user_agent: 'nsq-ts/1.0 ☃' });
    const json = Buffer.from('{"user_agent":"nsq-ts/1.0 ☃"}', 'utf8');
    expect(out.readInt32BE('IDENTIFY\n'.length)).toBe(json.length);
    expect(json.length).toBeGreaterThan('{"user_agent":"nsq-ts/1.0 ☃"}'.length);
    expect(out).toEqual(withBody('IDENTIFY', json));
  });

  it('starts with the exact bytes of the command name and newline', () => {
    expect(encodeIdentify({}).subarray(0, 9)).toEqual(Buffer.from([0x49, 0x44, 0x45, 0x4e, 0x54, 0x49, 0x46, 0x59, 0x0a]));
    expect(encodeIdentify({})).toEqual(Buffer.concat([Buffer.from('IDENTIFY\n'), Buffer.from([0, 0, 0, 2]), Buffer.from('{}')]));
  });
});

describe('encodeAuth', () => {
  it('writes AUTH\\n[int32 len][secret] for a string secret (UTF-8)', () => {
    expect(encodeAuth('s3cret')).toEqual(Buffer.from('AUTH\n\x00\x00\x00\x06s3cret', 'latin1'));
    const secret = 'pässwörd€';
    expect(encodeAuth(secret)).toEqual(withBody('AUTH', Buffer.from(secret, 'utf8')));
    expect(encodeAuth(secret).readInt32BE(5)).toBe(Buffer.byteLength(secret));
  });

  it('writes a Buffer secret as-is', () => {
    const secret = Buffer.from([0, 1, 2, 0xff, 0x0a]);
    expect(encodeAuth(secret)).toEqual(withBody('AUTH', secret));
  });

  it('rejects an empty secret', () => {
    expectValidation(() => encodeAuth(''), 'authSecret', /empty/);
    expectValidation(() => encodeAuth(Buffer.alloc(0)), 'authSecret');
  });
});

describe('encodeSub', () => {
  it('writes SUB <topic> <channel>\\n', () => {
    expect(encodeSub('events', 'archive')).toEqual(Buffer.from('SUB events archive\n'));
    expect(encodeSub('a.b_c-d', 'ch#ephemeral')).toEqual(Buffer.from('SUB a.b_c-d ch#ephemeral\n'));
  });

  it('rejects an invalid topic with field "topic"', () => {
    for (const topic of ['', 'has space', 'a'.repeat(65), 'tópic', 'x\n']) {
      expectValidation(() => encodeSub(topic, 'ch'), 'topic');
    }
  });

  it('rejects an invalid channel with field "channel"', () => {
    for (const channel of ['', 'c c', 'c'.repeat(65), 'ch#ephemera', 'ch\nPUB x']) {
      expectValidation(() => encodeSub('topic', channel), 'channel');
    }
  });
});

describe('encodePub', () => {
  it('writes PUB <topic>\\n[int32 len][body] for a Buffer body', () => {
    const body = Buffer.from([0x00, 0x0a, 0xff, 0x20, 0x7f]);
    expect(encodePub('t', body)).toEqual(Buffer.from([0x50, 0x55, 0x42, 0x20, 0x74, 0x0a, 0, 0, 0, 5, 0x00, 0x0a, 0xff, 0x20, 0x7f]));
  });

  it('writes a string body as UTF-8', () => {
    expect(encodePub('topic', 'hello')).toEqual(Buffer.from('PUB topic\n\x00\x00\x00\x05hello', 'latin1'));
  });

  it('uses the UTF-8 byte length of multibyte strings', () => {
    const text = 'héllo, 世界 🚀';
    const utf8 = Buffer.from(text, 'utf8');
    expect(utf8.length).toBe(19); // é=2, 世界=3+3, 🚀=4 bytes
    const out = encodePub('topic', text);
    expect(out.readInt32BE('PUB topic\n'.length)).toBe(19);
    expect(out).toEqual(withBody('PUB topic', utf8));
  });

  it('produces independent buffers for repeated publishes to one topic', () => {
    const first = encodePub('repeat', 'a');
    first.fill(0);
    expect(encodePub('repeat', 'b')).toEqual(Buffer.from('PUB repeat\n\x00\x00\x00\x01b', 'latin1'));
    expect(encodePub('other', 'c')).toEqual(Buffer.from('PUB other\n\x00\x00\x00\x01c', 'latin1'));
  });

  it('rejects an empty body (Buffer or string)', () => {
    expectValidation(() => encodePub('t', Buffer.alloc(0)), 'body', /empty/);
    expectValidation(() => encodePub('t', ''), 'body', /empty/);
  });

  it('rejects a body that is neither a Buffer nor a string', () => {
    expectValidation(() => encodePub('t', 42 as unknown as Body), 'body', /Buffer or a string/);
    expectValidation(() => encodePub('t', null as unknown as Body), 'body');
  });

  it('accepts a body of exactly maxMsgSize (default 1 MiB) and rejects one byte more', () => {
    const out = encodePub('big', Buffer.alloc(MIB, 1));
    expect(out.length).toBe('PUB big\n'.length + 4 + MIB);
    expect(out.readInt32BE(8)).toBe(MIB);
    const err = expectValidation(() => encodePub('big', Buffer.alloc(MIB + 1)), 'body');
    expect(err.message).toContain(String(MIB + 1));
    expect(err.message).toContain(String(MIB));
  });

  it('honours a custom maxMsgSize', () => {
    expect(encodePub('t', Buffer.alloc(10), { maxMsgSize: 10 }).readInt32BE(6)).toBe(10);
    expectValidation(() => encodePub('t', Buffer.alloc(11), { maxMsgSize: 10 }), 'body', /maximum message size of 10/);
  });

  it('checks the byte length, not the character count, of a string body against maxMsgSize', () => {
    // 4 characters, 12 bytes.
    expectValidation(() => encodePub('t', '€€€€', { maxMsgSize: 11 }), 'body');
    expect(encodePub('t', '€€€€', { maxMsgSize: 12 })).toEqual(withBody('PUB t', Buffer.from('€€€€')));
  });

  it('rejects an invalid topic with field "topic", also when called again with the same name', () => {
    expectValidation(() => encodePub('bad topic', 'x'), 'topic');
    expectValidation(() => encodePub('bad topic', 'x'), 'topic');
    expectValidation(() => encodePub('', 'x'), 'topic');
    expectValidation(() => encodePub('t'.repeat(65), 'x'), 'topic');
  });

  it('validates the topic before the body', () => {
    expectValidation(() => encodePub('bad/topic', ''), 'topic');
  });
});

describe('encodeMpub', () => {
  it('writes MPUB <topic>\\n[int32 total][int32 n]([int32 len][bytes])* byte-exactly', () => {
    const expected = Buffer.from([
      ...Buffer.from('MPUB t\n'),
      ...[0, 0, 0, 4 + (4 + 2) + (4 + 3)], // total: count + each [len][bytes]
      ...[0, 0, 0, 2], // n
      ...[0, 0, 0, 2, 0x61, 0x62], // "ab"
      ...[0, 0, 0, 3, 0x00, 0x0a, 0xff],
    ]);
    expect(encodeMpub('t', ['ab', Buffer.from([0x00, 0x0a, 0xff])])).toEqual(expected);
  });

  it('round-trips mixed string/Buffer bodies, multibyte strings included', () => {
    const bodies: Body[] = ['one', Buffer.from([1, 2, 3, 4]), 'ünïcødé ✓', 'x'.repeat(1000)];
    const parsed = parseMpub(encodeMpub('events#ephemeral', bodies));
    expect(parsed.line).toBe('MPUB events#ephemeral');
    expect(parsed.trailing).toBe(0);
    expect(parsed.bodies).toEqual(bodies.map((b) => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b)));
    const bytes = bodies.map((b) => (typeof b === 'string' ? Buffer.byteLength(b) : b.length));
    expect(parsed.total).toBe(4 + bytes.reduce((sum, len) => sum + 4 + len, 0));
  });

  it('encodes a single message', () => {
    expect(encodeMpub('t', ['z'])).toEqual(Buffer.from('MPUB t\n\x00\x00\x00\x09\x00\x00\x00\x01\x00\x00\x00\x01z', 'latin1'));
  });

  it('does not share bytes with PUB for the same topic', () => {
    expect(encodePub('same', 'p').subarray(0, 9).toString()).toBe('PUB same\n');
    expect(encodeMpub('same', ['p']).subarray(0, 10).toString()).toBe('MPUB same\n');
    expect(encodePub('same', 'p').subarray(0, 9).toString()).toBe('PUB same\n');
  });

  it('rejects an empty batch', () => {
    expectValidation(() => encodeMpub('t', []), 'bodies', /at least one/);
  });

  it('rejects an empty body, naming its index', () => {
    expectValidation(() => encodeMpub('t', ['a', '', 'c']), 'bodies[1]', /empty/);
    expectValidation(() => encodeMpub('t', [Buffer.alloc(0)]), 'bodies[0]');
  });

  it('rejects a body over maxMsgSize, naming its index', () => {
    expectValidation(() => encodeMpub('t', ['ok', 'x'.repeat(11)], { maxMsgSize: 10 }), 'bodies[1]', /11 bytes/);
  });

  it('rejects a batch whose whole body exceeds maxBodySize, and accepts one that fits exactly', () => {
    const bodies = [Buffer.alloc(10), Buffer.alloc(10), Buffer.alloc(10)];
    const exact = 4 + 3 * (4 + 10); // 46
    expect(parseMpub(encodeMpub('t', bodies, { maxBodySize: exact })).total).toBe(exact);
    const err = expectValidation(() => encodeMpub('t', bodies, { maxBodySize: exact - 1 }), 'bodies');
    expect(err.message).toContain('46 bytes');
    expect(err.message).toContain('45 bytes');
  });

  it('defaults maxBodySize to 5 MiB, counting the framing: four 1 MiB bodies fit, five do not', () => {
    const mib = Buffer.alloc(MIB, 0x61);
    expect(parseMpub(encodeMpub('t', [mib, mib, mib, mib])).bodies).toHaveLength(4);
    // 4 + 5 * (4 + 1 MiB) = 5 MiB + 24 > 5 MiB
    expectValidation(() => encodeMpub('t', [mib, mib, mib, mib, mib]), 'bodies', /maximum body size of 5242880/);
  });

  it('rejects an invalid topic with field "topic"', () => {
    expectValidation(() => encodeMpub('no spaces allowed', ['x']), 'topic');
    expectValidation(() => encodeMpub('#ephemeral', ['x']), 'topic');
  });
});

describe('encodeDpub', () => {
  it('writes DPUB <topic> <delay_ms>\\n[int32 len][body]', () => {
    expect(encodeDpub('t', 1500, 'hi')).toEqual(Buffer.from('DPUB t 1500\n\x00\x00\x00\x02hi', 'latin1'));
    const body = Buffer.from([9, 8, 7]);
    expect(encodeDpub('jobs', 0, body)).toEqual(withBody('DPUB jobs 0', body));
  });

  it('writes a multibyte string body as UTF-8 with its byte length', () => {
    expect(encodeDpub('t', 10, 'ça 🐢')).toEqual(withBody('DPUB t 10', Buffer.from('ça 🐢', 'utf8')));
  });

  it('accepts delays up to maxReqTimeout (default 1 h) and rejects more', () => {
    expect(encodeDpub('t', 3_600_000, 'x').subarray(0, 15).toString()).toBe('DPUB t 3600000\n');
    expectValidation(() => encodeDpub('t', 3_600_001, 'x'), 'delayMs', /0\.\.3600000/);
    expect(encodeDpub('t', 5000, 'x', { maxReqTimeout: 5000 }).subarray(0, 12).toString()).toBe('DPUB t 5000\n');
    expectValidation(() => encodeDpub('t', 5001, 'x', { maxReqTimeout: 5000 }), 'delayMs', /5001/);
  });

  it('rejects negative, non-integer and non-finite delays', () => {
    for (const delay of [-1, -0.5, 1.5, 0.1, NaN, Infinity]) {
      expectValidation(() => encodeDpub('t', delay, 'x'), 'delayMs');
    }
  });

  it('validates the body like PUB', () => {
    expectValidation(() => encodeDpub('t', 1, ''), 'body', /empty/);
    expectValidation(() => encodeDpub('t', 1, Buffer.alloc(0)), 'body');
    expectValidation(() => encodeDpub('t', 1, Buffer.alloc(MIB + 1)), 'body');
    expectValidation(() => encodeDpub('t', 1, 'abcd', { maxMsgSize: 3 }), 'body');
  });

  it('rejects an invalid topic with field "topic"', () => {
    expectValidation(() => encodeDpub('a:b', 1, 'x'), 'topic');
  });
});

describe('encodeRdy', () => {
  it('writes RDY <count>\\n', () => {
    expect(encodeRdy(0)).toEqual(Buffer.from('RDY 0\n'));
    expect(encodeRdy(1)).toEqual(Buffer.from([0x52, 0x44, 0x59, 0x20, 0x31, 0x0a]));
    expect(encodeRdy(2500)).toEqual(Buffer.from('RDY 2500\n'));
  });

  it('rejects counts outside 0..maxRdyCount (default 2500)', () => {
    for (const count of [-1, 2501, 1.5, NaN, Infinity]) {
      expectValidation(() => encodeRdy(count), 'count');
    }
    expectValidation(() => encodeRdy(2501), 'count', /0\.\.2500/);
  });

  it('honours a custom maxRdyCount', () => {
    expect(encodeRdy(10000, 10000)).toEqual(Buffer.from('RDY 10000\n'));
    expectValidation(() => encodeRdy(11, 10), 'count', /0\.\.10, got 11/);
  });
});

describe('FIN / REQ / TOUCH', () => {
  it('writes FIN <id>\\n', () => {
    expect(encodeFin(ID)).toEqual(Buffer.from(`FIN ${ID}\n`));
    expect(encodeFin(Buffer.from(ID))).toEqual(Buffer.from(`FIN ${ID}\n`));
  });

  it('writes REQ <id> <delay_ms>\\n', () => {
    expect(encodeReq(ID, 0)).toEqual(Buffer.from(`REQ ${ID} 0\n`));
    expect(encodeReq(ID, 60000)).toEqual(Buffer.from(`REQ ${ID} 60000\n`));
    expect(encodeReq(Buffer.from(ID), 5)).toEqual(Buffer.from(`REQ ${ID} 5\n`));
  });

  it('lets REQ delays above the server maximum through (nsqd clamps them)', () => {
    expect(encodeReq(ID, 7_200_000)).toEqual(Buffer.from(`REQ ${ID} 7200000\n`));
  });

  it('writes TOUCH <id>\\n', () => {
    expect(encodeTouch(ID)).toEqual(Buffer.from(`TOUCH ${ID}\n`));
    expect(encodeTouch(Buffer.from(ID))).toEqual(Buffer.from(`TOUCH ${ID}\n`));
  });

  it('copies the raw id bytes unchanged', () => {
    const raw = Buffer.from([0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66]);
    expect(encodeFin(raw)).toEqual(Buffer.concat([Buffer.from('FIN '), raw, Buffer.from('\n')]));
  });

  it('rejects ids that are not exactly 16 bytes', () => {
    for (const id of ['', '0123456789abcde', '0123456789abcdef0', Buffer.alloc(15), Buffer.alloc(17)]) {
      const err = expectValidation(() => encodeFin(id), 'id', /16 bytes/);
      expect(err.message).toContain(`got ${id.length}`);
      expectValidation(() => encodeReq(id, 0), 'id');
      expectValidation(() => encodeTouch(id), 'id');
    }
  });

  it('rejects negative or non-integer REQ delays', () => {
    for (const delay of [-1, -1000, 0.5, NaN, -Infinity]) {
      expectValidation(() => encodeReq(ID, delay), 'delayMs');
    }
    expectValidation(() => encodeReq(ID, -1), 'delayMs', /got -1/);
  });
});

describe('CLS / NOP', () => {
  it('writes CLS\\n and NOP\\n', () => {
    expect(encodeCls()).toEqual(Buffer.from([0x43, 0x4c, 0x53, 0x0a]));
    expect(encodeNop()).toEqual(Buffer.from([0x4e, 0x4f, 0x50, 0x0a]));
  });
});
