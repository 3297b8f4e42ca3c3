import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { HEADER, NsqMessageEvent, NsqPublishedEvent, NsqTransportHooks } from '../../nest-nsq/src/index.js';
import { CLIENT_NSQD, type HistoryRecord, type HistorySink } from './types.js';

export interface HistoryHooksOptions {
  /**
   * Who this process is in the history: the `producer` of its publishes and the `consumer` of its
   * deliveries (default `<hostname>/<pid>`).
   */
  source?: string;
}

/** The envelope header that links a publish to its deliveries (checked against HEADER, no runtime import). */
const MESSAGE_KEY_HEADER: (typeof HEADER)['messageKey'] = 'message-key';
/** What the messageId column takes (ASCII, at most 64): other keys are kept in messageKey only. */
const STORABLE_KEY = /^[A-Za-z0-9._:-]{1,64}$/;

type Delivered = NsqMessageEvent & { body: Buffer };
type Requeued = NsqMessageEvent & { delayMs: number | undefined; error: string };
type DeadLettered = NsqMessageEvent & { deadLetterTopic: string; reason: string; error: string };

/**
 * A publish as the producer saw it: one record per body, filed on the pseudo-nsqd 'client'
 * (CLIENT_NSQD) under the body's message key, since nsqd's id is not known to the producer. A
 * plain body (no envelope, so no key) gets a random UUID instead: the publish is still visible,
 * but nothing links it to its deliveries.
 */
export function historyRecordsFromPublish(event: NsqPublishedEvent, source: string): HistoryRecord[] {
  const delayMs = event.delayMs !== undefined && event.delayMs > 0 ? event.delayMs : undefined;
  return event.bodies.map((body, i) => {
    const key = event.messageKeys[i];
    const record: HistoryRecord = {
      type: 'published',
      nsqd: CLIENT_NSQD,
      messageId: key !== undefined && STORABLE_KEY.test(key) ? key : randomUUID(),
      at: event.at,
      topic: event.topic,
      body,
      size: body.length,
      producer: source,
    };
    if (key !== undefined) record.messageKey = key;
    if (delayMs !== undefined) {
      record.deferredUntil = new Date(event.at.getTime() + delayMs);
      record.detail = `deferred ${delayMs} ms`;
    }
    return record;
  });
}

function consumerRecord(type: HistoryRecord['type'], event: NsqMessageEvent, source: string): HistoryRecord {
  return {
    type,
    nsqd: event.nsqdAddress,
    messageId: event.messageId,
    at: event.at,
    topic: event.topic,
    channel: event.channel,
    consumer: source,
    attempt: event.attempts,
  };
}

/**
 * A delivery, under (the nsqd address it came from, nsqd's id). It also creates that message's
 * row (body, message key, nsqd's timestamp as publishedAt) unless one exists already.
 */
export function historyRecordFromDelivery(event: Delivered, source: string): HistoryRecord {
  const record = consumerRecord('delivered', event, source);
  record.body = event.body;
  record.size = event.body.length;
  record.ensureMessage = true;
  const key = event.headers[MESSAGE_KEY_HEADER];
  if (key !== undefined && key !== '') record.messageKey = key;
  if (event.timestamp !== undefined) record.publishedAt = new Date(event.timestamp);
  return record;
}

export function historyRecordFromFinish(event: NsqMessageEvent, source: string): HistoryRecord {
  return consumerRecord('finished', event, source);
}

/** detail: `delay <ms> ms: <error>`. */
export function historyRecordFromRequeue(event: Requeued, source: string): HistoryRecord {
  const record = consumerRecord('requeued', event, source);
  record.detail = `delay ${event.delayMs === undefined ? 'default' : `${event.delayMs} ms`}: ${event.error}`;
  return record;
}

/** detail: `<reason> -> <dead-letter topic>: <error>` (`(dropped)` when dead letters are off). */
export function historyRecordFromDeadLetter(event: DeadLettered, source: string): HistoryRecord {
  const record = consumerRecord('dead_lettered', event, source);
  record.detail = `${event.reason} -> ${event.deadLetterTopic === '' ? '(dropped)' : event.deadLetterTopic}: ${event.error}`;
  return record;
}

/**
 * Client-side message history, for services on a real NSQ cluster (no TS broker recording): the
 * transport hooks of NsqClient / NsqBroker (publishes) and NsqServer / NsqBroker.subscribe()
 * (delivered, finished, requeued, dead-lettered) feed `recorder`. The producer's publish is filed
 * under its message key (nsqd 'client'); each consumer's events under the nsqd address and nsqd
 * id it saw, whose message row carries the same key, so `HistoryQueryService.getMessage(key)`
 * returns both. Linking needs the envelope (`envelope: true`, or headers) on the producer.
 *
 * The hooks only queue (HistoryRecorder.record() never waits, never throws).
 */
export function historyHooks(recorder: HistorySink, options: HistoryHooksOptions = {}): NsqTransportHooks {
  const source = options.source ?? `${hostname()}/${process.pid}`;
  return {
    published: (event) => {
      for (const record of historyRecordsFromPublish(event, source)) recorder.record(record);
    },
    delivered: (event) => recorder.record(historyRecordFromDelivery(event, source)),
    finished: (event) => recorder.record(historyRecordFromFinish(event, source)),
    requeued: (event) => recorder.record(historyRecordFromRequeue(event, source)),
    deadLettered: (event) => recorder.record(historyRecordFromDeadLetter(event, source)),
  };
}
