import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NsqLogger } from '../client/logger.js';
import { DiskQueue, DiskQueueError, diskQueueFileName, metaFileName, type DiskQueueOptions } from './diskqueue.js';

const MIN = 26;
const MAX = 1024 + 26;

interface LogLine {
  level: string;
  message: string;
}

function recordingLogger(lines: LogLine[]): NsqLogger {
  return {
    debug: (message) => lines.push({ level: 'debug', message }),
    info: (message) => lines.push({ level: 'info', message }),
    warn: (message) => lines.push({ level: 'warn', message }),
    error: (message) => lines.push({ level: 'error', message }),
  };
}

/** A valid payload whose first bytes say which record it is, followed by all 256 byte values. */
function payload(i: number, extra = 0): Buffer {
  const buf = Buffer.alloc(MIN + 8 + extra);
  buf.writeUInt32BE(i, 0);
  for (let k = 4; k < buf.length; k++) buf[k] = (i + k) & 0xff;
  return buf;
}

function idOf(data: Buffer): number {
  return data.readUInt32BE(0);
}

function readMeta(dir: string, name: string): { depth: number; read: [number, number]; write: [number, number] } {
  const text = readFileSync(metaFileName(dir, name), 'utf8');
  const [depth, read, write] = text.trim().split('\n');
  const pair = (s: string | undefined): [number, number] => {
    const [a, b] = (s ?? '').split(',').map(Number);
    return [a ?? NaN, b ?? NaN];
  };
  return { depth: Number(depth), read: pair(read), write: pair(write) };
}

function dataFiles(dir: string, name: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${name}.diskqueue.`) && f.endsWith('.dat') && !f.includes('meta'))
    .sort();
}

describe('DiskQueue', () => {
  let dir: string;
  let logs: LogLine[];
  const open: DiskQueue[] = [];

  function options(overrides: Partial<DiskQueueOptions> = {}, dataPath = dir): DiskQueueOptions {
    return {
      dataPath,
      name: 'topic',
      maxBytesPerFile: 1024 * 1024,
      minMsgSize: MIN,
      maxMsgSize: MAX,
      syncEvery: 1_000_000,
      syncTimeoutMs: 3_600_000,
      logger: recordingLogger(logs),
      ...overrides,
    };
  }

  function openQueue(overrides: Partial<DiskQueueOptions> = {}, dataPath = dir): DiskQueue {
    const q = DiskQueue.open(options(overrides, dataPath));
    open.push(q);
    return q;
  }

  /**
   * What kill -9 leaves behind is what the OS has for the files right now (writeSync data is in the
   * page cache), so a copy of the directory is the state a restarted process finds.
   */
  function crashCopy(): string {
    const copy = mkdtempSync(join(tmpdir(), 'dq-crash-'));
    cpSync(dir, copy, { recursive: true });
    dirs.push(copy);
    return copy;
  }

  function readAll(q: DiskQueue, ack = true): number[] {
    const ids: number[] = [];
    for (let rec = q.readNext(); rec !== undefined; rec = q.readNext()) {
      ids.push(idOf(rec.data));
      if (ack) q.ack(rec.ticket);
    }
    return ids;
  }

  const dirs: string[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dq-'));
    dirs.push(dir);
    logs = [];
  });
  afterEach(() => {
    for (const q of open.splice(0)) q.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('uses go-diskqueue file names', () => {
    expect(diskQueueFileName('/data', 't:c', 3)).toBe(join('/data', 't:c.diskqueue.000003.dat'));
    expect(metaFileName('/data', 't:c')).toBe(join('/data', 't:c.diskqueue.meta.dat'));
  });

  it('round-trips binary records across file rolls and keeps depth', () => {
    // 3 records of 4+34 bytes fit in 128; the 4th rolls
    const q = openQueue({ maxBytesPerFile: 128, name: 't:c' });
    for (let i = 0; i < 10; i++) q.put(payload(i));
    expect(q.depth).toBe(10);
    expect(dataFiles(dir, 't:c')).toEqual([0, 1, 2, 3].map((n) => `t:c.diskqueue.00000${n}.dat`));
    expect(statSync(diskQueueFileName(dir, 't:c', 0)).size).toBe(3 * (4 + 34));

    const first = q.readNext();
    expect(first?.data).toEqual(payload(0));
    expect(q.depth).toBe(9);
    expect(q.unackedCount).toBe(1);
    q.ack(first!.ticket);
    q.ack(first!.ticket);
    expect(q.unackedCount).toBe(0);

    expect(readAll(q)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(q.depth).toBe(0);
    expect(q.readNext()).toBeUndefined();

    // reading and writing the same file, interleaved
    for (let i = 10; i < 20; i++) {
      q.put(payload(i, i));
      const rec = q.readNext();
      expect(rec?.data).toEqual(payload(i, i));
      q.ack(rec!.ticket);
    }
    expect(q.depth).toBe(0);
  });

  it('writes a batch with putMany, rolling files inside it', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    q.put(payload(0));
    q.putMany([1, 2, 3, 4, 5, 6, 7].map((i) => payload(i)));
    expect(q.depth).toBe(8);
    expect(dataFiles(dir, 'topic')).toHaveLength(3);
    expect(readAll(q)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('cuts a failed putMany back to where it started', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    q.put(payload(0));
    q.put(payload(1));
    // the roll inside the batch cannot create file 1
    mkdirSync(diskQueueFileName(dir, 'topic', 1));
    expect(() => q.putMany([payload(2), payload(3), payload(4)])).toThrow(DiskQueueError);
    expect(q.depth).toBe(2);
    expect(statSync(diskQueueFileName(dir, 'topic', 0)).size).toBe(2 * 38);
    expect(readMeta(dir, 'topic')).toMatchObject({ depth: 2, write: [0, 76] });
    rmSync(diskQueueFileName(dir, 'topic', 1), { recursive: true });
    q.putMany([payload(2), payload(3), payload(4)]);
    expect(readAll(q)).toEqual([0, 1, 2, 3, 4]);
  });

  it('rejects records outside [minMsgSize, maxMsgSize] and writes nothing of a bad batch', () => {
    const q = openQueue();
    expect(() => q.put(Buffer.alloc(MIN - 1))).toThrow(DiskQueueError);
    expect(() => q.put(Buffer.alloc(MAX + 1))).toThrow(DiskQueueError);
    expect(() => q.putMany([payload(1), Buffer.alloc(MAX + 1)])).toThrow(DiskQueueError);
    q.put(Buffer.alloc(MAX));
    expect(q.depth).toBe(1);
    expect(q.readNext()?.data.length).toBe(MAX);
  });

  it('returns records bigger than the read chunk intact', () => {
    const big = Buffer.alloc(3 * 1024 * 1024);
    for (let k = 0; k < big.length; k += 4096) big.fill(k & 0xff, k, k + 4096);
    const q = openQueue({ maxMsgSize: big.length, maxBytesPerFile: 1024 * 1024 });
    q.put(payload(1));
    q.put(big);
    q.put(payload(2));
    expect(q.readNext()?.data).toEqual(payload(1));
    expect(q.readNext()?.data.equals(big)).toBe(true);
    expect(q.readNext()?.data).toEqual(payload(2));
  });

  it('gives each record its own buffer', () => {
    const q = openQueue();
    for (let i = 0; i < 3; i++) q.put(payload(i));
    const recs = [q.readNext()!, q.readNext()!, q.readNext()!];
    expect(recs.map((r) => idOf(r.data))).toEqual([0, 1, 2]);
    expect(recs[0]!.data).toEqual(payload(0));
  });

  it('brings back unread records after close and reopen, but not acked ones', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 10; i++) q.put(payload(i));
    for (let i = 0; i < 4; i++) q.ack(q.readNext()!.ticket);
    q.close();
    q.close();
    expect(() => q.put(payload(99))).toThrow(DiskQueueError);
    expect(readMeta(dir, 'topic').depth).toBe(6);

    const again = openQueue({ maxBytesPerFile: 128 });
    expect(again.depth).toBe(6);
    expect(readAll(again)).toEqual([4, 5, 6, 7, 8, 9]);
    again.put(payload(10));
    again.close();
    const third = openQueue({ maxBytesPerFile: 128 });
    expect(readAll(third)).toEqual([10]);
  });

  it('replays from the oldest un-acked record after a crash (low-water mark)', () => {
    const q = openQueue({ maxBytesPerFile: 256 });
    for (let i = 0; i < 20; i++) q.put(payload(i));
    const recs = Array.from({ length: 10 }, () => q.readNext()!);
    for (const [i, rec] of recs.entries()) if (i !== 3) q.ack(rec.ticket);
    expect(q.unackedCount).toBe(1);
    expect(q.depth).toBe(10);

    const noSync = crashCopy();
    q.sync();
    const synced = crashCopy();

    // after sync(): replay starts exactly at #3; #4..#9 come again (acked, but above the mark)
    const meta = readMeta(synced, 'topic');
    expect(meta.depth).toBe(17);
    const a = openQueue({ maxBytesPerFile: 256 }, synced);
    expect(a.depth).toBe(17);
    expect(readAll(a)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);

    // without sync the metadata is whatever the last file roll wrote: an older mark, more replay
    const b = openQueue({ maxBytesPerFile: 256 }, noSync);
    const replay = readAll(b);
    expect(replay[0]).toBeLessThanOrEqual(3);
    expect(replay).toEqual(Array.from({ length: 20 - replay[0]! }, (_, k) => k + replay[0]!));

    // acking #3 moves the mark to the read cursor
    q.ack(recs[3]!.ticket);
    q.sync();
    expect(readMeta(dir, 'topic')).toMatchObject({ depth: 10 });
    const c = openQueue({ maxBytesPerFile: 256 }, crashCopy());
    expect(readAll(c)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  it('replays everything after a crash before any metadata was written', () => {
    const q = openQueue();
    for (let i = 0; i < 10; i++) q.put(payload(i));
    const recs = Array.from({ length: 10 }, () => q.readNext()!);
    for (const [i, rec] of recs.entries()) if (i !== 3) q.ack(rec.ticket);
    const copy = crashCopy();
    expect(existsSync(metaFileName(copy, 'topic'))).toBe(false);
    const b = openQueue({}, copy);
    expect(b.depth).toBe(10);
    expect(readAll(b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps an older synced mark when acks were not synced before the crash', () => {
    const q = openQueue();
    for (let i = 0; i < 6; i++) q.put(payload(i));
    const recs = Array.from({ length: 6 }, () => q.readNext()!);
    q.sync();
    for (const rec of recs) q.ack(rec.ticket);
    const copy = crashCopy();
    const b = openQueue({}, copy);
    expect(readAll(b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('recovers records written after the last metadata and cuts a torn tail', () => {
    const q = openQueue();
    for (let i = 0; i < 3; i++) q.put(payload(i));
    q.sync();
    for (let i = 3; i < 7; i++) q.put(payload(i));
    const copy = crashCopy();
    expect(readMeta(copy, 'topic').depth).toBe(3);

    const file = diskQueueFileName(copy, 'topic', 0);
    const goodSize = statSync(file).size;
    const torn = Buffer.alloc(20);
    torn.writeInt32BE(34, 0); // announces 34 bytes, only 16 follow
    appendFileSync(file, torn);

    const r = openQueue({}, copy);
    expect(r.depth).toBe(7);
    expect(statSync(file).size).toBe(goodSize);
    expect(logs.some((l) => l.level === 'warn' && l.message.includes('cutting off 20 bytes'))).toBe(true);
    r.put(payload(7));
    expect(readAll(r)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('rebuilds from the data files when the metadata is missing or corrupt', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 8; i++) q.put(payload(i));
    const missing = crashCopy();
    q.close();
    writeFileSync(metaFileName(dir, 'topic'), 'not metadata');
    const corrupt = crashCopy();

    const a = openQueue({ maxBytesPerFile: 128 }, missing);
    expect(a.depth).toBe(8);
    expect(readAll(a)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    const b = openQueue({ maxBytesPerFile: 128 }, corrupt);
    expect(logs.some((l) => l.level === 'error' && l.message.includes('corrupt'))).toBe(true);
    expect(b.depth).toBe(8);
    expect(readAll(b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('fixes a depth that disagrees with the files', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 8; i++) q.put(payload(i));
    q.close();
    const meta = readMeta(dir, 'topic');
    writeFileSync(metaFileName(dir, 'topic'), `500\n${meta.read.join(',')}\n${meta.write.join(',')}\n`);
    const r = openQueue({ maxBytesPerFile: 128 });
    expect(r.depth).toBe(8);
    expect(readMeta(dir, 'topic').depth).toBe(8);
  });

  it('sets a file with a corrupt length aside as .bad and goes on with the next file', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 9; i++) q.put(payload(i)); // files 0, 1, 2 with 3 records each
    q.close();
    const file1 = diskQueueFileName(dir, 'topic', 1);
    const bytes = readFileSync(file1);
    bytes.writeInt32BE(0x7fffffff, 0);
    writeFileSync(file1, bytes);

    const r = openQueue({ maxBytesPerFile: 128 });
    let ids: number[] = [];
    expect(() => {
      ids = readAll(r);
    }).not.toThrow();
    expect(ids).toEqual([0, 1, 2, 6, 7, 8]);
    expect(existsSync(`${file1}.bad`)).toBe(true);
    expect(existsSync(file1)).toBe(false);
    expect(logs.some((l) => l.level === 'warn' && l.message.includes('.bad'))).toBe(true);
    expect(r.depth).toBe(0);
    r.put(payload(9));
    expect(readAll(r)).toEqual([9]);
  });

  it('keeps un-acked records in front of a corrupt one', () => {
    const q = openQueue();
    for (let i = 0; i < 4; i++) q.put(payload(i));
    q.close();
    const file0 = diskQueueFileName(dir, 'topic', 0);
    const bytes = readFileSync(file0);
    bytes.writeInt32BE(3, 2 * (4 + 34)); // record #2 announces 3 bytes, below minMsgSize
    writeFileSync(file0, bytes);

    const r = openQueue();
    const recs = [r.readNext()!, r.readNext()!];
    expect(recs.map((x) => idOf(x.data))).toEqual([0, 1]);
    expect(r.readNext()).toBeUndefined();
    expect(existsSync(`${file0}.bad`)).toBe(true);
    r.put(payload(4));
    r.sync();
    // a crash now replays #0 and #1, which are still un-acked, then the new record
    const replay = openQueue({}, crashCopy());
    expect(readAll(replay)).toEqual([0, 1, 4]);
    // once acked, the cut-back file goes
    for (const rec of recs) r.ack(rec.ticket);
    expect(existsSync(file0)).toBe(false);
    expect(readAll(r)).toEqual([4]);
  });

  it('deletes files below the low-water mark only after their acks', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 10; i++) q.put(payload(i)); // files 0..3
    const recs = Array.from({ length: 10 }, () => q.readNext()!);
    for (const rec of recs.slice(1)) q.ack(rec.ticket);
    expect(dataFiles(dir, 'topic')).toHaveLength(4);
    q.ack(recs[0]!.ticket);
    expect(dataFiles(dir, 'topic')).toEqual(['topic.diskqueue.000003.dat']);
    // the metadata was written before the files went
    expect(readMeta(dir, 'topic')).toEqual({ depth: 0, read: [3, 38], write: [3, 38] });
  });

  it('drops everything on empty() and removes every file on delete()', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 10; i++) q.put(payload(i));
    const rec = q.readNext()!;
    q.empty();
    expect(q.depth).toBe(0);
    expect(q.unackedCount).toBe(0);
    q.ack(rec.ticket);
    expect(dataFiles(dir, 'topic')).toEqual([]);
    expect(readMeta(dir, 'topic')).toEqual({ depth: 0, read: [4, 0], write: [4, 0] });
    expect(q.readNext()).toBeUndefined();
    q.put(payload(42));
    expect(readAll(q)).toEqual([42]);
    q.put(payload(43));

    const other = openQueue({ name: 'topic:ch' });
    other.put(payload(1));
    q.delete();
    expect(readdirSync(dir).filter((f) => f.startsWith('topic.'))).toEqual([]);
    expect(dataFiles(dir, 'topic:ch')).toHaveLength(1);
    expect(() => q.put(payload(1))).toThrow(DiskQueueError);
    q.close();
  });

  it('has current metadata on disk after every put with syncEvery=1', () => {
    const q = openQueue({ syncEvery: 1 });
    q.put(payload(0));
    expect(readMeta(dir, 'topic')).toEqual({ depth: 1, read: [0, 0], write: [0, 38] });
    q.put(payload(1, 10));
    expect(readMeta(dir, 'topic')).toEqual({ depth: 2, read: [0, 0], write: [0, 86] });
    q.putMany([payload(2), payload(3)]);
    expect(readMeta(dir, 'topic')).toMatchObject({ depth: 4, write: [0, 162] });
    // a read with the record still un-acked leaves the persisted position on it
    const rec = q.readNext()!;
    expect(readMeta(dir, 'topic')).toEqual({ depth: 4, read: [0, 0], write: [0, 162] });
    q.ack(rec.ticket);
    q.readNext();
    expect(readMeta(dir, 'topic')).toEqual({ depth: 3, read: [0, 38], write: [0, 162] });
  });

  it('syncs on the timer when there are unsynced changes', async () => {
    const q = openQueue({ syncTimeoutMs: 20 });
    q.put(payload(0));
    expect(existsSync(metaFileName(dir, 'topic'))).toBe(false);
    for (let i = 0; i < 200 && !existsSync(metaFileName(dir, 'topic')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(readMeta(dir, 'topic')).toEqual({ depth: 1, read: [0, 0], write: [0, 38] });
  });

  it('skips over a missing data file', () => {
    const q = openQueue({ maxBytesPerFile: 128 });
    for (let i = 0; i < 9; i++) q.put(payload(i));
    q.close();
    rmSync(diskQueueFileName(dir, 'topic', 1));
    const r = openQueue({ maxBytesPerFile: 128 });
    expect(readAll(r)).toEqual([0, 1, 2, 6, 7, 8]);
  });

  it('reads files a Go nsqd left with unsynced records past its metadata', () => {
    // go-diskqueue layout written by hand: metadata says 1 record, the file holds 3
    const recs = [payload(0), payload(1), payload(2)];
    const file = Buffer.concat(recs.map((p) => Buffer.concat([Buffer.from([0, 0, 0, p.length]), p])));
    writeFileSync(diskQueueFileName(dir, 'topic', 0), file);
    writeFileSync(metaFileName(dir, 'topic'), '1\n0,0\n0,38\n');
    const r = openQueue();
    expect(r.depth).toBe(3);
    expect(readAll(r)).toEqual([0, 1, 2]);
  });
});
