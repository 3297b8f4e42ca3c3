import { Brackets, type DataSource, type EntityManager, type SelectQueryBuilder } from 'typeorm';
import { withDatabaseLock } from './data-source.js';
import { HistoryChannelState, HistoryEvent, HistoryMessage } from './entities.js';
import { publishDetail } from './summary.js';
import { CLIENT_NSQD, HISTORY_STATUSES, type HistoryEventType, type HistoryStatus } from './types.js';

/** A bad query parameter (the admin API answers 400 with its message). */
export class HistoryQueryError extends Error {
  readonly statusCode = 400;
  constructor(
    message: string,
    /** The offending parameter. */
    readonly parameter?: string,
  ) {
    super(message);
    this.name = 'HistoryQueryError';
  }
}

export interface HistoryMessageView {
  id: string;
  nsqd: string;
  messageId: string;
  messageKey: string | null;
  topic: string;
  /** The full body size in bytes. */
  size: number;
  bodyTruncated: boolean;
  /** The stored body (maybe truncated), base64; null when bodies are not stored. */
  bodyBase64: string | null;
  /** The stored body as text, when it is valid UTF-8. */
  bodyUtf8: string | null;
  publishedAt: string;
  producer: string | null;
  deferredUntil: string | null;
  status: HistoryStatus;
  attempts: number;
  finishedAt: string | null;
  deadLetteredAt: string | null;
  lastEventAt: string | null;
}

export interface HistoryEventView {
  /** The event row's id; for a publish shown from its message row (HistoryMessage.published), `message:<the row's id>`. */
  id: string;
  type: HistoryEventType;
  channel: string | null;
  consumer: string | null;
  attempt: number | null;
  at: string;
  detail: string | null;
}

export interface HistoryChannelView {
  channel: string;
  status: HistoryStatus;
  attempts: number;
  firstDeliveredAt: string | null;
  finishedAt: string | null;
  deadLetteredAt: string | null;
  lastEventAt: string;
}

/** One message on one nsqd: its row (null when only events of it were recorded), timeline and channels. */
export interface HistoryMessageDetail {
  nsqd: string;
  messageId: string;
  message: HistoryMessageView | null;
  /** Ordered by time, then by insertion. */
  events: HistoryEventView[];
  channels: HistoryChannelView[];
}

export type HistoryTimeInput = Date | number | string;

export interface HistorySearchParams {
  topic?: string;
  /** Messages that reached this channel; with `status`, the status on this channel. */
  channel?: string;
  status?: string;
  /** publishedAt >= from (Date, ms since epoch, or ISO 8601). */
  from?: HistoryTimeInput;
  /** publishedAt <= to. */
  to?: HistoryTimeInput;
  /** Bytes (a string is taken as UTF-8) the stored body contains; exact, case-sensitive, binary-safe. */
  bodyContains?: string | Buffer;
  messageKey?: string;
  /** 1-500, default 50. */
  limit?: number | string;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

export interface HistorySearchItem extends Omit<HistoryMessageView, 'bodyBase64' | 'bodyUtf8'> {
  /** The first bytes of the stored body as text, when they are valid UTF-8. */
  preview: string | null;
}

export interface HistorySearchResult {
  items: HistorySearchItem[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface HistoryCounts {
  topics: Array<{ topic: string; messages: number; byStatus: Partial<Record<HistoryStatus, number>> }>;
  channels: Array<{ topic: string; channel: string; messages: number; byStatus: Partial<Record<HistoryStatus, number>> }>;
}

export const DEFAULT_SEARCH_LIMIT = 50;
export const MAX_SEARCH_LIMIT = 500;
const PREVIEW_BYTES = 256;
const MAX_NEEDLE_BYTES = 1024;
const STATUSES = new Set<string>(HISTORY_STATUSES);
/** An nsqd id (16 hex characters) or a message key. */
const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** Rows one message key may find (a key is meant to be unique; a reused one must not load the table). */
const MAX_KEY_MATCHES = MAX_SEARCH_LIMIT;

function toBuffer(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  // sql.js hands out Uint8Arrays (from its own realm, so no instanceof check)
  const u8 = value as Uint8Array;
  if (typeof u8.byteLength === 'number' && u8.buffer !== undefined) return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
  if (typeof value === 'string') return Buffer.from(value, 'binary');
  return null;
}

/** The bytes as text when they are valid UTF-8; a sequence cut off at the end is tolerated (previews). */
function utf8(bytes: Buffer | null, allowCutEnd: boolean): string | null {
  if (bytes === null) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes, { stream: allowCutEnd });
  } catch {
    return null;
  }
}

const iso = (d: Date | null | undefined): string | null => (d === null || d === undefined ? null : d.toISOString());

function text(name: string, value: unknown, max: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new HistoryQueryError(`${name} must be a string`, name);
  if (value.length > max) throw new HistoryQueryError(`${name} is longer than ${max} characters`, name);
  return value;
}

function time(name: string, value: HistoryTimeInput | undefined | null): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let date: Date;
  if (value instanceof Date) date = value;
  else if (typeof value === 'number') date = new Date(value);
  else if (typeof value === 'string') date = /^\d+$/.test(value) ? new Date(Number(value)) : new Date(value);
  else throw new HistoryQueryError(`${name} must be a date`, name);
  if (Number.isNaN(date.getTime())) throw new HistoryQueryError(`${name} is not a valid date (use ISO 8601 or ms since epoch): ${String(value)}`, name);
  return date;
}

function limitOf(value: number | string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_SEARCH_LIMIT;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_SEARCH_LIMIT) throw new HistoryQueryError(`limit must be an integer from 1 to ${MAX_SEARCH_LIMIT}`, 'limit');
  return n;
}

function encodeCursor(publishedAt: Date, id: string): string {
  return Buffer.from(`${publishedAt.getTime()}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { publishedAt: Date; id: string } {
  const m = /^(\d{1,15}):(\d{1,20})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (m === null) throw new HistoryQueryError('cursor is not one this API returned', 'cursor');
  return { publishedAt: new Date(Number(m[1])), id: m[2]! };
}

function messageView(m: HistoryMessage): HistoryMessageView {
  const body = toBuffer(m.body);
  return {
    ...summaryView(m),
    bodyBase64: body === null ? null : body.toString('base64'),
    bodyUtf8: utf8(body, false),
  };
}

function summaryView(m: HistoryMessage): Omit<HistoryMessageView, 'bodyBase64' | 'bodyUtf8'> {
  return {
    id: String(m.id),
    nsqd: m.nsqd,
    messageId: m.messageId,
    messageKey: m.messageKey,
    topic: m.topic,
    size: m.size,
    bodyTruncated: Boolean(m.bodyTruncated),
    publishedAt: m.publishedAt.toISOString(),
    producer: m.producer,
    deferredUntil: iso(m.deferredUntil),
    status: m.status,
    attempts: m.attempts,
    finishedAt: iso(m.finishedAt),
    deadLetteredAt: iso(m.deadLetteredAt),
    lastEventAt: iso(m.lastEventAt),
  };
}

const SUMMARY_COLUMNS = [
  'm.id',
  'm.nsqd',
  'm.messageId',
  'm.messageKey',
  'm.topic',
  'm.size',
  'm.bodyTruncated',
  'm.publishedAt',
  'm.producer',
  'm.deferredUntil',
  'm.status',
  'm.attempts',
  'm.finishedAt',
  'm.deadLetteredAt',
  'm.lastEventAt',
];

/** Read side of message history, over a history DataSource (the admin API's backend). */
export class HistoryQueryService {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Runs the reads of one answer against one state of the database: on MySQL in one
   * REPEATABLE READ transaction (one snapshot), on sql.js between two history writes.
   */
  private read<T>(fn: (manager: EntityManager) => Promise<T>): Promise<T> {
    if (this.dataSource.options.type === 'sqljs') return withDatabaseLock(this.dataSource, () => fn(this.dataSource.manager));
    return this.dataSource.transaction('REPEATABLE READ', fn);
  }

  /**
   * A message by nsqd id or by message key: row (body as base64, and as text when valid UTF-8),
   * timeline and per-channel states. Ids are unique per nsqd only: without `nsqd`, every nsqd's
   * message with this id is returned. A message key (the envelope's message-key header) finds
   * every row that carries it: client-side history's producer record (nsqd 'client', filed under
   * the key) and the consumer-side record under each nsqd id the message had. Producer records
   * come first, then by nsqd. An empty array when nothing is known about it.
   */
  async getMessage(messageId: string, nsqd?: string): Promise<HistoryMessageDetail[]> {
    if (typeof messageId !== 'string' || !MESSAGE_ID.test(messageId)) {
      throw new HistoryQueryError('messageId must be an nsqd message id (16 hex characters) or a message key (1-64 of [A-Za-z0-9._:-])', 'messageId');
    }
    const node = text('nsqd', nsqd, 255);
    const [messages, events, channels] = await this.read(async (em) => {
      const mq = em
        .createQueryBuilder(HistoryMessage, 'm')
        .where(new Brackets((b) => b.where('m.messageId = :messageId', { messageId }).orWhere('m.messageKey = :messageId')))
        .orderBy('m.id', 'ASC')
        .limit(MAX_KEY_MATCHES);
      if (node !== undefined) mq.andWhere('m.nsqd = :nsqd', { nsqd: node });
      const messages = await mq.getMany();
      if (messages.length === 0) return [messages, [], []] as const;
      // Every event has its message row (the summary subscriber upserts it in the event's own
      // transaction), so the events and channel states are those of the (nsqd, id) pairs found,
      // read through the (nsqd, messageId, …) indexes.
      const where = (qb: SelectQueryBuilder<object>, alias: string): void => {
        qb.where(
          new Brackets((outer) => {
            messages.forEach((m, i) => {
              outer.orWhere(
                new Brackets((b) => b.where(`${alias}.nsqd = :n${i}`, { [`n${i}`]: m.nsqd }).andWhere(`${alias}.messageId = :m${i}`, { [`m${i}`]: m.messageId })),
              );
            });
          }),
        );
      };
      const eq = em.createQueryBuilder(HistoryEvent, 'e').orderBy('e.at', 'ASC').addOrderBy('e.id', 'ASC');
      where(eq, 'e');
      const cq = em.createQueryBuilder(HistoryChannelState, 'c').orderBy('c.channel', 'ASC');
      where(cq, 'c');
      return [messages, await eq.getMany(), await cq.getMany()] as const;
    });

    const byMessage = new Map<string, HistoryMessageDetail>();
    const detail = (n: string, id: string): HistoryMessageDetail => {
      const key = `${n}\u0000${id}`;
      let d = byMessage.get(key);
      if (d === undefined) {
        d = { nsqd: n, messageId: id, message: null, events: [], channels: [] };
        byMessage.set(key, d);
      }
      return d;
    };
    for (const m of messages) detail(m.nsqd, m.messageId).message = messageView(m);
    for (const e of events) {
      detail(e.nsqd, e.messageId).events.push({
        id: String(e.id),
        type: e.type,
        channel: e.channel,
        consumer: e.consumer,
        attempt: e.attempt,
        at: e.at.toISOString(),
        detail: e.detail,
      });
    }
    // a broker's publish has no event row: its message row is the publish (see HistoryMessage.published)
    for (const m of messages) {
      if (!m.published) continue;
      const d = detail(m.nsqd, m.messageId);
      if (d.events.some((e) => e.type === 'published')) continue;
      const at = m.publishedAt.toISOString();
      const before = d.events.findIndex((e) => e.at >= at);
      d.events.splice(before < 0 ? d.events.length : before, 0, {
        id: `message:${m.id}`,
        type: 'published',
        channel: null,
        consumer: null,
        attempt: null,
        at,
        detail: publishDetail(m.publishedAt.getTime(), m.deferredUntil?.getTime() ?? -1),
      });
    }
    for (const c of channels) {
      detail(c.nsqd, c.messageId).channels.push({
        channel: c.channel,
        status: c.status,
        attempts: c.attempts,
        firstDeliveredAt: iso(c.firstDeliveredAt),
        finishedAt: iso(c.finishedAt),
        deadLetteredAt: iso(c.deadLetteredAt),
        lastEventAt: c.lastEventAt.toISOString(),
      });
    }
    const rank = (d: HistoryMessageDetail): number => (d.nsqd === CLIENT_NSQD ? 0 : 1);
    const order = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
    return [...byMessage.values()].sort((a, b) => rank(a) - rank(b) || order(a.nsqd, b.nsqd) || order(a.messageId, b.messageId));
  }

  /** Messages, newest first, filtered; keyset-paginated on (publishedAt, id). */
  async search(params: HistorySearchParams = {}): Promise<HistorySearchResult> {
    const topic = text('topic', params.topic, 64);
    const channel = text('channel', params.channel, 64);
    const status = text('status', params.status, 16);
    if (status !== undefined && !STATUSES.has(status)) throw new HistoryQueryError(`status must be one of ${HISTORY_STATUSES.join(', ')}`, 'status');
    const from = time('from', params.from);
    const to = time('to', params.to);
    if (from !== undefined && to !== undefined && from > to) throw new HistoryQueryError('from is after to', 'from');
    const messageKey = text('messageKey', params.messageKey, 64);
    let needle: Buffer | undefined;
    if (params.bodyContains !== undefined && params.bodyContains !== '') {
      if (typeof params.bodyContains === 'string') needle = Buffer.from(params.bodyContains, 'utf8');
      else if (Buffer.isBuffer(params.bodyContains)) needle = params.bodyContains;
      else throw new HistoryQueryError('bodyContains must be a string', 'bodyContains');
      if (needle.length === 0) needle = undefined;
      else if (needle.length > MAX_NEEDLE_BYTES) throw new HistoryQueryError(`bodyContains is longer than ${MAX_NEEDLE_BYTES} bytes`, 'bodyContains');
    }
    const limit = limitOf(params.limit);
    const cursor = params.cursor === undefined || params.cursor === '' ? undefined : decodeCursor(text('cursor', params.cursor, 200)!);

    const qb = this.dataSource.manager
      .createQueryBuilder(HistoryMessage, 'm')
      .select(SUMMARY_COLUMNS)
      .addSelect(`SUBSTR(m.body, 1, ${PREVIEW_BYTES})`, 'preview');
    if (topic !== undefined) qb.andWhere('m.topic = :topic', { topic });
    if (status !== undefined && channel === undefined) qb.andWhere('m.status = :status', { status });
    if (channel !== undefined) {
      const sub = qb
        .subQuery()
        .select('1')
        .from(HistoryChannelState, 'c')
        .where('c.nsqd = m.nsqd')
        .andWhere('c.messageId = m.messageId')
        .andWhere('c.channel = :channel');
      if (status !== undefined) sub.andWhere('c.status = :status');
      qb.andWhere(`EXISTS ${sub.getQuery()}`, { channel, ...(status === undefined ? {} : { status }) });
    }
    if (from !== undefined) qb.andWhere('m.publishedAt >= :from', { from });
    if (to !== undefined) qb.andWhere('m.publishedAt <= :to', { to });
    if (messageKey !== undefined) qb.andWhere('m.messageKey = :messageKey', { messageKey });
    // INSTR, not LIKE: no wildcard characters to escape, and a byte comparison on both drivers
    if (needle !== undefined) qb.andWhere('INSTR(m.body, :needle) > 0', { needle });
    if (cursor !== undefined) {
      const id = this.dataSource.options.type === 'sqljs' ? Number(cursor.id) : cursor.id;
      qb.andWhere('(m.publishedAt < :cursorAt OR (m.publishedAt = :cursorAt AND m.id < :cursorId))', { cursorAt: cursor.publishedAt, cursorId: id });
    }
    qb.orderBy('m.publishedAt', 'DESC').addOrderBy('m.id', 'DESC').limit(limit + 1);

    // one statement: consistent by itself; on sql.js it still must not run inside a write
    const { entities, raw } = await withDatabaseLock(this.dataSource, () => qb.getRawAndEntities<{ m_id: unknown; preview: unknown }>());
    const previews = new Map(raw.map((r) => [String(r.m_id), r.preview]));
    const page = entities.slice(0, limit);
    const items = page.map((m) => ({ ...summaryView(m), preview: utf8(toBuffer(previews.get(String(m.id))), true) }));
    const last = page[page.length - 1];
    return { items, nextCursor: entities.length > limit && last !== undefined ? encodeCursor(last.publishedAt, String(last.id)) : null };
  }

  /** Messages per topic by status, and per topic and channel by channel status (published in [from, to]). */
  async counts(params: { from?: HistoryTimeInput; to?: HistoryTimeInput } = {}): Promise<HistoryCounts> {
    const from = time('from', params.from);
    const to = time('to', params.to);
    if (from !== undefined && to !== undefined && from > to) throw new HistoryQueryError('from is after to', 'from');
    const range = (qb: SelectQueryBuilder<object>): void => {
      if (from !== undefined) qb.andWhere('m.publishedAt >= :from', { from });
      if (to !== undefined) qb.andWhere('m.publishedAt <= :to', { to });
    };
    const [topicRows, channelRows] = await this.read(async (em) => {
      const mq = em
        .createQueryBuilder(HistoryMessage, 'm')
        .select('m.topic', 'topic')
        .addSelect('m.status', 'status')
        .addSelect('COUNT(*)', 'n')
        .groupBy('m.topic')
        .addGroupBy('m.status');
      range(mq);
      const cq = em
        .createQueryBuilder(HistoryChannelState, 'c')
        .innerJoin(HistoryMessage, 'm', 'm.nsqd = c.nsqd AND m.messageId = c.messageId')
        .select('m.topic', 'topic')
        .addSelect('c.channel', 'channel')
        .addSelect('c.status', 'status')
        .addSelect('COUNT(*)', 'n')
        .groupBy('m.topic')
        .addGroupBy('c.channel')
        .addGroupBy('c.status');
      range(cq);
      return [
        await mq.getRawMany<{ topic: string; status: HistoryStatus; n: number | string }>(),
        await cq.getRawMany<{ topic: string; channel: string; status: HistoryStatus; n: number | string }>(),
      ] as const;
    });

    const topics = new Map<string, HistoryCounts['topics'][number]>();
    for (const r of topicRows) {
      let t = topics.get(r.topic);
      if (t === undefined) {
        t = { topic: r.topic, messages: 0, byStatus: {} };
        topics.set(r.topic, t);
      }
      const n = Number(r.n);
      t.messages += n;
      t.byStatus[r.status] = (t.byStatus[r.status] ?? 0) + n;
    }
    const channels = new Map<string, HistoryCounts['channels'][number]>();
    for (const r of channelRows) {
      const key = `${r.topic}\u0000${r.channel}`;
      let c = channels.get(key);
      if (c === undefined) {
        c = { topic: r.topic, channel: r.channel, messages: 0, byStatus: {} };
        channels.set(key, c);
      }
      const n = Number(r.n);
      c.messages += n;
      c.byStatus[r.status] = (c.byStatus[r.status] ?? 0) + n;
    }
    const byName = <T extends { topic: string; channel?: string }>(a: T, b: T): number =>
      a.topic.localeCompare(b.topic) || (a.channel ?? '').localeCompare(b.channel ?? '');
    return { topics: [...topics.values()].sort(byName), channels: [...channels.values()].sort(byName) };
  }
}
