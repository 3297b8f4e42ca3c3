import { closeSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { encodeEnvelope } from '../../nest-nsq/src/index.js';
import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { buildHistoryDataSource } from './data-source.js';
import { HistoryJournal } from './journal.js';
import { JOURNAL_MAGIC, JournalEncoder, journalLine, readJournal } from './journal-codec.js';
import { HistoryRecorder } from './recorder.js';
import { historyRecordFromNsqdEvent } from './nsqd.js';
import type { HistoryRecord } from './types.js';

const PREFIX = 'host/1:jabc:';
const nsqd = 'host "a"\\b:4150 ✓';
const base = { at: 1_700_000_000_123, topic: 'orders.created', id: '0a1b2c3d4e5f6789' };
const delivery = { ...base, channel: 'points#ephemeral', client: 'svc "x"/42 ü', attempt: 3 };
const events: Array<[string, MessageEvent]> = [
  ['a plain publish', { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', body: Buffer.from([1, 0, 255, 0x22, 0x5c, 10]) }],
  ['an empty publish with no producer', { ...base, type: 'published', producer: '', body: Buffer.alloc(0) }],
  ['an envelope publish', { ...base, type: 'published', producer: 'http:x', body: encodeEnvelope({ 'message-key': 'ord-1' }, Buffer.from('{}')) }],
  ['a deferred publish', { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', body: Buffer.from('b'), deferMs: 5000 }],
  ['a delivery', { ...delivery, type: 'delivered' }],
  ['a FIN', { ...delivery, type: 'finished' }],
  ['a FIN with no client', { ...delivery, type: 'finished', client: '' }],
  ['a timeout', { ...delivery, type: 'timed_out' }],
  ['a requeue', { ...delivery, type: 'requeued', delayMs: 250 }],
  ['a deferral', { ...base, type: 'deferred', channel: 'c', until: base.at + 1000 }],
  ['a drop', { ...base, type: 'dropped', channel: 'c', reason: 'channel "c" deleted' }],
  ['a drop with no channel', { ...base, type: 'dropped', reason: 'topic deleted' }],
  ['a non-ASCII id', { ...delivery, type: 'delivered', id: 'ordre-ü-✓' }],
  ['an id longer than an EVENT frame takes', { ...delivery, type: 'delivered', id: 'x'.repeat(200) }],
];

/** What the journal must give back for event `e` with sequence number `seq`. */
const expected = (e: MessageEvent, seq: number): HistoryRecord => ({ ...historyRecordFromNsqdEvent(nsqd, e), key: PREFIX + seq.toString(36) });

function fileOf(write: (encoder: JournalEncoder) => void): Buffer {
  const encoder = new JournalEncoder();
  encoder.reset(PREFIX);
  write(encoder);
  return Buffer.from(encoder.take());
}

describe('journal codec', () => {
  it.each(events)('reads back %s as the record historyRecordFromNsqdEvent makes, with its key', (_, event) => {
    const file = fileOf((j) => j.event(1234, nsqd, event, PREFIX));
    expect(file.subarray(0, JOURNAL_MAGIC.length)).toEqual(JOURNAL_MAGIC);
    expect(readJournal(file)).toEqual({ records: [expected(event, 1234)], unreadable: 0 });
  });

  it('reads a file of every kind of event, strings defined once, in order', () => {
    // (the last one is written as JSON, topic and all)
    const all = events.slice(0, -1).map(([, e]) => e);
    const file = fileOf((j) => {
      for (let round = 0; round < 3; round++) all.forEach((e, i) => j.event(round * 100 + i, nsqd, e, PREFIX));
    });
    const want = [0, 1, 2].flatMap((round) => all.map((e, i) => expected(e, round * 100 + i)));
    expect(readJournal(file)).toEqual({ records: want, unreadable: 0 });
    // the topic's name is in the file once, not once per event
    expect(file.toString('latin1').split('orders.created').length - 1).toBe(1);
  });

  it('writes and reads any other record whole, as JSON', () => {
    const r: HistoryRecord = {
      key: 'k:1',
      type: 'delivered',
      nsqd: 'client',
      messageId: 'f8a7c3e2-5b1d-4c8e-9f0a-1b2c3d4e5f60',
      at: new Date(1_700_000_000_000),
      topic: 't',
      channel: 'c',
      consumer: 'points-service',
      attempt: 2,
      body: Buffer.from([0, 1, 2]),
      size: 3,
      messageKey: 'ord-1',
      ensureMessage: true,
      publishedAt: new Date(1_699_999_999_000),
      detail: "it's \\ \"odd\"\n",
    };
    expect(readJournal(fileOf((j) => j.record(r)))).toEqual({ records: [r], unreadable: 0 });
  });

  it('a file cut anywhere inside its last frame gives every earlier record and counts one unreadable', () => {
    const first = events[0]![1];
    // the same strings: the second event's frame is the only one after the first's
    const second: MessageEvent = { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', id: 'ffffffffffffffff', body: Buffer.from('second') };
    const head = fileOf((j) => j.event(1, nsqd, first, PREFIX));
    const whole = fileOf((j) => {
      j.event(1, nsqd, first, PREFIX);
      j.event(2, nsqd, second, PREFIX);
    });
    for (let cut = head.length + 1; cut < whole.length; cut++) {
      expect(readJournal(whole.subarray(0, cut))).toEqual({ records: [expected(first, 1)], unreadable: 1 });
    }
  });

  it('reads a journal of JSON lines, as earlier versions wrote it, skipping a torn last line', () => {
    const r = expected(events[4]![1], 7);
    const text = `${journalLine(r)}\n${journalLine(r).slice(0, 20)}`;
    expect(readJournal(Buffer.from(text))).toEqual({ records: [r], unreadable: 1 });
  });

  it('starts string numbers over in a new file', () => {
    const encoder = new JournalEncoder();
    encoder.reset(PREFIX);
    encoder.event(1, nsqd, events[4]![1], PREFIX);
    const one = Buffer.from(encoder.take());
    encoder.reset(PREFIX);
    encoder.event(2, nsqd, events[5]![1], PREFIX);
    const two = Buffer.from(encoder.take());
    expect(readJournal(one).records).toEqual([expected(events[4]![1], 1)]);
    expect(readJournal(two).records).toEqual([expected(events[5]![1], 2)]);
  });

  it('never throws on damaged files: frames cut short inside, garbage after the magic', () => {
    // an EVENT frame whose declared length ends just before its id length byte
    const short = Buffer.concat([JOURNAL_MAGIC, Buffer.from([38, 0, 0, 0, 3]), Buffer.alloc(37)]);
    expect(readJournal(short)).toEqual({ records: [], unreadable: 1 });
    const good = fileOf((j) => {
      for (let n = 0; n < events.length; n++) j.event(n, nsqd, events[n]![1], PREFIX);
    });
    let seed = 7;
    const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 500; round++) {
      const damaged = Buffer.from(good);
      for (let k = 0; k < 8; k++) damaged[JOURNAL_MAGIC.length + Math.floor(random() * (damaged.length - JOURNAL_MAGIC.length))] = Math.floor(random() * 256);
      const read = readJournal(damaged);
      expect(read.records.length + read.unreadable).toBeGreaterThan(0);
    }
  });

  it('a file nothing was recorded into stays empty', () => {
    const encoder = new JournalEncoder();
    encoder.reset(PREFIX);
    expect(encoder.pending).toBe(0);
    encoder.event(1, nsqd, events[4]![1], PREFIX);
    expect(readJournal(Buffer.from(encoder.take())).records).toEqual([expected(events[4]![1], 1)]);
  });
});

describe('HistoryJournal', () => {
  it('an idle journal writes nothing and starts no new file at its checkpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-idle-'));
    try {
      const recorder = new HistoryRecorder(buildHistoryDataSource({ type: 'sqljs', location: join(dir, 'history.sqlite') }), { spoolPath: join(dir, 'spool') });
      const journal = new HistoryJournal(recorder, { path: join(dir, 'j'), checkpointInterval: 10 });
      await journal.start();
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(readdirSync(dir).filter((f) => f.startsWith('j.'))).toEqual(['j.1']);
      expect(statSync(join(dir, 'j.1')).size).toBe(0);
      await journal.close();
      expect(readdirSync(dir).filter((f) => f.startsWith('j.'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failed write loses only that write from the journal: it goes on in a new file, and a restart replays the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-fail-'));
    const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const delivered = (n: number): MessageEvent => ({ ...delivery, type: 'delivered', id: n.toString(16).padStart(16, '0') });
    try {
      const first = new HistoryJournal(
        new HistoryRecorder(buildHistoryDataSource({ type: 'sqljs', location: join(dir, 'a.sqlite') }), { spoolPath: join(dir, 'a.spool'), flushInterval: 1e9 }),
        { path: join(dir, 'j'), checkpointInterval: 1e9 },
      );
      await first.start();
      for (let n = 0; n < 3; n++) first.recordNsqdEvent(nsqd, delivered(n));
      await tick();
      // the file's descriptor goes bad under the journal: its next write fails
      closeSync((first as unknown as { fd: number }).fd);
      for (let n = 3; n < 5; n++) first.recordNsqdEvent(nsqd, delivered(n));
      await tick();
      expect(first.stats()).toMatchObject({ journalErrors: 1, lastJournalError: expect.stringContaining('EBADF') });
      for (let n = 5; n < 9; n++) first.recordNsqdEvent(nsqd, delivered(n));
      await tick();
      expect(readdirSync(dir).filter((f) => f.startsWith('j.')).sort()).toEqual(['j.1', 'j.2']);

      // the process "died" here; a new one replays both files: all but the two of the failed write
      const second = new HistoryJournal(
        new HistoryRecorder(buildHistoryDataSource({ type: 'sqljs', location: join(dir, 'b.sqlite') }), { spoolPath: join(dir, 'b.spool'), flushInterval: 1e9 }),
        { path: join(dir, 'j'), checkpointInterval: 1e9 },
      );
      await second.start();
      expect(second.stats()).toMatchObject({ journalReplayed: 7, journalErrors: 0 });
      await second.close();
      await first.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
