import type { LoggerService } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';
import { In, IsNull } from 'typeorm';
import { HEADER, type NsqClient, NsqRecordBuilder } from '../../../libs/nest-nsq/src/index.js';
import type { SampleDatabase } from '../../shared/src/index.js';
import { OutboxEvent } from './entities.js';

export interface OutboxRelayOptions {
  /** Rows read and published per round (published together: the producer sends them as one MPUB). Default 100. */
  batchSize: number;
  /** ms between polls when nothing kicked the relay. Default 1000. */
  pollInterval: number;
  /** First wait after a failed round; doubles per failure up to maxBackoff. Default 100 ms. */
  minBackoff: number;
  /** Default 10 000 ms. */
  maxBackoff: number;
  /** A publish not acknowledged within this counts as failed (it stays unsent and goes out again). Default 10 000 ms. */
  publishTimeout: number;
  /** close() waits this long for the round in progress. Default 5000 ms. */
  closeTimeout: number;
}

export const DEFAULT_RELAY_OPTIONS: OutboxRelayOptions = {
  batchSize: 100,
  pollInterval: 1000,
  minBackoff: 100,
  maxBackoff: 10_000,
  publishTimeout: 10_000,
  closeTimeout: 5000,
};

export interface OutboxRelayStats {
  /** Events acknowledged by nsqd and marked sent, since start. */
  sent: number;
  /** Failed rounds in a row (0 when the last round succeeded). */
  failures: number;
  lastError: string | undefined;
}

class PublishTimeoutError extends Error {}

/**
 * Publishes committed outbox rows: reads the unsent ones in id order, waits until they are on
 * disk (sql.js: a commit is durable only once the file is written), emits each with
 * `NsqClient.emit(topic, payload)` and the event id as `message-key`, and marks sent only what
 * nsqd acknowledged. A failed round (broker down, timeout) is retried with exponential backoff,
 * and unacknowledged rows go out again: at-least-once, so a crash between the broker's OK and
 * `sentAt` publishes a duplicate, which consumers drop by event id.
 *
 * Runs after every commit (`kick()`) and every `pollInterval` (rows left by a previous run, or
 * by a kick lost to a crash). Lifecycle: start() → close() (idempotent, bounded by closeTimeout).
 */
export class OutboxRelay {
  private readonly options: OutboxRelayOptions;
  private state: 'new' | 'running' | 'closed' = 'new';
  private loopDone: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  private readonly counters: OutboxRelayStats = { sent: 0, failures: 0, lastError: undefined };

  constructor(
    private readonly db: SampleDatabase,
    private readonly client: NsqClient,
    private readonly logger: LoggerService,
    options: Partial<OutboxRelayOptions> = {},
  ) {
    this.options = { ...DEFAULT_RELAY_OPTIONS, ...options };
  }

  start(): void {
    if (this.state !== 'new') return;
    this.state = 'running';
    this.loopDone = this.loop();
  }

  /** Something was committed: publish it now rather than at the next poll (unless backing off). */
  kick(): void {
    this.kicked = true;
    if (this.counters.failures === 0) this.wake?.();
  }

  stats(): OutboxRelayStats {
    return { ...this.counters };
  }

  /** Stops polling and waits (up to closeTimeout) for the round in progress. Rows it did not mark stay unsent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.wake?.();
    if (!this.loopDone) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.closeTimeout);
    });
    const outcome = await Promise.race([this.loopDone.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.logger.warn(`outbox relay: a round still running after ${this.options.closeTimeout} ms; its rows go out on the next start`);
  }

  private async loop(): Promise<void> {
    while (this.state === 'running') {
      this.kicked = false;
      let delay = this.options.pollInterval;
      try {
        const sent = await this.drain();
        if (this.counters.failures > 0) {
          this.logger.log(`outbox relay: publishing again after ${this.counters.failures} failed round(s); ${sent} event(s) sent`);
        }
        this.counters.failures = 0;
        this.counters.lastError = undefined;
      } catch (error) {
        const failures = ++this.counters.failures;
        const message = error instanceof Error ? error.message : String(error);
        this.counters.lastError = message;
        delay = Math.min(this.options.minBackoff * 2 ** (failures - 1), this.options.maxBackoff);
        // the first failure and then every tenth: a broker outage should not flood the log
        if (failures === 1 || failures % 10 === 0) {
          this.logger.warn(`outbox relay: round failed (${failures} in a row), retrying in ${delay} ms: ${message}`);
        }
      }
      if (this.state !== 'running') break;
      if (this.kicked && this.counters.failures === 0) continue;
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const wake = (): void => done();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = wake;
    }).finally(() => {
      this.wake = undefined;
    });
  }

  /** Publishes unsent rows until none are left; returns how many it marked sent. Throws when a publish failed. */
  private async drain(): Promise<number> {
    let total = 0;
    while (this.state === 'running') {
      const rows = await this.db.read((em) =>
        em.find(OutboxEvent, { where: { sentAt: IsNull() }, order: { id: 'ASC' }, take: this.options.batchSize }),
      );
      if (rows.length === 0) return total;
      // never publish what a crash could still take back: the event would exist without its order
      await this.db.persisted();
      const results = await Promise.allSettled(rows.map((row) => this.publish(row)));
      const sent = rows.filter((_, i) => results[i]!.status === 'fulfilled');
      if (sent.length > 0) {
        const at = new Date();
        await this.db.transaction((em) => em.update(OutboxEvent, { id: In(sent.map((r) => r.id)) }, { sentAt: at }));
        this.counters.sent += sent.length;
        total += sent.length;
      }
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        const reason = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
        throw new Error(`${rows.length - sent.length} of ${rows.length} publishes failed: ${reason}`, { cause: failed.reason });
      }
      if (rows.length < this.options.batchSize) return total;
    }
    return total;
  }

  private async publish(row: OutboxEvent): Promise<void> {
    const record = new NsqRecordBuilder<unknown>(JSON.parse(row.payload)).setHeader(HEADER.messageKey, row.eventId).build();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PublishTimeoutError(`nsqd did not acknowledge event ${row.eventId} within ${this.options.publishTimeout} ms`)),
        this.options.publishTimeout,
      );
    });
    try {
      await Promise.race([firstValueFrom(this.client.emit(row.topic, record), { defaultValue: undefined }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
