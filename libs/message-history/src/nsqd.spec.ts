import { describe, expect, it } from '@jest/globals';
import { historyRecordFromNsqdEvent } from './nsqd.js';

describe('historyRecordFromNsqdEvent', () => {
  const nsqd = '127.0.0.1:4150';
  const base = { at: 1_700_000_000_000, topic: 't', id: '0a1b2c3d4e5f6789' };

  it('maps a publish, with its deferral', () => {
    const body = Buffer.from('b');
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', body, deferMs: 5000 })).toEqual({
      type: 'published',
      nsqd,
      messageId: base.id,
      at: new Date(base.at),
      topic: 't',
      body,
      size: 1,
      producer: 'tcp:1.2.3.4:5',
      deferredUntil: new Date(base.at + 5000),
      detail: 'deferred 5000 ms',
    });
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'published', producer: 'http:x', body })).not.toHaveProperty('deferredUntil');
  });

  it('maps deliveries, requeues, deferrals and drops', () => {
    const delivery = { ...base, channel: 'c', client: '127.0.0.1:9', attempt: 2 };
    expect(historyRecordFromNsqdEvent(nsqd, { ...delivery, type: 'delivered' })).toMatchObject({ type: 'delivered', channel: 'c', consumer: '127.0.0.1:9', attempt: 2 });
    expect(historyRecordFromNsqdEvent(nsqd, { ...delivery, type: 'requeued', delayMs: 250 })).toMatchObject({ type: 'requeued', attempt: 2, detail: 'delay 250 ms' });
    expect(historyRecordFromNsqdEvent(nsqd, { ...delivery, type: 'timed_out', client: '' })).toMatchObject({ type: 'timed_out', consumer: undefined });
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'deferred', channel: 'c', until: base.at + 1000 })).toMatchObject({
      type: 'deferred',
      channel: 'c',
      detail: `until ${new Date(base.at + 1000).toISOString()}`,
    });
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'dropped', channel: 'c', reason: 'sampled out' })).toMatchObject({ type: 'dropped', detail: 'sampled out' });
  });
});
