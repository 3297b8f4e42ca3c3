/**
 * The two processes of history.bench.ts, forked by it with an IPC channel:
 *
 *   node dist/test/bench/history-roles.js broker   --mode=mysql --database=history_bench_x
 *   node dist/test/bench/history-roles.js consumer --nsqd=127.0.0.1:4150 --topic=t --channel=c --max-in-flight=2500
 *
 * broker:   our NSQD (libs/nsq) on 127.0.0.1, OS-picked ports, a temp data dir and a memory queue
 *           large enough that nothing goes to disk, with (per --mode) no history, HistoryRecorder on
 *           MariaDB fed by recordNsqdEvents, or the NaiveRecorder. It counts the lifecycle events
 *           its nsqd emits (a second listener, after the recorder's) and, when asked, reports the
 *           moment every event up to a given number of FINs is in the database.
 * consumer: our Consumer; counts the messages of each phase the orchestrator announced and reports
 *           when all arrived (the handler resolves: FIN).
 *
 * Either exits when the orchestrator goes away (IPC disconnect), so no child outlives it.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSource } from 'typeorm';
import { buildHistoryDataSource, HistoryJournal, HistoryRecorder, recordNsqdEvents } from '../../libs/message-history/src/index.js';
import { Consumer, NSQD, silentLogger } from '../../libs/nsq/src/index.js';
import { MARIADB } from '../support/mariadb.js';
import { forEachFlag } from './bench-util.js';
import { type EventCounts, type FromRole, HISTORY_MODES, type HistoryMode, type RecorderReport, type ToBroker, type ToConsumer, wallClockMs } from './history-protocol.js';
import { NaiveRecorder } from './naive-recorder.js';

function send(message: FromRole): void {
  process.send?.(message);
}

function fail(error: unknown, phase?: number): void {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  send(phase === undefined ? { type: 'failed', error: text } : { type: 'failed', phase, error: text });
}

function flags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  forEachFlag(argv, (flag, value) => out.set(flag, value()));
  return out;
}

function required(f: Map<string, string>, name: string): string {
  const v = f.get(name);
  if (v === undefined || v === '') throw new Error(`${name} is required`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// broker

async function runBroker(f: Map<string, string>): Promise<void> {
  const mode = required(f, '--mode') as HistoryMode;
  if (!HISTORY_MODES.includes(mode)) throw new Error(`--mode must be one of ${HISTORY_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  const dir = mkdtempSync(join(tmpdir(), `history-bench-${mode}-`));
  const nsqd = new NSQD({
    tcpAddress: '127.0.0.1:0',
    httpAddress: '127.0.0.1:0',
    broadcastAddress: '127.0.0.1',
    dataPath: join(dir, 'nsqd'),
    memQueueSize: 10_000_000,
    logger: silentLogger,
  });
  await nsqd.start();

  let dataSource: DataSource | undefined;
  let recorder: HistoryRecorder | undefined;
  let naive: NaiveRecorder | undefined;
  let journal: HistoryJournal | undefined;
  if (mode === 'mysql' || mode === 'journal' || mode === 'naive') {
    dataSource = buildHistoryDataSource({
      type: 'mariadb',
      host: MARIADB.host,
      port: MARIADB.port,
      username: MARIADB.user,
      password: MARIADB.password,
      database: required(f, '--database'),
    });
    await dataSource.initialize();
    if (mode === 'mysql') {
      recorder = new HistoryRecorder(dataSource, { spoolPath: join(dir, 'spool.jsonl') });
      await recorder.start();
      recordNsqdEvents(recorder, nsqd);
    } else if (mode === 'journal') {
      // as apps/broker's HistoryHost runs it by default
      recorder = new HistoryRecorder(dataSource, { spoolPath: join(dir, 'spool.jsonl') });
      const j = new HistoryJournal(recorder, { path: join(dir, 'spool.jsonl.journal') });
      journal = j;
      await j.start();
      recordNsqdEvents(j, nsqd);
    } else {
      const n = new NaiveRecorder(dataSource, nsqd.identity);
      naive = n;
      nsqd.events.subscribe((event) => n.record(event));
    }
  }

  // What nsqd emitted, counted after the recorder got it (listeners run in subscription order).
  // Plain counters: this listener runs on the delivery path of every mode but off.
  let published = 0;
  let delivered = 0;
  let finished = 0;
  const others: EventCounts = {};
  let target = Number.POSITIVE_INFINITY;
  let reached: () => void = () => undefined;
  if (mode !== 'off') {
    nsqd.events.subscribe((event) => {
      switch (event.type) {
        case 'published':
          published++;
          break;
        case 'delivered':
          delivered++;
          break;
        case 'finished':
          if (++finished >= target) {
            target = Number.POSITIVE_INFINITY;
            reached();
          }
          break;
        default:
          others[event.type] = (others[event.type] ?? 0) + 1;
      }
    });
  }
  const counts = (): EventCounts => ({ published, delivered, finished, ...others });

  const report = (): RecorderReport | null => {
    if (recorder !== undefined) {
      const s = recorder.stats();
      return { written: s.written, spooled: s.spooled, replayed: s.replayed, failures: s.failures, lastError: s.lastError ?? null };
    }
    if (naive !== undefined) {
      const s = naive.stats();
      return { written: s.written, spooled: 0, replayed: 0, failures: s.failures, lastError: s.lastError ?? null };
    }
    return null;
  };

  /** Every event emitted so far is in the database (flushed, and nothing left in the spool). */
  const drained = async (): Promise<void> => {
    if (recorder !== undefined) {
      await recorder.flush();
      while (true) {
        const s = recorder.stats();
        if (s.queued === 0 && !s.spooling && s.spoolPendingBytes === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }
    if (naive !== undefined) await naive.idle();
  };

  const awaitRecorded = async (phase: number, fins: number): Promise<void> => {
    if (mode !== 'off' && finished < fins) {
      await new Promise<void>((resolve) => {
        target = fins;
        reached = resolve;
      });
    }
    await drained();
    send({ type: 'recorded', phase, at: wallClockMs(), events: counts(), recorder: report() });
  };

  let closing = false;
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(2), 30_000);
    try {
      await (journal ?? recorder)?.close();
      await naive?.idle();
      await nsqd.close();
      if (dataSource?.isInitialized) await dataSource.destroy();
    } catch (error) {
      process.stderr.write(`broker: close failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    rmSync(dir, { recursive: true, force: true });
    clearTimeout(force);
    process.exit(0);
  };

  process.on('message', (message: ToBroker) => {
    switch (message.type) {
      case 'await-recorded':
        awaitRecorded(message.phase, message.finished).catch((error: unknown) => fail(error, message.phase));
        break;
      case 'close':
        void close();
        break;
    }
  });
  send({ type: 'ready', pid: process.pid, tcpAddress: nsqd.tcpAddress, httpAddress: nsqd.httpAddress });
}

// ---------------------------------------------------------------------------------------------
// consumer

async function runConsumer(f: Map<string, string>): Promise<void> {
  let phase = 0;
  let expected = 0;
  let received = 0;
  let firstAt = 0;
  const consumer = new Consumer({
    topic: required(f, '--topic'),
    channel: required(f, '--channel'),
    nsqdTCPAddresses: [required(f, '--nsqd')],
    maxInFlight: Number(required(f, '--max-in-flight')),
    // nsqd holds a drained channel's last partial buffer until this timer: keep the tail short
    outputBufferTimeout: 25,
    logger: silentLogger,
    handler: () => {
      const now = wallClockMs();
      if (received === 0) firstAt = now;
      if (++received === expected) send({ type: 'received', phase, count: received, firstAt, lastAt: now });
    },
  });
  consumer.on('error', (error: unknown) => fail(error, phase));
  await consumer.start();
  process.on('message', (message: ToConsumer) => {
    switch (message.type) {
      case 'expect':
        phase = message.phase;
        expected = message.count;
        received = 0;
        send({ type: 'expecting', phase });
        break;
      case 'close': {
        const force = setTimeout(() => process.exit(2), 10_000);
        void consumer.close().finally(() => {
          clearTimeout(force);
          process.exit(0);
        });
        break;
      }
    }
  });
  send({ type: 'ready', pid: process.pid });
}

// ---------------------------------------------------------------------------------------------

const [role, ...rest] = process.argv.slice(2);
process.on('disconnect', () => process.exit(3));
(async () => {
  const f = flags(rest);
  if (role === 'broker') await runBroker(f);
  else if (role === 'consumer') await runConsumer(f);
  else throw new Error(`first argument must be broker or consumer, got ${JSON.stringify(role)}`);
})().catch((error: unknown) => {
  fail(error);
  process.stderr.write(`${role}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
