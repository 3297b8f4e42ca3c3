import { describe, expect, it } from '@jest/globals';
import { encodeEnvelope } from '../../nest-nsq/src/index.js';
import { envelopeMessageKey, historyRecordFromNsqdEvent } from './nsqd.js';

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

  it("records the envelope's message key with a publish, so the broker's row is found by key", () => {
    const body = encodeEnvelope({ 'message-key': 'order-42', traceparent: 't' }, Buffer.from('{"a":1}'));
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'published', producer: 'tcp:x', body })).toMatchObject({ messageKey: 'order-42', body });
    expect(historyRecordFromNsqdEvent(nsqd, { ...base, type: 'published', producer: 'tcp:x', body: Buffer.from('{"a":1}') })).not.toHaveProperty('messageKey');
  });

  it('takes no key from bodies that only look like envelopes', () => {
    const magic = encodeEnvelope({}, Buffer.alloc(0)).subarray(0, 6);
    expect(envelopeMessageKey(Buffer.concat([magic, Buffer.from([0, 0, 0, 9]), Buffer.from('{')]))).toBeUndefined();
    expect(envelopeMessageKey(Buffer.concat([magic, Buffer.from([0, 0, 0, 2]), Buffer.from('[]')]))).toBeUndefined();
    expect(envelopeMessageKey(encodeEnvelope({ 'message-key': '' }, Buffer.alloc(0)))).toBeUndefined();
    expect(envelopeMessageKey(Buffer.from('plain'))).toBeUndefined();
  });
});
