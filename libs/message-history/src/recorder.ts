import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { DataSource, EntityManager } from 'typeorm';
import type { NsqLogger } from '../../nsq/src/client/logger.js';
import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { withDatabaseLock } from './data-source.js';
import { HistoryChannelState, HistoryEvent, HistoryMessage } from './entities.js';
import { envelopeMessageKey } from './nsqd.js';
import { countOf, fromLine, PUBLISHED, Segment, segmentMemory, toLines, TYPE_CODE } from './segment.js';
import { Spool } from './spool.js';
import { dialectOf, isMysqlFamily } from './sql.js';
import { COLUMN_LIMITS, type HistoryRecord } from './types.js';
import { Lookahead } from './lookahead.js';
import { type MessageFold, writeSegments } from './writer.js';

export interface HistoryRecorderOptions {
  /** The append-only spool file used while the database is down or slow (JSON lines). */
  spoolPath: string;
  /** ms between flushes of what is queued (default 100). */
  flushInterval?: number;
  /** Events per transaction; this many queued events also trigger a flush (default 1000). */
  batchSize?: number;
  /**
   * Events held in memory; beyond this, events go to the spool (default 1,000,000). A queued event
   * takes about 60 bytes besides its body (bodies are bounded by `maxQueuedBytes`), so a burst the
   * database takes seconds to absorb stays in memory instead of going through the spool file.
   */
  maxQueued?: number;
  /** Body bytes held in memory; beyond this, events go to the spool (default 64 MiB). */
  maxQueuedBytes?: number;
  /** Store message bodies (default true). */
  storeBodies?: boolean;
  /** Bodies longer than this are stored truncated, `bodyTruncated` set, `size` the real size (default 64 KiB). */
  maxBodySize?: number;
  /** Record only these topics (names, or a pattern). */
  includeTopics?: readonly string[] | RegExp;
  /** Never record these topics (names, or a pattern). */
  excludeTopics?: readonly string[] | RegExp;
  /** ms after which rows are deleted; 0 keeps them forever (default 7 days). */
  retention?: number;
  /** ms between retention runs (default 60_000). */
  retentionInterval?: number;
  /** Rows deleted per statement (default 5000). */
  retentionBatchSize?: number;
  /** First part of every event key, naming this writer (default `<hostname>/<pid>`). */
  source?: string;
  /** A batch write taking longer than this counts as failed and goes to the spool (default 30_000 ms). */
  writeTimeout?: number;
  /** close() gives up flushing after this and spools what is left (default 10_000 ms). */
  closeTimeout?: number;
  /** Longest wait between attempts while the database fails (default 5000 ms). */
  maxRetryDelay?: number;
  /**
   * Approximate size limit of one INSERT statement, below MySQL's max_allowed_packet (default
   * 120 KiB). Small on purpose: a statement's text is a string, then its bytes; above V8's
   * large-object size (128 KiB) each of them is fresh memory, a page fault per 4 KiB, which made
   * building a batch's SQL cost 7–10 ns a byte instead of about 1.
   */
  maxStatementBytes?: number;
  /**
   * While the event loop is busier than this (its utilization over the last `flushInterval`,
   * 0..1), or events arrive faster than the database could take them (100 batches a second),
   * queued batches wait instead of being written, so that history does not take the event loop
   * (and the machine's CPU) from message delivery during a burst; they go ahead anyway once 80 %
   * of `maxQueued` events (or of `maxQueuedBytes`) wait. flush() and close() never wait. 1 turns
   * waiting off (default 0.8).
   */
  busyThreshold?: number;
  /**
   * Batch transactions in flight at once on MySQL / MariaDB (default 4): the server works on
   * several while the next is built and sent, on as many pooled connections. The embedded sql.js
   * writes one at a time.
   */
  writeConcurrency?: number;
  logger?: NsqLogger;
}

export interface HistoryRecorderStats {
  /** Events in memory: queued, being written, or waiting for the spool. */
  queued: number;
  /** Events written to the database straight from memory. */
  written: number;
  /** Events appended to the spool. */
  spooled: number;
  /** Events written to the database from the spool. */
  replayed: number;
  /** Failed batch writes (each went to the spool whole, or stayed there). */
  failures: number;
  lastError: string | undefined;
  /** Records not recorded: filtered out by topic, invalid, or handed in after close(). */
  ignored: number;
  /** Events dropped because neither the database nor the spool file would take them (logged as errors). */
  lost: number;
  /** Spool bytes not yet replayed. */
  spoolPendingBytes: number;
  /** True while events go to the spool instead of straight to the database. */
  spooling: boolean;
}

export interface RetentionResult {
  messages: number;
  events: number;
  channels: number;
  /** DELETE statements run. */
  statements: number;
}

const DEFAULTS = {
  flushInterval: 100,
  batchSize: 1000,
  maxQueued: 1_000_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  storeBodies: true,
  maxBodySize: 64 * 1024,
  retention: 7 * 24 * 3600 * 1000,
  retentionInterval: 60_000,
  retentionBatchSize: 5000,
  writeTimeout: 30_000,
  closeTimeout: 10_000,
  maxRetryDelay: 5000,
  maxStatementBytes: 120 * 1024,
  busyThreshold: 0.8,
  writeConcurrency: 4,
};
/** Attempts of a batch transaction that the database rolled back to break a deadlock between writers. */
const DEADLOCK_ATTEMPTS = 3;
/** Events folded ahead of the writes per batch written, in batches (see Lookahead). */
const LOOKAHEAD_STEP = 50;
/** Events per second, in batches, that count as a burst (see busyThreshold): more than the database takes. */
const BUSY_RATE = 100;
/** A batch of events that came in within this many ms is a burst. */
const BURST_MS = 1000 / BUSY_RATE;
/** Writes stop waiting for a busy event loop once this share of maxQueued (or maxQueuedBytes) waits. */
const DEFER_LIMIT = 0.8;

const noop = (): void => undefined;
const silent: NsqLogger = { debug: noop, info: noop, warn: noop, error: noop };

function cut(value: unknown, limit: number): string | null {
  if (typeof value !== 'string' || value === '') return null;
  return value.length > limit ? value.slice(0, limit) : value;
}

/** 9999-12-31T23:59:59.999Z: MySQL's DATETIME ends there, and a value past it would fail a whole batch. */
const MAX_TIME = 253_402_300_799_999;

function millis(value: Date | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'number' ? value : value instanceof Date ? value.getTime() : Number.NaN;
  return Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIME ? Math.floor(ms) : undefined;
}

const MAX_INT = 2 ** 31 - 1;
const DELIVERED = TYPE_CODE.delivered;
const FINISHED = TYPE_CODE.finished;
const TIMED_OUT = TYPE_CODE.timed_out;

/** An attempt as stored: an integer 0..2^31-1. */
function attemptOf(value: number): number {
  return value >= 0 && value <= MAX_INT ? Math.floor(value) : value > MAX_INT ? MAX_INT : 0;
}

/** MySQL's ER_LOCK_DEADLOCK: the server rolled the transaction back, which may simply run again. */
function isDeadlock(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; driverError?: { code?: unknown; errno?: unknown } } | null;
  const code = e?.driverError?.code ?? e?.code;
  return code === 'ER_LOCK_DEADLOCK' || e?.driverError?.errno === 1213 || e?.errno === 1213;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function topicMatcher(spec: readonly string[] | RegExp | undefined): ((topic: string) => boolean) | undefined {
  if (spec === undefined) return undefined;
  if (spec instanceof RegExp) {
    const re = new RegExp(spec.source, spec.flags.replace(/[gy]/g, ''));
    return (topic) => re.test(topic);
  }
  const names = new Set(spec);
  return (topic) => names.has(topic);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The batched history writer. `record()` only queues (it never awaits, never throws, never waits
 * for the database), into compact segments (./segment.ts); a flush every `flushInterval` ms, or as
 * soon as `batchSize` events are queued, writes them in one transaction (./writer.ts): a multi-row
 * INSERT IGNORE of the events, then multi-row upserts of the messages (a publish whole, with the
 * summary of its events) and of the per-channel summaries, merged into the stored ones in SQL. On
 * MySQL several batches are in flight at once (`writeConcurrency`).
 *
 * Built for a broker's delivery path (recordNsqdEvents): queuing an event costs a few stores
 * into typed arrays; while events arrive in a burst, or the event loop is busy, the writes wait
 * (`busyThreshold`), so the database's work does not compete with the delivery, and a message's
 * later events (its delivery, its FIN) are folded into its rows ahead of the write that carries
 * its publish (see Lookahead), so each row is written about once.
 *
 * When a write fails (or times out), that batch and everything after it go to the spool file,
 * in order, until the database takes writes again; then the spool is replayed in order, before
 * any newer event, and emptied. The same happens when more than `maxQueued` events (or
 * `maxQueuedBytes` of bodies) wait in memory. Every event carries a unique key
 * (`<source>:<epoch>:<seq>`), the message write is an upsert of the same values and summaries
 * merge idempotently, so a replay of something already written changes nothing. A recorder
 * started on a non-empty spool (say, after a crash) replays it first.
 *
 * Lifecycle: start() → record()… → flush() → close() (idempotent; bounded by `closeTimeout`,
 * after which what is left is spooled synchronously).
 */
export class HistoryRecorder {
  private readonly opts: Required<Omit<HistoryRecorderOptions, 'includeTopics' | 'excludeTopics' | 'logger'>>;
  private readonly logger: NsqLogger;
  private readonly include: ((topic: string) => boolean) | undefined;
  private readonly exclude: ((topic: string) => boolean) | undefined;
  private readonly topicVerdicts = new Map<string, boolean>();
  /** True when includeTopics or excludeTopics is set. */
  private readonly filtered: boolean;
  private readonly keyPrefix: string;
  private readonly spool: Spool;

  private state: 'new' | 'started' | 'closing' | 'closed' = 'new';
  private seq = 0;
  private flushUpTo = 0;
  /** The latest flush() (or close()) target: batches up to it never wait for a busy event loop. */
  private urgentUpTo = 0;
  /** The event loop was busier than busyThreshold at the last tick: queued writes wait. */
  private busy = false;
  private loopSample = performance.eventLoopUtilization();
  /** ms of the event loop the writer spent folding since the last sample (see sampleLoad). */
  private ownBusyMs = 0;
  /** performance.now() until which the last batch's arrival counts as a burst (see busyThreshold). */
  private burstUntil = 0;
  /** Events waiting for the database, in segments of at most batchSize (./segment.ts). */
  private queue: Segment[] = [];
  private queueCount = 0;
  private queueBytes = 0;
  /** Batches being written straight from the queue, oldest first. */
  private inflight: Array<{ batch: Segment[]; done: Promise<void> }> = [];
  private readonly concurrency: number;
  /** Events waiting for the spool file. */
  private spoolBuffer: Segment[] = [];
  private spoolCount = 0;
  private appending: Segment[] | undefined;
  /** The summaries of what is queued, folded ahead of the writes (see Lookahead). */
  private readonly lookahead = new Lookahead();
  private spooling = false;
  /** The queue has just overflowed into the spool buffer: append it now. */
  private overflowed = false;
  private abandoned = false;
  private consecutiveFailures = 0;
  private retryAt = 0;

  /** One database pass and one spool pass at a time; a kick while one runs asks for another pass after it. */
  private readonly dbPass = new SerialPass(() => this.runDb(), this.passHooks());
  private readonly spoolPass = new SerialPass(() => this.runSpool(), this.passHooks());
  private retentionRunning: Promise<RetentionResult> | undefined;
  private initializing: Promise<unknown> | undefined;
  /** True once initialize() (connect and migrations) has completed on the DataSource. */
  databaseReady = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private waiters: Array<{ seq: number; resolve: () => void }> = [];
  private closePromise: Promise<void> | undefined;

  private readonly counters = { written: 0, spooled: 0, replayed: 0, failures: 0, ignored: 0, lost: 0 };
  private lastError: string | undefined;

  constructor(
    readonly dataSource: DataSource,
    options: HistoryRecorderOptions,
  ) {
    const positive = (name: keyof typeof DEFAULTS, value: number | undefined, min: number): number => {
      const v = value ?? (DEFAULTS[name] as number);
      if (!Number.isFinite(v) || v < min) throw new RangeError(`HistoryRecorder: ${name} must be a number >= ${min}, got ${String(value)}`);
      return v;
    };
    if (!options.spoolPath) throw new RangeError('HistoryRecorder: spoolPath is required');
    this.opts = {
      spoolPath: options.spoolPath,
      flushInterval: positive('flushInterval', options.flushInterval, 1),
      batchSize: Math.floor(positive('batchSize', options.batchSize, 1)),
      maxQueued: Math.floor(positive('maxQueued', options.maxQueued, 1)),
      maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes, 1),
      storeBodies: options.storeBodies ?? DEFAULTS.storeBodies,
      maxBodySize: Math.floor(positive('maxBodySize', options.maxBodySize, 0)),
      retention: positive('retention', options.retention, 0),
      retentionInterval: positive('retentionInterval', options.retentionInterval, 1),
      retentionBatchSize: Math.floor(positive('retentionBatchSize', options.retentionBatchSize, 1)),
      source: (options.source ?? `${hostname()}/${process.pid}`).slice(0, 120),
      writeTimeout: positive('writeTimeout', options.writeTimeout, 1),
      closeTimeout: positive('closeTimeout', options.closeTimeout, 0),
      maxRetryDelay: positive('maxRetryDelay', options.maxRetryDelay, 1),
      maxStatementBytes: positive('maxStatementBytes', options.maxStatementBytes, 1024),
      busyThreshold: positive('busyThreshold', options.busyThreshold, 0),
      writeConcurrency: Math.floor(positive('writeConcurrency', options.writeConcurrency, 1)),
    };
    this.concurrency = isMysqlFamily(dataSource) ? this.opts.writeConcurrency : 1;
    this.logger = options.logger ?? silent;
    this.include = topicMatcher(options.includeTopics);
    this.exclude = topicMatcher(options.excludeTopics);
    this.filtered = this.include !== undefined || this.exclude !== undefined;
    // the epoch tells this recorder's keys from those of any earlier run with the same source
    this.keyPrefix = `${this.opts.source}:${Date.now().toString(36)}${randomBytes(3).toString('hex')}:`;
    this.spool = new Spool(this.opts.spoolPath);
  }

  /** Opens the spool (replaying what a previous run left in it) and starts the timers. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    await this.spool.open();
    if (this.spool.pendingBytes > 0) {
      this.spooling = true;
      this.spoolBuffer = this.queue.concat(this.spoolBuffer);
      this.spoolCount += this.queueCount;
      this.queue = [];
      this.queueCount = 0;
      this.queueBytes = 0;
      this.logger.info(`history: replaying ${this.spool.pendingBytes} bytes left in the spool ${this.opts.spoolPath}`);
    }
    this.state = 'started';
    this.flushTimer = setInterval(() => this.tick(), this.opts.flushInterval);
    this.flushTimer.unref();
    if (this.opts.retention > 0) {
      this.retentionTimer = setInterval(() => {
        if (this.retentionRunning === undefined) this.runRetention().catch((err: unknown) => this.noteError(err));
      }, this.opts.retentionInterval);
      this.retentionTimer.unref();
    }
    this.kickSpool();
    this.kickDb();
  }

  /** Queues one event. Cheap and synchronous; never throws, never waits for the database. */
  record(record: HistoryRecord): void {
    try {
      if (this.state === 'closed' || this.abandoned || !this.queueRecord(record)) this.counters.ignored++;
    } catch {
      this.counters.ignored++;
    }
  }

  /**
   * recordNsqdEvents' path: the same as `record(historyRecordFromNsqdEvent(nsqd, event))`, queued
   * straight from nsqd's event: no record object, no Date, nothing kept that the garbage
   * collector would have to move (see Segment). `nsqd` must already fit its column
   * (recordNsqdEvents cuts it once). `key`: the event's key, when the caller gave it one
   * (HistoryJournal), instead of the recorder's own.
   * @internal
   */
  recordNsqdEvent(nsqd: string, e: MessageEvent, key?: string): void {
    try {
      this.takeNsqdEvent(nsqd, e, key);
    } catch {
      this.counters.ignored++;
    }
  }

  private takeNsqdEvent(nsqd: string, e: MessageEvent, key: string | undefined): void {
    if (this.state === 'closed' || this.abandoned) {
      this.counters.ignored++;
      return;
    }
    // the hot cases, most of a burst: a publish, a delivery or a FIN that fits the queue's open
    // segment as it is (the rest takes queueNsqdEvent's way, which handles every case)
    if (e.type === 'published') {
      const segment = this.openSegmentFor(e);
      const body = e.body;
      if (
        segment !== undefined &&
        this.opts.storeBodies &&
        body.length <= this.opts.maxBodySize &&
        // an envelope's message key is read the slow way
        (body.length === 0 || body[0] !== 0) &&
        e.deferMs === undefined &&
        this.queueBytes + body.length <= this.opts.maxQueuedBytes &&
        e.producer.length <= COLUMN_LIMITS.producer
      ) {
        this.seq++;
        segment.pushPublish(nsqd, e.id, e.at, e.topic, body, e.producer === '' ? null : e.producer, key);
        this.queueBytes += body.length;
        this.countQueued();
        return;
      }
    } else if (e.type === 'delivered' || e.type === 'finished') {
      const segment = this.openSegmentFor(e);
      if (
        segment !== undefined &&
        e.attempt >= 0 &&
        e.attempt <= MAX_INT &&
        e.channel.length <= COLUMN_LIMITS.channel &&
        e.client.length <= COLUMN_LIMITS.consumer
      ) {
        this.seq++;
        segment.pushDelivery(e.type === 'delivered' ? DELIVERED : FINISHED, nsqd, e.id, e.at, e.topic, e.channel, e.client === '' ? null : e.client, e.attempt, null, key);
        this.countQueued();
        return;
      }
    }
    this.queueNsqdEvent(nsqd, e, key ?? null);
  }

  /**
   * The queue's open segment, when event `e` can go straight into it as the next event: nothing
   * spooling or filtered, room in the queue, its time, id and topic fitting their columns.
   */
  private openSegmentFor(e: MessageEvent): Segment | undefined {
    const segment = this.queue[this.queue.length - 1];
    return segment !== undefined &&
      !segment.sealed &&
      !segment.full &&
      segment.nextSeq === this.seq + 1 &&
      !this.spooling &&
      !this.filtered &&
      this.queueCount < this.opts.maxQueued &&
      e.at >= 0 &&
      e.at <= MAX_TIME &&
      e.id.length <= COLUMN_LIMITS.messageId &&
      e.topic.length <= COLUMN_LIMITS.topic
      ? segment
      : undefined;
  }

  /** Counts an event just queued; every batchSize of them starts a write (unless the loop is busy). */
  private countQueued(): void {
    if (++this.queueCount >= this.opts.batchSize && !this.busy && this.queueCount % this.opts.batchSize === 0) this.kickDb();
  }

  /** Validates one nsqd event and queues it. */
  private queueNsqdEvent(nsqd: string, e: MessageEvent, key: string | null): void {
    try {
      const topic = e.topic.length > COLUMN_LIMITS.topic ? e.topic.slice(0, COLUMN_LIMITS.topic) : e.topic;
      const at = e.at;
      if (!(at >= 0 && at <= MAX_TIME) || (this.filtered && !this.topicAllowed(topic))) {
        this.counters.ignored++;
        return;
      }
      const id = e.id.length > COLUMN_LIMITS.messageId ? e.id.slice(0, COLUMN_LIMITS.messageId) : e.id;
      switch (e.type) {
        case 'published': {
          const body = e.body;
          const deferred = e.deferMs !== undefined && e.deferMs > 0;
          const stored = this.opts.storeBodies ? Math.min(body.length, this.opts.maxBodySize) : -1;
          this.append(
            PUBLISHED,
            nsqd,
            id,
            at,
            topic,
            null,
            null,
            -1,
            deferred ? cut(`deferred ${e.deferMs} ms`, COLUMN_LIMITS.detail) : null,
            stored < 0 ? null : body,
            stored < 0 ? 0 : stored,
            stored >= 0 && stored < body.length,
            Math.min(body.length, MAX_INT),
            cut(e.producer, COLUMN_LIMITS.producer),
            deferred ? Math.min(at + e.deferMs!, MAX_TIME) : -1,
            cut(envelopeMessageKey(body), COLUMN_LIMITS.messageKey),
            -1,
            key,
          );
          return;
        }
        case 'delivered':
          this.appendDelivery(DELIVERED, nsqd, id, at, topic, e.channel, e.client, e.attempt, null, key);
          return;
        case 'finished':
          this.appendDelivery(FINISHED, nsqd, id, at, topic, e.channel, e.client, e.attempt, null, key);
          return;
        case 'timed_out':
          this.appendDelivery(TIMED_OUT, nsqd, id, at, topic, e.channel, e.client, e.attempt, null, key);
          return;
        case 'requeued':
          this.appendDelivery(TYPE_CODE.requeued, nsqd, id, at, topic, e.channel, e.client, e.attempt, `delay ${e.delayMs} ms`, key);
          return;
        case 'deferred':
          this.append(TYPE_CODE.deferred, nsqd, id, at, topic, cut(e.channel, COLUMN_LIMITS.channel), null, -1, `until ${new Date(e.until).toISOString()}`, null, 0, false, 0, null, -1, null, -1, key);
          return;
        case 'dropped':
          this.append(TYPE_CODE.dropped, nsqd, id, at, topic, cut(e.channel, COLUMN_LIMITS.channel), null, -1, cut(e.reason, COLUMN_LIMITS.detail), null, 0, false, 0, null, -1, null, -1, key);
          return;
      }
    } catch {
      this.counters.ignored++;
    }
  }

  /** Resolves when every event recorded so far is written to the database or appended to the spool. */
  flush(): Promise<void> {
    if (this.state === 'new') return Promise.reject(new Error('HistoryRecorder.flush() before start(): nothing writes yet'));
    const target = this.seq;
    this.flushUpTo = Math.max(this.flushUpTo, target);
    this.urgentUpTo = Math.max(this.urgentUpTo, target);
    const done = this.settled(target);
    this.kickDb();
    this.kickSpool();
    return done;
  }

  /**
   * Resolves, like flush(), when every event recorded so far is in the database or the spool, but
   * without hurrying the writes: while the event loop is busy they still wait (busyThreshold).
   * For HistoryJournal's checkpoints, which must not make the writes compete with a burst.
   */
  written(): Promise<void> {
    if (this.state === 'new') return Promise.reject(new Error('HistoryRecorder.written() before start(): nothing writes yet'));
    const done = this.settled(this.seq);
    this.kickDb();
    this.kickSpool();
    return done;
  }

  /**
   * Flushes and stops. Bounded by `closeTimeout`: what is still in memory then (a write that
   * hangs, a queue the database cannot take) is appended to the spool synchronously. Does not
   * close the DataSource, which belongs to the caller.
   */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  stats(): HistoryRecorderStats {
    return {
      queued: this.queueCount + this.spoolCount + this.inflight.reduce((n, w) => n + countOf(w.batch), 0) + countOf(this.appending),
      ...this.counters,
      lastError: this.lastError,
      spoolPendingBytes: this.spool.pendingBytes,
      spooling: this.spooling,
    };
  }

  /** Deletes rows older than `retention`, `retentionBatchSize` rows per statement. */
  runRetention(now: number = Date.now()): Promise<RetentionResult> {
    if (this.retentionRunning !== undefined) return this.retentionRunning;
    const run = this.deleteOlderThan(new Date(now - this.opts.retention)).finally(() => {
      this.retentionRunning = undefined;
    });
    this.retentionRunning = run;
    return run;
  }

  // --- queueing ----------------------------------------------------------------------------

  private topicAllowed(topic: string): boolean {
    let verdict = this.topicVerdicts.get(topic);
    if (verdict === undefined) {
      verdict = (this.include === undefined || this.include(topic)) && !(this.exclude?.(topic) ?? false);
      if (this.topicVerdicts.size > 10_000) this.topicVerdicts.clear();
      this.topicVerdicts.set(topic, verdict);
    }
    return verdict;
  }

  /** Validates a record (cutting strings to their columns) and queues it; false when it is not recorded. */
  private queueRecord(r: HistoryRecord): boolean {
    if (r === null || typeof r !== 'object') return false;
    const code = (TYPE_CODE as Record<string, number | undefined>)[r.type];
    const nsqd = cut(r.nsqd, COLUMN_LIMITS.nsqd);
    const messageId = cut(r.messageId, COLUMN_LIMITS.messageId);
    const at = millis(r.at as Date | number);
    if (code === undefined || nsqd === null || messageId === null || at === undefined) return false;
    const topic = cut(r.topic, COLUMN_LIMITS.topic);
    if (topic !== null && this.filtered && !this.topicAllowed(topic)) return false;
    let body: Buffer | null = null;
    let stored = 0;
    let truncated = false;
    let size = typeof r.size === 'number' && Number.isFinite(r.size) ? Math.max(0, Math.floor(r.size)) : 0;
    const ensureMessageAt = r.ensureMessage === true && topic !== null ? (millis(r.publishedAt as Date | undefined) ?? at) : -1;
    if ((code === PUBLISHED || ensureMessageAt >= 0) && Buffer.isBuffer(r.body)) {
      if (r.size === undefined) size = r.body.length;
      if (this.opts.storeBodies) {
        body = r.body;
        stored = Math.min(body.length, this.opts.maxBodySize);
        truncated = stored < size;
      }
    }
    this.append(
      code,
      nsqd,
      messageId,
      at,
      topic,
      cut(r.channel, COLUMN_LIMITS.channel),
      cut(r.consumer, COLUMN_LIMITS.consumer),
      typeof r.attempt === 'number' && Number.isFinite(r.attempt) ? attemptOf(r.attempt) : -1,
      cut(r.detail, COLUMN_LIMITS.detail),
      body,
      stored,
      truncated,
      Math.min(size, MAX_INT),
      cut(r.producer, COLUMN_LIMITS.producer),
      millis(r.deferredUntil as Date | number | undefined) ?? -1,
      cut(r.messageKey, COLUMN_LIMITS.messageKey),
      ensureMessageAt,
      // a key of the caller's (HistoryJournal's) makes a replay of the same event idempotent
      cut(r.key, COLUMN_LIMITS.eventKey),
    );
    return true;
  }

  /** A delivery's event from nsqd (whose channel names and attempts are valid by construction). */
  private appendDelivery(type: number, nsqd: string, id: string, at: number, topic: string, channel: string, client: string, attempt: number, detail: string | null, key: string | null): void {
    // everything that could throw on a malformed event comes before slot() takes a sequence number
    const channelCut = channel.length > COLUMN_LIMITS.channel ? channel.slice(0, COLUMN_LIMITS.channel) : channel;
    const clientCut = client === '' ? null : client.length > COLUMN_LIMITS.consumer ? client.slice(0, COLUMN_LIMITS.consumer) : client;
    const attemptCut = attemptOf(attempt);
    const segment = this.slot(0);
    segment.pushDelivery(type, nsqd, id, at, topic, channelCut, clientCut, attemptCut, detail, key ?? undefined);
    this.filled(0);
  }

  /**
   * Queues a valid event: into the queue for the database, or, while spooling (or when the queue
   * is full), into the buffer for the spool. Only the first `bodyLength` bytes of `body` are kept.
   */
  private append(
    type: number,
    nsqd: string,
    messageId: string,
    at: number,
    topic: string | null,
    channel: string | null,
    consumer: string | null,
    attempt: number,
    detail: string | null,
    body: Uint8Array | null,
    bodyLength: number,
    truncated: boolean,
    size: number,
    producer: string | null,
    deferredUntil: number,
    messageKey: string | null,
    ensureMessageAt = -1,
    key: string | null = null,
  ): void {
    const segment = this.slot(bodyLength);
    segment.push(type, nsqd, messageId, at, topic, channel, consumer, attempt, detail, body, bodyLength, truncated, size, producer, deferredUntil, messageKey, ensureMessageAt, key);
    this.filled(bodyLength);
  }

  /**
   * The segment the next event goes into, its sequence number taken: the queue's last, or while
   * spooling (or once the queue is full, which starts spooling) the spool buffer's.
   */
  private slot(bodyLength: number): Segment {
    const seq = ++this.seq;
    if (!this.spooling && (this.queueCount >= this.opts.maxQueued || this.queueBytes + bodyLength > this.opts.maxQueuedBytes)) {
      this.enterSpooling(`more than ${this.queueCount} events (${this.queueBytes} body bytes) wait for the database`);
      this.lookahead.reset(seq - 1);
      this.spoolBuffer = this.queue;
      this.spoolCount = this.queueCount;
      this.queue = [];
      this.queueCount = 0;
      this.queueBytes = 0;
      this.overflowed = true;
    }
    const list = this.spooling ? this.spoolBuffer : this.queue;
    let segment = list[list.length - 1];
    if (segment === undefined || segment.sealed || segment.full || segment.nextSeq !== seq) {
      if (segment?.full === true) {
        // how fast a batch of events came in: a burst is one batch every BURST_MS or faster
        const now = performance.now();
        if (now - segment.createdAt <= BURST_MS) this.burstUntil = now + BURST_MS * 2;
      }
      segment = new Segment(seq, this.opts.batchSize);
      list.push(segment);
    }
    return segment;
  }

  /** Counts the event just pushed into slot()'s segment, and starts the writes it calls for. */
  private filled(bodyLength: number): void {
    if (!this.spooling) {
      this.queueBytes += bodyLength;
      this.countQueued();
    } else if (++this.spoolCount >= this.opts.batchSize || this.overflowed) {
      this.overflowed = false;
      this.kickSpool();
    }
  }

  private enterSpooling(reason: string): void {
    if (!this.spooling) this.logger.warn(`history: spooling events to ${this.opts.spoolPath}: ${reason}`);
    this.spooling = true;
  }

  private tick(): void {
    this.sampleLoad();
    segmentMemory.trimIdle();
    this.lookahead.trimIdle();
    if (this.queueCount > 0) this.flushUpTo = Math.max(this.flushUpTo, this.seq);
    if (this.spoolCount > 0) this.kickSpool();
    this.kickDb();
  }

  private settled(target: number): Promise<void> {
    if (this.oldestPending() > target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq: target, resolve }));
  }

  private oldestPending(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const list of [this.inflight[0]?.batch, this.appending, this.spoolBuffer, this.queue]) {
      const head = list?.[0];
      if (head !== undefined && head.seq0 < min) min = head.seq0;
    }
    return min;
  }

  private notify(): void {
    if (this.waiters.length === 0) return;
    const oldest = this.oldestPending();
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.seq < oldest) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  // --- the database side ---------------------------------------------------------------------

  private kickDb(): void {
    this.dbPass.kick();
  }

  /** Updates `busy` from the event loop's utilization since the last tick (see busyThreshold). */
  private sampleLoad(): void {
    if (this.opts.busyThreshold >= 1) return;
    const sample = performance.eventLoopUtilization();
    const loop = performance.eventLoopUtilization(sample, this.loopSample);
    // the writer's own folding does not count: it must not hold itself back
    const others = Math.max(0, loop.active - this.ownBusyMs) / Math.max(1, loop.idle + loop.active);
    this.busy = others >= this.opts.busyThreshold;
    this.loopSample = sample;
    this.ownBusyMs = 0;
  }

  /** True when the queued writes should wait for a busy event loop (see busyThreshold). */
  private shouldDefer(): boolean {
    // a burst of events also keeps the other processes of the delivery (producers, consumers)
    // busy, when this loop may be waiting on them, and may have begun since the last tick
    return (this.busy || (this.opts.busyThreshold < 1 && performance.now() < this.burstUntil)) && this.state === 'started' && this.queueCount < this.opts.maxQueued * DEFER_LIMIT && this.queueBytes < this.opts.maxQueuedBytes * DEFER_LIMIT;
  }

  /** Passes run only once started, never after close or after giving up; their end wakes flush() waiters. */
  private passHooks(): PassHooks {
    return {
      canRun: () => this.state !== 'new' && this.state !== 'closed' && !this.abandoned,
      onError: (error) => this.noteError(error),
      ended: () => this.notify(),
    };
  }

  private async runDb(): Promise<void> {
    while (!this.abandoned && this.state !== 'closed') {
      if (this.spooling) {
        // while closing, the spool waits for the next start: close() only has to flush
        if (this.state === 'closing' || Date.now() < this.retryAt) return;
        if (this.spool.pendingBytes > 0) {
          if (!(await this.replayOnce())) return;
          continue;
        }
        if (this.spoolCount > 0 || this.appending !== undefined) return; // the spool side kicks us after appending
        await this.spool.resetIfReplayed();
        if (this.spool.pendingBytes === 0 && this.spoolCount === 0 && this.appending === undefined) {
          this.spooling = false;
          this.logger.info('history: spool replayed, writing to the database again');
        }
        continue;
      }
      const head = this.queue[0];
      if (head === undefined) return;
      // the end of a write kicks this pass again
      if (this.inflight.length >= this.concurrency) return;
      if (this.queueCount < this.opts.batchSize && head.seq0 > this.flushUpTo) return;
      if (head.seq0 > this.urgentUpTo && this.shouldDefer()) return;
      const batch = this.take(this.queue, this.opts.batchSize);
      for (const s of batch) {
        this.queueCount -= s.n;
        this.queueBytes -= s.bytes;
      }
      if (this.queue.length === 0) this.queueBytes = 0;
      const started = performance.now();
      this.lookahead.extend(batch);
      // a bounded step ahead per batch: the first write of a burst must not stall the event loop
      this.lookahead.extend(this.queue, LOOKAHEAD_STEP * this.opts.batchSize);
      const planned = this.lookahead.plan(batch);
      this.ownBusyMs += performance.now() - started;
      const write = { batch, done: Promise.resolve() };
      write.done = this.writeQueued(batch, planned).finally(() => {
        const i = this.inflight.indexOf(write);
        if (i >= 0) this.inflight.splice(i, 1);
        this.notify();
        this.kickDb();
        if (this.spooling) this.kickSpool();
      });
      this.inflight.push(write);
    }
  }

  /** Writes a batch from the queue; when that fails, it and everything queued go to the spool. */
  private async writeQueued(batch: Segment[], planned: readonly MessageFold[]): Promise<void> {
    try {
      await withTimeout(this.write(batch, planned), this.opts.writeTimeout, 'history batch write');
      if (this.abandoned) return;
      this.lookahead.committed(planned);
      this.counters.written += countOf(batch);
      // written: nothing reads these segments again (a failed or timed-out write's are spooled,
      // and may still be read by the write that timed out, so only these go back for reuse)
      for (const s of batch) s.recycle();
      this.succeeded();
    } catch (err) {
      if (this.abandoned) return;
      this.failed(err);
      this.enterSpooling(`the database write failed: ${errorText(err)}`);
      this.lookahead.reset(this.seq);
      // in order: the batch is older than what is queued, and maybe than a batch spooled before it
      this.spoolBuffer = [...batch, ...this.spoolBuffer, ...this.queue].sort((a, b) => a.seq0 - b.seq0);
      this.spoolCount += countOf(batch) + this.queueCount;
      this.queue = [];
      this.queueCount = 0;
      this.queueBytes = 0;
    }
  }

  /** Writes the next spooled batch; false when the database failed. */
  private async replayOnce(): Promise<boolean> {
    let lines: string[];
    let end: number;
    try {
      ({ lines, end } = await this.spool.read(this.opts.batchSize));
    } catch (err) {
      this.noteError(err);
      return false;
    }
    const replayed = new Segment(0, lines.length);
    for (const line of lines) {
      if (!fromLine(replayed, line)) this.logger.warn(`history: skipping an unreadable spool line (${line.length} bytes)`);
    }
    try {
      if (replayed.n > 0) await withTimeout(this.write([replayed]), this.opts.writeTimeout, 'history replay write');
    } catch (err) {
      this.failed(err);
      return false;
    }
    this.counters.replayed += replayed.n;
    this.succeeded();
    try {
      await this.spool.commit(end);
    } catch (err) {
      this.noteError(err);
    }
    return true;
  }

  private succeeded(): void {
    if (this.consecutiveFailures > 0) this.logger.info('history: the database takes writes again');
    this.consecutiveFailures = 0;
    this.retryAt = 0;
  }

  private failed(err: unknown): void {
    this.counters.failures++;
    this.consecutiveFailures++;
    this.noteError(err);
    const delay = Math.min(this.opts.flushInterval * 2 ** Math.min(this.consecutiveFailures - 1, 20), this.opts.maxRetryDelay);
    this.retryAt = Date.now() + delay;
  }

  private noteError(err: unknown): void {
    this.lastError = errorText(err);
  }

  private async ready(): Promise<DataSource> {
    const ds = this.dataSource;
    if (!this.databaseReady) {
      // TypeORM marks the DataSource initialized before its migrations have run: wait for the whole initialize()
      this.initializing ??= (ds.isInitialized ? Promise.resolve() : ds.initialize())
        .then(() => {
          this.databaseReady = true;
        })
        .finally(() => {
          this.initializing = undefined;
        });
      await this.initializing;
    }
    return ds;
  }

  /**
   * Connects (and migrates) the database now rather than at the first write, so that readers
   * sharing the DataSource need not wait for an event. Never throws: a database that is down is
   * noted in stats().lastError, and writes keep retrying (spooling meanwhile).
   */
  async connect(): Promise<boolean> {
    try {
      await this.ready();
      return true;
    } catch (err) {
      this.noteError(err);
      return false;
    }
  }

  /** Whole segments from the head of `list`, at most `max` events (at least one segment). */
  private take(list: Segment[], max: number): Segment[] {
    let n = 0;
    let k = 0;
    while (k < list.length && (k === 0 || n + list[k]!.n <= max)) n += list[k++]!.n;
    const taken = list.splice(0, k);
    for (const s of taken) s.sealed = true;
    return taken;
  }

  /**
   * One transaction (./writer.ts): every event (INSERT IGNORE on the event key), then the
   * messages (publishes upserted whole, so a replay writes the same values again; consumer-side
   * rows inserted only where none exists) with their summaries merged in, then the channel
   * summaries. The summaries are folded from the batch here, not by HistoryEventSubscriber.
   */
  private async write(batch: readonly Segment[], planned?: readonly MessageFold[]): Promise<void> {
    const ds = await this.ready();
    const d = dialectOf(ds);
    for (let attempt = 1; ; attempt++) {
      try {
        await withDatabaseLock(ds, () =>
          ds.transaction(async (em: EntityManager) => {
            await writeSegments(em.queryRunner!, d, batch, this.keyPrefix, this.opts.maxStatementBytes, planned);
          }),
        );
        return;
      } catch (err) {
        // concurrent writers of the same rows: the server rolled this one back whole; run it again
        if (attempt >= DEADLOCK_ATTEMPTS || !isDeadlock(err)) throw err;
      }
    }
  }

  // --- the spool side ---------------------------------------------------------------------

  private kickSpool(): void {
    this.spoolPass.kick();
  }

  private async runSpool(): Promise<void> {
    while (this.spoolCount > 0 && !this.abandoned) {
      // direct writes still in flight are older than anything here: if they fail, they are spooled first
      if (this.inflight.length > 0) {
        await Promise.all(this.inflight.map((w) => w.done));
        continue;
      }
      const items = this.spoolBuffer;
      const count = this.spoolCount;
      for (const s of items) s.sealed = true;
      this.spoolBuffer = [];
      this.spoolCount = 0;
      this.appending = items;
      try {
        await this.spool.append(toLines(items, this.keyPrefix));
        if (this.abandoned) return;
        this.counters.spooled += count;
      } catch (err) {
        if (this.abandoned) return;
        this.noteError(err);
        this.logger.error(`history: cannot append to the spool ${this.opts.spoolPath}: ${errorText(err)}`);
        this.spoolBuffer = items.concat(this.spoolBuffer);
        this.spoolCount += count;
        return;
      } finally {
        this.appending = undefined;
        this.notify();
      }
      this.kickDb();
    }
  }

  // --- close --------------------------------------------------------------------------------

  private async doClose(): Promise<void> {
    if (this.state === 'new') {
      // never started: nothing was written; keep what was recorded for the next start
      this.state = 'closing';
      if (this.queueCount > 0) {
        try {
          await this.spool.open();
        } catch (err) {
          this.noteError(err);
        }
      }
      if (this.spool.isOpen) this.abandon();
      else this.abandoned = true;
      this.state = 'closed';
      await this.spool.close();
      return;
    }
    this.state = 'closing';
    clearInterval(this.flushTimer);
    clearInterval(this.retentionTimer);
    const deadline = Date.now() + this.opts.closeTimeout;
    const finished = await Promise.race([
      this.flush().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), this.opts.closeTimeout).unref()),
    ]);
    if (!finished) this.logger.warn(`history: close() timed out after ${this.opts.closeTimeout} ms; spooling what is left`);
    // records that arrived during the flush, or a flush that ran out of time: spool them now
    this.abandon();
    const idle = new Promise<void>((resolve) => {
      const check = (): void => {
        if ((!this.dbPass.running && !this.spoolPass.running && this.inflight.length === 0 && this.retentionRunning === undefined) || Date.now() >= deadline) resolve();
        else setTimeout(check, 5).unref();
      };
      check();
    });
    await idle;
    this.state = 'closed';
    await this.spool.close().catch((err: unknown) => this.noteError(err));
    this.notify();
  }

  /** Appends everything still in memory to the spool, synchronously, and stops the loops. */
  private abandon(): void {
    const left = [...this.inflight.flatMap((w) => w.batch), ...(this.appending ?? []), ...this.spoolBuffer, ...this.queue].sort((a, b) => a.seq0 - b.seq0);
    const count = countOf(left);
    this.abandoned = true;
    this.inflight = [];
    this.appending = undefined;
    this.spoolBuffer = [];
    this.spoolCount = 0;
    this.queue = [];
    this.queueCount = 0;
    this.queueBytes = 0;
    if (count > 0) {
      try {
        this.spool.appendSync(toLines(left, this.keyPrefix));
        this.counters.spooled += count;
      } catch (err) {
        this.noteError(err);
        this.counters.lost += count;
        this.logger.error(`history: ${count} events lost: cannot append to the spool ${this.opts.spoolPath}: ${errorText(err)}`);
      }
    }
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  // --- retention ----------------------------------------------------------------------------

  private async deleteOlderThan(cutoff: Date): Promise<RetentionResult> {
    const result: RetentionResult = { messages: 0, events: 0, channels: 0, statements: 0 };
    if (this.opts.retention === 0 || !this.dataSource.isInitialized) return result;
    const ds = this.dataSource;
    const batch = this.opts.retentionBatchSize;
    const tables = [
      { entity: HistoryEvent, column: 'at', counter: 'events' },
      { entity: HistoryChannelState, column: 'lastEventAt', counter: 'channels' },
      { entity: HistoryMessage, column: 'publishedAt', counter: 'messages' },
    ] as const;
    for (const { entity, column, counter } of tables) {
      while (!this.abandoned) {
        const deleted = await withDatabaseLock(ds, async () => {
          const ids = (
            await ds.createQueryBuilder(entity, 't').select('t.id', 'id').where(`t.${column} < :cutoff`, { cutoff }).limit(batch).getRawMany<{ id: string | number }>()
          ).map((r) => r.id);
          if (ids.length === 0) return 0;
          await ds.createQueryBuilder().delete().from(entity).where('id IN (:...ids)', { ids }).execute();
          result.statements++;
          return ids.length;
        });
        result[counter] += deleted;
        if (deleted < batch) break;
      }
    }
    return result;
  }
}

/**
 * Runs an async pass on the next turn, never two at once: a kick during a pass makes one more pass
 * after it (passes loop until their work is done, so one is enough however many kicks came).
 */
interface PassHooks {
  canRun(): boolean;
  onError(error: unknown): void;
  ended(): void;
}

class SerialPass {
  running = false;
  private again = false;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly hooks: PassHooks,
  ) {}

  kick(): void {
    if (!this.hooks.canRun()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => {
      this.run()
        .catch((error: unknown) => this.hooks.onError(error))
        .finally(() => {
          this.running = false;
          this.hooks.ended();
          if (this.again) {
            this.again = false;
            this.kick();
          }
        });
    });
  }
}
