import type { MessageEvent, MessageEvents } from '../../nsq/src/nsqd/events.js';
import { decodeEnvelope, HEADER, isEnvelope } from '../../nest-nsq/src/index.js';
import type { HistoryJournal } from './journal.js';
import type { HistoryRecorder } from './recorder.js';
import { COLUMN_LIMITS, type HistoryRecord } from './types.js';

/**
 * The `message-key` header of a body in the transport's envelope (so the broker's record links
 * to client-side records and can be looked up by key); undefined for any other body, or a broken
 * envelope (the broker stores what it was given either way).
 */
export function envelopeMessageKey(body: Buffer): string | undefined {
  if (!isEnvelope(body)) return undefined;
  try {
    return decodeEnvelope(body).headers[HEADER.messageKey] || undefined;
  } catch {
    return undefined;
  }
}

/**
 * One of our nsqd's lifecycle events as a history record. `nsqd` is the identity the message ids
 * are unique on (`NSQD.identity`, broadcast address:TCP port).
 */
export function historyRecordFromNsqdEvent(nsqd: string, event: MessageEvent): HistoryRecord {
  const at = new Date(event.at);
  switch (event.type) {
    case 'published': {
      const messageKey = envelopeMessageKey(event.body);
      return {
        type: 'published',
        nsqd,
        messageId: event.id,
        at,
        topic: event.topic,
        body: event.body,
        size: event.body.length,
        producer: event.producer,
        ...(event.deferMs !== undefined && event.deferMs > 0
          ? { deferredUntil: new Date(event.at + event.deferMs), detail: `deferred ${event.deferMs} ms` }
          : {}),
        ...(messageKey !== undefined ? { messageKey } : {}),
      };
    }
    case 'delivered':
    case 'finished':
    case 'timed_out':
      return { type: event.type, nsqd, messageId: event.id, at, topic: event.topic, channel: event.channel, consumer: event.client || undefined, attempt: event.attempt };
    case 'requeued':
      return {
        type: 'requeued',
        nsqd,
        messageId: event.id,
        at,
        topic: event.topic,
        channel: event.channel,
        consumer: event.client || undefined,
        attempt: event.attempt,
        detail: `delay ${event.delayMs} ms`,
      };
    case 'deferred':
      return { type: 'deferred', nsqd, messageId: event.id, at, topic: event.topic, channel: event.channel, detail: `until ${new Date(event.until).toISOString()}` };
    case 'dropped':
      return { type: 'dropped', nsqd, messageId: event.id, at, topic: event.topic, channel: event.channel, detail: event.reason };
  }
}

/**
 * Feeds an nsqd's lifecycle events to `recorder`; returns the function that stops it. The
 * listener runs on nsqd's delivery path and only queues. Subscribe after the nsqd started: its
 * identity includes the TCP port it bound.
 */
export function recordNsqdEvents(recorder: HistoryRecorder | HistoryJournal, nsqd: { readonly identity: string; readonly events: MessageEvents }): () => void {
  const identity = nsqd.identity.slice(0, COLUMN_LIMITS.nsqd);
  return nsqd.events.subscribe((event) => recorder.recordNsqdEvent(identity, event));
}
