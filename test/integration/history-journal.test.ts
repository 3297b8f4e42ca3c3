/**
 * HistoryJournal: a process SIGKILLed while its recorder still holds events in memory loses none
 * of them (the next start replays the journal), and a replay of events that had been written
 * adds nothing. The writer is a real child process killed with SIGKILL; without the journal the
 * same run loses every event, which shows what the journal is for.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { HistoryJournal, HistoryQueryService, HistoryRecorder } from '../../libs/message-history/src/index.js';
import { countRows, openHistoryDb, type HistoryDb } from '../support/history.js';
import { historyBackends } from '../support/mariadb.js';

const { backends, missing } = await historyBackends();
/** Event rows a message: delivered and finished (its publish is its message row). */
const EVENT_ROWS_PER_MESSAGE = 2;
const MESSAGES = 200;

/** The child: records MESSAGES × 3 events (never flushed: long interval), maybe flushes, prints "ready", waits to be killed. */
const CHILD = `
import { buildHistoryDataSource, HistoryJournal, HistoryRecorder } from ${JSON.stringify(pathToFileURL(resolve('dist/libs/message-history/src/index.js')).href)};
const [options, spool, mode] = [JSON.parse(process.argv[2]), process.argv[3], process.argv[4]];
const recorder = new HistoryRecorder(buildHistoryDataSource(options), { spoolPath: spool, flushInterval: 600000, batchSize: 1000000, source: 'child' });
const sink = mode === 'bare' ? recorder : new HistoryJournal(recorder, { path: spool + '.journal', checkpointInterval: 600000, source: 'child' });
await sink.start();
const t = Date.now();
for (let i = 0; i < ${MESSAGES}; i++) {
  const messageId = i.toString(16).padStart(16, '0');
  if (mode === 'nsqd') {
    // the broker's path: our nsqd's lifecycle events, journaled as bytes
    const delivery = { topic: 'journal', channel: 'c', id: messageId, client: '127.0.0.1:5000', attempt: 1 };
    sink.recordNsqdEvent('n:1', { type: 'published', at: t, topic: 'journal', id: messageId, producer: 'tcp:127.0.0.1:4000', body: Buffer.from('body ' + i) });
    sink.recordNsqdEvent('n:1', { type: 'delivered', at: t + 1, ...delivery });
    sink.recordNsqdEvent('n:1', { type: 'finished', at: t + 2, ...delivery });
    continue;
  }
  sink.record({ type: 'published', nsqd: 'n:1', messageId, topic: 'journal', at: new Date(t), body: Buffer.from('body ' + i) });
  sink.record({ type: 'delivered', nsqd: 'n:1', messageId, topic: 'journal', channel: 'c', attempt: 1, at: new Date(t + 1) });
  sink.record({ type: 'finished', nsqd: 'n:1', messageId, topic: 'journal', channel: 'c', attempt: 1, at: new Date(t + 2) });
}
if (mode === 'flushed') await sink.flush();
// the journal's append runs at the end of this synchronous run; report after it
setImmediate(() => process.stdout.write('ready\\n'));
setInterval(() => {}, 1000);
`;

/** Runs the child until it says ready, then SIGKILLs it. */
async function recordThenKill(dir: string, db: HistoryDb, spool: string, mode: 'journal' | 'nsqd' | 'bare' | 'flushed'): Promise<void> {
  const script = join(dir, 'child.mjs');
  writeFileSync(script, CHILD);
  const child = spawn(process.execPath, [script, JSON.stringify(db.options), spool, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<NodeJS.Signals | null>((res) => child.once('exit', (_code, signal) => res(signal)));
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`child not ready within 30 s:\n${out}`)), 30_000);
    child.stdout.on('data', () => {
      if (out.includes('ready')) {
        clearTimeout(timer);
        res();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      rej(new Error(`child exited early:\n${out}`));
    });
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

/** A new process's start: recorder + journal on the same paths, flushed, closed. */
async function restart(db: HistoryDb, spool: string): Promise<void> {
  const journal = new HistoryJournal(new HistoryRecorder(db.dataSource, { spoolPath: spool, source: 'restart' }), { path: `${spool}.journal` });
  await journal.start();
  expect(journal.stats().journalReplayed).toBeGreaterThanOrEqual(0);
  await journal.flush();
  await journal.close();
}

describe.each(backends)('HistoryJournal on %s', (backend) => {
  if (backend === 'mariadb' && missing !== undefined) {
    it('needs MariaDB on 127.0.0.1:3306', () => {
      throw new Error(missing);
    });
    return;
  }
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function fresh(): Promise<{ dir: string; db: HistoryDb; spool: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'history-journal-'));
    dirs.push(dir);
    const db = await openHistoryDb(backend);
    // the child writes the sql.js file itself; the test reads it after the child is gone
    if (backend === 'sqljs') await db.dataSource.destroy();
    return { dir, db, spool: join(dir, 'history.spool') };
  }

  async function reopen(db: HistoryDb): Promise<void> {
    if (!db.dataSource.isInitialized) await db.dataSource.initialize();
  }

  it.each([
    ['records', 'journal'],
    ["nsqd's events (written as bytes)", 'nsqd'],
  ] as const)('a SIGKILLed writer loses none of the %s it had recorded: the next start replays the journal', async (_, mode) => {
    const { dir, db, spool } = await fresh();
    try {
      await recordThenKill(dir, db, spool, mode);
      expect(readdirSync(dir).some((f) => f.startsWith('history.spool.journal.'))).toBe(true);
      await reopen(db);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(0);
      await restart(db, spool);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(MESSAGES * EVENT_ROWS_PER_MESSAGE);
      expect(await countRows(db.dataSource, 'nsq_message')).toBe(MESSAGES);
      const [detail] = await new HistoryQueryService(db.dataSource).getMessage((7).toString(16).padStart(16, '0'));
      expect(detail?.events.map((e) => e.type)).toEqual(['published', 'delivered', 'finished']);
      expect(detail?.message).toMatchObject({ status: 'finished', bodyUtf8: 'body 7' });
      // replayed and flushed: the journal is gone
      expect(readdirSync(dir).filter((f) => f.startsWith('history.spool.journal.'))).toEqual([]);
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('a replay of events already written adds nothing', async () => {
    const { dir, db, spool } = await fresh();
    try {
      await recordThenKill(dir, db, spool, 'flushed');
      await reopen(db);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(MESSAGES * EVENT_ROWS_PER_MESSAGE);
      await restart(db, spool);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(MESSAGES * EVENT_ROWS_PER_MESSAGE);
      const [detail] = await new HistoryQueryService(db.dataSource).getMessage((3).toString(16).padStart(16, '0'));
      expect(detail?.events.map((e) => e.type)).toEqual(['published', 'delivered', 'finished']);
    } finally {
      await db.drop();
    }
  }, 60_000);

  it('without the journal the same kill loses every event', async () => {
    const { dir, db, spool } = await fresh();
    try {
      await recordThenKill(dir, db, spool, 'bare');
      await reopen(db);
      await restart(db, spool);
      expect(await countRows(db.dataSource, 'nsq_message_event')).toBe(0);
    } finally {
      await db.drop();
    }
  }, 60_000);
});
