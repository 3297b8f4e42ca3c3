/**
 * The recorder through a database outage, on MariaDB behind a TCP proxy that the test stops
 * (connections cut, new ones refused) and starts again on the same port: events go to the spool
 * while the database is away and are replayed when it is back, every event in the tables once.
 * Also: a recorder restarted on a non-empty spool replays it, a recorder whose database is down
 * from the start initializes it later, replaying the same spool twice changes nothing, and
 * close() returns while a write hangs, with everything in the spool.
 */
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import {
  buildHistoryDataSource,
  createHistoryDataSource,
  HistoryRecorder,
  type HistoryMysqlOptions,
  type HistoryRecorderOptions,
} from '../../libs/message-history/src/index.js';
import { uniqueName } from '../support/client.js';
import { createTestDatabase, historyBackends, MARIADB } from '../support/mariadb.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { sleep, waitFor } from '../support/wait.js';

const { backends, missing } = await historyBackends();
const TEST_TIMEOUT = 60_000;

(backends.includes('mariadb') ? describe : describe.skip)('message history through a database outage (MariaDB behind a proxy)', () => {
  let dir: string;
  let proxy: TcpProxy;
  let dropDatabase: () => Promise<void> = async () => undefined;
  let options: HistoryMysqlOptions;
  let ds: DataSource;
  const recorders: HistoryRecorder[] = [];
  const dataSources: DataSource[] = [];
  let seq = 0;

  beforeAll(async () => {
    if (missing !== undefined) throw new Error(missing);
    dir = mkdtempSync(join(tmpdir(), 'history-outage-'));
    const db = await createTestDatabase();
    dropDatabase = db.drop;
    proxy = new TcpProxy(MARIADB.host, MARIADB.port);
    await proxy.start();
    options = { type: 'mariadb', host: '127.0.0.1', port: proxy.port, username: MARIADB.user, password: MARIADB.password, database: db.name, connectTimeout: 2000 };
    ds = await createHistoryDataSource(options);
    dataSources.push(ds);
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await proxy?.start();
    for (const r of recorders) await r.close();
    for (const d of dataSources) if (d.isInitialized) await d.destroy();
    await proxy?.stop();
    await dropDatabase();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, TEST_TIMEOUT);

  function recorder(dataSource: DataSource, spoolPath: string, extra: Partial<HistoryRecorderOptions> = {}): HistoryRecorder {
    const r = new HistoryRecorder(dataSource, { spoolPath, flushInterval: 20, batchSize: 50, maxRetryDelay: 200, writeTimeout: 5000, closeTimeout: 5000, ...extra });
    recorders.push(r);
    return r;
  }

  /** Records `count` messages, each published, delivered and finished: 3 events, 2 event rows (the publish is its message row). */
  function recordMessages(r: HistoryRecorder, topic: string, count: number): void {
    for (let i = 0; i < count; i++) {
      const messageId = (++seq).toString(16).padStart(16, '0');
      const t = Date.now();
      const base = { nsqd: '127.0.0.1:4150', messageId, topic };
      r.record({ ...base, type: 'published', at: new Date(t), body: Buffer.from(`body ${messageId}`), producer: 'tcp:127.0.0.1:1' });
      r.record({ ...base, type: 'delivered', at: new Date(t + 1), channel: 'c', consumer: '127.0.0.1:2', attempt: 1 });
      r.record({ ...base, type: 'finished', at: new Date(t + 2), channel: 'c', consumer: '127.0.0.1:2', attempt: 1 });
    }
  }

  /** What the tables hold for `topic`. */
  async function tables(topic: string): Promise<{ events: number; eventKeys: number; messages: number; published: number; finished: number; channelsFinished: number }> {
    type Row = Record<string, string | number | null>;
    const [[e], [m], [c]] = (await Promise.all([
      ds.query('SELECT COUNT(*) AS n, COUNT(DISTINCT eventKey) AS k FROM nsq_message_event WHERE topic = ?', [topic]),
      ds.query("SELECT COUNT(*) AS n, SUM(published) AS p, SUM(status = 'finished' AND attempts = 1) AS f FROM nsq_message WHERE topic = ?", [topic]),
      ds.query(
        "SELECT COUNT(*) AS n FROM nsq_message_channel c JOIN nsq_message m ON m.nsqd = c.nsqd AND m.messageId = c.messageId WHERE m.topic = ? AND c.status = 'finished'",
        [topic],
      ),
    ])) as [Row[], Row[], Row[]];
    return { events: Number(e!.n), eventKeys: Number(e!.k), messages: Number(m!.n), published: Number(m!.p ?? 0), finished: Number(m!.f ?? 0), channelsFinished: Number(c!.n) };
  }

  const drained = (r: HistoryRecorder): boolean => {
    const s = r.stats();
    return !s.spooling && s.queued === 0 && s.spoolPendingBytes === 0;
  };

  it(
    'spools while the database is away and replays every event exactly once when it is back',
    async () => {
      const topic = uniqueName('h-outage');
      const r = recorder(ds, join(dir, 'outage.jsonl'));
      await r.start();
      let sent = 0;
      const send = (count: number): void => {
        recordMessages(r, topic, count);
        sent += count;
      };
      send(100);
      await r.flush();
      expect(r.stats()).toMatchObject({ written: 300, spooled: 0, failures: 0 });

      // mid-stream: the database goes away while messages keep coming
      const stream = setInterval(() => send(5), 10);
      await sleep(50);
      await proxy.stop();
      await waitFor(() => r.stats().spooling && r.stats().spooled > 0, 15_000, 'events spooled');
      await sleep(300);
      await r.flush();
      const during = r.stats();
      expect(during.failures).toBeGreaterThan(0);
      expect(during.lastError).toBeTruthy();
      expect(statSync(join(dir, 'outage.jsonl')).size).toBeGreaterThan(0);

      await proxy.start();
      await sleep(100);
      clearInterval(stream);
      send(100);
      await waitFor(() => drained(r), 30_000, 'the spool replayed');

      expect(r.stats().replayed).toBeGreaterThan(0);
      // every event once (a batch cut off mid-commit may have been written and replayed: ignored);
      // a publish is its message row, delivery and finish are event rows
      expect(await tables(topic)).toEqual({ events: sent * 2, eventKeys: sent * 2, messages: sent, published: sent, finished: sent, channelsFinished: sent });
      expect(statSync(join(dir, 'outage.jsonl')).size).toBe(0);
    },
    TEST_TIMEOUT,
  );

  it(
    'replays the spool a closed recorder left behind when a new one starts',
    async () => {
      const topic = uniqueName('h-restart');
      const spoolPath = join(dir, 'restart.jsonl');
      await proxy.stop();
      const first = recorder(ds, spoolPath);
      await first.start();
      recordMessages(first, topic, 50);
      await first.flush();
      await first.close();
      expect(first.stats()).toMatchObject({ written: 0, spooled: 150 });
      expect(statSync(spoolPath).size).toBeGreaterThan(0);

      await proxy.start();
      const second = recorder(ds, spoolPath);
      await second.start();
      expect(second.stats().spooling).toBe(true);
      recordMessages(second, topic, 10);
      await waitFor(() => drained(second), 30_000, 'the old spool replayed');
      expect(second.stats()).toMatchObject({ replayed: 150 + 30 });
      expect(await tables(topic)).toEqual({ events: 120, eventKeys: 120, messages: 60, published: 60, finished: 60, channelsFinished: 60 });
    },
    TEST_TIMEOUT,
  );

  it(
    'writes nothing twice when the same spool is replayed again',
    async () => {
      const topic = uniqueName('h-twice');
      const spoolPath = join(dir, 'twice.jsonl');
      await proxy.stop();
      const first = recorder(ds, spoolPath);
      await first.start();
      recordMessages(first, topic, 40);
      await first.close();
      // as if the process died after replaying but before the spool was emptied
      copyFileSync(spoolPath, join(dir, 'twice-copy.jsonl'));
      await proxy.start();

      const second = recorder(ds, spoolPath);
      await second.start();
      await waitFor(() => drained(second), 30_000, 'the spool replayed');
      const once = await tables(topic);
      expect(once).toEqual({ events: 80, eventKeys: 80, messages: 40, published: 40, finished: 40, channelsFinished: 40 });

      const third = recorder(ds, join(dir, 'twice-copy.jsonl'));
      await third.start();
      await waitFor(() => drained(third), 30_000, 'the copy replayed');
      expect(third.stats().replayed).toBe(120);
      expect(await tables(topic)).toEqual(once);
    },
    TEST_TIMEOUT,
  );

  it(
    'closes while a write hangs, leaving every event in the spool',
    async () => {
      const topic = uniqueName('h-hang');
      const spoolPath = join(dir, 'hang.jsonl');
      const hanging = await createHistoryDataSource(options);
      dataSources.push(hanging);
      const r = recorder(hanging, spoolPath, { writeTimeout: 60_000, closeTimeout: 500 });
      await r.start();
      recordMessages(r, topic, 10);
      await r.flush();
      expect(r.stats().written).toBe(30);

      proxy.hold();
      recordMessages(r, topic, 10);
      // the batch write is sent and never answered
      await waitFor(() => r.stats().queued === 30 && !r.stats().spooling, 5000, 'a write in flight');
      await sleep(100);
      recordMessages(r, topic, 5);
      await r.close();
      expect(r.stats()).toMatchObject({ written: 30, spooled: 45, queued: 0 });
      proxy.resume();

      const next = recorder(ds, spoolPath);
      await next.start();
      await waitFor(() => drained(next), 30_000, 'the spool replayed');
      expect(next.stats().replayed).toBe(45);
      expect(await tables(topic)).toEqual({ events: 50, eventKeys: 50, messages: 25, published: 25, finished: 25, channelsFinished: 25 });
    },
    TEST_TIMEOUT,
  );

  it(
    'initializes a DataSource whose database was down at start, then replays',
    async () => {
      const topic = uniqueName('h-late');
      await proxy.stop();
      const late = buildHistoryDataSource(options);
      dataSources.push(late);
      const r = recorder(late, join(dir, 'late.jsonl'));
      await r.start();
      recordMessages(r, topic, 20);
      await waitFor(() => r.stats().spooled === 60, 15_000, 'events spooled');
      expect(late.isInitialized).toBe(false);
      await proxy.start();
      await waitFor(() => drained(r), 30_000, 'the spool replayed');
      expect(late.isInitialized).toBe(true);
      expect(await tables(topic)).toEqual({ events: 40, eventKeys: 40, messages: 20, published: 20, finished: 20, channelsFinished: 20 });
    },
    TEST_TIMEOUT,
  );
});
