import {
  type EntitySubscriberInterface,
  EventSubscriber,
  type InsertEvent,
  type QueryRunner,
  type TransactionCommitEvent,
  type TransactionRollbackEvent,
} from 'typeorm';
import { HistoryEvent } from './entities.js';
import { dialectOf, readTime } from './sql.js';
import type { HistoryEventType } from './types.js';
import { SummaryFold, writeSummaries } from './writer.js';

/** The fields of an inserted event row the summaries need. */
interface SummaryRow {
  nsqd: string;
  messageId: string;
  topic: string | null;
  type: HistoryEventType;
  channel: string | null;
  attempt: number | null;
  at: Date;
}

interface Pending {
  row: SummaryRow;
  /** Transaction depth at insert time: a rolled-back savepoint drops only its own rows. */
  depth: number;
}

/** Statement size limit of the summary upserts (below MySQL's default max_allowed_packet). */
const MAX_STATEMENT_BYTES = 4 * 1024 * 1024;

function transactionDepth(queryRunner: QueryRunner): number {
  return (queryRunner as unknown as { transactionDepth?: number }).transactionDepth ?? 0;
}

function summaryRow(entity: unknown): SummaryRow | undefined {
  if (entity === null || typeof entity !== 'object') return undefined;
  const e = entity as Partial<Record<keyof HistoryEvent, unknown>>;
  const at = readTime(e.at);
  if (typeof e.nsqd !== 'string' || typeof e.messageId !== 'string' || typeof e.type !== 'string' || at === null) return undefined;
  return {
    nsqd: e.nsqd,
    messageId: e.messageId,
    topic: typeof e.topic === 'string' ? e.topic : null,
    type: e.type as HistoryEventType,
    channel: typeof e.channel === 'string' && e.channel !== '' ? e.channel : null,
    attempt: typeof e.attempt === 'number' ? e.attempt : null,
    at,
  };
}

/**
 * Keeps the summaries (nsq_message's status columns, nsq_message_channel) current as events are
 * inserted, however they are inserted. Rows inserted inside a transaction are collected in
 * `afterInsert` (TypeORM fires it once per row, also for a multi-row InsertQueryBuilder) and
 * applied once in `beforeTransactionCommit`, inside the same transaction: folded per message and
 * per channel, then one multi-row upsert per table that merges the fold into the stored summary in
 * SQL (./writer.ts; nothing is read back). An insert outside a transaction is applied right away.
 * HistoryRecorder does not go through here: it folds its batches itself, the same way.
 *
 * The merge rules (./summary.ts) are order-independent and idempotent, so replayed events (which
 * still fire afterInsert although INSERT IGNORE skipped them) change nothing. Events for a message
 * whose publish was never recorded create its message row from the event's topic (publishedAt =
 * the earliest event seen; body, producer and size stay empty until the publish arrives).
 *
 * Each upserted row is merged under its row lock, so two writers of the same messages never lose
 * an update; rows are upserted in key order, so they lock in the same order.
 */
@EventSubscriber()
export class HistoryEventSubscriber implements EntitySubscriberInterface<HistoryEvent> {
  private readonly pending = new WeakMap<QueryRunner, Pending[]>();

  listenTo(): typeof HistoryEvent {
    return HistoryEvent;
  }

  afterInsert(event: InsertEvent<HistoryEvent>): Promise<void> | void {
    const row = summaryRow(event.entity);
    if (row === undefined) return;
    const queryRunner = event.queryRunner;
    if (!queryRunner.isTransactionActive) return applySummaries(queryRunner, [row]);
    let list = this.pending.get(queryRunner);
    if (list === undefined) {
      list = [];
      this.pending.set(queryRunner, list);
    }
    list.push({ row, depth: transactionDepth(queryRunner) });
  }

  async beforeTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const queryRunner = event.queryRunner;
    const list = this.pending.get(queryRunner);
    if (list === undefined || list.length === 0) return;
    this.pending.delete(queryRunner);
    await applySummaries(
      queryRunner,
      list.map((p) => p.row),
    );
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    const queryRunner = event.queryRunner;
    const list = this.pending.get(queryRunner);
    if (list === undefined) return;
    if (!queryRunner.isTransactionActive) {
      this.pending.delete(queryRunner);
      return;
    }
    const depth = transactionDepth(queryRunner);
    this.pending.set(
      queryRunner,
      list.filter((p) => p.depth <= depth),
    );
  }
}

/** Folds `rows` into the stored summaries: one multi-row upsert per table, on `queryRunner` (./writer.ts). */
export async function applySummaries(queryRunner: QueryRunner, rows: readonly SummaryRow[]): Promise<void> {
  if (rows.length === 0) return;
  const fold = new SummaryFold();
  for (const r of rows) fold.add(r.nsqd, r.messageId, r.topic, r.channel, r.type, r.at.getTime(), r.attempt ?? -1, false);
  await writeSummaries(queryRunner, dialectOf(queryRunner.dataSource), fold.messages, MAX_STATEMENT_BYTES);
}
