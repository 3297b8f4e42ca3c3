/**
 * The embedded default (sql.js, file-backed) survives restarts: rows written, the DataSource
 * closed, the file reopened by a new DataSource (as after a process restart) → the rows are there,
 * the migration is not run twice, and writing goes on.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import {
  createHistoryDataSource,
  HISTORY_MIGRATIONS,
  HISTORY_MIGRATIONS_TABLE,
  HistoryQueryService,
  HistoryRecorder,
  historyOptionsFromEnv,
} from '../../libs/message-history/src/index.js';
import { countRows } from '../support/history.js';

describe('embedded history database (sql.js file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'history-sqljs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function run(location: string, messageId: string): Promise<void> {
    const ds = await createHistoryDataSource({ type: 'sqljs', location });
    const recorder = new HistoryRecorder(ds, { spoolPath: join(dir, 'spool.jsonl') });
    await recorder.start();
    const t = Date.now();
    recorder.record({ type: 'published', nsqd: 'n:1', messageId, topic: 'persist', at: new Date(t), body: Buffer.from([0, 0xff, 0x27]) });
    recorder.record({ type: 'delivered', nsqd: 'n:1', messageId, topic: 'persist', channel: 'c', attempt: 1, at: new Date(t + 1) });
    recorder.record({ type: 'finished', nsqd: 'n:1', messageId, topic: 'persist', channel: 'c', attempt: 1, at: new Date(t + 2) });
    await recorder.close();
    await ds.destroy();
  }

  it('keeps its rows across a close and reopen', async () => {
    const location = join(dir, 'nested', 'history.sqlite');
    await run(location, 'aaaaaaaaaaaaaaaa');
    expect(existsSync(location)).toBe(true);
    // saved through a temp file and a rename: nothing left beside it
    expect(readdirSync(join(dir, 'nested'))).toEqual(['history.sqlite']);

    await run(location, 'bbbbbbbbbbbbbbbb');

    const ds = await createHistoryDataSource({ type: 'sqljs', location });
    try {
      expect(await countRows(ds, HISTORY_MIGRATIONS_TABLE)).toBe(HISTORY_MIGRATIONS.length);
      // a publish is its message row: two event rows a message, three in its timeline
      expect(await countRows(ds, 'nsq_message_event')).toBe(4);
      const query = new HistoryQueryService(ds);
      for (const id of ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']) {
        const [d] = await query.getMessage(id);
        expect(d!.message).toMatchObject({ status: 'finished', bodyBase64: Buffer.from([0, 0xff, 0x27]).toString('base64') });
        expect(d!.events.map((e) => e.type)).toEqual(['published', 'delivered', 'finished']);
      }
    } finally {
      await ds.destroy();
    }
  });

  it('is the default when HISTORY_DB_URL is not set', () => {
    expect(historyOptionsFromEnv({})).toEqual({ type: 'sqljs', location: '.data/history.sqlite' });
  });
});
