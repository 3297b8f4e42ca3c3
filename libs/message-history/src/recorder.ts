import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DataSource, EntityManager } from 'typeorm';
import type { NsqLogger } from '../../nsq/src/client/logger.js';
import { withDatabaseLock } from './data-source.js';
import { HistoryChannelState, HistoryEvent, HistoryMessage } from './entities.js';
import { Spool } from './spool.js';
import { dialectOf, statements } from './sql.js';
import { COLUMN_LIMITS, HISTORY_EVENT_TYPES, type HistoryEventType, type HistoryRecord } from './types.js';

export interface HistoryRecorderOptions {
  /** The append-only spool file used while the database is down or slow (JSON lines). */
  spoolPath: string;
  /** ms between flushes of what is queued (default 100). */
  flushInterval?: number;
  /** Events per transaction; this many queued events also trigger a flush (default 1000). */
  batchSize?: number;
  /** Events held in memory; beyond this, events go to the spool (default 100_000). */
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
  /** Approximate size limit of one INSERT statement, below MySQL's max_allowed_packet (default 4 MiB). */
  maxStatementBytes?: number;
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

/** A record as queued, spooled and written. */
interface Queued {
  seq: number;
  key: string;
  type: HistoryEventType;
  nsqd: string;
  messageId: string;
  at: number;
  topic: string | null;
  body: Buffer | null;
  bodyTruncated: boolean;
  size: number;
  producer: string | null;
  deferredUntil: number | null;
  messageKey: string | null;
  channel: string | null;
  consumer: string | null;
  attempt: number | null;
  detail: string | null;
  /** `ensureMessage`: the publishedAt of the message row to insert if missing; null: none. */
  ensureMessageAt: number | null;
}

const DEFAULTS = {
  flushInterval: 100,
  batchSize: 1000,
  maxQueued: 100_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  storeBodies: true,
  maxBodySize: 64 * 1024,
  retention: 7 * 24 * 3600 * 1000,
  retentionInterval: 60_000,
  retentionBatchSize: 5000,
  writeTimeout: 30_000,
  closeTimeout: 10_000,
  maxRetryDelay: 5000,
  maxStatementBytes: 4 * 1024 * 1024,
};

const EVENT_TYPES = new Set<string>(HISTORY_EVENT_TYPES);
const MESSAGE_COLUMNS = ['nsqd', 'messageId', 'messageKey', 'topic', 'body', 'bodyTruncated', 'size', 'publishedAt', 'producer', 'deferredUntil', 'status', 'attempts'];
/** What a publish (or its replay) sets on an existing row: never the summary the subscriber keeps. */
const PUBLISH_COLUMNS = ['topic', 'body', 'bodyTruncated', 'size', 'publishedAt', 'producer', 'deferredUntil', 'messageKey'];
const EVENT_COLUMNS = ['eventKey', 'nsqd', 'messageId', 'topic', 'type', 'channel', 'consumer', 'attempt', 'at', 'detail'];
/** Per-row overhead estimate of an INSERT statement, beyond the body. */
const ROW_BYTES = 600;

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

function toLine(q: Queued): string {
  return JSON.stringify({
    k: q.key,
    t: q.type,
    n: q.nsqd,
    m: q.messageId,
    a: q.at,
    tp: q.topic,
    b: q.body === null ? null : q.body.toString('base64'),
    bt: q.bodyTruncated,
    s: q.size,
    p: q.producer,
    d: q.deferredUntil,
    mk: q.messageKey,
    c: q.channel,
    cs: q.consumer,
    at: q.attempt,
    dt: q.detail,
    em: q.ensureMessageAt ?? undefined,
  });
}

function fromLine(line: string): Queued | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof o.k !== 'string' || typeof o.t !== 'string' || !EVENT_TYPES.has(o.t) || typeof o.n !== 'string' || typeof o.m !== 'string' || typeof o.a !== 'number') {
    return undefined;
  }
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    seq: 0,
    key: o.k,
    type: o.t as HistoryEventType,
    nsqd: o.n,
    messageId: o.m,
    at: o.a,
    topic: str(o.tp),
    body: typeof o.b === 'string' ? Buffer.from(o.b, 'base64') : null,
    bodyTruncated: o.bt === true,
    size: num(o.s) ?? 0,
    producer: str(o.p),
    deferredUntil: num(o.d),
    messageKey: str(o.mk),
    channel: str(o.c),
    consumer: str(o.cs),
    attempt: num(o.at),
    detail: str(o.dt),
    ensureMessageAt: num(o.em),
  };
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
 * for the database); a flush every `flushInterval` ms, or as soon as `batchSize` events are
 * queued, writes them in one transaction: a multi-row upsert of the published messages, a
 * multi-row INSERT IGNORE of the events (HistoryEventSubscriber updates the summaries in the same
 * transaction).
 *
 * When a write fails (or times out), that batch and everything after it go to the spool file,
 * in order, until the database takes writes again; then the spool is replayed in order, before
 * any newer event, and emptied. The same happens when more than `maxQueued` events (or
 * `maxQueuedBytes` of bodies) wait in memory. Every event carries a unique key
 * (`<source>:<epoch>:<seq>`) and the message write is an upsert of the same values, so a replay
 * of something already written changes nothing. A recorder started on a non-empty spool (say,
 * after a crash) replays it first.
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
  private readonly keyPrefix: string;
  private readonly spool: Spool;

  private state: 'new' | 'started' | 'closing' | 'closed' = 'new';
  private seq = 0;
  private flushUpTo = 0;
  private queue: Queued[] = [];
  private queueBytes = 0;
  private inflight: Queued[] | undefined;
  private inflightDone: Promise<void> | undefined;
  private spoolBuffer: Queued[] = [];
  private appending: Queued[] | undefined;
  private spooling = false;
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

  private readonly counters = { written: 0, spooled: 0, replayed: 0, failures: 0, ignored: 0 };
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
    };
    this.logger = options.logger ?? silent;
    this.include = topicMatcher(options.includeTopics);
    this.exclude = topicMatcher(options.excludeTopics);
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
      this.queue = [];
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
      if (this.state === 'closed' || this.abandoned) {
        this.counters.ignored++;
        return;
      }
      const q = this.prepare(record);
      if (q === undefined) {
        this.counters.ignored++;
        return;
      }
      if (this.spooling) {
        this.spoolBuffer.push(q);
        if (this.spoolBuffer.length >= this.opts.batchSize) this.kickSpool();
        return;
      }
      const bytes = q.body?.length ?? 0;
      if (this.queue.length >= this.opts.maxQueued || this.queueBytes + bytes > this.opts.maxQueuedBytes) {
        this.enterSpooling(`more than ${this.queue.length} events (${this.queueBytes} body bytes) wait for the database`);
        this.spoolBuffer = this.queue;
        this.spoolBuffer.push(q);
        this.queue = [];
        this.queueBytes = 0;
        this.kickSpool();
        return;
      }
      this.queue.push(q);
      this.queueBytes += bytes;
      if (this.queue.length >= this.opts.batchSize) this.kickDb();
    } catch {
      this.counters.ignored++;
    }
  }

  /** Resolves when every event recorded so far is written to the database or appended to the spool. */
  flush(): Promise<void> {
    if (this.state === 'new') return Promise.reject(new Error('HistoryRecorder.flush() before start(): nothing writes yet'));
    const target = this.seq;
    this.flushUpTo = Math.max(this.flushUpTo, target);
    const done = this.settled(target);
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
      queued: this.queue.length + this.spoolBuffer.length + (this.inflight?.length ?? 0) + (this.appending?.length ?? 0),
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
    if (this.include === undefined && this.exclude === undefined) return true;
    let verdict = this.topicVerdicts.get(topic);
    if (verdict === undefined) {
      verdict = (this.include === undefined || this.include(topic)) && !(this.exclude?.(topic) ?? false);
      if (this.topicVerdicts.size > 10_000) this.topicVerdicts.clear();
      this.topicVerdicts.set(topic, verdict);
    }
    return verdict;
  }

  private prepare(r: HistoryRecord): Queued | undefined {
    if (r === null || typeof r !== 'object' || !EVENT_TYPES.has(r.type)) return undefined;
    const nsqd = cut(r.nsqd, COLUMN_LIMITS.nsqd);
    const messageId = cut(r.messageId, COLUMN_LIMITS.messageId);
    const at = millis(r.at as Date | number);
    if (nsqd === null || messageId === null || at === undefined) return undefined;
    const topic = cut(r.topic, COLUMN_LIMITS.topic);
    if (topic !== null && !this.topicAllowed(topic)) return undefined;
    let body: Buffer | null = null;
    let bodyTruncated = false;
    let size = typeof r.size === 'number' && Number.isFinite(r.size) ? Math.max(0, Math.floor(r.size)) : 0;
    const ensureMessageAt = r.ensureMessage === true && topic !== null ? (millis(r.publishedAt as Date | undefined) ?? at) : null;
    if ((r.type === 'published' || ensureMessageAt !== null) && Buffer.isBuffer(r.body)) {
      if (r.size === undefined) size = r.body.length;
      if (this.opts.storeBodies) {
        // a copy only when truncating: keeping a slice would pin the whole large body in memory
        body = r.body.length > this.opts.maxBodySize ? Buffer.from(r.body.subarray(0, this.opts.maxBodySize)) : r.body;
        bodyTruncated = body.length < size;
      }
    }
    const seq = ++this.seq;
    const attempt = typeof r.attempt === 'number' && Number.isFinite(r.attempt) ? Math.min(Math.max(Math.floor(r.attempt), 0), 2 ** 31 - 1) : null;
    return {
      seq,
      // a key of the caller's (HistoryJournal's) makes a replay of the same event idempotent
      key: typeof r.key === 'string' && r.key !== '' ? r.key.slice(0, COLUMN_LIMITS.eventKey) : this.keyPrefix + seq.toString(36),
      type: r.type,
      nsqd,
      messageId,
      at,
      topic,
      body,
      bodyTruncated,
      size: Math.min(size, 2 ** 31 - 1),
      producer: cut(r.producer, COLUMN_LIMITS.producer),
      deferredUntil: millis(r.deferredUntil as Date | number | undefined) ?? null,
      messageKey: cut(r.messageKey, COLUMN_LIMITS.messageKey),
      channel: cut(r.channel, COLUMN_LIMITS.channel),
      consumer: cut(r.consumer, COLUMN_LIMITS.consumer),
      attempt,
      detail: cut(r.detail, COLUMN_LIMITS.detail),
      ensureMessageAt,
    };
  }

  private enterSpooling(reason: string): void {
    if (!this.spooling) this.logger.warn(`history: spooling events to ${this.opts.spoolPath}: ${reason}`);
    this.spooling = true;
  }

  private tick(): void {
    if (this.queue.length > 0) this.flushUpTo = Math.max(this.flushUpTo, this.seq);
    if (this.spoolBuffer.length > 0) this.kickSpool();
    this.kickDb();
  }

  private settled(target: number): Promise<void> {
    if (this.oldestPending() > target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq: target, resolve }));
  }

  private oldestPending(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const list of [this.inflight, this.appending, this.spoolBuffer, this.queue]) {
      const head = list?.[0];
      if (head !== undefined && head.seq < min) min = head.seq;
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
        if (this.spoolBuffer.length > 0 || this.appending !== undefined) return; // the spool side kicks us after appending
        await this.spool.resetIfReplayed();
        if (this.spool.pendingBytes === 0 && this.spoolBuffer.length === 0 && this.appending === undefined) {
          this.spooling = false;
          this.logger.info('history: spool replayed, writing to the database again');
        }
        continue;
      }
      const head = this.queue[0];
      if (head === undefined) return;
      if (this.queue.length < this.opts.batchSize && head.seq > this.flushUpTo) return;
      let batch: Queued[];
      if (this.queue.length <= this.opts.batchSize) {
        batch = this.queue;
        this.queue = [];
      } else {
        batch = this.queue.splice(0, this.opts.batchSize);
      }
      for (const q of batch) this.queueBytes -= q.body?.length ?? 0;
      if (this.queue.length === 0) this.queueBytes = 0;
      let release = noop;
      this.inflight = batch;
      this.inflightDone = new Promise<void>((resolve) => (release = resolve));
      try {
        await withTimeout(this.write(batch), this.opts.writeTimeout, 'history batch write');
        if (this.abandoned) return;
        this.counters.written += batch.length;
        this.succeeded();
      } catch (err) {
        if (this.abandoned) return;
        this.failed(err);
        this.enterSpooling(`the database write failed: ${errorText(err)}`);
        // the failed batch is the oldest of all: it goes to the spool first
        this.spoolBuffer = batch.concat(this.spoolBuffer, this.queue);
        this.queue = [];
        this.queueBytes = 0;
      } finally {
        this.inflight = undefined;
        this.inflightDone = undefined;
        release();
        this.notify();
      }
      if (this.spooling) this.kickSpool();
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
    const batch: Queued[] = [];
    for (const line of lines) {
      const q = fromLine(line);
      if (q !== undefined) batch.push(q);
      else this.logger.warn(`history: skipping an unreadable spool line (${line.length} bytes)`);
    }
    try {
      if (batch.length > 0) await withTimeout(this.write(batch), this.opts.writeTimeout, 'history replay write');
    } catch (err) {
      this.failed(err);
      return false;
    }
    this.counters.replayed += batch.length;
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

  /**
   * One transaction: the published messages (an upsert of their publish columns, so a replay
   * writes the same values again), the message rows consumer-side records ensure (inserted only
   * where none exists), then every event (INSERT IGNORE on the event key). The
   * inserted events are then announced to the entity subscribers, exactly as InsertQueryBuilder
   * announces its rows, and HistoryEventSubscriber folds them into the summaries before commit.
   */
  private async write(batch: readonly Queued[]): Promise<void> {
    const ds = await this.ready();
    const d = dialectOf(ds);
    const maxBytes = this.opts.maxStatementBytes;
    const messages = new Map<string, Queued>();
    const ensured = new Map<string, Queued>();
    for (const q of batch) {
      if (q.type === 'published') messages.set(`${q.nsqd}\u0000${q.messageId}`, q);
      else if (q.ensureMessageAt !== null) ensured.set(`${q.nsqd}\u0000${q.messageId}`, q);
    }
    const eventMetadata = ds.getMetadata(HistoryEvent);
    await withDatabaseLock(ds, () =>
      ds.transaction(async (em: EntityManager) => {
        const queryRunner = em.queryRunner!;
        for (const rows of statements([...messages.values()], MESSAGE_COLUMNS.length, d.maxParams, maxBytes, (q) => ROW_BYTES + (q.body?.length ?? 0) * d.bodyFactor)) {
          const params: unknown[] = [];
          for (const q of rows) {
            params.push(
              q.nsqd,
              q.messageId,
              q.messageKey,
              q.topic ?? '',
              q.body,
              q.bodyTruncated ? 1 : 0,
              q.size,
              d.time(q.at),
              q.producer,
              d.time(q.deferredUntil),
              q.deferredUntil === null ? 'published' : 'deferred',
              0,
            );
          }
          await queryRunner.query(d.insert('nsq_message', MESSAGE_COLUMNS, rows.length, { conflict: ['nsqd', 'messageId'], update: PUBLISH_COLUMNS }), params);
        }
        // consumer-side rows (ensureMessage) after the publishes: INSERT IGNORE never overwrites a row
        for (const rows of statements([...ensured.values()], MESSAGE_COLUMNS.length, d.maxParams, maxBytes, (q) => ROW_BYTES + (q.body?.length ?? 0) * d.bodyFactor)) {
          const params: unknown[] = [];
          for (const q of rows) {
            params.push(q.nsqd, q.messageId, q.messageKey, q.topic ?? '', q.body, q.bodyTruncated ? 1 : 0, q.size, d.time(q.ensureMessageAt), q.producer, null, 'published', 0);
          }
          await queryRunner.query(d.insert('nsq_message', MESSAGE_COLUMNS, rows.length, { ignore: true }), params);
        }
        for (const rows of statements(batch, EVENT_COLUMNS.length, d.maxParams, maxBytes, (q) => ROW_BYTES + (q.detail?.length ?? 0))) {
          const params: unknown[] = [];
          for (const q of rows) params.push(q.key, q.nsqd, q.messageId, q.topic, q.type, q.channel, q.consumer, q.attempt, d.time(q.at), q.detail);
          await queryRunner.query(d.insert('nsq_message_event', EVENT_COLUMNS, rows.length, { ignore: true }), params);
        }
        for (const q of batch) {
          const entity = { eventKey: q.key, nsqd: q.nsqd, messageId: q.messageId, topic: q.topic, type: q.type, channel: q.channel, consumer: q.consumer, attempt: q.attempt, at: new Date(q.at), detail: q.detail };
          await queryRunner.broadcaster.broadcast('AfterInsert', eventMetadata, entity);
        }
      }),
    );
  }

  // --- the spool side ---------------------------------------------------------------------

  private kickSpool(): void {
    this.spoolPass.kick();
  }

  private async runSpool(): Promise<void> {
    while (this.spoolBuffer.length > 0 && !this.abandoned) {
      // a direct write still in flight is older than anything here: if it fails, it is spooled first
      if (this.inflightDone !== undefined) {
        await this.inflightDone;
        continue;
      }
      const items = this.spoolBuffer;
      this.spoolBuffer = [];
      this.appending = items;
      try {
        await this.spool.append(items.map(toLine).join('\n') + '\n');
        if (this.abandoned) return;
        this.counters.spooled += items.length;
      } catch (err) {
        if (this.abandoned) return;
        this.noteError(err);
        this.logger.error(`history: cannot append to the spool ${this.opts.spoolPath}: ${errorText(err)}`);
        this.spoolBuffer = items.concat(this.spoolBuffer);
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
      if (this.queue.length > 0) {
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
        if ((!this.dbPass.running && !this.spoolPass.running && this.retentionRunning === undefined) || Date.now() >= deadline) resolve();
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
    const left = [...(this.inflight ?? []), ...(this.appending ?? []), ...this.spoolBuffer, ...this.queue].sort((a, b) => a.seq - b.seq);
    this.abandoned = true;
    this.inflight = undefined;
    this.appending = undefined;
    this.spoolBuffer = [];
    this.queue = [];
    this.queueBytes = 0;
    if (left.length > 0) {
      try {
        this.spool.appendSync(left.map(toLine).join('\n') + '\n');
        this.counters.spooled += left.length;
      } catch (err) {
        this.noteError(err);
        this.logger.error(`history: ${left.length} events lost: cannot append to the spool ${this.opts.spoolPath}: ${errorText(err)}`);
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
