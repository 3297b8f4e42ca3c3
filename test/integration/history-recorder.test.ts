/**
 * The recorder's options, the summary subscriber and the query service, on the embedded sql.js and
 * on MariaDB, with records handed in directly: more events than fit in memory (spooled, then
 * replayed), body caps and topic filters, dead-lettering, the subscriber under multi-row inserts,
 * replays and out-of-order batches, search pagination and validation, counts, and retention.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  HistoryEvent,
  HistoryQueryError,
  HistoryQueryService,
  HistoryRecorder,
  type HistoryRecord,
  type HistoryRecorderOptions,
  withDatabaseLock,
} from '../../libs/message-history/src/index.js';
import { uniqueName } from '../support/client.js';
import { countRows, type HistoryDb, openHistoryDb } from '../support/history.js';
import { historyBackends } from '../support/mariadb.js';
import { waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();
const TEST_TIMEOUT = 30_000;
const NSQD = '127.0.0.1:4150';
const DAY = 24 * 3600 * 1000;

let idSeq = 0;
const nextId = (): string => (++idSeq).toString(16).padStart(16, '0');

describe.each(backends)('message history recorder, subscriber and queries (%s)', (backend) => {
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
    const r = new HistoryRecorder(db.dataSource, { spoolPath: join(db.dir, `spool-${++spoolSeq}.jsonl`), flushInterval: 20, ...options });
    recorders.push(r);
    await r.start();
    return r;
  }

  const lifecycle = (topic: string, messageId: string, t: number, channel = 'c'): HistoryRecord[] => [
    { type: 'published', nsqd: NSQD, messageId, topic, at: new Date(t), body: Buffer.from(`body of ${messageId}`), producer: 'http:127.0.0.1:9' },
    { type: 'delivered', nsqd: NSQD, messageId, topic, channel, attempt: 1, at: new Date(t + 1) },
    { type: 'finished', nsqd: NSQD, messageId, topic, channel, attempt: 1, at: new Date(t + 2) },
  ];

  it(
    'spools what does not fit in memory and replays it',
    async () => {
      const r = await recorder({ maxQueued: 50, batchSize: 100 });
      const topic = uniqueName('h-overflow');
      const ids: string[] = [];
      // all in one synchronous burst: nothing is written before the queue overflows
      for (let i = 0; i < 200; i++) {
        const id = nextId();
        ids.push(id);
        for (const rec of lifecycle(topic, id, Date.now())) r.record(rec);
      }
      expect(r.stats().spooling).toBe(true);
      await r.flush();
      await waitFor(() => !r.stats().spooling && r.stats().spoolPendingBytes === 0 && r.stats().queued === 0, 20_000, 'the spool replayed');
      expect(r.stats()).toMatchObject({ written: 0, spooled: 600, replayed: 600, failures: 0 });
      const counts = await query.counts();
      expect(counts.topics.find((t) => t.topic === topic)).toEqual({ topic, messages: 200, byStatus: { finished: 200 } });
    },
    TEST_TIMEOUT,
  );

  it(
    'caps stored bodies, can leave them out, and records only the topics asked for',
    async () => {
      const base = uniqueName('h-opts');
      const big = Buffer.alloc(100, 0x61);
      const capped = await recorder({ maxBodySize: 10, includeTopics: [`${base}-in`, `${base}-cap`] });
      const bodiless = await recorder({ storeBodies: false, excludeTopics: /-skip$/ });
      const ids = { cap: nextId(), in: nextId(), out: nextId(), bare: nextId(), skip: nextId() };
      const publish = (r: HistoryRecorder, topic: string, id: string): void =>
        r.record({ type: 'published', nsqd: NSQD, messageId: id, topic, at: new Date(), body: big });
      publish(capped, `${base}-cap`, ids.cap);
      publish(capped, `${base}-in`, ids.in);
      publish(capped, `${base}-out`, ids.out);
      publish(bodiless, `${base}-bare`, ids.bare);
      publish(bodiless, `${base}-skip`, ids.skip);
      await capped.flush();
      await bodiless.flush();

      const [cap] = await query.getMessage(ids.cap);
      expect(cap!.message).toMatchObject({ size: 100, bodyTruncated: true, bodyUtf8: 'a'.repeat(10) });
      expect((await query.getMessage(ids.in))[0]!.message).toMatchObject({ size: 100, bodyTruncated: true });
      expect(await query.getMessage(ids.out)).toEqual([]);
      expect((await query.getMessage(ids.bare))[0]!.message).toMatchObject({ size: 100, bodyTruncated: false, bodyBase64: null, bodyUtf8: null });
      expect(await query.getMessage(ids.skip)).toEqual([]);
      expect(capped.stats().ignored).toBe(1);
      expect(bodiless.stats().ignored).toBe(1);
    },
    TEST_TIMEOUT,
  );

  it(
    'splits a batch into INSERT statements under the size and parameter limits',
    async () => {
      const statements = { message: 0, event: 0 };
      const counter = {
        beforeQuery(event: { query: string }) {
          // the recorder's upsert of published messages (the summary upsert leaves `producer` alone)
          if (/^INSERT\b.*\bINTO [`"]nsq_message[`"]/.test(event.query) && /[`"]producer[`"] = /.test(event.query)) statements.message++;
          if (/^INSERT\b.*\bINTO [`"]nsq_message_event[`"]/.test(event.query)) statements.event++;
        },
      };
      db.dataSource.subscribers.push(counter as never);
      try {
        const r = await recorder({ batchSize: 20_000, maxBodySize: 256 * 1024 });
        const topic = uniqueName('h-chunks');
        const bodies = new Map<string, Buffer>();
        const t = Date.now();
        for (let i = 0; i < 3500; i++) {
          const id = nextId();
          // 40 large bodies, the rest small: 3500 messages, 10500 events in one batch
          const body = i < 40 ? Buffer.alloc(200 * 1024, i) : Buffer.from(`small ${i}`);
          bodies.set(id, body);
          for (const rec of lifecycle(topic, id, t + i)) r.record(rec.type === 'published' ? { ...rec, body } : rec);
        }
        await r.flush();
        expect(r.stats()).toMatchObject({ written: 10_500, failures: 0 });
        // 8 MB of bodies, at most 4 MiB per statement (on MySQL, which gets them hex-encoded, 2 MiB)
        expect(statements.message).toBeGreaterThanOrEqual(backend === 'sqljs' ? 2 : 4);
        // sql.js: at most 30000 bound parameters per statement (10 per event row); MySQL: the size only
        expect(statements.event).toBeGreaterThanOrEqual(backend === 'sqljs' ? 4 : 2);
        const counts = await query.counts();
        expect(counts.topics.find((c) => c.topic === topic)).toEqual({ topic, messages: 3500, byStatus: { finished: 3500 } });
        for (const [id, body] of [...bodies].slice(0, 45)) {
          const [d] = await query.getMessage(id);
          expect(Buffer.from(d!.message!.bodyBase64!, 'base64').equals(body)).toBe(true);
        }
      } finally {
        db.dataSource.subscribers.splice(db.dataSource.subscribers.indexOf(counter as never), 1);
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'records dead-lettering (as the transport hooks report it)',
    async () => {
      const r = await recorder();
      const topic = uniqueName('h-dlq');
      const id = nextId();
      const t = Date.now();
      for (let attempt = 1; attempt <= 3; attempt++) {
        r.record({ type: 'delivered', nsqd: NSQD, messageId: id, topic, channel: 'svc', attempt, at: new Date(t + attempt * 10) });
        if (attempt < 3) r.record({ type: 'requeued', nsqd: NSQD, messageId: id, topic, channel: 'svc', attempt, at: new Date(t + attempt * 10 + 1), detail: 'handler failed: boom' });
      }
      r.record({ type: 'dead_lettered', nsqd: NSQD, messageId: id, topic, channel: 'svc', attempt: 3, at: new Date(t + 40), detail: 'max attempts: boom' });
      r.record({ type: 'finished', nsqd: NSQD, messageId: id, topic, channel: 'svc', attempt: 3, at: new Date(t + 40) });
      await r.flush();
      const [d] = await query.getMessage(id, NSQD);
      // no publish was recorded: the message row is made from the events
      expect(d!.message).toMatchObject({ topic, status: 'dead_lettered', attempts: 3, size: 0, bodyBase64: null, deadLetteredAt: new Date(t + 40).toISOString() });
      expect(d!.message!.publishedAt).toBe(new Date(t + 10).toISOString());
      expect(d!.channels).toMatchObject([{ channel: 'svc', status: 'dead_lettered', attempts: 3, deadLetteredAt: new Date(t + 40).toISOString(), finishedAt: new Date(t + 40).toISOString() }]);
      expect(d!.events.find((e) => e.type === 'dead_lettered')!.detail).toBe('max attempts: boom');

      // the publish arriving later (say, replayed from another spool) fills in the message
      r.record({ type: 'published', nsqd: NSQD, messageId: id, topic, at: new Date(t), body: Buffer.from('late'), producer: 'client:svc' });
      await r.flush();
      const [after] = await query.getMessage(id, NSQD);
      expect(after!.message).toMatchObject({ status: 'dead_lettered', attempts: 3, size: 4, bodyUtf8: 'late', producer: 'client:svc', publishedAt: new Date(t).toISOString() });
    },
    TEST_TIMEOUT,
  );

  it(
    'keeps summaries for multi-row inserts of events, in any order, replayed or not',
    async () => {
      const topic = uniqueName('h-sub');
      const ids = [nextId(), nextId()];
      const t = Date.now();
      let key = 0;
      const event = (messageId: string, type: HistoryEvent['type'], attempt: number | null, dt: number, channel: string | null = 'c') => ({
        eventKey: `test:${topic}:${++key}`,
        nsqd: NSQD,
        messageId,
        topic,
        type,
        channel,
        attempt,
        at: new Date(t + dt),
      });
      const life = (id: string) => [
        event(id, 'published', null, 0, null),
        event(id, 'delivered', 1, 1),
        event(id, 'requeued', 1, 1),
        event(id, 'delivered', 2, 1),
        event(id, 'timed_out', 2, 5),
        event(id, 'delivered', 3, 6),
        event(id, 'finished', 3, 6),
        event(id, 'delivered', 1, 2, 'other'),
      ];
      const inOrder = life(ids[0]!);
      const shuffled = life(ids[1]!).reverse();
      const insert = (rows: object[]) =>
        withDatabaseLock(db.dataSource, () =>
          db.dataSource.transaction((em) => em.createQueryBuilder().insert().into(HistoryEvent).values(rows).orIgnore().updateEntity(false).execute()),
        );
      // one multi-row insert per transaction; the second message's events arrive newest first, over three batches
      await insert(inOrder);
      await insert(shuffled.slice(0, 3));
      await insert(shuffled.slice(3, 5));
      await insert(shuffled.slice(5));
      const summaries = async () =>
        Promise.all(
          ids.map(async (id) => {
            const [d] = await query.getMessage(id, NSQD);
            return { message: { status: d!.message!.status, attempts: d!.message!.attempts, finishedAt: d!.message!.finishedAt }, channels: d!.channels };
          }),
        );
      const [a, b] = await summaries();
      expect(a).toEqual({
        message: { status: 'finished', attempts: 3, finishedAt: new Date(t + 6).toISOString() },
        channels: [
          {
            channel: 'c',
            status: 'finished',
            attempts: 3,
            firstDeliveredAt: new Date(t + 1).toISOString(),
            finishedAt: new Date(t + 6).toISOString(),
            deadLetteredAt: null,
            lastEventAt: new Date(t + 6).toISOString(),
          },
          {
            channel: 'other',
            status: 'in_flight',
            attempts: 1,
            firstDeliveredAt: new Date(t + 2).toISOString(),
            finishedAt: null,
            deadLetteredAt: null,
            lastEventAt: new Date(t + 2).toISOString(),
          },
        ],
      });
      expect(b).toEqual(a);
      // a replay of everything (INSERT IGNORE skips the rows, afterInsert still fires) changes nothing
      await insert([...inOrder, ...shuffled]);
      expect(await summaries()).toEqual([a, b]);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(await countRows(db.dataSource, 'nsq_message_event', 'eventKey'));
    },
    TEST_TIMEOUT,
  );

  it(
    'searches by topic, channel, status, time, message key; pages by cursor; counts',
    async () => {
      const r = await recorder({ batchSize: 500 });
      const topic = uniqueName('h-search');
      const t0 = Date.now() - 1000 * 1000;
      const ids: string[] = [];
      for (let i = 0; i < 120; i++) {
        const id = nextId();
        ids.push(id);
        // three messages per millisecond: pages must break ties by id
        const t = t0 + Math.floor(i / 3);
        r.record({ type: 'published', nsqd: NSQD, messageId: id, topic, at: new Date(t), body: Buffer.from(`n=${i}`), messageKey: `key-${i}` });
        r.record({ type: 'delivered', nsqd: NSQD, messageId: id, topic, channel: i % 2 === 0 ? 'even' : 'odd', attempt: 1, at: new Date(t + 1) });
        if (i % 4 === 0) r.record({ type: 'finished', nsqd: NSQD, messageId: id, topic, channel: 'even', attempt: 1, at: new Date(t + 2) });
      }
      await r.flush();

      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await query.search({ topic, limit: 50, cursor });
        seen.push(...page.items.map((i) => i.messageId));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor !== undefined);
      expect(pages).toBe(3);
      expect(seen).toEqual([...ids].reverse());

      const find = async (params: Parameters<HistoryQueryService['search']>[0]) => (await query.search({ topic, limit: 500, ...params })).items.map((i) => i.messageId);
      expect(await find({ channel: 'odd' })).toHaveLength(60);
      expect(await find({ channel: 'even', status: 'finished' })).toHaveLength(30);
      expect(await find({ channel: 'even', status: 'in_flight' })).toHaveLength(30);
      expect(await find({ status: 'finished' })).toHaveLength(30);
      expect(await find({ status: 'in_flight' })).toHaveLength(90);
      expect(await find({ messageKey: 'key-7' })).toEqual([ids[7]]);
      expect(await find({ from: new Date(t0 + 10), to: String(t0 + 12) })).toEqual([ids[38], ids[37], ids[36], ids[35], ids[34], ids[33], ids[32], ids[31], ids[30]]);
      expect(await find({ from: new Date(t0 + 39).toISOString() })).toEqual([ids[119], ids[118], ids[117]]);
      expect(await find({ bodyContains: 'n=11' })).toEqual([ids[119], ids[118], ids[117], ids[116], ids[115], ids[114], ids[113], ids[112], ids[111], ids[110], ids[11]]);

      const counts = await query.counts({ from: t0, to: new Date(t0 + 39) });
      expect(counts.topics.find((c) => c.topic === topic)).toEqual({ topic, messages: 120, byStatus: { finished: 30, in_flight: 90 } });
      expect(counts.channels.filter((c) => c.topic === topic)).toEqual([
        { topic, channel: 'even', messages: 60, byStatus: { finished: 30, in_flight: 30 } },
        { topic, channel: 'odd', messages: 60, byStatus: { in_flight: 60 } },
      ]);
      const later = await query.counts({ from: new Date(t0 + 39) });
      expect(later.topics.find((c) => c.topic === topic)).toEqual({ topic, messages: 3, byStatus: { in_flight: 3 } });
    },
    TEST_TIMEOUT,
  );

  it('refuses bad query parameters with HistoryQueryError', async () => {
    const bad: Array<[string, () => Promise<unknown>]> = [
      ['limit', () => query.search({ limit: 0 })],
      ['limit', () => query.search({ limit: 501 })],
      ['limit', () => query.search({ limit: '10; DROP TABLE nsq_message' })],
      ['status', () => query.search({ status: 'lost' })],
      ['from', () => query.search({ from: 'yesterday-ish' })],
      ['from', () => query.search({ from: 2000, to: 1000 })],
      ['cursor', () => query.search({ cursor: 'not-a-cursor' })],
      ['topic', () => query.search({ topic: 'x'.repeat(65) })],
      ['messageId', () => query.getMessage("0'; --")],
      ['to', () => query.counts({ to: 'never' })],
    ];
    for (const [parameter, call] of bad) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HistoryQueryError);
      expect(err).toMatchObject({ parameter, statusCode: 400 });
    }
  });

  it('returns the message of every nsqd when the id alone is asked for', async () => {
    const r = await recorder();
    const id = nextId();
    const topic = uniqueName('h-two-nsqd');
    for (const nsqd of ['10.0.0.2:4150', '10.0.0.1:4150']) {
      r.record({ type: 'published', nsqd, messageId: id, topic, at: new Date(), body: Buffer.from(nsqd) });
    }
    await r.flush();
    expect((await query.getMessage(id)).map((d) => [d.nsqd, d.message!.bodyUtf8])).toEqual([
      ['10.0.0.1:4150', '10.0.0.1:4150'],
      ['10.0.0.2:4150', '10.0.0.2:4150'],
    ]);
    expect((await query.getMessage(id, '10.0.0.2:4150')).map((d) => d.nsqd)).toEqual(['10.0.0.2:4150']);
  });

  it(
    'deletes rows past the retention in batches',
    async () => {
      const r = await recorder({ retention: 7 * DAY, retentionBatchSize: 7 });
      const topic = uniqueName('h-retention');
      const now = Date.now();
      const old: string[] = [];
      const recent: string[] = [];
      for (let i = 0; i < 20; i++) {
        const id = nextId();
        old.push(id);
        for (const rec of lifecycle(topic, id, now - 10 * DAY + i)) r.record(rec);
      }
      for (let i = 0; i < 5; i++) {
        const id = nextId();
        recent.push(id);
        for (const rec of lifecycle(topic, id, now - DAY + i)) r.record(rec);
      }
      await r.flush();
      const before = {
        messages: await countRows(db.dataSource, 'nsq_message'),
        events: await countRows(db.dataSource, 'nsq_message_event'),
        channels: await countRows(db.dataSource, 'nsq_message_channel'),
      };
      const result = await r.runRetention(now);
      // earlier tests' rows are recent: only these 20 messages are old
      // (a publish is its message row: two event rows a message)
      expect(result).toMatchObject({ messages: 20, events: 40, channels: 20 });
      // 40 events in batches of 7 take 6 statements, 20 rows 3 each
      expect(result.statements).toBe(6 + 3 + 3);
      expect({
        messages: await countRows(db.dataSource, 'nsq_message'),
        events: await countRows(db.dataSource, 'nsq_message_event'),
        channels: await countRows(db.dataSource, 'nsq_message_channel'),
      }).toEqual({ messages: before.messages - 20, events: before.events - 40, channels: before.channels - 20 });
      for (const id of old) expect(await query.getMessage(id)).toEqual([]);
      for (const id of recent) expect((await query.getMessage(id))[0]!.events).toHaveLength(3);
      expect(await r.runRetention(now)).toEqual({ messages: 0, events: 0, channels: 0, statements: 0 });
    },
    TEST_TIMEOUT,
  );
});
