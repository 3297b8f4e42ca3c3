import { describe, expect, it } from '@jest/globals';
import { encodeEnvelope } from '../../nest-nsq/src/index.js';
import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { journalLine, nsqdEventLine } from './journal.js';
import { historyRecordFromNsqdEvent } from './nsqd.js';

describe('nsqdEventLine', () => {
  const nsqd = 'host "a"\\b:4150';
  const base = { at: 1_700_000_000_123, topic: 'orders.created', id: '0a1b2c3d4e5f6789' };
  const delivery = { ...base, channel: 'points#ephemeral', client: 'svc "x"/42', attempt: 3 };
  const events: Array<[string, MessageEvent]> = [
    ['a plain publish', { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', body: Buffer.from([1, 0, 255, 0x22, 0x5c, 10]) }],
    ['an empty publish with no producer', { ...base, type: 'published', producer: '', body: Buffer.alloc(0) }],
    ['an envelope publish', { ...base, type: 'published', producer: 'http:x', body: encodeEnvelope({ 'message-key': 'ord-1' }, Buffer.from('{}')) }],
    ['a deferred publish', { ...base, type: 'published', producer: 'tcp:1.2.3.4:5', body: Buffer.from('b'), deferMs: 5000 }],
    ['a delivery', { ...delivery, type: 'delivered' }],
    ['a FIN', { ...delivery, type: 'finished' }],
    ['a FIN with no client', { ...delivery, type: 'finished', client: '' }],
    ['a timeout', { ...delivery, type: 'timed_out' }],
    ['a requeue', { ...delivery, type: 'requeued', delayMs: 250 }],
    ['a deferral', { ...base, type: 'deferred', channel: 'c', until: base.at + 1000 }],
    ['a drop', { ...base, type: 'dropped', channel: 'c', reason: 'channel "c" deleted' }],
  ];

  it.each(events)('writes %s as journalLine writes its record', (_, event) => {
    const key = 'host/1:jabc:7z';
    const line = nsqdEventLine(key, nsqd, JSON.stringify(nsqd), event);
    expect(JSON.parse(line)).toEqual(JSON.parse(journalLine({ ...historyRecordFromNsqdEvent(nsqd, event), key })));
    expect(line).not.toContain('\n');
  });
});
