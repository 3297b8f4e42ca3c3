import {
  type EntitySubscriberInterface,
  EventSubscriber,
  type InsertEvent,
  type QueryRunner,
  type TransactionCommitEvent,
  type TransactionRollbackEvent,
} from 'typeorm';
import { HistoryEvent } from './entities.js';
import { dialectOf, isMysqlFamily, readTime } from './sql.js';
import { emptySummary, mergeEvent, type SummaryState } from './summary.js';
import type { HistoryEventType } from './types.js';

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

const IN_CHUNK = 2000;
const UPSERT_CHUNK = 1000;
const MESSAGE_SUMMARY_COLUMNS = ['status', 'attempts', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];
const CHANNEL_STATE_COLUMNS = ['status', 'attempts', 'firstDeliveredAt', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];

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

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const messageKey = (nsqd: string, messageId: string): string => `${nsqd}\u0000${messageId}`;
const channelKey = (nsqd: string, messageId: string, channel: string): string => `${nsqd}\u0000${messageId}\u0000${channel}`;

function stateOf(row: Record<string, unknown>): SummaryState {
  return {
    status: String(row.status) as SummaryState['status'],
    attempts: Number(row.attempts ?? 0),
    lastEventAt: readTime(row.lastEventAt),
    finishedAt: readTime(row.finishedAt),
    deadLetteredAt: readTime(row.deadLetteredAt),
    firstDeliveredAt: readTime(row.firstDeliveredAt),
  };
}

/**
 * Keeps the summaries (nsq_message's status columns, nsq_message_channel) current as events are
 * inserted, however they are inserted. Rows inserted inside a transaction are collected in
 * `afterInsert` (TypeORM fires it once per row, also for a multi-row InsertQueryBuilder) and
 * applied once in `beforeTransactionCommit`, inside the same transaction: per table, one SELECT
 * of the stored summaries of the batch's messages (or channels), then one multi-row upsert (more
 * only past a thousand rows). An insert outside a transaction is applied right away.
 *
 * The merge rules (./summary.ts) are order-independent and idempotent, so replayed events (which
 * still fire afterInsert although INSERT IGNORE skipped them) change nothing. Events for a message
 * whose publish was never recorded create its message row from the event's topic (publishedAt =
 * the earliest event seen; body, producer and size stay empty until the publish arrives).
 *
 * On MySQL / MariaDB the stored summaries are read FOR UPDATE, so two writers of the same
 * messages serialize instead of losing an update; SQLite (sql.js) has no concurrent writers.
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
    if (!queryRunner.isTransactionActive) return applySummaries(queryRunner, [row], false);
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
      isMysqlFamily(queryRunner.dataSource),
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

interface MessageSummaryRow {
  nsqd: string;
  messageId: string;
  topic: string;
  publishedAt: Date;
  size: number;
  bodyTruncated: boolean;
  /** false for a row this batch creates (events of a message whose publish was not recorded). */
  stored: boolean;
  deferred: boolean;
  state: SummaryState;
}

interface ChannelSummaryRow {
  nsqd: string;
  messageId: string;
  channel: string;
  state: SummaryState;
}

const MESSAGE_COLUMNS = ['nsqd', 'messageId', 'topic', 'publishedAt', 'size', 'bodyTruncated', 'status', 'attempts', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];
const CHANNEL_COLUMNS = ['nsqd', 'messageId', 'channel', 'status', 'attempts', 'firstDeliveredAt', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];

const placeholders = (n: number): string => new Array<string>(n).fill('?').join(', ');

/** Folds `rows` into the stored summaries: one read and one upsert per table, on `queryRunner`. */
export async function applySummaries(queryRunner: QueryRunner, rows: readonly SummaryRow[], lock: boolean): Promise<void> {
  if (rows.length === 0) return;
  const d = dialectOf(queryRunner.dataSource);
  const q = d.quote;
  const forUpdate = lock ? ' FOR UPDATE' : '';
  const nsqds = [...new Set(rows.map((r) => r.nsqd))];
  const ids = [...new Set(rows.map((r) => r.messageId))];

  const messages = new Map<string, MessageSummaryRow>();
  const channels = new Map<string, ChannelSummaryRow>();
  for (const idChunk of chunks(ids, IN_CHUNK)) {
    // ids are unique per nsqd, nearly unique overall: the IN lists select the batch's rows and few others
    const where = `WHERE ${q('messageId')} IN (${placeholders(idChunk.length)}) AND ${q('nsqd')} IN (${placeholders(nsqds.length)})${forUpdate}`;
    const params = [...idChunk, ...nsqds];
    const stored = (await queryRunner.query(
      `SELECT ${['nsqd', 'messageId', 'topic', 'publishedAt', 'size', 'bodyTruncated', 'deferredUntil', 'status', 'attempts', 'finishedAt', 'deadLetteredAt', 'lastEventAt'].map(q).join(', ')} FROM ${q('nsq_message')} ${where}`,
      params,
    )) as Array<Record<string, unknown>>;
    for (const m of stored) {
      const nsqd = String(m.nsqd);
      const messageId = String(m.messageId);
      messages.set(messageKey(nsqd, messageId), {
        nsqd,
        messageId,
        topic: String(m.topic),
        publishedAt: readTime(m.publishedAt) ?? new Date(0),
        size: Number(m.size),
        bodyTruncated: Boolean(Number(m.bodyTruncated)),
        stored: true,
        deferred: m.deferredUntil !== null && m.deferredUntil !== undefined,
        state: stateOf(m),
      });
    }
    const states = (await queryRunner.query(
      `SELECT ${['nsqd', 'messageId', 'channel', 'status', 'attempts', 'firstDeliveredAt', 'finishedAt', 'deadLetteredAt', 'lastEventAt'].map(q).join(', ')} FROM ${q('nsq_message_channel')} ${where}`,
      params,
    )) as Array<Record<string, unknown>>;
    for (const c of states) {
      const nsqd = String(c.nsqd);
      const messageId = String(c.messageId);
      const channel = String(c.channel);
      channels.set(channelKey(nsqd, messageId, channel), { nsqd, messageId, channel, state: stateOf(c) });
    }
  }

  const touchedMessages = new Set<MessageSummaryRow>();
  const touchedChannels = new Set<ChannelSummaryRow>();
  for (const r of rows) {
    const mk = messageKey(r.nsqd, r.messageId);
    let message = messages.get(mk);
    if (message === undefined && r.topic !== null) {
      message = { nsqd: r.nsqd, messageId: r.messageId, topic: r.topic, publishedAt: r.at, size: 0, bodyTruncated: false, stored: false, deferred: false, state: emptySummary() };
      messages.set(mk, message);
    }
    if (message !== undefined) {
      if (!message.stored && r.at < message.publishedAt) message.publishedAt = r.at;
      mergeEvent(message.state, r, message.deferred);
      touchedMessages.add(message);
    }
    if (r.channel !== null) {
      const ck = channelKey(r.nsqd, r.messageId, r.channel);
      let channel = channels.get(ck);
      if (channel === undefined) {
        channel = { nsqd: r.nsqd, messageId: r.messageId, channel: r.channel, state: emptySummary() };
        channels.set(ck, channel);
      }
      mergeEvent(channel.state, r);
      touchedChannels.add(channel);
    }
  }

  for (const chunk of chunks([...touchedMessages], UPSERT_CHUNK)) {
    const params: unknown[] = [];
    for (const m of chunk) {
      const s = m.state;
      params.push(m.nsqd, m.messageId, m.topic, d.time(m.publishedAt), m.size, m.bodyTruncated ? 1 : 0, s.status, s.attempts, d.time(s.finishedAt), d.time(s.deadLetteredAt), d.time(s.lastEventAt));
    }
    await queryRunner.query(d.insert('nsq_message', MESSAGE_COLUMNS, chunk.length, { conflict: ['nsqd', 'messageId'], update: MESSAGE_SUMMARY_COLUMNS }), params);
  }
  for (const chunk of chunks([...touchedChannels], UPSERT_CHUNK)) {
    const params: unknown[] = [];
    for (const c of chunk) {
      const s = c.state;
      params.push(c.nsqd, c.messageId, c.channel, s.status, s.attempts, d.time(s.firstDeliveredAt), d.time(s.finishedAt), d.time(s.deadLetteredAt), d.time(s.lastEventAt ?? 0));
    }
    await queryRunner.query(d.insert('nsq_message_channel', CHANNEL_COLUMNS, chunk.length, { conflict: ['nsqd', 'messageId', 'channel'], update: CHANNEL_STATE_COLUMNS }), params);
  }
}
