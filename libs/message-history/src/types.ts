/** What can happen to a message; 'consumed' is recorded by client-side history (no broker). */
export const HISTORY_EVENT_TYPES = [
  'published',
  'delivered',
  'finished',
  'requeued',
  'timed_out',
  'deferred',
  'dropped',
  'dead_lettered',
  'consumed',
] as const;
export type HistoryEventType = (typeof HISTORY_EVENT_TYPES)[number];

/** A message's (or one channel's) summary status. */
export const HISTORY_STATUSES = [
  'published',
  'deferred',
  'in_flight',
  'requeued',
  'finished',
  'timed_out',
  'dead_lettered',
  'dropped',
] as const;
export type HistoryStatus = (typeof HISTORY_STATUSES)[number];

/**
 * One lifecycle event handed to the recorder. `nsqd` + `messageId` identify the message (nsqd
 * ids are unique per nsqd only). A 'published' record carries the message's own fields (topic,
 * body, producer, deferredUntil, messageKey), and so does one with `ensureMessage`; every record
 * becomes one event row.
 *
 * Dead-lettering (from the transport's hooks, ./transport.ts) is `{ type: 'dead_lettered',
 * channel, attempt, detail: '<reason> -> <dead-letter topic>: <error>' }`.
 */
export interface HistoryRecord {
  type: HistoryEventType;
  nsqd: string;
  messageId: string;
  at: Date;
  topic?: string;
  body?: Buffer;
  /** The full body size; defaults to body.length. */
  size?: number;
  producer?: string;
  deferredUntil?: Date;
  messageKey?: string;
  channel?: string;
  consumer?: string;
  attempt?: number;
  detail?: string;
  /**
   * A consumer-side record (client-side history, ./transport.ts): also insert the message row
   * (topic, body, size, messageKey, publishedAt) when there is none. An existing row (the
   * broker's publish, or an earlier delivery's) is never overwritten. Needs `topic`.
   */
  ensureMessage?: boolean;
  /** With `ensureMessage`: the row's publishedAt (nsqd's message timestamp); default `at`. */
  publishedAt?: Date;
  /**
   * The event's unique key; default one the recorder makes. A writer that may hand the same event
   * in twice (HistoryJournal replaying after a crash) gives it one, so the second adds nothing.
   */
  key?: string;
}

/** What takes history records: a HistoryRecorder, or a HistoryJournal in front of one. */
export interface HistorySink {
  record(record: HistoryRecord): void;
}

/**
 * The `nsqd` of client-side history's producer records (./transport.ts): a publish seen by the
 * producer has no nsqd id yet, so it is filed under its message key on this pseudo-nsqd.
 */
export const CLIENT_NSQD = 'client';

/** Column widths: longer strings are cut to fit, so one long value can never fail a whole batch. */
export const COLUMN_LIMITS = {
  nsqd: 255,
  /** nsqd's 16-character ids, and message keys (client-side history's producer records). */
  messageId: 64,
  messageKey: 64,
  topic: 64,
  channel: 64,
  consumer: 255,
  producer: 255,
  detail: 1024,
  eventKey: 191,
} as const;
