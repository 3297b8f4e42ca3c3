import type { MessageEvent, MessageEvents } from '../../nsq/src/nsqd/events.js';
import type { HistoryRecorder } from './recorder.js';
import type { HistoryRecord } from './types.js';

/**
 * One of our nsqd's lifecycle events as a history record. `nsqd` is the identity the message ids
 * are unique on (`NSQD.identity`, broadcast address:TCP port).
 */
export function historyRecordFromNsqdEvent(nsqd: string, event: MessageEvent): HistoryRecord {
  const at = new Date(event.at);
  switch (event.type) {
    case 'published':
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
      };
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
export function recordNsqdEvents(recorder: HistoryRecorder, nsqd: { readonly identity: string; readonly events: MessageEvents }): () => void {
  const identity = nsqd.identity;
  return nsqd.events.subscribe((event) => recorder.record(historyRecordFromNsqdEvent(identity, event)));
}
