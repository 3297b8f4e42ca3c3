import type { NsqLogger } from '../client/logger.js';
import type { MessageEvents } from './events.js';
import type { NsqdOptions } from './options.js';
import { DiskQueue } from './diskqueue.js';
import type { NsqdMessage } from './message.js';
import { MESSAGE_HEADER_LENGTH } from '../protocol/constants.js';

/** What topics and channels need from their NSQD (keeps them ignorant of servers and lookupd). */
export interface NsqdContext {
  readonly options: NsqdOptions;
  readonly logger: NsqLogger;
  readonly events: MessageEvents;
  /** A topic or channel was created or deleted: persist metadata, tell lookupd. */
  notify(what: { topic: string; channel?: string; created: boolean; ephemeral: boolean }): void;
  /** A disk write failed (health NOK) or succeeded again (health OK). */
  setHealth(error: Error | undefined): void;
  /** The consumer with this id, to settle its in-flight count. */
  consumer(clientId: number): ChannelConsumer | undefined;
}

/** A subscribed client as its channel sees it. */
export interface ChannelConsumer {
  readonly id: number;
  /** remote address, for events */
  readonly name: string;
  readonly sampleRate: number;
  readonly msgTimeout: number;
  /** RDY > 0, in-flight < RDY, not closing. */
  isReady(): boolean;
  /** Counts the message in flight and writes it to the client. */
  send(message: NsqdMessage): void;
  /** One of its in-flight messages timed out: one less in flight. */
  settled(): void;
  /** The channel emptied: in-flight back to 0. */
  emptied(): void;
  /** Close the connection (channel deleted). */
  close(): void;
}

/** Opens the disk queue for a topic (`t`) or channel (`t:c`) with the nsqd's options. */
export function openDiskQueue(ctx: NsqdContext, name: string): DiskQueue {
  const o = ctx.options;
  return DiskQueue.open({
    dataPath: o.dataPath || process.cwd(),
    name,
    maxBytesPerFile: o.maxBytesPerFile,
    minMsgSize: MESSAGE_HEADER_LENGTH,
    maxMsgSize: o.maxMsgSize + MESSAGE_HEADER_LENGTH,
    syncEvery: o.syncEvery,
    syncTimeoutMs: o.syncTimeout,
    logger: ctx.logger,
  });
}
