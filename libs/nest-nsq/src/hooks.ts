import type { NsqHeaders } from './wire/envelope.js';

export interface NsqPublishedEvent {
  topic: string;
  /** Message keys of the published messages (envelope only; undefined for plain bodies). */
  messageKeys: Array<string | undefined>;
  bodies: Buffer[];
  delayMs?: number;
  /** nsqd that acknowledged, when known. */
  nsqdAddress?: string;
  at: Date;
}

export interface NsqMessageEvent {
  topic: string;
  channel: string;
  /** nsqd's message id and the nsqd it is unique on. */
  messageId: string;
  nsqdAddress: string;
  attempts: number;
  headers: NsqHeaders;
  /** When nsqd took the message (its message timestamp), ms since the epoch. */
  timestamp?: number;
  at: Date;
}

/**
 * Observers of the transport. They run synchronously on the message path: keep them cheap (queue
 * work, do not await). A hook that throws is logged and ignored.
 */
export interface NsqTransportHooks {
  published?(event: NsqPublishedEvent): void;
  delivered?(event: NsqMessageEvent & { body: Buffer }): void;
  finished?(event: NsqMessageEvent): void;
  requeued?(event: NsqMessageEvent & { delayMs: number | undefined; error: string }): void;
  deadLettered?(event: NsqMessageEvent & { deadLetterTopic: string; reason: string; error: string }): void;
}
