/**
 * Message history of our TypeScript nsqd, on the embedded sql.js and on MariaDB: the recorder is
 * fed from `nsqd.events` (as the broker will do) and the timeline and summaries are read back
 * through HistoryQueryService. A message requeued twice then finished, fan-out to two channels,
 * DPUB's deferred_until, a timeout, and bodies that are binary, not UTF-8, or full of quotes,
 * backslashes and SQL, byte for byte, found again by a body search.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Consumer, type ConsumerInput } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import type { Message } from '../../libs/nsq/src/client/message.js';
import { Producer } from '../../libs/nsq/src/client/producer.js';
import { NSQD } from '../../libs/nsq/src/nsqd/nsqd.js';
import {
  HistoryQueryService,
  HistoryRecorder,
  recordNsqdEvents,
  type HistoryMessageDetail,
} from '../../libs/message-history/src/index.js';
import { uniqueName } from '../support/client.js';
import { type HistoryDb, openHistoryDb } from '../support/history.js';
import { historyBackends } from '../support/mariadb.js';
import { waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();
const TEST_TIMEOUT = 30_000;

describe.each(backends)('message history of our nsqd (%s)', (backend) => {
  let db: HistoryDb;
  let nsqd: NSQD;
  let nsqdDir: string;
  let recorder: HistoryRecorder;
  let query: HistoryQueryService;
  let producer: Producer;
  let unsubscribe: () => void = () => undefined;
  /** id of every published message, by body (hex). */
  const idsByBody = new Map<string, string>();
  let consumers: Consumer[] = [];

  beforeAll(async () => {
    if (backend === 'mariadb' && missing !== undefined) throw new Error(missing);
    db = await openHistoryDb(backend);
    nsqdDir = mkdtempSync(join(tmpdir(), 'history-nsqd-'));
    nsqd = new NSQD({
      tcpAddress: '127.0.0.1:0',
      httpAddress: '127.0.0.1:0',
      dataPath: nsqdDir,
      broadcastAddress: '127.0.0.1',
      logger: silentLogger,
      queueScanInterval: 20,
    });
    await nsqd.start();
    recorder = new HistoryRecorder(db.dataSource, { spoolPath: join(db.dir, 'spool.jsonl'), flushInterval: 20 });
    await recorder.start();
    unsubscribe = recordNsqdEvents(recorder, nsqd);
    const stopIds = nsqd.events.subscribe((e) => {
      if (e.type === 'published') idsByBody.set(e.body.toString('hex'), e.id);
    });
    const previous = unsubscribe;
    unsubscribe = () => {
      stopIds();
      previous();
    };
    query = new HistoryQueryService(db.dataSource);
    producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
    await producer.connect();
  }, TEST_TIMEOUT);

  afterEach(async () => {
    await Promise.all(consumers.map((c) => c.close(100).catch(() => undefined)));
    consumers = [];
  });

  afterAll(async () => {
    unsubscribe();
    await producer?.close();
    await recorder?.close();
    await nsqd?.close();
    if (nsqdDir) rmSync(nsqdDir, { recursive: true, force: true });
    await db?.drop();
  }, TEST_TIMEOUT);

  async function consume(input: Omit<ConsumerInput, 'nsqdTCPAddresses'>): Promise<Consumer> {
    const consumer = new Consumer({ nsqdTCPAddresses: [nsqd.tcpAddress], logger: silentLogger, outputBufferTimeout: 25, ...input });
    consumer.on('error', () => undefined);
    consumers.push(consumer);
    await consumer.start();
    return consumer;
  }

  /** The history of one message, once `done` holds for it. */
  async function historyOf(id: string, done: (d: HistoryMessageDetail) => boolean, what: string): Promise<HistoryMessageDetail> {
    return waitFor(
      async () => {
        await recorder.flush();
        const [detail, ...more] = await query.getMessage(id, nsqd.identity);
        expect(more).toEqual([]);
        return detail !== undefined && done(detail) ? detail : undefined;
      },
      15_000,
      what,
    );
  }

  const timeline = (d: HistoryMessageDetail): Array<[string, string | null, number | null]> => d.events.map((e) => [e.type, e.channel, e.attempt]);

  it(
    'records a message requeued twice, then finished: exactly that timeline and summary',
    async () => {
      const topic = uniqueName('h-life');
      let id: string | undefined;
      let deliveries = 0;
      await consume({
        topic,
        channel: 'ch',
        handler: (msg: Message) => {
          id = msg.id;
          deliveries++;
          if (deliveries <= 2) msg.requeue(0, { backoff: false });
        },
      });
      await producer.publish(topic, 'hello');
      await waitFor(() => deliveries === 3, 15_000, 'the third delivery');
      const d = await historyOf(id!, (x) => x.message?.status === 'finished', 'the finished message in history');

      expect(timeline(d)).toEqual([
        ['published', null, null],
        ['delivered', 'ch', 1],
        ['requeued', 'ch', 1],
        ['delivered', 'ch', 2],
        ['requeued', 'ch', 2],
        ['delivered', 'ch', 3],
        ['finished', 'ch', 3],
      ]);
      expect(d.events.filter((e) => e.type === 'requeued').map((e) => e.detail)).toEqual(['delay 0 ms', 'delay 0 ms']);
      expect(d.events.filter((e) => e.type === 'delivered').every((e) => /^127\.0\.0\.1:\d+$/.test(e.consumer ?? ''))).toBe(true);
      expect(d.message).toMatchObject({
        nsqd: nsqd.identity,
        messageId: id,
        topic,
        status: 'finished',
        attempts: 3,
        size: 5,
        bodyTruncated: false,
        bodyUtf8: 'hello',
        producer: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+$/),
        deferredUntil: null,
        deadLetteredAt: null,
      });
      expect(d.message!.finishedAt).toBe(d.events.at(-1)!.at);
      expect(d.channels).toEqual([
        {
          channel: 'ch',
          status: 'finished',
          attempts: 3,
          firstDeliveredAt: d.events[1]!.at,
          finishedAt: d.events[6]!.at,
          deadLetteredAt: null,
          lastEventAt: d.events[6]!.at,
        },
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'records the fan-out to two channels',
    async () => {
      const topic = uniqueName('h-fan');
      const seen: Record<string, string[]> = { a: [], b: [] };
      for (const channel of ['a', 'b'] as const) {
        await consume({ topic, channel, handler: (msg: Message) => void seen[channel]!.push(msg.id) });
      }
      await producer.publish(topic, 'to both');
      await waitFor(() => seen.a!.length === 1 && seen.b!.length === 1, 15_000, 'a delivery on each channel');
      const id = seen.a![0]!;
      expect(seen.b).toEqual([id]);
      const d = await historyOf(id, (x) => x.channels.length === 2 && x.channels.every((c) => c.status === 'finished'), 'both channels finished');

      for (const channel of ['a', 'b']) {
        expect(d.events.filter((e) => e.channel === channel).map((e) => [e.type, e.attempt])).toEqual([
          ['delivered', 1],
          ['finished', 1],
        ]);
      }
      expect(d.events.filter((e) => e.channel === null).map((e) => e.type)).toEqual(['published']);
      expect(d.channels.map((c) => [c.channel, c.status, c.attempts])).toEqual([
        ['a', 'finished', 1],
        ['b', 'finished', 1],
      ]);
      expect(d.message).toMatchObject({ status: 'finished', attempts: 1 });
      const counts = await query.counts();
      expect(counts.channels.filter((c) => c.topic === topic)).toEqual([
        { topic, channel: 'a', messages: 1, byStatus: { finished: 1 } },
        { topic, channel: 'b', messages: 1, byStatus: { finished: 1 } },
      ]);
    },
    TEST_TIMEOUT,
  );

  it(
    'records the deferred_until of a DPUB',
    async () => {
      const topic = uniqueName('h-dpub');
      await consume({ topic, channel: 'later', handler: () => undefined });
      const body = Buffer.from(`deferred ${topic}`);
      await producer.publishDeferred(topic, 60_000, body);
      const id = await waitFor(() => idsByBody.get(body.toString('hex')), 5000, 'the DPUB id');
      const d = await historyOf(id, (x) => x.events.some((e) => e.type === 'deferred'), 'the deferral in history');

      expect(d.message).toMatchObject({ status: 'deferred', attempts: 0 });
      expect(Date.parse(d.message!.deferredUntil!) - Date.parse(d.message!.publishedAt)).toBe(60_000);
      expect(timeline(d)).toEqual([
        ['published', null, null],
        ['deferred', 'later', null],
      ]);
      // the channel's own due time: nsqd takes it a moment after the publish
      const until = Date.parse(/^until (.+)$/.exec(d.events[1]!.detail ?? '')![1]!);
      expect(Math.abs(until - Date.parse(d.message!.deferredUntil!))).toBeLessThan(1000);
      expect(d.channels).toMatchObject([{ channel: 'later', status: 'deferred', attempts: 0, firstDeliveredAt: null }]);
      const found = await query.search({ topic, status: 'deferred' });
      expect(found.items.map((i) => i.messageId)).toEqual([id]);
    },
    TEST_TIMEOUT,
  );

  it(
    'records a timeout',
    async () => {
      const topic = uniqueName('h-timeout');
      let id: string | undefined;
      let deliveries = 0;
      await consume({
        topic,
        channel: 'slow',
        msgTimeout: 1000,
        // the first delivery's handler never answers; the redelivery needs a slot of its own
        maxInFlight: 2,
        concurrency: 2,
        handler: (msg: Message) => {
          id = msg.id;
          deliveries++;
          if (deliveries === 1) return new Promise<void>(() => undefined);
        },
      });
      await producer.publish(topic, 'too slow');
      const d = await historyOf(
        await waitFor(() => id, 5000, 'a delivery'),
        (x) => x.message?.status === 'finished',
        'the redelivery finished',
      );
      expect(timeline(d)).toEqual([
        ['published', null, null],
        ['delivered', 'slow', 1],
        ['timed_out', 'slow', 1],
        ['delivered', 'slow', 2],
        ['finished', 'slow', 2],
      ]);
      expect(d.channels).toMatchObject([{ channel: 'slow', status: 'finished', attempts: 2 }]);
      const timedOut = await query.search({ topic, channel: 'slow', status: 'finished' });
      expect(timedOut.items.map((i) => i.messageId)).toEqual([id]);
    },
    TEST_TIMEOUT,
  );

  it(
    'keeps binary, non-UTF-8 and SQL-laden bodies byte for byte, and finds them by body',
    async () => {
      const topic = uniqueName('h-bodies');
      const bodies = {
        binary: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        notUtf8: Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x80, 0x41, 0x00, 0xe2, 0x82]),
        sql: Buffer.from(`'; DROP TABLE nsq_message; -- "quoted" \\ back\\slash \\' 100%_done \0 SELECT * FROM nsq_message_event WHERE 1=1 OR ''='`),
        text: Buffer.from('héllo wörld 🚀 — ✓ \\n'),
      };
      let finished = 0;
      await consume({ topic, channel: 'c', handler: () => void finished++ });
      for (const body of Object.values(bodies)) await producer.publish(topic, body);
      await waitFor(() => finished === 4, 15_000, 'four deliveries');
      const ids = Object.fromEntries(Object.entries(bodies).map(([k, b]) => [k, idsByBody.get(b.toString('hex'))!])) as Record<keyof typeof bodies, string>;

      for (const [name, body] of Object.entries(bodies) as Array<[keyof typeof bodies, Buffer]>) {
        const d = await historyOf(ids[name], (x) => x.message?.status === 'finished', `${name} finished`);
        expect(Buffer.from(d.message!.bodyBase64!, 'base64').equals(body)).toBe(true);
        expect(d.message!.size).toBe(body.length);
        if (name === 'binary' || name === 'notUtf8') expect(d.message!.bodyUtf8).toBeNull();
        else expect(d.message!.bodyUtf8).toBe(body.toString('utf8'));
      }

      const find = async (needle: string | Buffer): Promise<string[]> =>
        (await query.search({ topic, bodyContains: needle })).items.map((i) => i.messageId).sort();
      const sorted = (...names: Array<keyof typeof bodies>): string[] => names.map((n) => ids[n]).sort();
      expect(await find(Buffer.from([0xff, 0xfe, 0x80]))).toEqual(sorted('notUtf8'));
      expect(await find(Buffer.from([0x00, 0x01, 0x02]))).toEqual(sorted('binary'));
      expect(await find('DROP TABLE nsq_message; --')).toEqual(sorted('sql'));
      expect(await find("\\' 100%_done")).toEqual(sorted('sql'));
      // % and _ are literal bytes, not wildcards: the binary body holds each byte once, not this sequence
      expect(await find('%_')).toEqual(sorted('sql'));
      expect(await find('1%0')).toEqual([]);
      expect(await find('wörld 🚀')).toEqual(sorted('text'));
      expect(await find('WÖRLD')).toEqual([]);
      const page = await query.search({ topic });
      expect(page.items.find((i) => i.messageId === ids.text)!.preview).toBe(bodies.text.toString('utf8'));
      expect(page.items.find((i) => i.messageId === ids.notUtf8)!.preview).toBeNull();
      // the tables are all still there
      expect((await query.counts()).topics.find((t) => t.topic === topic)).toEqual({ topic, messages: 4, byStatus: { finished: 4 } });
    },
    TEST_TIMEOUT,
  );
});
