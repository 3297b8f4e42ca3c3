/**
 * Client-side message history: a Nest microservice and an NsqClient on the official nsqd (no TS
 * broker recording), both with `hooks: historyHooks(recorder)`, on the embedded sql.js and on
 * MariaDB. The producer's publish (filed under the envelope's message key) and the consumer's
 * deliveries (under the nsqd id) are found together by the message key: a message that fails
 * twice then succeeds, one dead-lettered at maxAttempts, and one fanned out to two channels. Also
 * the upgrade of a database made by the first migration alone: messageId takes 36-character keys.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload, RpcException } from '@nestjs/microservices';
import { DataSource } from 'typeorm';
import {
  CLIENT_NSQD,
  CreateHistoryTables1747000000000,
  createHistoryDataSource,
  historyDataSourceOptions,
  historyHooks,
  HistoryQueryService,
  HistoryRecorder,
  HISTORY_MIGRATIONS_TABLE,
  type HistoryDataSourceOptions,
  type HistoryMessageDetail,
  type HistoryRecord,
} from '../../libs/message-history/src/index.js';
import { readTime } from '../../libs/message-history/src/sql.js';
import { decodeEnvelope, type NsqContext, NsqRecord, type NsqTransportHooks } from '../../libs/nest-nsq/src/index.js';
import { Cleanup, uniqueName, warmChannels } from '../support/client.js';
import { type HistoryBackend, type HistoryDb, openHistoryDb } from '../support/history.js';
import { createTestDatabase, historyBackends, MARIADB } from '../support/mariadb.js';
import { describeWithNsq } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { emit, makeClient, serverOptions, startMicroservice } from '../support/transport.js';
import { waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();
const TEST_TIMEOUT = 45_000;
const SOURCE = `${hostname()}/${process.pid}`;
const cleanup = new Cleanup();

/** Topics per backend, made up front: their channels are warmed once for the official nsqd's queue scanner. */
const topics = Object.fromEntries(
  backends.map((b) => [b, { retry: uniqueName(`hc-retry-${b}`), dead: uniqueName(`hc-dead-${b}`), fan: uniqueName(`hc-fan-${b}`) }]),
) as Record<HistoryBackend, { retry: string; dead: string; fan: string }>;

interface Seen {
  attempts: number;
  id: string;
  key: string | undefined;
  channel: string;
}

const see = (ctx: NsqContext): Seen => ({ attempts: ctx.getAttempts(), id: ctx.getId(), key: ctx.getMessageKey(), channel: ctx.getChannel() });

/** The error text the transport hands its hooks for an RpcException (Nest passes it on as a plain object). */
const rpcErrorText = (message: string): string => JSON.stringify({ status: 'error', message });

const timeline = (d: HistoryMessageDetail): Array<[string, string | null, number | null]> => d.events.map((e) => [e.type, e.channel, e.attempt]);

describeWithNsq(
  'client-side message history (official nsqd)',
  () => {
    let nsqd: NsqdProcess;

    beforeAll(async () => {
      nsqd = await startNsqd({ impl: 'go' });
      await warmChannels(
        nsqd,
        // requeues need the scanner; the fan-out test has none
        Object.values(topics).flatMap((t) => [[t.retry, 'svc'] as const, [t.dead, 'svc'] as const]),
      );
    }, TEST_TIMEOUT);
    afterEach(() => cleanup.run());
    afterAll(stopAll);

    describe.each(backends)('%s', (backend) => {
      let db: HistoryDb;
      let recorder: HistoryRecorder;
      let query: HistoryQueryService;
      let hooks: NsqTransportHooks;
      const t = topics[backend];

      beforeAll(async () => {
        if (backend === 'mariadb' && missing !== undefined) throw new Error(missing);
        db = await openHistoryDb(backend);
        recorder = new HistoryRecorder(db.dataSource, { spoolPath: join(db.dir, 'spool.jsonl'), flushInterval: 20 });
        await recorder.start();
        query = new HistoryQueryService(db.dataSource);
        hooks = historyHooks(recorder);
      }, TEST_TIMEOUT);

      afterAll(async () => {
        await cleanup.run();
        await recorder?.close();
        await db?.drop();
      }, TEST_TIMEOUT);

      /** getMessage(id), once `done` holds for the answer. */
      async function historyOf(id: string, done: (ds: HistoryMessageDetail[]) => boolean, what: string): Promise<HistoryMessageDetail[]> {
        return waitFor(
          async () => {
            await recorder.flush();
            const details = await query.getMessage(id);
            return done(details) ? details : undefined;
          },
          15_000,
          what,
        );
      }

      it(
        'links the client publish to the consumer record of a message that fails twice, then succeeds',
        async () => {
          const seen: Seen[] = [];
          @Controller()
          class Retry {
            @EventPattern<string>(t.retry, { requeueDelay: 20, backoff: false })
            handle(@Payload() _data: unknown, @Ctx() ctx: NsqContext) {
              seen.push(see(ctx));
              if (ctx.getAttempts() < 3) throw new RpcException(`not yet (attempt ${ctx.getAttempts()})`);
            }
          }
          await startMicroservice(cleanup, [Retry], serverOptions(nsqd, { hooks }));
          const client = makeClient(cleanup, nsqd, { envelope: true, hooks });
          const before = Date.now();
          await emit(client, t.retry, { order: 1 });
          await waitFor(() => seen.length >= 3, 15_000, 'three deliveries');
          const { id, key } = seen[0]!;
          expect(key).toMatch(/^[0-9a-f-]{36}$/);
          expect(seen.map((s) => [s.attempts, s.id, s.key])).toEqual([1, 2, 3].map((n) => [n, id, key]));

          const details = await historyOf(key!, (ds) => ds.length === 2 && ds[1]!.message?.status === 'finished', 'the publish and the finished delivery');
          const [producer, consumer] = details as [HistoryMessageDetail, HistoryMessageDetail];

          // the producer's record: filed under the key, with the body exactly as published
          expect(producer).toMatchObject({ nsqd: CLIENT_NSQD, messageId: key, channels: [] });
          expect(producer.message).toMatchObject({ messageKey: key, topic: t.retry, producer: SOURCE, status: 'published', deferredUntil: null });
          const published = Buffer.from(producer.message!.bodyBase64!, 'base64');
          expect(producer.message!.size).toBe(published.length);
          const envelope = decodeEnvelope(published);
          expect(envelope.headers['message-key']).toBe(key);
          expect(JSON.parse(envelope.payload.toString('utf8'))).toEqual({ order: 1 });
          expect(timeline(producer)).toEqual([['published', null, null]]);

          // the consumer's record: under the nsqd address and id, same key and body
          expect(consumer).toMatchObject({ nsqd: nsqd.tcpAddress, messageId: id });
          expect(consumer.message).toMatchObject({ messageKey: key, topic: t.retry, status: 'finished', attempts: 3, producer: null, bodyBase64: producer.message!.bodyBase64 });
          expect(timeline(consumer)).toEqual([
            ['delivered', 'svc', 1],
            ['requeued', 'svc', 1],
            ['delivered', 'svc', 2],
            ['requeued', 'svc', 2],
            ['delivered', 'svc', 3],
            ['finished', 'svc', 3],
          ]);
          expect(consumer.events.filter((e) => e.type === 'requeued').map((e) => e.detail)).toEqual([
            `delay 20 ms: ${rpcErrorText('not yet (attempt 1)')}`,
            `delay 20 ms: ${rpcErrorText('not yet (attempt 2)')}`,
          ]);
          expect(consumer.events.every((e) => e.consumer === SOURCE)).toBe(true);
          // publishedAt is nsqd's timestamp of the message: after the emit began, not after the first delivery
          const publishedAt = Date.parse(consumer.message!.publishedAt);
          expect(publishedAt).toBeGreaterThanOrEqual(before);
          expect(publishedAt).toBeLessThanOrEqual(Date.parse(consumer.events[0]!.at));
          expect(consumer.channels).toMatchObject([{ channel: 'svc', status: 'finished', attempts: 3 }]);

          // by nsqd id: that record alone (with and without the nsqd)
          expect(await query.getMessage(id)).toEqual([consumer]);
          expect(await query.getMessage(id, nsqd.tcpAddress)).toEqual([consumer]);
          expect(await query.getMessage(key!, CLIENT_NSQD)).toEqual([producer]);
          expect((await query.search({ messageKey: key })).items.map((i) => i.nsqd).sort()).toEqual([CLIENT_NSQD, nsqd.tcpAddress].sort());
        },
        TEST_TIMEOUT,
      );

      it(
        'records dead_lettered, with the reason, when a message reaches maxAttempts',
        async () => {
          const seen: Seen[] = [];
          @Controller()
          class AlwaysFails {
            @EventPattern<string>(t.dead, { maxAttempts: 2, requeueDelay: 20, backoff: false })
            handle(@Payload() _data: unknown, @Ctx() ctx: NsqContext) {
              seen.push(see(ctx));
              throw new RpcException('payment service down');
            }
          }
          await startMicroservice(cleanup, [AlwaysFails], serverOptions(nsqd, { hooks }));
          const client = makeClient(cleanup, nsqd, { hooks });
          // headers of the application's own: the envelope (and so the message key) without `envelope: true`
          await emit(client, t.dead, new NsqRecord({ order: 2 }, { headers: { 'x-tenant': 't1' } }));
          await waitFor(() => seen.length >= 2, 15_000, 'two deliveries');
          const { id, key } = seen[0]!;

          const [producer, consumer] = (await historyOf(key!, (ds) => ds.length === 2 && ds[1]!.message?.status === 'dead_lettered', 'the dead-lettered message')) as [
            HistoryMessageDetail,
            HistoryMessageDetail,
          ];
          expect(producer.nsqd).toBe(CLIENT_NSQD);
          expect(consumer).toMatchObject({ nsqd: nsqd.tcpAddress, messageId: id });
          expect(timeline(consumer)).toEqual([
            ['delivered', 'svc', 1],
            ['requeued', 'svc', 1],
            ['delivered', 'svc', 2],
            ['dead_lettered', 'svc', 2],
          ]);
          expect(consumer.events.at(-1)!.detail).toBe(`max_attempts -> ${t.dead}.dead: ${rpcErrorText('payment service down')}`);
          expect(consumer.message).toMatchObject({ status: 'dead_lettered', attempts: 2, messageKey: key });
          expect(consumer.message!.deadLetteredAt).toBe(consumer.events.at(-1)!.at);
          expect(consumer.channels).toMatchObject([{ channel: 'svc', status: 'dead_lettered', attempts: 2 }]);
        },
        TEST_TIMEOUT,
      );

      it(
        'records both channels of one topic on the one consumer record',
        async () => {
          const seen: Seen[] = [];
          @Controller()
          class TwoChannels {
            @EventPattern<string>(t.fan, { channel: 'a' })
            onA(@Payload() _data: unknown, @Ctx() ctx: NsqContext) {
              seen.push(see(ctx));
            }

            @EventPattern<string>(t.fan, { channel: 'b' })
            onB(@Payload() _data: unknown, @Ctx() ctx: NsqContext) {
              seen.push(see(ctx));
            }
          }
          await startMicroservice(cleanup, [TwoChannels], serverOptions(nsqd, { hooks }));
          const client = makeClient(cleanup, nsqd, { envelope: true, hooks });
          await emit(client, t.fan, 'to both');
          await waitFor(() => seen.length >= 2, 15_000, 'a delivery on each channel');
          expect(seen.map((s) => s.channel).sort()).toEqual(['a', 'b']);
          const { id, key } = seen[0]!;
          expect(seen[1]).toMatchObject({ id, key });

          const [producer, consumer] = (await historyOf(
            key!,
            (ds) => ds.length === 2 && ds[1]!.channels.length === 2 && ds[1]!.channels.every((c) => c.status === 'finished'),
            'both channels finished',
          )) as [HistoryMessageDetail, HistoryMessageDetail];
          expect(producer.nsqd).toBe(CLIENT_NSQD);
          expect(consumer).toMatchObject({ nsqd: nsqd.tcpAddress, messageId: id });
          for (const channel of ['a', 'b']) {
            expect(consumer.events.filter((e) => e.channel === channel).map((e) => [e.type, e.attempt])).toEqual([
              ['delivered', 1],
              ['finished', 1],
            ]);
          }
          expect(consumer.channels.map((c) => [c.channel, c.status, c.attempts])).toEqual([
            ['a', 'finished', 1],
            ['b', 'finished', 1],
          ]);
          expect(consumer.message).toMatchObject({ status: 'finished', attempts: 1, messageKey: key });
        },
        TEST_TIMEOUT,
      );
    });
  },
  ['nsqd'],
);

/** Column types of messageId in the three tables (MariaDB), e.g. 'char(16)'. */
async function messageIdTypes(ds: DataSource): Promise<string[]> {
  const rows = (await ds.query(
    `SELECT TABLE_NAME AS t, COLUMN_TYPE AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'messageId' ORDER BY TABLE_NAME`,
  )) as Array<{ t: string; c: string }>;
  return rows.map((r) => `${r.t} ${r.c}`);
}

/** A table's secondary indexes, by name, on either engine. */
async function indexesOf(ds: DataSource, table: string): Promise<string[]> {
  const mysql = ds.options.type === 'mysql' || ds.options.type === 'mariadb';
  const rows = (await ds.query(
    mysql
      ? `SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME <> 'PRIMARY'`
      : `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name NOT LIKE 'sqlite_autoindex%'`,
    [table],
  )) as Array<{ name: string }>;
  return rows.map((r) => r.name).sort();
}

const eventIndexes = (ds: DataSource): Promise<string[]> => indexesOf(ds, 'nsq_message_event');

/** The event rows of one message, by type. */
async function eventTypes(ds: DataSource, nsqd: string, messageId: string): Promise<string[]> {
  const rows = (await ds.query('SELECT type FROM nsq_message_event WHERE nsqd = ? AND messageId = ? ORDER BY id', [nsqd, messageId])) as Array<{ type: string }>;
  return rows.map((r) => r.type);
}

describe.each(backends)('history schema upgrade: a first-release database migrated to the current schema, and migration 4 undone (%s)', (backend) => {
  let dir: string | undefined;
  let drop: () => Promise<void> = async () => undefined;
  const open: DataSource[] = [];

  afterAll(async () => {
    for (const ds of open) if (ds.isInitialized) await ds.destroy();
    await drop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }, TEST_TIMEOUT);

  it(
    'upgrades a database made by the first migration alone when createHistoryDataSource opens it',
    async () => {
      if (backend === 'mariadb' && missing !== undefined) throw new Error(missing);
      dir = mkdtempSync(join(tmpdir(), `history-upgrade-${backend}-`));
      let options: HistoryDataSourceOptions;
      if (backend === 'mariadb') {
        const db = await createTestDatabase('history_upgrade');
        drop = db.drop;
        options = { type: 'mariadb', host: MARIADB.host, port: MARIADB.port, username: MARIADB.user, password: MARIADB.password, database: db.name };
      } else {
        options = { type: 'sqljs', location: join(dir, 'history.sqlite') };
      }

      // the schema of the first release: only the first migration, and a message written with it
      const old = new DataSource({ ...historyDataSourceOptions(options), migrations: [CreateHistoryTables1747000000000] });
      open.push(old);
      await old.initialize();
      expect(await eventIndexes(old)).toEqual([
        'IDX_nsq_message_event_at',
        'IDX_nsq_message_event_channel_at',
        'IDX_nsq_message_event_message',
        'IDX_nsq_message_event_type_at',
        'UQ_nsq_message_event_event_key',
      ]);
      if (backend === 'mariadb') {
        expect(await messageIdTypes(old)).toEqual(['nsq_message char(16)', 'nsq_message_channel char(16)', 'nsq_message_event char(16)']);
      }
      // rows as that release's recorder wrote them (today's writes the columns of the current schema)
      const oldId = '0123456789abcdef';
      const t0 = new Date().toISOString().replace('T', ' ').replace('Z', ''); // a DATETIME both drivers take
      await old.query(
        "INSERT INTO nsq_message (nsqd, messageId, topic, body, size, publishedAt, status, attempts, lastEventAt) VALUES ('127.0.0.1:4150', ?, 'upgrade', ?, 3, ?, 'in_flight', 1, ?)",
        [oldId, Buffer.from('old'), t0, t0],
      );
      for (const [key, type, attempt] of [['old:1', 'published', null], ['old:2', 'delivered', 1]] as const) {
        await old.query("INSERT INTO nsq_message_event (eventKey, nsqd, messageId, topic, type, channel, attempt, at) VALUES (?, '127.0.0.1:4150', ?, 'upgrade', ?, ?, ?, ?)", [
          key,
          oldId,
          type,
          type === 'published' ? null : 'c',
          attempt,
          t0,
        ]);
      }
      await old.destroy();

      const ds = await createHistoryDataSource(options);
      open.push(ds);
      const ran = (await ds.query(`SELECT name FROM ${ds.driver.escape(HISTORY_MIGRATIONS_TABLE)} ORDER BY id`)) as Array<{ name: string }>;
      expect(ran.map((r) => r.name)).toEqual([
        'CreateHistoryTables1747000000000',
        'WidenHistoryMessageId1748000000000',
        'DropUnreadHistoryEventIndexes1749000000000',
        'HistoryPublishIsTheMessageRow1750000000000',
      ]);
      // the indexes no query reads are gone; those of the timeline, retention and replays stay
      expect(await eventIndexes(ds)).toEqual(['IDX_nsq_message_event_at', 'IDX_nsq_message_event_message', 'UQ_nsq_message_event_event_key']);
      // (messageId, nsqd) unique serves a lookup by id alone too
      expect(await indexesOf(ds, 'nsq_message')).toEqual([
        'IDX_nsq_message_message_key',
        'IDX_nsq_message_published_at',
        'IDX_nsq_message_status_published_at',
        'IDX_nsq_message_topic_published_at',
        'UQ_nsq_message_message_id_nsqd',
      ]);
      if (backend === 'mariadb') {
        expect(await messageIdTypes(ds)).toEqual(['nsq_message varchar(64)', 'nsq_message_channel varchar(64)', 'nsq_message_event varchar(64)']);
      }

      // a 36-character key in all three tables, read back whole; the old message is still there
      const recorder = new HistoryRecorder(ds, { spoolPath: join(dir, 'new.jsonl'), flushInterval: 20 });
      await recorder.start();
      const key = randomUUID();
      const at = new Date();
      recorder.record({ type: 'published', nsqd: CLIENT_NSQD, messageId: key, messageKey: key, topic: 'upgrade', at, body: Buffer.from('new') });
      recorder.record({ type: 'delivered', nsqd: CLIENT_NSQD, messageId: key, topic: 'upgrade', channel: 'c', attempt: 1, at });
      await recorder.close();
      expect(recorder.stats()).toMatchObject({ written: 2, spooled: 0, failures: 0 });
      const query = new HistoryQueryService(ds);
      const [detail, ...more] = await query.getMessage(key);
      expect(more).toEqual([]);
      expect(detail).toMatchObject({ nsqd: CLIENT_NSQD, messageId: key, message: { messageId: key, messageKey: key, bodyUtf8: 'new', status: 'in_flight' } });
      expect(detail!.events.map((e) => e.type)).toEqual(['published', 'delivered']);
      expect(detail!.channels).toMatchObject([{ channel: 'c', status: 'in_flight' }]);
      // the old message's publish is an event row, and shows once
      expect(await eventTypes(ds, '127.0.0.1:4150', oldId)).toEqual(['published', 'delivered']);
      expect((await query.getMessage(oldId)).map((d) => [d.messageId, d.message?.bodyUtf8, d.events.map((e) => e.type)])).toEqual([[oldId, 'old', ['published', 'delivered']]]);

      // a broker's publish written now is its message row: no event row, the same timeline
      const newId = '0123456789abcdee';
      const publishedAt = new Date(Date.now() - 1000);
      const broker = new HistoryRecorder(ds, { spoolPath: join(dir, 'broker.jsonl'), flushInterval: 20 });
      await broker.start();
      broker.record({ type: 'published', nsqd: '127.0.0.1:4150', messageId: newId, topic: 'upgrade', at: publishedAt, body: Buffer.from('now'), deferredUntil: new Date(publishedAt.getTime() + 250), detail: 'deferred 250 ms' });
      broker.record({ type: 'delivered', nsqd: '127.0.0.1:4150', messageId: newId, topic: 'upgrade', channel: 'c', attempt: 1, at: new Date(publishedAt.getTime() + 300) });
      await broker.close();
      expect(await eventTypes(ds, '127.0.0.1:4150', newId)).toEqual(['delivered']);
      const [now] = await query.getMessage(newId);
      expect(now!.events.map((e) => [e.type, e.at, e.detail])).toEqual([
        ['published', publishedAt.toISOString(), 'deferred 250 ms'],
        ['delivered', new Date(publishedAt.getTime() + 300).toISOString(), null],
      ]);
      expect(now!.events[0]!.id).toBe(`message:${now!.message!.id}`);

      // undone, the schema is the earlier one and that publish has its event row back
      await ds.undoLastMigration({ transaction: 'all' });
      expect(await eventTypes(ds, '127.0.0.1:4150', newId)).toEqual(['delivered', 'published']);
      const [restored] = (await ds.query("SELECT at, detail FROM nsq_message_event WHERE messageId = ? AND type = 'published'", [newId])) as Array<{ at: unknown; detail: string }>;
      expect([readTime(restored!.at)?.toISOString(), restored!.detail]).toEqual([publishedAt.toISOString(), 'deferred 250 ms']);
      expect(await eventTypes(ds, '127.0.0.1:4150', oldId)).toEqual(['published', 'delivered']);
      expect(await indexesOf(ds, 'nsq_message')).toEqual([
        'IDX_nsq_message_message_id',
        'IDX_nsq_message_message_key',
        'IDX_nsq_message_published_at',
        'IDX_nsq_message_status_published_at',
        'IDX_nsq_message_topic_published_at',
        'UQ_nsq_message_nsqd_message_id',
      ]);
      await ds.runMigrations({ transaction: 'all' });
      expect(await indexesOf(ds, 'nsq_message')).toContain('UQ_nsq_message_message_id_nsqd');
    },
    TEST_TIMEOUT,
  );
});

describe.each(backends)('recorder: consumer-side records create the message row, never overwrite it (%s)', (backend) => {
  let db: HistoryDb;
  let query: HistoryQueryService;
  const recorders: HistoryRecorder[] = [];
  let seq = 0;

  beforeAll(async () => {
    if (backend === 'mariadb' && missing !== undefined) throw new Error(missing);
    db = await openHistoryDb(backend);
    query = new HistoryQueryService(db.dataSource);
  }, TEST_TIMEOUT);

  afterAll(async () => {
    for (const r of recorders) await r.close();
    await db?.drop();
  }, TEST_TIMEOUT);

  function recorder(spool = `spool-${++seq}.jsonl`): HistoryRecorder {
    const r = new HistoryRecorder(db.dataSource, { spoolPath: join(db.dir, spool), flushInterval: 20 });
    recorders.push(r);
    return r;
  }

  const nsqdAddr = '127.0.0.1:4150';
  const delivery = (messageId: string, body: string, extra: Partial<HistoryRecord> = {}): HistoryRecord => ({
    type: 'delivered',
    nsqd: nsqdAddr,
    messageId,
    topic: 'ensure',
    channel: 'c',
    attempt: 1,
    at: new Date(),
    body: Buffer.from(body),
    ensureMessage: true,
    ...extra,
  });

  it('creates the row from the first delivery and keeps it; a broker-written row stays as the broker wrote it', async () => {
    const r = recorder();
    await r.start();
    const publishedAt = new Date(Date.now() - 1000);
    r.record(delivery('e000000000000001', 'first', { messageKey: 'k-1', publishedAt }));
    await r.flush();
    r.record(delivery('e000000000000001', 'second', { messageKey: 'k-other', attempt: 2 }));
    r.record({ type: 'published', nsqd: nsqdAddr, messageId: 'e000000000000002', topic: 'ensure', at: publishedAt, body: Buffer.from('broker'), producer: 'tcp:1.2.3.4:5' });
    await r.flush();
    r.record(delivery('e000000000000002', 'consumer', { messageKey: 'k-2' }));
    await r.flush();

    const [first] = await query.getMessage('e000000000000001');
    expect(first!.message).toMatchObject({ bodyUtf8: 'first', messageKey: 'k-1', publishedAt: publishedAt.toISOString(), status: 'in_flight', attempts: 2 });
    const [broker] = await query.getMessage('e000000000000002');
    expect(broker!.message).toMatchObject({ bodyUtf8: 'broker', messageKey: null, producer: 'tcp:1.2.3.4:5', publishedAt: publishedAt.toISOString() });
    expect(broker!.events.map((e) => e.type)).toEqual(['published', 'delivered']);
  });

  it('getMessage takes an nsqd id or a message key (1-64 of [A-Za-z0-9._:-]), nothing else', async () => {
    for (const bad of ['', 'k'.repeat(65), 'key with space', "k'; --", 'ключ']) {
      await expect(query.getMessage(bad)).rejects.toMatchObject({ name: 'HistoryQueryError', parameter: 'messageId', statusCode: 400 });
    }
    expect(await query.getMessage(`a.b:c-d_${'e'.repeat(56)}`)).toEqual([]);
  });

  it('keeps ensureMessage through the spool', async () => {
    const spool = `spool-replay-${++seq}.jsonl`;
    const before = recorder(spool);
    const publishedAt = new Date(Date.now() - 500);
    before.record(delivery('e000000000000003', 'spooled', { messageKey: 'k-3', publishedAt }));
    // closed before it started: what it holds goes to the spool, for the next recorder to replay
    await before.close();
    const after = recorder(spool);
    await after.start();
    await after.flush();
    await waitFor(async () => (await query.getMessage('e000000000000003')).length === 1, 10_000, 'the replayed delivery');
    const [d] = await query.getMessage('e000000000000003');
    expect(d!.message).toMatchObject({ bodyUtf8: 'spooled', messageKey: 'k-3', publishedAt: publishedAt.toISOString() });
  });
});
