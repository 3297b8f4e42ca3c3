/**
 * The recorder's batched path on the embedded sql.js and on MariaDB: a message's events spread
 * over many batches, written two at a time (MySQL) with the summaries folded ahead of the writes,
 * or arriving in reverse over several flushes and merged into stored summaries in SQL, give the
 * summaries of the whole lifecycle; writes wait while the event loop is busy (busyThreshold)
 * until flush() or a fuller queue (written() waits without hurrying them), and lose nothing.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HistoryQueryService, HistoryRecorder, type HistoryRecord, type HistoryRecorderOptions } from '../../libs/message-history/src/index.js';
import { uniqueName } from '../support/client.js';
import { type HistoryDb, openHistoryDb } from '../support/history.js';
import { historyBackends } from '../support/mariadb.js';
import { sleep, waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();
const TEST_TIMEOUT = 60_000;
const NSQD = '127.0.0.1:4150';

let idSeq = 0;
const nextId = (): string => `b${(++idSeq).toString(16).padStart(15, '0')}`;

describe.each(backends)('message history batching (%s)', (backend) => {
  let db: HistoryDb;
  let query: HistoryQueryService;
  const recorders: HistoryRecorder[] = [];
  let spoolSeq = 0;

  beforeAll(async () => {
    if (backend === 'mariadb' && missing !== undefined) throw new Error(missing);
    db = await openHistoryDb(backend);
    query = new HistoryQueryService(db.dataSource);
  }, TEST_TIMEOUT);

  afterAll(async () => {
    for (const r of recorders) await r.close();
    await db?.drop();
  }, TEST_TIMEOUT);

  async function recorder(options: Partial<HistoryRecorderOptions> = {}): Promise<HistoryRecorder> {
    const r = new HistoryRecorder(db.dataSource, { spoolPath: join(db.dir, `batching-${++spoolSeq}.jsonl`), flushInterval: 20, ...options });
    recorders.push(r);
    await r.start();
    return r;
  }

  /** Each message: published; on 'c' delivered, requeued, delivered again, finished; on 'd' delivered only. */
  function lives(topic: string, ids: readonly string[], t: number): { publishes: HistoryRecord[]; rest: HistoryRecord[] } {
    const publishes: HistoryRecord[] = [];
    const rest: HistoryRecord[] = [];
    for (const [i, messageId] of ids.entries()) {
      const base = { nsqd: NSQD, messageId, topic };
      publishes.push({ ...base, type: 'published', at: new Date(t + i), body: Buffer.from(`body ${i}`), producer: 'tcp:127.0.0.1:1' });
      rest.push(
        { ...base, type: 'delivered', channel: 'c', consumer: 'x', attempt: 1, at: new Date(t + 1000 + i) },
        { ...base, type: 'delivered', channel: 'd', consumer: 'y', attempt: 1, at: new Date(t + 1000 + i) },
        { ...base, type: 'requeued', channel: 'c', consumer: 'x', attempt: 1, at: new Date(t + 2000 + i), detail: 'delay 0 ms' },
        { ...base, type: 'delivered', channel: 'c', consumer: 'x', attempt: 2, at: new Date(t + 3000 + i) },
        { ...base, type: 'finished', channel: 'c', consumer: 'x', attempt: 2, at: new Date(t + 4000 + i) },
      );
    }
    return { publishes, rest };
  }

  async function expectLives(topic: string, ids: readonly string[], t: number, events = 6): Promise<void> {
    const counts = await query.counts();
    expect(counts.topics.find((c) => c.topic === topic)).toEqual({ topic, messages: ids.length, byStatus: { finished: ids.length } });
    expect(counts.channels.filter((c) => c.topic === topic)).toEqual([
      { topic, channel: 'c', messages: ids.length, byStatus: { finished: ids.length } },
      { topic, channel: 'd', messages: ids.length, byStatus: { in_flight: ids.length } },
    ]);
    for (const i of [0, Math.floor(ids.length / 2), ids.length - 1]) {
      const [d] = await query.getMessage(ids[i]!, NSQD);
      expect(d!.message).toMatchObject({ status: 'finished', attempts: 2, bodyUtf8: `body ${i}`, publishedAt: new Date(t + i).toISOString(), finishedAt: new Date(t + 4000 + i).toISOString() });
      expect(d!.channels.map((c) => [c.channel, c.status, c.attempts, c.firstDeliveredAt])).toEqual([
        ['c', 'finished', 2, new Date(t + 1000 + i).toISOString()],
        ['d', 'in_flight', 1, new Date(t + 1000 + i).toISOString()],
      ]);
      expect(d!.events).toHaveLength(events);
    }
  }

  it(
    "writes a message's events spread over many batches, folded ahead while queued",
    async () => {
      const r = await recorder({ batchSize: 250 });
      const topic = uniqueName('h-batch-ahead');
      const ids = Array.from({ length: 1200 }, nextId);
      const t = Date.now() - 60_000;
      const { publishes, rest } = lives(topic, ids, t);
      // all queued before the first write: the publishes' batches see the later events
      for (const rec of [...publishes, ...rest]) r.record(rec);
      await r.flush();
      expect(r.stats()).toMatchObject({ written: 7200, spooled: 0, failures: 0, queued: 0 });
      await expectLives(topic, ids, t);
    },
    TEST_TIMEOUT,
  );

  it(
    'splits batches into many small statements, each run as it fills, and loses nothing',
    async () => {
      // ~1 KiB statements: a few rows each, so every kind of row (events, publishes, summaries,
      // channels) spans many statements of a batch, built while the previous ones run
      const r = await recorder({ batchSize: 250, maxStatementBytes: 1024 });
      const topic = uniqueName('h-batch-small');
      const ids = Array.from({ length: 300 }, nextId);
      const t = Date.now() - 60_000;
      const { publishes, rest } = lives(topic, ids, t);
      // the later events first, then the publishes: summaries rows, then publishes merged into them
      for (const rec of rest) r.record(rec);
      await r.flush();
      for (const rec of publishes) r.record(rec);
      await r.flush();
      expect(r.stats()).toMatchObject({ written: 1800, spooled: 0, failures: 0, queued: 0 });
      await expectLives(topic, ids, t);
    },
    TEST_TIMEOUT,
  );

  it(
    'merges later batches into summaries already stored, whatever the order',
    async () => {
      const r = await recorder({ batchSize: 300 });
      const topic = uniqueName('h-batch-merge');
      const ids = Array.from({ length: 600 }, nextId);
      const t = Date.now() - 60_000;
      const { publishes, rest } = lives(topic, ids, t);
      // the finishes first, the publishes last: every row is created, then merged into
      for (const rec of rest.filter((e) => e.type === 'finished')) r.record(rec);
      await r.flush();
      for (const rec of rest.filter((e) => e.type !== 'finished').reverse()) r.record(rec);
      await r.flush();
      for (const rec of publishes) r.record(rec);
      await r.flush();
      await expectLives(topic, ids, t);
      // the same events recorded again (new event rows) change no summary; the publish is the
      // message row, so it shows once
      for (const rec of [...publishes, ...rest]) r.record(rec);
      await r.flush();
      await expectLives(topic, ids, t, 11);
    },
    TEST_TIMEOUT,
  );

  it(
    "fills in a consumer-side row's key and body when a later event's batch made the row first",
    async () => {
      const r = await recorder({ batchSize: 100 });
      const topic = uniqueName('h-batch-ensure');
      const ids = Array.from({ length: 50 }, nextId);
      const t = Date.now() - 60_000;
      const consumerSide = (type: 'delivered' | 'finished', i: number): HistoryRecord => ({
        type,
        nsqd: '127.0.0.1:4150/ensure',
        messageId: ids[i]!,
        topic,
        channel: 'c',
        consumer: 'svc',
        attempt: 1,
        at: new Date(t + (type === 'delivered' ? 1000 : 2000) + i),
        ...(type === 'delivered' ? { ensureMessage: true, body: Buffer.from(`body ${i}`), messageKey: `key-${topic}-${i}`, publishedAt: new Date(t + i) } : {}),
      });
      // the FINs' batch commits first (as when concurrent batches commit out of order, or a
      // replay wrote them): their rows are made from events alone, with no key and no body
      for (let i = 0; i < ids.length; i++) r.record(consumerSide('finished', i));
      await r.flush();
      for (let i = 0; i < ids.length; i++) r.record(consumerSide('delivered', i));
      await r.flush();
      for (const i of [0, 25, 49]) {
        const found = await query.getMessage(`key-${topic}-${i}`);
        expect(found).toHaveLength(1);
        expect(found[0]!.message).toMatchObject({ messageKey: `key-${topic}-${i}`, bodyUtf8: `body ${i}`, size: `body ${i}`.length, publishedAt: new Date(t + i).toISOString(), status: 'finished' });
        expect(found[0]!.events.map((e) => e.type)).toEqual(['delivered', 'finished']);
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'lets writes wait while the event loop is busy, until flush() or a fuller queue',
    async () => {
      // a threshold of 0: the loop always counts as busy
      const r = await recorder({ batchSize: 10, maxQueued: 100, busyThreshold: 0 });
      const topic = uniqueName('h-batch-busy');
      const ids = Array.from({ length: 30 }, nextId);
      const { publishes } = lives(topic, ids, Date.now());
      // the first samples of the event loop
      await sleep(100);
      for (const rec of publishes.slice(0, 20)) r.record(rec);
      // written() (a journal's checkpoint) waits for the writes without hurrying them
      let settled = false;
      const written = r.written().then(() => {
        settled = true;
      });
      await sleep(300);
      expect(r.stats()).toMatchObject({ written: 0, queued: 20, spooling: false });
      expect(settled).toBe(false);
      await r.flush();
      await written;
      expect(r.stats()).toMatchObject({ written: 20, queued: 0 });
      // past 80 % of maxQueued the writes go ahead without a flush
      const more = Array.from({ length: 90 }, nextId);
      for (const rec of lives(topic, more, Date.now()).publishes) r.record(rec);
      await waitFor(() => r.stats().written >= 30, 10_000, 'writes past the busy limit');
      expect(r.stats().spooling).toBe(false);
      await r.flush();
      expect(r.stats()).toMatchObject({ written: 110, spooled: 0, queued: 0 });
      expect((await query.counts()).topics.find((c) => c.topic === topic)).toEqual({ topic, messages: 110, byStatus: { published: 110 } });
    },
    TEST_TIMEOUT,
  );
});
