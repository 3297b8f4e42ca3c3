import { describe, expect, it } from '@jest/globals';
import { BufferPool, countOf, fromLine, PUBLISHED, Segment, segmentMemory, toLine, toLines, TYPE_CODE } from './segment.js';

describe('history queue segments', () => {
  it('keeps every column of every event, bodies cut to their length, repeated strings once', () => {
    const s = new Segment(41, 4);
    const body = Buffer.from('hello body');
    s.push(PUBLISHED, 'n:1', 'id-1', 1000, 't', null, null, -1, 'deferred 5 ms', body, body.length, false, body.length, 'tcp:x', 1005, 'key-1');
    s.pushDelivery(TYPE_CODE.delivered, 'n:1', 'id-1', 1001, 't', 'c', '127.0.0.1:9', 1, null);
    s.pushDelivery(TYPE_CODE.requeued, 'n:1', 'id-1', 1002, 't', 'c', null, 1, 'delay 10 ms');
    s.push(TYPE_CODE.delivered, 'n:2', 'id-2', 1003, 't', 'c', 'svc', 2, null, body, 5, true, body.length, null, -1, 'key-2', 900);
    // a cut body is a copy (a view would pin the whole body)
    const cut = s.body(3)!;
    body.write('HELLO');
    expect(cut.toString()).toBe('hello');
    body.write('hello');
    expect(s.full).toBe(true);
    expect(s.nextSeq).toBe(45);
    expect(countOf([s, s])).toBe(8);
    const row = (i: number): unknown[] => [
      s.type(i),
      s.nsqd(i),
      s.messageId(i),
      s.at(i),
      s.topic(i),
      s.channel(i),
      s.consumer(i),
      s.attempt(i),
      s.detail(i),
      s.body(i)?.toString() ?? null,
      s.truncated(i),
      s.size(i),
      s.producer(i),
      s.deferredUntil(i),
      s.messageKey(i),
      s.ensureMessageAt(i),
    ];
    expect(row(0)).toEqual([PUBLISHED, 'n:1', 'id-1', 1000, 't', null, null, -1, 'deferred 5 ms', 'hello body', 0, 10, 'tcp:x', 1005, 'key-1', -1]);
    expect(row(1)).toEqual([TYPE_CODE.delivered, 'n:1', 'id-1', 1001, 't', 'c', '127.0.0.1:9', 1, null, null, 0, 0, null, -1, null, -1]);
    expect(row(2)).toEqual([TYPE_CODE.requeued, 'n:1', 'id-1', 1002, 't', 'c', null, 1, 'delay 10 ms', null, 0, 0, null, -1, null, -1]);
    expect(row(3)).toEqual([TYPE_CODE.delivered, 'n:2', 'id-2', 1003, 't', 'c', 'svc', 2, null, 'hello', 1, 10, null, -1, 'key-2', 900]);
    expect(s.key(3, 'src:epoch:')).toBe(`src:epoch:${(44).toString(36)}`);
    // a key the event came with is its own
    const keyed = new Segment(1, 2);
    keyed.push(PUBLISHED, 'n', 'a', 1, 't', null, null, -1, null, null, 0, false, 0, null, -1, null, -1, 'journal:7');
    keyed.pushDelivery(TYPE_CODE.finished, 'n', 'a', 2, 't', 'c', null, 1, null);
    expect([keyed.key(0, 'p:'), keyed.key(1, 'p:')]).toEqual(['journal:7', 'p:2']);
  });

  it('keeps message ids of any length and alphabet', () => {
    const s = new Segment(1, 8);
    const ids = ['0123456789abcdef', '', 'é-latin1', 'a-uuid-0f8fad5b-d9cb-469f-a165-70867728950e', '☃ snow', 'x'.repeat(16), 'y'.repeat(17)];
    for (const id of ids) s.pushDelivery(TYPE_CODE.finished, 'n', id, 1, 't', 'c', null, 1, null);
    expect(ids.map((_, i) => s.messageId(i))).toEqual(ids);
    s.pushDelivery(TYPE_CODE.finished, 'n', 'later', 1, 't', 'c', null, 1, null);
    expect(s.messageId(7)).toBe('later');
  });

  it('keeps every body whole and apart, in chunks shared by segments, and copies them (the caller may reuse its buffer)', () => {
    // sizes that fill and cross the arena's 256 KiB chunks, an empty body, and one past the shared-chunk limit
    const sizes = [0, 1, 200, 70_000, 200, 65_536, 65_537, 300_000, ...Array.from({ length: 40 }, (_, k) => 10_000 + k)];
    const bodyOf = (n: number, size: number): Buffer => Buffer.alloc(size, n % 251);
    const segments = [new Segment(1, 16), new Segment(17, 16), new Segment(33, 16)];
    const reused = Buffer.alloc(300_000);
    sizes.forEach((size, n) => {
      const body = reused.subarray(0, size);
      body.set(bodyOf(n, size));
      segments[Math.floor(n / 16)]!.pushPublish('n', `id-${n}`, n, 't', body, null);
    });
    reused.fill(0xee);
    sizes.forEach((size, n) => {
      const body = segments[Math.floor(n / 16)]!.body(n % 16);
      expect(body?.length).toBe(size);
      expect(body!.equals(bodyOf(n, size))).toBe(true);
    });
    expect(segments.map((s) => s.bytes)).toEqual([0, 1, 2].map((k) => sizes.slice(k * 16, k * 16 + 16).reduce((a, b) => a + b, 0)));
  });

  it('writes spool lines that read back to the same events and keys', () => {
    const s = new Segment(7, 10);
    const body = Buffer.from([0, 1, 2, 0xff]);
    s.push(PUBLISHED, 'n', 'a', 5, 't', null, null, -1, null, body, body.length, false, 4, 'p', -1, 'k');
    s.pushDelivery(TYPE_CODE.finished, 'n', 'a', 6, 't', 'c', 'x', 3, null);
    const lines = toLines([s], 'pre:').trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const back = new Segment(0, 10);
    for (const line of lines) expect(fromLine(back, line)).toBe(true);
    expect(fromLine(back, '{"not":"an event"}')).toBe(false);
    expect(fromLine(back, 'garbage')).toBe(false);
    expect(back.n).toBe(2);
    expect(back.key(0, 'ignored:')).toBe('pre:7');
    expect(back.key(1, 'ignored:')).toBe('pre:8');
    // a replayed line is spooled again as it was
    expect(toLine(back, 0, 'ignored:')).toBe(lines[0]);
    expect(toLine(back, 1, 'ignored:')).toBe(lines[1]);
    expect(back.body(0)).toEqual(body);
  });

  it('reuses the memory of recycled segments, never a chunk another segment still holds a body in', () => {
    segmentMemory.clear();
    // random segments of 1–3 bodies (up to 120 KB: several share each 256 KiB chunk, some span
    // two), recycled in random order; every live segment's bodies are checked after every step
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const live: Array<{ s: Segment; fills: number[]; sizes: number[] }> = [];
    let fill = 0;
    let seq = 1;
    let reusedRows = 0;
    let pooledMax = 0;
    for (let step = 0; step < 300; step++) {
      if (live.length > 0 && random(3) === 0) {
        const [gone] = live.splice(random(live.length), 1);
        gone!.s.recycle();
        gone!.s.recycle(); // twice is once
      } else {
        const before = segmentMemory.size;
        const s = new Segment(seq, 3);
        if (segmentMemory.size < before) reusedRows++;
        const entry = { s, fills: [] as number[], sizes: [] as number[] };
        for (let k = 1 + random(3); k > 0; k--) {
          const size = 1 + random(120_000);
          fill = (fill + 1) % 251;
          s.pushPublish('n', `m${seq}`, seq, 't', Buffer.alloc(size, fill), null);
          entry.fills.push(fill);
          entry.sizes.push(size);
          seq++;
        }
        live.push(entry);
      }
      pooledMax = Math.max(pooledMax, segmentMemory.size);
      for (const { s, fills, sizes } of live) {
        fills.forEach((f, i) => {
          const body = s.body(i)!;
          expect(body.length).toBe(sizes[i]);
          expect(body.equals(Buffer.alloc(sizes[i]!, f))).toBe(true);
        });
      }
    }
    // memory did come back and was taken again
    expect(pooledMax).toBeGreaterThan(256 * 1024);
    expect(reusedRows).toBeGreaterThan(10);
    for (const { s } of live) s.recycle();
    segmentMemory.clear();
  });

  it('bounds the pool, and lets it go when it was not needed for a while', () => {
    const pool = new BufferPool(1000, 50);
    const x = pool.take(400);
    const y = pool.take(400);
    const z = pool.take(400);
    expect(x.byteLength).toBe(400);
    pool.give(x);
    pool.give(y);
    pool.give(z); // over 1000 bytes: dropped
    expect(pool.size).toBe(800);
    expect(pool.take(400)).toBe(y);
    // only buffers of the size asked for: a fresh one, the pooled 400-byte one stays
    expect(pool.take(300).byteLength).toBe(300);
    expect(pool.size).toBe(400);
    const t0 = performance.now();
    pool.trimIdle(t0 + 10);
    expect(pool.size).toBe(400);
    pool.trimIdle(t0 + 1000);
    expect(pool.size).toBe(0);
  });
});
