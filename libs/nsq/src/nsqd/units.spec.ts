import { describe, expect, it } from '@jest/globals';
import { goQuote, parseBase10 } from './client-v2.js';
import { GuidFactory, NsqdMessage } from './message.js';
import { defaultNodeId } from './options.js';
import { PriorityQueue } from './pqueue.js';
import { MessageFifo } from './fifo.js';

describe('defaultNodeId', () => {
  it('is crc32(md5(hostname)) % 1024 like nsqd (value computed with Go)', () => {
    expect(defaultNodeId('example-host')).toBe(746);
  });
});

describe('GuidFactory', () => {
  it('makes 16 lowercase hex ids, strictly increasing, unique across a burst larger than a sequence', () => {
    const f = new GuidFactory(746);
    const ids = Array.from({ length: 20_000 }, () => f.next());
    expect(ids.filter((id) => !/^[0-9a-f]{16}$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.findIndex((id, i) => i > 0 && id <= ids[i - 1]!)).toBe(-1);
  });

  it('carries the node id in bits 12..21 like nsqd', () => {
    const id = BigInt('0x' + new GuidFactory(746).next());
    expect(Number((id >> 12n) & 1023n)).toBe(746);
  });
});

describe('NsqdMessage', () => {
  it('encodes as nsqd does (timestamp, attempts, id, body) and decodes back', () => {
    const m = new NsqdMessage('0123456789abcdef', Buffer.from([0, 1, 255]), 1_700_000_000_123_456_768);
    m.attempts = 3;
    const data = m.encode();
    expect(data.readBigInt64BE(0)).toBe(1_700_000_000_123_456_768n);
    expect(data.readUInt16BE(8)).toBe(3);
    expect(data.toString('latin1', 10, 26)).toBe('0123456789abcdef');
    const back = NsqdMessage.decode(data);
    expect({ id: back.id, attempts: back.attempts, ts: back.timestamp, body: [...back.body] }).toEqual({
      id: m.id,
      attempts: 3,
      ts: m.timestamp,
      body: [0, 1, 255],
    });
  });
});

describe('PriorityQueue', () => {
  it('pops in priority order and removes any item by index', () => {
    const q = new PriorityQueue<{ pri: number; index: number }>();
    const items = [5, 1, 9, 3, 7, 2, 8].map((pri) => ({ pri, index: -1 }));
    for (const it of items) q.push(it);
    q.remove(items[3]!); // pri 3
    const out: number[] = [];
    for (let it = q.popIfDue(100); it; it = q.popIfDue(100)) out.push(it.pri);
    expect(out).toEqual([1, 2, 5, 7, 8, 9]);
    expect(items.every((i) => i.index === -1)).toBe(true);
  });

  it('popIfDue leaves items that are not due', () => {
    const q = new PriorityQueue<{ pri: number; index: number }>();
    q.push({ pri: 10, index: -1 });
    expect(q.popIfDue(9)).toBeUndefined();
    expect(q.size).toBe(1);
  });
});

describe('MessageFifo', () => {
  it('is FIFO across slabs, keeps attempts, ticket and defer, and copies bodies out', () => {
    const f = new MessageFifo();
    const big = Buffer.alloc(1_500_000, 7); // larger than a slab
    const sent: NsqdMessage[] = [];
    for (let i = 0; i < 12_000; i++) {
      const body = i === 5000 ? big : Buffer.from(`body-${i}`.repeat(20));
      const m = new NsqdMessage(String(i).padStart(16, '0'), body, 1_700_000_000_000_000_000 + i * 1024);
      m.attempts = i % 7;
      m.ticket = i % 3 === 0 ? i : -1;
      m.deferredUntil = i % 5 === 0 ? 1_800_000_000_000 + i : 0;
      f.push(m);
      sent.push(m);
      if (i % 4 === 0) {
        const got = f.shift()!;
        const want = sent.shift()!;
        expect([got.id, got.attempts, got.ticket, got.deferredUntil, got.timestamp]).toEqual([want.id, want.attempts, want.ticket, want.deferredUntil, want.timestamp]);
        expect(got.body.equals(want.body)).toBe(true);
      }
    }
    expect(f.length).toBe(sent.length);
    const rest = f.drain();
    expect(rest.map((m) => m.id)).toEqual(sent.map((m) => m.id));
    expect(rest.find((m) => m.id === '0000000000005000')!.body.equals(big)).toBe(true);
    expect(rest.every((m) => m.body.buffer.byteLength < 1024 * 1024 || m.body.length === big.length)).toBe(true);
    expect(f.length).toBe(0);
    expect(f.shift()).toBeUndefined();
  });
});

describe('nsqd number and quoting rules', () => {
  it('parseBase10 takes digits only, empty as 0, wraps like uint64', () => {
    expect(parseBase10(Buffer.from('2500'))).toBe(2500n);
    expect(parseBase10(Buffer.from(''))).toBe(0n);
    expect(parseBase10(Buffer.from('-1'))).toBeUndefined();
    expect(parseBase10(Buffer.from('1e3'))).toBeUndefined();
    expect(parseBase10(Buffer.from('18446744073709551617'))).toBe(1n);
  });

  it('goQuote escapes like Go %q, keeping printable UTF-8 as bytes', () => {
    const q = (bytes: number[]): string => goQuote(Buffer.from(bytes).toString('latin1'));
    expect(q([...Buffer.from('a"b\\c')])).toBe('"a\\"b\\\\c"');
    expect(q([0x61, 0x01, 0x7f, 0x0a])).toBe('"a\\x01\\x7f\\n"');
    expect(q([0xff, 0x62])).toBe('"\\xffb"');
    expect(Buffer.from(q([...Buffer.from('é')]), 'latin1').toString('utf8')).toBe('"é"');
    expect(q([0xe2, 0x80, 0x8b])).toBe('"\\u200b"');
  });
});
