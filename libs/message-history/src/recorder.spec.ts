import { describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { HistoryRecorder } from './recorder.js';

/** A database that is never reached: the recorder is not started, so nothing is written and everything stays queued. */
const unreachable = { options: { type: 'sqljs' }, isInitialized: false, initialize: () => new Promise(() => undefined) } as unknown as DataSource;

describe('HistoryRecorder queuing', () => {
  it('ignores malformed nsqd events without leaving anything queued, and still takes the next good one', () => {
    const recorder = new HistoryRecorder(unreachable, { spoolPath: '/nonexistent/spool' });
    const queue = (): number => (recorder as unknown as { queue: unknown[] }).queue.length;
    const base = { at: 1_700_000_000_000, topic: 't', channel: 'c', id: '0123456789abcdef', attempt: 1 };
    for (let n = 0; n < 5; n++) {
      // a timeout without its client, a delivery without its channel: not what nsqd emits
      recorder.recordNsqdEvent('n:1', { ...base, type: 'timed_out' } as unknown as MessageEvent);
      recorder.recordNsqdEvent('n:1', { ...base, type: 'delivered', client: 'x', channel: undefined } as unknown as MessageEvent);
    }
    expect(recorder.stats()).toMatchObject({ ignored: 10, queued: 0 });
    expect(queue()).toBe(0);
    recorder.recordNsqdEvent('n:1', { ...base, type: 'finished', client: '127.0.0.1:5000' });
    expect(recorder.stats()).toMatchObject({ ignored: 10, queued: 1 });
    expect(queue()).toBe(1);
  });
});
