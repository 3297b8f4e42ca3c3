/**
 * The baseline of bench:history: history as a patched nsqd would write it, one autocommitted
 * INSERT per lifecycle event into the history tables (a message row for 'published', an event row
 * for everything else), each awaited before the next, in the order nsqd emitted them. No batching,
 * no transactions, no summaries; the statements are plain positional INSERTs through the same
 * TypeORM DataSource (mysql2 pool) the real recorder uses.
 */
import type { DataSource } from 'typeorm';
import type { MessageEvent } from '../../libs/nsq/src/index.js';

const MESSAGE_INSERT =
  'INSERT INTO `nsq_message` (`nsqd`, `messageId`, `topic`, `body`, `bodyTruncated`, `size`, `publishedAt`, `producer`, `status`, `attempts`) ' +
  "VALUES (?, ?, ?, ?, 0, ?, ?, ?, 'published', 0)";
const EVENT_INSERT =
  'INSERT INTO `nsq_message_event` (`eventKey`, `nsqd`, `messageId`, `topic`, `type`, `channel`, `consumer`, `attempt`, `at`, `detail`) ' +
  'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';

export interface NaiveRecorderStats {
  /** Events waiting for their INSERT. */
  pending: number;
  written: number;
  failures: number;
  lastError: string | undefined;
}

export class NaiveRecorder {
  private queue: MessageEvent[] = [];
  private head = 0;
  private running = false;
  private seq = 0;
  private written = 0;
  private failures = 0;
  private lastError: string | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly dataSource: DataSource,
    private readonly nsqd: string,
    private readonly source = `naive/${process.pid}`,
  ) {}

  record(event: MessageEvent): void {
    this.queue.push(event);
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  stats(): NaiveRecorderStats {
    return { pending: this.queue.length - this.head, written: this.written, failures: this.failures, lastError: this.lastError };
  }

  /** Resolves once every event recorded so far has had its INSERT answered. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    while (this.head < this.queue.length) {
      const event = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as MessageEvent;
      if (this.head > 65_536 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      try {
        await this.insert(event);
        this.written++;
      } catch (error) {
        this.failures++;
        this.lastError = error instanceof Error ? error.message : String(error);
      }
    }
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private insert(e: MessageEvent): Promise<unknown> {
    const at = new Date(e.at);
    if (e.type === 'published') {
      return this.dataSource.query(MESSAGE_INSERT, [this.nsqd, e.id, e.topic, e.body, e.body.length, at, e.producer]);
    }
    const channel = 'channel' in e ? (e.channel ?? null) : null;
    const consumer = 'client' in e && e.client !== '' ? e.client : null;
    const attempt = 'attempt' in e ? e.attempt : null;
    const detail = e.type === 'requeued' ? `delay ${e.delayMs} ms` : e.type === 'dropped' ? e.reason : e.type === 'deferred' ? `until ${new Date(e.until).toISOString()}` : null;
    return this.dataSource.query(EVENT_INSERT, [`${this.source}:${++this.seq}`, this.nsqd, e.id, e.topic, e.type, channel, consumer, attempt, at, detail]);
  }
}
