import type { QueryRunner } from 'typeorm';
import type { FoldTable } from './lookahead.js';
import { CODE_TYPE, PUBLISHED, type Segment } from './segment.js';
import { type Dialect, readTime, Values } from './sql.js';
import { emptySummaryTimes, mergeEventTimes, publishDetail, type SummaryTimes } from './summary.js';
import { CLIENT_NSQD, type HistoryEventType, type HistoryStatus } from './types.js';

/**
 * The statements of a batch, shared by the recorder (which folds its batch into summaries itself)
 * and HistoryEventSubscriber (which folds the event rows TypeORM announces):
 *
 * - events: one multi-row INSERT IGNORE (the event key is unique, so a replay adds nothing);
 * - messages: multi-row upserts. A message published in the batch is written whole (its publish
 *   columns and the summary of the batch's events); one the batch only has events for is
 *   inserted from them if no row exists (from a consumer-side record's `ensureMessage` fields,
 *   else topic and publishedAt = the earliest event), and otherwise only gets the summary;
 * - channels: one multi-row upsert of the per-channel summaries.
 *
 * The upserts merge the batch's summary into a stored one in SQL, with the rules of ./summary.ts
 * written as expressions (the stored summary is compared as (lastEventAt, attempts, phase of
 * status), as summary.ts describes), so no summary is read back: a batch costs a handful of
 * statements however many messages it touches (more only past the statement size limits), and
 * rows without a topic, which can only update a stored row, are the one case read first. Merging is
 * order-independent and idempotent, so batches may be written in any order, replayed, or by
 * several writers at once; rows are written in key order, so concurrent writers lock them in the
 * same order.
 */

const EVENT_COLUMNS = ['eventKey', 'nsqd', 'messageId', 'topic', 'type', 'channel', 'consumer', 'attempt', 'at', 'detail'];
const PUBLISH_COLUMNS = [
  'nsqd',
  'messageId',
  'messageKey',
  'topic',
  'body',
  'bodyTruncated',
  'size',
  'publishedAt',
  'producer',
  'deferredUntil',
  'status',
  'attempts',
  'finishedAt',
  'deadLetteredAt',
  'lastEventAt',
  'published',
];
/** What a publish (or its replay) sets on an existing row, besides merging the summary. */
const PUBLISH_UPDATE = ['topic', 'body', 'bodyTruncated', 'size', 'publishedAt', 'producer', 'deferredUntil', 'messageKey', 'published'];
const MESSAGE_COLUMNS = ['nsqd', 'messageId', 'topic', 'publishedAt', 'size', 'bodyTruncated', 'status', 'attempts', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];
const CHANNEL_COLUMNS = ['nsqd', 'messageId', 'channel', 'status', 'attempts', 'firstDeliveredAt', 'finishedAt', 'deadLetteredAt', 'lastEventAt'];
/** Per-row overhead estimate of an INSERT statement, beyond the body (keeps statements under maxStatementBytes). */
const ROW_BYTES = 600;

export interface ChannelFold {
  channel: string;
  s: SummaryTimes;
}

export interface MessageFold {
  nsqd: string;
  messageId: string;
  topic: string | null;
  /** The earliest event: publishedAt of a row the events create. */
  firstAt: number;
  s: SummaryTimes;
  /** The batch's (last) publish of the message, if any. */
  publish: Segment | undefined;
  publishIndex: number;
  /** The batch's (last) consumer-side record with `ensureMessage`, if any. */
  ensure: Segment | undefined;
  ensureIndex: number;
  channels: ChannelFold[] | undefined;
  /** Leave the message's summary and channel rows alone: the stored ones already have these events. */
  skip: boolean;
  /**
   * A Lookahead plan's: the table and slot (with its generation) of the fold this batch writes
   * from, the batch's last event of the message, and the last event folded in when its rows were
   * built.
   */
  table: FoldTable | undefined;
  slot: number;
  gen: number;
  batchLastSeq: number;
  writtenThrough: number;
}

export function newFold(nsqd: string, messageId: string, topic: string | null, at: number): MessageFold {
  return {
    nsqd,
    messageId,
    topic,
    firstAt: at,
    s: emptySummaryTimes(),
    publish: undefined,
    publishIndex: -1,
    ensure: undefined,
    ensureIndex: -1,
    channels: undefined,
    skip: false,
    table: undefined,
    slot: -1,
    gen: 0,
    batchLastSeq: 0,
    writtenThrough: -1,
  };
}

/** Folds one event into a message's fold (and its channel's). */
function foldEvent(m: MessageFold, topic: string | null, channel: string | null, type: HistoryEventType, at: number, attempt: number, deferredPublish: boolean): void {
  if (m.topic === null) m.topic = topic;
  if (at < m.firstAt) m.firstAt = at;
  mergeEventTimes(m.s, type, at, attempt, deferredPublish);
  if (channel !== null) {
    let c: ChannelFold | undefined;
    if (m.channels === undefined) m.channels = [];
    else for (const x of m.channels) if (x.channel === channel) c = x;
    if (c === undefined) {
      c = { channel, s: emptySummaryTimes() };
      m.channels.push(c);
    }
    mergeEventTimes(c.s, type, at, attempt);
  }
}

/** Values by (nsqd, messageId), without building a combined key per event. */
export class FoldMap<T> {
  private readonly byNsqd = new Map<string, Map<string, T>>();

  get(nsqd: string, messageId: string): T | undefined {
    return this.byNsqd.get(nsqd)?.get(messageId);
  }

  set(nsqd: string, messageId: string, value: T): void {
    let ids = this.byNsqd.get(nsqd);
    if (ids === undefined) {
      ids = new Map();
      this.byNsqd.set(nsqd, ids);
    }
    ids.set(messageId, value);
  }

  delete(nsqd: string, messageId: string): void {
    const ids = this.byNsqd.get(nsqd);
    if (ids?.delete(messageId) === true && ids.size === 0) this.byNsqd.delete(nsqd);
  }
}

/** A batch's events folded per message and per channel. */
export class SummaryFold {
  private readonly map = new FoldMap<MessageFold>();
  readonly messages: MessageFold[] = [];

  add(nsqd: string, messageId: string, topic: string | null, channel: string | null, type: HistoryEventType, at: number, attempt: number, deferredPublish: boolean): MessageFold {
    let m = this.map.get(nsqd, messageId);
    if (m === undefined) {
      m = newFold(nsqd, messageId, topic, at);
      this.map.set(nsqd, messageId, m);
      this.messages.push(m);
    }
    foldEvent(m, topic, channel, type, at, attempt, deferredPublish);
    return m;
  }
}

export function notePublish(m: MessageFold, seg: Segment, i: number): void {
  if (seg.type(i) === PUBLISHED) {
    m.publish = seg;
    m.publishIndex = i;
  } else if (seg.ensureMessageAt(i) >= 0) {
    m.ensure = seg;
    m.ensureIndex = i;
  }
}

/** Folds segments (every event, publishes remembered per message): a batch replayed from the spool. */
export function foldSegments(batch: readonly Segment[]): SummaryFold {
  const fold = new SummaryFold();
  for (const seg of batch) {
    for (let i = 0; i < seg.n; i++) {
      const code = seg.type(i);
      const m = fold.add(seg.nsqd(i), seg.messageId(i), seg.topic(i), seg.channel(i), CODE_TYPE[code]!, seg.at(i), seg.attempt(i), code === PUBLISHED && seg.deferredUntil(i) >= 0);
      notePublish(m, seg, i);
    }
  }
  return fold;
}

interface Statement {
  sql: string;
  params: unknown[] | undefined;
}

/**
 * Collects rows into statements under the parameter and size limits, and runs each as soon as it
 * is full (`await runFull()` when row() says one filled, `await done()` at the end): only one
 * statement's text is alive at a time. Built all at once, a batch's SQL text stayed alive while
 * its statements ran one by one, long enough to be promoted out of the young generation.
 */
class StatementBuilder {
  private values: Values;
  private bytes = 0;
  private readonly maxRows: number;
  private full: Statement | undefined;

  constructor(
    private readonly queryRunner: QueryRunner,
    private readonly d: Dialect,
    private readonly columns: number,
    private readonly maxBytes: number,
    private readonly finish: (values: string) => string,
  ) {
    this.values = new Values(d.mysql, columns);
    this.maxRows = Math.max(1, Math.floor(d.maxParams / columns));
  }

  /** Adds a row; true when a statement filled up: run it (`await runFull()`) before the next row. */
  row(values: readonly unknown[], bytes: number): boolean {
    let filled = false;
    if (this.values.rows > 0 && (this.values.rows >= this.maxRows || this.bytes + bytes > this.maxBytes)) {
      // a caller that went on without running the full statement would lose it
      if (this.full !== undefined) throw new Error('history: a full statement was not run before the next row');
      this.full = this.take();
      filled = true;
    }
    this.values.row(values);
    this.bytes += bytes;
    return filled;
  }

  /** Runs the statement that filled up. */
  async runFull(): Promise<void> {
    const statement = this.full;
    this.full = undefined;
    if (statement !== undefined) await this.queryRunner.query(statement.sql, statement.params);
  }

  /** Runs what is left. */
  async done(): Promise<void> {
    await this.runFull();
    if (this.values.rows > 0) {
      this.full = this.take();
      await this.runFull();
    }
  }

  private take(): Statement {
    const statement = { sql: this.finish(this.values.text()), params: this.d.mysql ? undefined : this.values.params };
    this.values = new Values(this.d.mysql, this.columns);
    this.bytes = 0;
    return statement;
  }
}

// --- the summary merge, as SQL -------------------------------------------------------------------

const PHASES: ReadonlyArray<[HistoryStatus, number]> = [
  ['deferred', 1],
  ['in_flight', 2],
  ['requeued', 3],
  ['timed_out', 3],
  ['dropped', 3],
  ['finished', 4],
  ['dead_lettered', 5],
];

const phaseSql = (expr: string): string => `(CASE ${expr} ${PHASES.map(([s, p]) => `WHEN '${s}' THEN ${p}`).join(' ')} ELSE 0 END)`;

const assignmentCache = new WeakMap<Dialect, Map<string, string>>();

/**
 * The assignments that merge an upserted summary into the stored one. Status comes first: MySQL
 * evaluates assignments left to right with the new values, SQLite all with the old ones, and the
 * status test reads the stored lastEventAt and attempts.
 */
function summaryAssignments(d: Dialect, table: 'message' | 'channel'): string {
  let cache = assignmentCache.get(d);
  if (cache === undefined) {
    cache = new Map();
    assignmentCache.set(d, cache);
  }
  const cached = cache.get(table);
  if (cached !== undefined) return cached;
  const q = d.quote;
  const v = d.inserted;
  const later = (a: string, b: string): string => `COALESCE(${d.greatest}(${a}, ${b}), ${a}, ${b})`;
  const earlier = (a: string, b: string): string => `COALESCE(${d.least}(${a}, ${b}), ${a}, ${b})`;
  // a publish merged into a stored deferred message counts as deferred (the subscriber's case: the
  // recorder's own publishes carry their status)
  const incoming = table === 'message' ? `(CASE WHEN ${v('status')} = 'published' AND ${q('deferredUntil')} IS NOT NULL THEN 'deferred' ELSE ${v('status')} END)` : v('status');
  const isLater =
    `${q('lastEventAt')} IS NULL OR ${v('lastEventAt')} > ${q('lastEventAt')} OR (${v('lastEventAt')} = ${q('lastEventAt')} AND ` +
    `(${v('attempts')} > ${q('attempts')} OR (${v('attempts')} = ${q('attempts')} AND ${phaseSql(incoming)} >= ${phaseSql(q('status'))})))`;
  const set = [
    `${q('status')} = CASE WHEN ${isLater} THEN ${incoming} ELSE ${q('status')} END`,
    `${q('attempts')} = ${d.greatest}(${q('attempts')}, ${v('attempts')})`,
    `${q('lastEventAt')} = ${later(q('lastEventAt'), v('lastEventAt'))}`,
    `${q('finishedAt')} = ${later(q('finishedAt'), v('finishedAt'))}`,
    `${q('deadLetteredAt')} = ${later(q('deadLetteredAt'), v('deadLetteredAt'))}`,
    ...(table === 'channel' ? [`${q('firstDeliveredAt')} = ${earlier(q('firstDeliveredAt'), v('firstDeliveredAt'))}`] : []),
  ].join(', ');
  cache.set(table, set);
  return set;
}

/**
 * What a consumer-side record (`ensureMessage`) sets on an existing message row: only on a row
 * with no body, which is what a row created from events alone looks like, and only what such a
 * row lacks. Such a row exists when a batch with a later event of the message (its FIN) committed
 * before the batch with its delivery (batches are written concurrently), or a replay wrote it
 * first; without this, it would keep no message key, and getMessage(key) would not find the
 * deliveries. A row written from a publish with its body stays as it is. The body goes last:
 * MySQL evaluates assignments left to right, with the values already assigned.
 */
function ensureAssignments(d: Dialect): string {
  const q = d.quote;
  const v = d.inserted;
  const ifNoBody = (column: string, value: string): string => `${q(column)} = CASE WHEN ${q('body')} IS NULL THEN ${value} ELSE ${q(column)} END`;
  return [
    ifNoBody('messageKey', `COALESCE(${q('messageKey')}, ${v('messageKey')})`),
    ifNoBody('bodyTruncated', v('bodyTruncated')),
    ifNoBody('size', `${d.greatest}(${q('size')}, ${v('size')})`),
    ifNoBody('publishedAt', `${d.least}(${q('publishedAt')}, ${v('publishedAt')})`),
    `${q('body')} = COALESCE(${q('body')}, ${v('body')})`,
  ].join(', ');
}

const time = (d: Dialect, ms: number): string | null => (ms < 0 ? null : d.time(ms));

function byKey(a: MessageFold, b: MessageFold): number {
  if (a.nsqd !== b.nsqd) return a.nsqd < b.nsqd ? -1 : 1;
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

// --- writing ---------------------------------------------------------------------------------

/**
 * The recorder's batch: events, then messages (publishes whole, the rest as summaries), then
 * channels. `touched` are the batch's messages as Lookahead planned them; without it (a replay)
 * the batch is folded on its own.
 */
export async function writeSegments(
  queryRunner: QueryRunner,
  d: Dialect,
  batch: readonly Segment[],
  keyPrefix: string,
  maxStatementBytes: number,
  touched?: readonly MessageFold[],
): Promise<void> {
  const messages = touched ?? foldSegments(batch).messages;
  const events = new StatementBuilder(queryRunner, d, EVENT_COLUMNS.length, maxStatementBytes, (values) =>
    d.insertValues('nsq_message_event', EVENT_COLUMNS, values, { ignore: true }),
  );
  for (const seg of batch) {
    for (let i = 0; i < seg.n; i++) {
      if (seg.type(i) === PUBLISHED && isTheMessageRow(seg, i)) continue;
      const attempt = seg.attempt(i);
      const detail = seg.detail(i);
      const filled = events.row(
        [seg.key(i, keyPrefix), seg.nsqd(i), seg.messageId(i), seg.topic(i), CODE_TYPE[seg.type(i)], seg.channel(i), seg.consumer(i), attempt < 0 ? null : attempt, d.time(seg.at(i)), detail],
        ROW_BYTES + (detail?.length ?? 0),
      );
      if (filled) await events.runFull();
    }
  }
  await events.done();
  await writeSummaries(queryRunner, d, messages, maxStatementBytes);
}

/**
 * Whether a publish needs no event row: a broker's publish is its message row (`published`, which
 * the same batch writes), and a timeline rebuilds the event from the row, so it must carry nothing
 * the row does not. Client-side history's publishes keep their event rows: a producer may publish
 * one message key more than once.
 */
function isTheMessageRow(seg: Segment, i: number): boolean {
  return seg.nsqd(i) !== CLIENT_NSQD && seg.channel(i) === null && seg.consumer(i) === null && seg.detail(i) === publishDetail(seg.at(i), seg.deferredUntil(i));
}

/** The message and channel upserts of a fold. */
export async function writeSummaries(queryRunner: QueryRunner, d: Dialect, folds: readonly MessageFold[], maxStatementBytes: number): Promise<void> {
  const messages = d.mysql ? [...folds].sort(byKey) : folds;
  const q = d.quote;
  const publishSet = `${summaryAssignments(d, 'message')}, ${PUBLISH_UPDATE.map((c) => `${q(c)} = ${d.inserted(c)}`).join(', ')}`;
  const publishes = new StatementBuilder(queryRunner, d, PUBLISH_COLUMNS.length, maxStatementBytes, (values) =>
    d.insertValues('nsq_message', PUBLISH_COLUMNS, values, { conflict: ['nsqd', 'messageId'], set: publishSet }),
  );
  // a consumer-side record's row never overwrites an existing one: its summary is merged, and it
  // fills in only what a row made from events alone lacks (see ensureAssignments)
  const ensureSet = `${summaryAssignments(d, 'message')}, ${ensureAssignments(d)}`;
  const ensures = new StatementBuilder(queryRunner, d, PUBLISH_COLUMNS.length, maxStatementBytes, (values) =>
    d.insertValues('nsq_message', PUBLISH_COLUMNS, values, { conflict: ['nsqd', 'messageId'], set: ensureSet }),
  );
  const summaries = new StatementBuilder(queryRunner, d, MESSAGE_COLUMNS.length, maxStatementBytes, (values) =>
    d.insertValues('nsq_message', MESSAGE_COLUMNS, values, { conflict: ['nsqd', 'messageId'], set: summaryAssignments(d, 'message') }),
  );
  const channels = new StatementBuilder(queryRunner, d, CHANNEL_COLUMNS.length, maxStatementBytes, (values) =>
    d.insertValues('nsq_message_channel', CHANNEL_COLUMNS, values, { conflict: ['nsqd', 'messageId', 'channel'], set: summaryAssignments(d, 'channel') }),
  );
  const written: MessageFold[] = [];
  for (const m of messages) {
    if (m.skip) continue;
    // rows built now carry everything folded so far
    m.table?.refresh(m);
    written.push(m);
  }
  // in this order, each kind's statements built as the previous ones ran (see StatementBuilder)
  for (const m of written) {
    if (m.publish !== undefined) {
      const p = m.publish;
      const i = m.publishIndex;
      if (addMessageRow(publishes, d, m, p, i, p.at(i), p.deferredUntil(i), true)) await publishes.runFull();
    }
  }
  await publishes.done();
  for (const m of written) {
    if (m.publish === undefined && m.ensure !== undefined) {
      const e = m.ensure;
      const i = m.ensureIndex;
      if (addMessageRow(ensures, d, m, e, i, e.ensureMessageAt(i), -1, false)) await ensures.runFull();
    }
  }
  await ensures.done();
  const orphans: MessageFold[] = [];
  for (const m of written) {
    if (m.publish !== undefined || m.ensure !== undefined) continue;
    if (m.topic === null) {
      orphans.push(m);
      continue;
    }
    const s = m.s;
    const filled = summaries.row(
      [m.nsqd, m.messageId, m.topic, d.time(m.firstAt), 0, 0, s.status, s.attempts, time(d, s.finishedAt), time(d, s.deadLetteredAt), time(d, s.lastEventAt)],
      ROW_BYTES,
    );
    if (filled) await summaries.runFull();
  }
  await summaries.done();
  if (orphans.length > 0) await mergeOrphans(queryRunner, d, orphans);
  for (const m of written) {
    if (m.channels === undefined) continue;
    for (const c of d.mysql && m.channels.length > 1 ? [...m.channels].sort((a, b) => (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0)) : m.channels) {
      const cs = c.s;
      const filled = channels.row(
        [m.nsqd, m.messageId, c.channel, cs.status, cs.attempts, time(d, cs.firstDeliveredAt), time(d, cs.finishedAt), time(d, cs.deadLetteredAt), time(d, cs.lastEventAt)],
        ROW_BYTES,
      );
      if (filled) await channels.runFull();
    }
  }
  await channels.done();
}

/**
 * A message row from event `i` of `seg` (a publish, or a consumer-side record's `ensureMessage`)
 * with `m`'s summary; true when a statement filled up (see StatementBuilder.row).
 */
function addMessageRow(into: StatementBuilder, d: Dialect, m: MessageFold, seg: Segment, i: number, publishedAt: number, deferredUntil: number, published: boolean): boolean {
  const s = m.s;
  const body = seg.body(i);
  return into.row(
    [
      m.nsqd,
      m.messageId,
      seg.messageKey(i),
      seg.topic(i) ?? m.topic ?? '',
      body,
      seg.truncated(i),
      seg.size(i),
      d.time(publishedAt),
      seg.producer(i),
      time(d, deferredUntil),
      s.status,
      s.attempts,
      time(d, s.finishedAt),
      time(d, s.deadLetteredAt),
      time(d, s.lastEventAt),
      published ? 1 : 0,
    ],
    ROW_BYTES + (body?.length ?? 0) * d.bodyFactor,
  );
}

/**
 * Events with no topic, for messages whose publish is not in the batch: their summary goes into
 * the message row if one exists (without a topic, none can be created). Rare: read, merge, write.
 */
async function mergeOrphans(queryRunner: QueryRunner, d: Dialect, orphans: readonly MessageFold[]): Promise<void> {
  const q = d.quote;
  const lock = d.mysql ? ' FOR UPDATE' : '';
  for (const m of orphans) {
    const rows = (await queryRunner.query(
      `SELECT ${['status', 'attempts', 'deferredUntil', 'finishedAt', 'deadLetteredAt', 'lastEventAt'].map(q).join(', ')} FROM ${q('nsq_message')} WHERE ${q('nsqd')} = ? AND ${q('messageId')} = ?${lock}`,
      [m.nsqd, m.messageId],
    )) as Array<Record<string, unknown>>;
    const row = rows[0];
    if (row === undefined) continue;
    const ms = (v: unknown): number => readTime(v)?.getTime() ?? -1;
    const merged: SummaryTimes = {
      status: String(row.status) as HistoryStatus,
      attempts: Number(row.attempts ?? 0),
      lastEventAt: ms(row.lastEventAt),
      finishedAt: ms(row.finishedAt),
      deadLetteredAt: ms(row.deadLetteredAt),
      firstDeliveredAt: -1,
    };
    mergeSummary(merged, m.s);
    await queryRunner.query(
      `UPDATE ${q('nsq_message')} SET ${q('status')} = ?, ${q('attempts')} = ?, ${q('finishedAt')} = ?, ${q('deadLetteredAt')} = ?, ${q('lastEventAt')} = ? WHERE ${q('nsqd')} = ? AND ${q('messageId')} = ?`,
      [merged.status, merged.attempts, time(d, merged.finishedAt), time(d, merged.deadLetteredAt), time(d, merged.lastEventAt), m.nsqd, m.messageId],
    );
  }
}

/** The SQL merge, in JavaScript: `incoming` folded into `stored` (in place). */
function mergeSummary(stored: SummaryTimes, incoming: SummaryTimes): void {
  const phase = (s: HistoryStatus): number => PHASES.find(([x]) => x === s)?.[1] ?? 0;
  const later =
    stored.lastEventAt < 0 ||
    incoming.lastEventAt > stored.lastEventAt ||
    (incoming.lastEventAt === stored.lastEventAt &&
      (incoming.attempts > stored.attempts || (incoming.attempts === stored.attempts && phase(incoming.status) >= phase(stored.status))));
  if (later) stored.status = incoming.status;
  stored.attempts = Math.max(stored.attempts, incoming.attempts);
  stored.lastEventAt = Math.max(stored.lastEventAt, incoming.lastEventAt);
  stored.finishedAt = Math.max(stored.finishedAt, incoming.finishedAt);
  stored.deadLetteredAt = Math.max(stored.deadLetteredAt, incoming.deadLetteredAt);
}
