import { describe, expect, it } from '@jest/globals';
import type { NsqMessageEvent } from '../../nest-nsq/src/index.js';
import type { HistoryRecorder } from './recorder.js';
import {
  historyHooks,
  historyRecordFromDeadLetter,
  historyRecordFromDelivery,
  historyRecordFromFinish,
  historyRecordFromRequeue,
  historyRecordsFromPublish,
} from './transport.js';
import type { HistoryRecord } from './types.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('client-side history mapping', () => {
  const at = new Date(1_700_000_000_000);
  const source = 'host/42';
  const key = '4f7c2f0e-6f1a-4a8e-9b7e-2d9f3c1a0b55';
  const event: NsqMessageEvent = {
    topic: 't',
    channel: 'c',
    messageId: '0a1b2c3d4e5f6789',
    nsqdAddress: '127.0.0.1:4150',
    attempts: 2,
    headers: { 'message-key': key },
    timestamp: at.getTime() - 50,
    at,
  };
  const consumerSide = { nsqd: '127.0.0.1:4150', messageId: '0a1b2c3d4e5f6789', at, topic: 't', channel: 'c', consumer: source, attempt: 2 };

  it('files each published body under its message key on the pseudo-nsqd "client"', () => {
    const a = Buffer.from('a');
    const b = Buffer.from('bb');
    const records = historyRecordsFromPublish({ topic: 't', messageKeys: [key, 'k-2'], bodies: [a, b], at }, source);
    expect(records).toEqual([
      { type: 'published', nsqd: 'client', messageId: key, messageKey: key, at, topic: 't', body: a, size: 1, producer: source },
      { type: 'published', nsqd: 'client', messageId: 'k-2', messageKey: 'k-2', at, topic: 't', body: b, size: 2, producer: source },
    ]);
  });

  it('records a deferred publish with its deferredUntil', () => {
    const [r] = historyRecordsFromPublish({ topic: 't', messageKeys: [key], bodies: [Buffer.from('x')], delayMs: 5000, at }, source);
    expect(r).toMatchObject({ deferredUntil: new Date(at.getTime() + 5000), detail: 'deferred 5000 ms' });
  });

  it('gives a plain body (no key) a random id, and a key the id column cannot hold a random id too', () => {
    const odd = 'ключ with spaces';
    const [plain, foreign] = historyRecordsFromPublish({ topic: 't', messageKeys: [undefined, odd], bodies: [Buffer.from('p'), Buffer.from('f')], at }, source);
    expect(plain!.messageId).toMatch(UUID);
    expect(plain).not.toHaveProperty('messageKey');
    expect(foreign!.messageId).toMatch(UUID);
    expect(foreign!.messageKey).toBe(odd);
    const ids = historyRecordsFromPublish({ topic: 't', messageKeys: [undefined, undefined], bodies: [Buffer.from('1'), Buffer.from('2')], at }, source).map((r) => r.messageId);
    expect(new Set(ids).size).toBe(2);
  });

  it('maps a delivery under (nsqd address, nsqd id), creating the message row with the key and nsqd timestamp', () => {
    const body = Buffer.from('body');
    expect(historyRecordFromDelivery({ ...event, body }, source)).toEqual({
      type: 'delivered',
      ...consumerSide,
      body,
      size: 4,
      messageKey: key,
      ensureMessage: true,
      publishedAt: new Date(at.getTime() - 50),
    });
    const { timestamp: _t, ...noTimestamp } = event;
    const plain = historyRecordFromDelivery({ ...noTimestamp, headers: {}, body }, source);
    expect(plain).not.toHaveProperty('messageKey');
    expect(plain).not.toHaveProperty('publishedAt');
  });

  it('maps finish, requeue and dead letter with their details', () => {
    expect(historyRecordFromFinish(event, source)).toEqual({ type: 'finished', ...consumerSide });
    expect(historyRecordFromRequeue({ ...event, delayMs: 250, error: 'boom' }, source)).toEqual({ type: 'requeued', ...consumerSide, detail: 'delay 250 ms: boom' });
    expect(historyRecordFromRequeue({ ...event, delayMs: undefined, error: 'boom' }, source).detail).toBe('delay default: boom');
    expect(historyRecordFromDeadLetter({ ...event, deadLetterTopic: 't.dead', reason: 'max_attempts', error: 'boom' }, source)).toEqual({
      type: 'dead_lettered',
      ...consumerSide,
      detail: 'max_attempts -> t.dead: boom',
    });
    expect(historyRecordFromDeadLetter({ ...event, deadLetterTopic: '', reason: 'decode_failed', error: 'bad json' }, source).detail).toBe('decode_failed -> (dropped): bad json');
  });

  it('historyHooks queues every record with the recorder, with `<hostname>/<pid>` as the default source', () => {
    const recorded: HistoryRecord[] = [];
    const recorder = { record: (r: HistoryRecord) => void recorded.push(r) } as unknown as HistoryRecorder;
    const hooks = historyHooks(recorder);
    hooks.published!({ topic: 't', messageKeys: [key], bodies: [Buffer.from('x')], at });
    hooks.delivered!({ ...event, body: Buffer.from('x') });
    hooks.requeued!({ ...event, delayMs: 0, error: 'e' });
    hooks.finished!(event);
    hooks.deadLettered!({ ...event, deadLetterTopic: 't.dead', reason: 'max_attempts', error: 'e' });
    expect(recorded.map((r) => r.type)).toEqual(['published', 'delivered', 'requeued', 'finished', 'dead_lettered']);
    expect(recorded[0]!.producer).toMatch(new RegExp(`/${process.pid}$`));
    expect(recorded.slice(1).every((r) => r.consumer === recorded[0]!.producer)).toBe(true);
    expect(historyHooks(recorder, { source: 'svc-a' }).finished).toBeDefined();
  });
});
