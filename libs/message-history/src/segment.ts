import { performance } from 'node:perf_hooks';
import { HISTORY_EVENT_TYPES, type HistoryEventType } from './types.js';

/** Event type ↔ the byte a segment stores it as (the index in HISTORY_EVENT_TYPES). */
export const TYPE_CODE: Readonly<Record<HistoryEventType, number>> = Object.fromEntries(HISTORY_EVENT_TYPES.map((t, i) => [t, i])) as Record<HistoryEventType, number>;
export const CODE_TYPE: readonly HistoryEventType[] = HISTORY_EVENT_TYPES;
export const PUBLISHED = TYPE_CODE.published;

/*
 * An event is one row of ROW bytes in the segment's buffer, read and written through typed views
 * of it (offsets in units of each view's element size), so that queuing an event writes one or two
 * cache lines, not a few in each of several column arrays:
 *
 *   bytes  0..7   at (float64)
 *          8..11  attempt (int32)    12..15 size (int32)
 *         16..27  string numbers (uint16 x 6: nsqd, topic, channel, consumer, producer, detail),
 *                 a string's index in the segment's table + 1, 0 = none
 *         28      type   29 truncated   30 id length (ID_ELSEWHERE: in otherIds)
 *         32..47  the message id (latin1)
 *         48..59  the body: its chunk (an index into the segment's list of arena chunks, int32,
 *                 -1: no body), offset and length in it
 */
const ROW = 64;
const F64_AT = 0;
const I32_ATTEMPT = 2;
const I32_SIZE = 3;
const I32_BODY_CHUNK = 12;
const I32_BODY_OFFSET = 13;
const I32_BODY_LENGTH = 14;
/** Bodies are copied into chunks of this size, shared by consecutive segments; larger ones get their own. */
const ARENA_CHUNK = 256 * 1024;
const ARENA_OWN = ARENA_CHUNK / 4;

/**
 * Where bodies are copied to: the current chunk, filled from the start and replaced when full.
 * A chunk lives as long as a segment holding one of its bodies (see chunkRefs), so chunks go
 * roughly in order: one allocation per 256 KiB of bodies, never a copy of bodies already stored.
 */
let arenaChunk: Buffer | undefined;
let arenaUsed = 0;
/** Per arena chunk: the segments holding a body in it, + 1 while it is the current chunk. */
const chunkRefs = new Map<Buffer, number>();

/**
 * Memory of written segments (row buffers and arena chunks), kept for the next ones. Fresh memory
 * costs a page fault per 4 KiB on first touch, which in a VM is several µs: queuing a burst into
 * new pages cost the broker as much CPU as all the rest of the recording. Reused pages cost
 * nothing, so the queue keeps what it grew to, up to `maxBytes`, and lets it go after `idleMs`
 * without a burst that needed it.
 */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private bytes = 0;
  private lastTaken = 0;

  constructor(
    public maxBytes: number,
    public idleMs: number,
  ) {}

  /** Bytes held for reuse. */
  get size(): number {
    return this.bytes;
  }

  /** A buffer of `byteLength` bytes (contents undefined): a pooled one if there is one. */
  take(byteLength: number): ArrayBuffer {
    this.lastTaken = performance.now();
    const pooled = this.free.get(byteLength)?.pop();
    if (pooled === undefined) return Buffer.allocUnsafeSlow(byteLength).buffer as ArrayBuffer;
    this.bytes -= byteLength;
    return pooled;
  }

  /** Gives back a buffer nothing reads or writes any more. */
  give(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (this.bytes + size > this.maxBytes) return;
    let list = this.free.get(size);
    if (list === undefined) this.free.set(size, (list = []));
    list.push(buffer);
    this.bytes += size;
  }

  /** Lets everything go when nothing was taken for `idleMs` (called now and then, by a recorder's timer). */
  trimIdle(now = performance.now()): void {
    if (this.bytes > 0 && now - this.lastTaken >= this.idleMs) this.clear();
  }

  clear(): void {
    this.free.clear();
    this.bytes = 0;
  }
}

/** The pool every Segment takes its memory from (128 MiB at most, let go after 60 s unused). */
export const segmentMemory = new BufferPool(128 * 1024 * 1024, 60_000);

function releaseChunk(chunk: Buffer): void {
  const refs = chunkRefs.get(chunk)! - 1;
  if (refs > 0) {
    chunkRefs.set(chunk, refs);
  } else {
    chunkRefs.delete(chunk);
    segmentMemory.give(chunk.buffer as ArrayBuffer);
  }
}
const U16_STRINGS = 8;
const U8_TYPE = 28;
const U8_TRUNCATED = 29;
const U8_ID_LENGTH = 30;
const U8_ID = 32;
const NSQD = 0;
const TOPIC = 1;
const CHANNEL = 2;
const CONSUMER = 3;
const PRODUCER = 4;
const DETAIL = 5;
const STRINGS = 6;
// the rare Float64Array columns (stride EXTRAS), made on first use
const DEFERRED_UNTIL = 0;
const ENSURE_AT = 1;
const EXTRAS = 2;
/** nsqd's ids are 16 hex characters: kept as bytes, not as strings the garbage collector must keep. */
const ID_BYTES = 16;
const ID_ELSEWHERE = 255;
/** A segment's strings are numbered in 16 bits: a table this full starts keeping strings per event. */
const MAX_STRINGS = 0xfffe;

/**
 * Up to `capacity` queued events, column by column in typed arrays (about 60 bytes an event, in
 * one allocation): the strings that repeat (nsqd, topic, channel, consumer, producer, detail) are
 * kept once per segment and referred to by number, message ids inline as bytes (keys, and ids
 * that do not fit, in plain arrays), bodies copied into shared arena chunks. Queuing an event
 * keeps no object alive, not even the caller's body (a Buffer object per message, which during a
 * burst would all be promoted to the old generation), so a deep queue costs the garbage collector
 * a few large arrays, not hundreds of thousands of objects.
 *
 * Events of a segment have consecutive sequence numbers from `seq0`; an event's key is the
 * recorder's key prefix + seq in base 36 unless it came with one (a caller's, or the one it was
 * spooled with: a segment read back from the spool has `seq0` 0 and a key for every event).
 *
 * Numbers use -1 for "none" (attempt, deferredUntil, ensureMessageAt; times are >= 0).
 */
export class Segment {
  n = 0;
  /** Body bytes held. */
  bytes = 0;
  /** Taken for a write or the spool: no more appends. */
  sealed = false;
  /** performance.now() when the segment was made: how fast segments fill tells a burst. */
  readonly createdAt = performance.now();
  readonly capacity: number;
  private readonly f64: Float64Array;
  private readonly i32: Int32Array;
  private readonly u16: Uint16Array;
  private readonly u8: Uint8Array;
  private extras: Float64Array | undefined;
  /** Ids that do not fit ID_BYTES latin1 characters (client-side keys): rare. */
  private readonly otherIds: string[] = [];
  /** The ids as strings, made as they are first read (see readIds). */
  private ids: string[] | undefined;
  private readonly messageKeys: Array<string | null> = [];
  private readonly strings: string[] = [];
  /** Strings past a full table, by event and column (rare). */
  private readonly overflow: string[] = [];
  private readonly index = new Map<string, number>();
  /** Per string column: the last string stored and its number + 1 (most events repeat the previous one). */
  private readonly lastString: Array<string | null> = new Array<string | null>(STRINGS).fill(null);
  private readonly lastNumber = new Int32Array(STRINGS);
  /** The arena chunks (or own buffers) this segment's bodies are in (see I32_BODY_CHUNK). */
  private readonly chunks: Buffer[] = [];
  /** Keys events came with (holey: most have none). */
  private readonly keys: Array<string | undefined> = [];
  /** recycle() gave its memory back: nothing may read it any more. */
  private recycled = false;

  constructor(
    readonly seq0: number,
    capacity: number,
  ) {
    const cap = Math.max(1, capacity);
    this.capacity = cap;
    // not zeroed: every field of a row is written when the event is pushed
    const buffer = segmentMemory.take(cap * ROW);
    this.f64 = new Float64Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u8 = new Uint8Array(buffer);
  }

  /** The sequence number the next event must have to join this segment. */
  get nextSeq(): number {
    return this.seq0 + this.n;
  }

  get full(): boolean {
    return this.n >= this.capacity;
  }

  push(
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
    const i = this.n;
    const r = i * ROW;
    const s = (r >> 1) + U16_STRINGS;
    const u16 = this.u16;
    u16[s + NSQD] = this.number(NSQD, nsqd);
    u16[s + TOPIC] = this.number(TOPIC, topic);
    u16[s + CHANNEL] = this.number(CHANNEL, channel);
    u16[s + CONSUMER] = this.number(CONSUMER, consumer);
    u16[s + PRODUCER] = this.number(PRODUCER, producer);
    u16[s + DETAIL] = this.number(DETAIL, detail);
    this.f64[(r >> 3) + F64_AT] = at;
    this.i32[(r >> 2) + I32_ATTEMPT] = attempt;
    this.i32[(r >> 2) + I32_SIZE] = size;
    if (body !== null) this.storeBody(r, body, bodyLength);
    else this.i32[(r >> 2) + I32_BODY_CHUNK] = -1;
    if (deferredUntil >= 0 || ensureMessageAt >= 0 || this.extras !== undefined) {
      const extras = (this.extras ??= new Float64Array(this.capacity * EXTRAS).fill(-1));
      extras[i * EXTRAS + DEFERRED_UNTIL] = deferredUntil;
      extras[i * EXTRAS + ENSURE_AT] = ensureMessageAt;
    }
    const u8 = this.u8;
    u8[r + U8_TYPE] = type;
    u8[r + U8_TRUNCATED] = truncated ? 1 : 0;
    u8[r + U8_ID_LENGTH] = this.storeId(i, r, messageId);
    // message keys are rare (envelope bodies, client-side records): the array stays holey otherwise
    if (messageKey !== null) this.messageKeys[i] = messageKey;
    if (key !== null) this.keys[i] = key;
    this.n = i + 1;
  }

  /** The common case of a publish: push() with its body whole, no deferral, no message key. */
  pushPublish(nsqd: string, messageId: string, at: number, topic: string, body: Buffer, producer: string | null, key?: string): void {
    const i = this.n;
    const r = i * ROW;
    const s = (r >> 1) + U16_STRINGS;
    const u16 = this.u16;
    const last = this.lastString;
    const lastNumber = this.lastNumber;
    u16[s + NSQD] = nsqd === last[NSQD] ? lastNumber[NSQD]! : this.number(NSQD, nsqd);
    u16[s + TOPIC] = topic === last[TOPIC] ? lastNumber[TOPIC]! : this.number(TOPIC, topic);
    u16[s + CHANNEL] = 0;
    u16[s + CONSUMER] = 0;
    u16[s + PRODUCER] = producer === last[PRODUCER] ? lastNumber[PRODUCER]! : this.number(PRODUCER, producer);
    u16[s + DETAIL] = 0;
    this.f64[(r >> 3) + F64_AT] = at;
    this.i32[(r >> 2) + I32_ATTEMPT] = -1;
    this.i32[(r >> 2) + I32_SIZE] = body.length;
    this.storeBody(r, body, body.length);
    if (this.extras !== undefined) {
      this.extras[i * EXTRAS + DEFERRED_UNTIL] = -1;
      this.extras[i * EXTRAS + ENSURE_AT] = -1;
    }
    const u8 = this.u8;
    u8[r + U8_TYPE] = PUBLISHED;
    u8[r + U8_TRUNCATED] = 0;
    u8[r + U8_ID_LENGTH] = this.storeId(i, r, messageId);
    if (key !== undefined) this.keys[i] = key;
    this.n = i + 1;
  }

  /**
   * The common case, an event of a delivery (delivered, finished, timed out; requeued with its
   * detail): push() without the columns it never has.
   */
  pushDelivery(type: number, nsqd: string, messageId: string, at: number, topic: string, channel: string, consumer: string | null, attempt: number, detail: string | null, key?: string): void {
    const i = this.n;
    const r = i * ROW;
    const s = (r >> 1) + U16_STRINGS;
    const u16 = this.u16;
    const last = this.lastString;
    const lastNumber = this.lastNumber;
    u16[s + NSQD] = nsqd === last[NSQD] ? lastNumber[NSQD]! : this.number(NSQD, nsqd);
    u16[s + TOPIC] = topic === last[TOPIC] ? lastNumber[TOPIC]! : this.number(TOPIC, topic);
    u16[s + CHANNEL] = channel === last[CHANNEL] ? lastNumber[CHANNEL]! : this.number(CHANNEL, channel);
    u16[s + CONSUMER] = consumer === last[CONSUMER] ? lastNumber[CONSUMER]! : this.number(CONSUMER, consumer);
    u16[s + PRODUCER] = 0;
    u16[s + DETAIL] = detail === null ? 0 : this.number(DETAIL, detail);
    this.f64[(r >> 3) + F64_AT] = at;
    this.i32[(r >> 2) + I32_ATTEMPT] = attempt;
    this.i32[(r >> 2) + I32_SIZE] = 0;
    this.i32[(r >> 2) + I32_BODY_CHUNK] = -1;
    if (this.extras !== undefined) {
      this.extras[i * EXTRAS + DEFERRED_UNTIL] = -1;
      this.extras[i * EXTRAS + ENSURE_AT] = -1;
    }
    const u8 = this.u8;
    u8[r + U8_TYPE] = type;
    u8[r + U8_TRUNCATED] = 0;
    u8[r + U8_ID_LENGTH] = this.storeId(i, r, messageId);
    if (key !== undefined) this.keys[i] = key;
    this.n = i + 1;
  }

  type(i: number): number {
    return this.u8[i * ROW + U8_TYPE]!;
  }

  truncated(i: number): number {
    return this.u8[i * ROW + U8_TRUNCATED]!;
  }

  at(i: number): number {
    return this.f64[((i * ROW) >> 3) + F64_AT]!;
  }

  deferredUntil(i: number): number {
    return this.extras === undefined ? -1 : this.extras[i * EXTRAS + DEFERRED_UNTIL]!;
  }

  ensureMessageAt(i: number): number {
    return this.extras === undefined ? -1 : this.extras[i * EXTRAS + ENSURE_AT]!;
  }

  attempt(i: number): number {
    return this.i32[((i * ROW) >> 2) + I32_ATTEMPT]!;
  }

  size(i: number): number {
    return this.i32[((i * ROW) >> 2) + I32_SIZE]!;
  }

  messageId(i: number): string {
    // made in runs, as the writer (or the lookahead, on a segment still filling) asks
    if (this.ids === undefined || this.ids.length <= i) this.readIds();
    return this.ids![i]!;
  }

  /** Stores id i in its row if it fits; returns its length, or ID_ELSEWHERE. */
  private storeId(i: number, r: number, id: string): number {
    const length = id.length;
    if (length <= ID_BYTES) {
      const u8 = this.u8;
      const o = r + U8_ID;
      let k = 0;
      for (; k < length; k++) {
        const c = id.charCodeAt(k);
        if (c > 0xff) break;
        u8[o + k] = c;
      }
      if (k === length) return length;
    }
    this.otherIds[i] = id;
    return ID_ELSEWHERE;
  }

  /** Extends `ids` with the ids of the events appended since it was last extended. */
  private readIds(): void {
    const ids = (this.ids ??= []);
    const view = Buffer.from(this.u8.buffer, this.u8.byteOffset, this.u8.byteLength);
    for (let i = ids.length; i < this.n; i++) {
      const r = i * ROW;
      const length = this.u8[r + U8_ID_LENGTH]!;
      ids.push(length === ID_ELSEWHERE ? this.otherIds[i]! : view.toString('latin1', r + U8_ID, r + U8_ID + length));
    }
  }


  messageKey(i: number): string | null {
    return this.messageKeys[i] ?? null;
  }

  nsqd(i: number): string {
    return this.string(i, NSQD)!;
  }

  topic(i: number): string | null {
    return this.string(i, TOPIC);
  }

  channel(i: number): string | null {
    return this.string(i, CHANNEL);
  }

  consumer(i: number): string | null {
    return this.string(i, CONSUMER);
  }

  producer(i: number): string | null {
    return this.string(i, PRODUCER);
  }

  detail(i: number): string | null {
    return this.string(i, DETAIL);
  }

  /** Body i, or null. */
  body(i: number): Buffer | null {
    const r = (i * ROW) >> 2;
    const chunk = this.i32[r + I32_BODY_CHUNK]!;
    if (chunk < 0) return null;
    const offset = this.i32[r + I32_BODY_OFFSET]!;
    return this.chunks[chunk]!.subarray(offset, offset + this.i32[r + I32_BODY_LENGTH]!);
  }

  /** Copies the first `length` bytes of `body` into the arena (see ARENA_CHUNK), for the row at byte `r`. */
  private storeBody(r: number, body: Uint8Array, length: number): void {
    let chunk: Buffer;
    let offset: number;
    if (length > ARENA_OWN) {
      chunk = Buffer.allocUnsafeSlow(length);
      offset = 0;
    } else {
      if (arenaChunk === undefined || arenaUsed + length > ARENA_CHUNK) {
        if (arenaChunk !== undefined) releaseChunk(arenaChunk);
        arenaChunk = Buffer.from(segmentMemory.take(ARENA_CHUNK));
        chunkRefs.set(arenaChunk, 1);
        arenaUsed = 0;
      }
      chunk = arenaChunk;
      offset = arenaUsed;
      arenaUsed += length;
    }
    chunk.set(length === body.length ? body : body.subarray(0, length), offset);
    const chunks = this.chunks;
    let index = chunks.length - 1;
    if (index < 0 || chunks[index] !== chunk) {
      index = chunks.push(chunk) - 1;
      const refs = chunkRefs.get(chunk);
      if (refs !== undefined) chunkRefs.set(chunk, refs + 1);
    }
    const q = r >> 2;
    this.i32[q + I32_BODY_CHUNK] = index;
    this.i32[q + I32_BODY_OFFSET] = offset;
    this.i32[q + I32_BODY_LENGTH] = length;
    this.bytes += length;
  }

  /**
   * Gives the segment's memory (its rows, and the arena chunks no other segment holds a body in)
   * back for reuse: only once nothing will read the segment again, its events written.
   */
  recycle(): void {
    if (this.recycled) return;
    this.recycled = true;
    this.sealed = true;
    for (const chunk of this.chunks) if (chunkRefs.has(chunk)) releaseChunk(chunk);
    this.chunks.length = 0;
    segmentMemory.give(this.u8.buffer as ArrayBuffer);
  }

  key(i: number, prefix: string): string {
    return this.keys[i] ?? prefix + (this.seq0 + i).toString(36);
  }

  private string(i: number, column: number): string | null {
    const number = this.u16[((i * ROW) >> 1) + U16_STRINGS + column]!;
    if (number === 0) return null;
    return number > MAX_STRINGS ? this.overflow[i * STRINGS + column]! : this.strings[number - 1]!;
  }

  /** A string's number + 1 in the segment's table (0 for null), adding it if new. */
  private number(column: number, value: string | null): number {
    if (value === null) return 0;
    if (value === this.lastString[column]) return this.lastNumber[column]!;
    let number = this.index.get(value);
    if (number === undefined) {
      if (this.strings.length >= MAX_STRINGS) {
        // a table full of distinct strings (a detail per event, say): this one is kept per event
        this.overflow[this.n * STRINGS + column] = value;
        return MAX_STRINGS + 1;
      }
      this.strings.push(value);
      number = this.strings.length;
      this.index.set(value, number);
    }
    this.lastString[column] = value;
    this.lastNumber[column] = number;
    return number;
  }
}

/** Events in a list of segments. */
export function countOf(segments: readonly Segment[] | undefined): number {
  if (segments === undefined) return 0;
  let n = 0;
  for (const s of segments) n += s.n;
  return n;
}

// --- spool lines --------------------------------------------------------------------------------

/** One event as a spool line (JSON; the format spools have always had, so old spools replay). */
export function toLine(s: Segment, i: number, keyPrefix: string): string {
  const body = s.body(i);
  const attempt = s.attempt(i);
  const deferredUntil = s.deferredUntil(i);
  const ensureMessageAt = s.ensureMessageAt(i);
  return JSON.stringify({
    k: s.key(i, keyPrefix),
    t: CODE_TYPE[s.type(i)],
    n: s.nsqd(i),
    m: s.messageId(i),
    a: s.at(i),
    tp: s.topic(i),
    b: body === null ? null : body.toString('base64'),
    bt: s.truncated(i) === 1,
    s: s.size(i),
    p: s.producer(i),
    d: deferredUntil < 0 ? null : deferredUntil,
    mk: s.messageKey(i),
    c: s.channel(i),
    cs: s.consumer(i),
    at: attempt < 0 ? null : attempt,
    dt: s.detail(i),
    em: ensureMessageAt < 0 ? undefined : ensureMessageAt,
  });
}

export function toLines(segments: readonly Segment[], keyPrefix: string): string {
  const lines: string[] = [];
  for (const s of segments) for (let i = 0; i < s.n; i++) lines.push(toLine(s, i, keyPrefix));
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** Appends the event of a spool line, with its key, to `s` (a segment with room); false when the line is unreadable. */
export function fromLine(s: Segment, line: string): boolean {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return false;
  }
  if (o === null || typeof o !== 'object') return false;
  const type = typeof o.t === 'string' ? (TYPE_CODE as Record<string, number | undefined>)[o.t] : undefined;
  if (typeof o.k !== 'string' || type === undefined || typeof o.n !== 'string' || typeof o.m !== 'string' || typeof o.a !== 'number') return false;
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const num = (v: unknown, none: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : none);
  const body = typeof o.b === 'string' ? Buffer.from(o.b, 'base64') : null;
  s.push(
    type,
    o.n,
    o.m,
    o.a,
    str(o.tp),
    str(o.c),
    str(o.cs),
    num(o.at, -1),
    str(o.dt),
    body,
    body?.length ?? 0,
    o.bt === true,
    num(o.s, 0),
    str(o.p),
    num(o.d, -1),
    str(o.mk),
    num(o.em, -1),
    o.k,
  );
  return true;
}
