import { CODE_TYPE, PUBLISHED, type Segment, TYPE_CODE } from './segment.js';
import { phaseOf, statusOf, type SummaryTimes } from './summary.js';
import { HISTORY_STATUSES } from './types.js';
import { type ChannelFold, FoldMap, type MessageFold, newFold, notePublish } from './writer.js';

/**
 * The summaries of everything queued, folded ahead of the writes. When the database is behind, a
 * message's later events (its delivery, its FIN) are usually queued by the time the batch with its
 * publish is written: the message and channel rows are then written once with their summary so
 * far, and the later batches only insert their event rows, instead of updating the same rows
 * again for each event. Merging is idempotent, so this changes no result, only how often a row
 * is written.
 *
 * Batches may be written concurrently: each gets its own plan (which messages it writes, from
 * which fold), the marks are set only once a batch has committed, and everything is forgotten
 * when a write fails (its batch and all later events go to the spool and are replayed with their
 * own summaries).
 *
 * The folds live in typed arrays (a FoldTable), not in an object per message: a backlog of
 * hundreds of thousands of messages is folded ahead, and as objects (a summary's times are heap
 * numbers) it was some 16 objects a message that the garbage collector copied out of the young
 * generation and later marked, on the delivery path's thread. What stays on the heap per message
 * is its id string and its map entry.
 */

// a summary's fields, at its base in a Float64Array (status as an index into HISTORY_STATUSES)
const S_STATUS = 0;
const S_ATTEMPTS = 1;
const S_LAST = 2;
const S_FINISHED = 3;
const S_DEAD = 4;
const S_FIRST_DELIVERED = 5;
const SUMMARY = 6;

// a message slot: its fold's own fields, then its summary
const M_FIRST_AT = 0;
const M_LAST_SEQ = 1;
const M_APPLIED = 2;
/** Its first channel's slot, -1 for none. */
const M_CHANNEL = 3;
const M_SUMMARY = 4;
const M_STRIDE = M_SUMMARY + SUMMARY;

// a channel slot: the next channel of the same message (-1 for none), then its summary
const C_NEXT = 0;
const C_SUMMARY = 1;
const C_STRIDE = C_SUMMARY + SUMMARY;

const STATUS_PHASE = HISTORY_STATUSES.map(phaseOf);
const TYPE_STATUS = CODE_TYPE.map((t) => HISTORY_STATUSES.indexOf(statusOf(t)));
const DEFERRED_STATUS = HISTORY_STATUSES.indexOf('deferred');
const PUBLISHED_STATUS = HISTORY_STATUSES.indexOf('published');
const FINISHED = TYPE_CODE.finished;
const DEAD_LETTERED = TYPE_CODE.dead_lettered;
const DELIVERED = TYPE_CODE.delivered;
const CONSUMED = TYPE_CODE.consumed;

const INITIAL_SLOTS = 1024;

function clearSummary(f: Float64Array, b: number): void {
  f[b + S_STATUS] = PUBLISHED_STATUS;
  f[b + S_ATTEMPTS] = 0;
  f[b + S_LAST] = -1;
  f[b + S_FINISHED] = -1;
  f[b + S_DEAD] = -1;
  f[b + S_FIRST_DELIVERED] = -1;
}

/** mergeEventTimes (./summary.ts) on a summary at `b` of `f`, with the event's type code. */
function mergeCode(f: Float64Array, b: number, code: number, at: number, attempt: number, deferredPublish: boolean): void {
  const status = deferredPublish && code === PUBLISHED ? DEFERRED_STATUS : TYPE_STATUS[code]!;
  const a = attempt < 0 ? 0 : attempt;
  const last = f[b + S_LAST]!;
  const attempts = f[b + S_ATTEMPTS]!;
  const later = last < 0 || (at !== last ? at > last : a !== attempts ? a > attempts : STATUS_PHASE[status]! >= STATUS_PHASE[f[b + S_STATUS]!]!);
  if (later) f[b + S_STATUS] = status;
  if (a > attempts) f[b + S_ATTEMPTS] = a;
  if (at > last) f[b + S_LAST] = at;
  if (code === FINISHED) {
    if (at > f[b + S_FINISHED]!) f[b + S_FINISHED] = at;
  } else if (code === DEAD_LETTERED) {
    if (at > f[b + S_DEAD]!) f[b + S_DEAD] = at;
  } else if (code === DELIVERED || code === CONSUMED) {
    const first = f[b + S_FIRST_DELIVERED]!;
    if (first < 0 || at < first) f[b + S_FIRST_DELIVERED] = at;
  }
}

function summaryAt(f: Float64Array, b: number): SummaryTimes {
  return {
    status: HISTORY_STATUSES[f[b + S_STATUS]!]!,
    attempts: f[b + S_ATTEMPTS]!,
    lastEventAt: f[b + S_LAST]!,
    finishedAt: f[b + S_FINISHED]!,
    deadLetteredAt: f[b + S_DEAD]!,
    firstDeliveredAt: f[b + S_FIRST_DELIVERED]!,
  };
}

/** Fixed-size records in one Float64Array, with a free list; grows by doubling, never shrinks. */
class Slots {
  data: Float64Array;
  private free: Int32Array;
  private freeCount = 0;
  /** Slots ever handed out (the free list holds those given back). */
  private top = 0;

  constructor(stride: number, capacity: number) {
    this.data = new Float64Array(capacity * stride);
    this.free = new Int32Array(capacity);
  }

  get capacity(): number {
    return this.free.length;
  }

  take(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount]!;
    if (this.top === this.capacity) {
      const data = new Float64Array(this.data.length * 2);
      data.set(this.data);
      this.data = data;
      const free = new Int32Array(this.free.length * 2);
      free.set(this.free);
      this.free = free;
    }
    return this.top++;
  }

  give(slot: number): void {
    this.free[this.freeCount++] = slot;
  }
}

/**
 * One generation of folds: message slots (keyed by nsqd and id) with their summaries, and their
 * channels' summaries as a list of channel slots. A plan's view names its message by slot and
 * the slot's generation, so a view whose message was forgotten (and its slot reused) sees that.
 */
export class FoldTable {
  private readonly messages = new Slots(M_STRIDE, INITIAL_SLOTS);
  private readonly channels = new Slots(C_STRIDE, INITIAL_SLOTS);
  private readonly index = new FoldMap<number>();
  private gens = new Uint32Array(INITIAL_SLOTS);
  /** Per slot, the plan that last made a view of it (see planMark), and the view's index in that plan. */
  private planMarks = new Uint32Array(INITIAL_SLOTS);
  private planIndex = new Int32Array(INITIAL_SLOTS);
  private planMark = 0;
  /** Per segment, the slot of each event folded (-1: not folded), so a plan need not look them up again. */
  private readonly segmentSlots = new WeakMap<Segment, Int32Array>();
  private nsqds: string[] = [];
  private ids: string[] = [];
  private topics: Array<string | null> = [];
  private channelNames: string[] = [];
  size = 0;

  /** Message slots it has room for (it grows to the largest backlog folded, and stays there). */
  get capacity(): number {
    return this.messages.capacity;
  }

  slotOf(nsqd: string, messageId: string): number | undefined {
    return this.index.get(nsqd, messageId);
  }

  add(nsqd: string, messageId: string, topic: string | null, at: number): number {
    const slot = this.messages.take();
    if (slot >= this.gens.length) {
      const capacity = this.messages.capacity;
      const gens = new Uint32Array(capacity);
      gens.set(this.gens);
      this.gens = gens;
      this.planMarks = new Uint32Array(capacity);
      this.planIndex = new Int32Array(capacity);
    }
    const f = this.messages.data;
    const b = slot * M_STRIDE;
    f[b + M_FIRST_AT] = at;
    f[b + M_LAST_SEQ] = 0;
    f[b + M_APPLIED] = 0;
    f[b + M_CHANNEL] = -1;
    clearSummary(f, b + M_SUMMARY);
    this.nsqds[slot] = nsqd;
    this.ids[slot] = messageId;
    this.topics[slot] = topic;
    this.index.set(nsqd, messageId, slot);
    this.size++;
    return slot;
  }

  /** Folds event `i` of `seg` into the message at `slot`. */
  fold(slot: number, seg: Segment, i: number): void {
    const code = seg.type(i);
    const at = seg.at(i);
    const attempt = seg.attempt(i);
    const f = this.messages.data;
    const b = slot * M_STRIDE;
    if (this.topics[slot] === null) this.topics[slot] = seg.topic(i);
    if (at < f[b + M_FIRST_AT]!) f[b + M_FIRST_AT] = at;
    mergeCode(f, b + M_SUMMARY, code, at, attempt, code === PUBLISHED && seg.deferredUntil(i) >= 0);
    f[b + M_LAST_SEQ] = seg.seq0 + i;
    const channel = seg.channel(i);
    if (channel === null) return;
    let c = f[b + M_CHANNEL]!;
    let tail = -1;
    while (c >= 0 && this.channelNames[c] !== channel) {
      tail = c;
      c = this.channels.data[c * C_STRIDE + C_NEXT]!;
    }
    if (c < 0) {
      c = this.channels.take();
      const cf = this.channels.data;
      cf[c * C_STRIDE + C_NEXT] = -1;
      clearSummary(cf, c * C_STRIDE + C_SUMMARY);
      this.channelNames[c] = channel;
      if (tail < 0) this.messages.data[b + M_CHANNEL] = c;
      else cf[tail * C_STRIDE + C_NEXT] = c;
    }
    mergeCode(this.channels.data, c * C_STRIDE + C_SUMMARY, code, at, attempt, false);
  }

  /** Where the slots of `seg`'s events are kept as they are folded. */
  slotsOf(seg: Segment): Int32Array {
    let slots = this.segmentSlots.get(seg);
    if (slots === undefined) {
      slots = new Int32Array(seg.capacity).fill(-1);
      this.segmentSlots.set(seg, slots);
    }
    return slots;
  }

  /** The slot event `i` of `seg` was folded into. */
  slotOfEvent(seg: Segment, i: number): number {
    // the slot it was folded into, unless that message was forgotten since and the slot reused
    // (not in the recorder, which plans each batch once, in order, before a later one commits)
    const slot = this.segmentSlots.get(seg)?.[i] ?? -1;
    if (slot >= 0 && this.ids[slot] === seg.messageId(i) && this.nsqds[slot] === seg.nsqd(i)) return slot;
    const found = this.slotOf(seg.nsqd(i), seg.messageId(i));
    if (found === undefined) throw new Error('history: a queued event was not folded');
    return found;
  }

  /**
   * The views of `batch`'s messages (see view), one per message, in the order of their first event;
   * `each` sees every event with its message's view.
   */
  views(batch: readonly Segment[], each: (v: MessageFold, seg: Segment, i: number) => void): MessageFold[] {
    const mark = ++this.planMark;
    const planned: MessageFold[] = [];
    for (const seg of batch) {
      for (let i = 0; i < seg.n; i++) {
        const slot = this.slotOfEvent(seg, i);
        let v: MessageFold;
        if (this.planMarks[slot] === mark) v = planned[this.planIndex[slot]!]!;
        else {
          v = this.view(slot);
          this.planMarks[slot] = mark;
          this.planIndex[slot] = planned.length;
          planned.push(v);
        }
        each(v, seg, i);
      }
    }
    return planned;
  }

  /** A view of the message at `slot` for a plan: its fold so far, copied out. */
  view(slot: number): MessageFold {
    const f = this.messages.data;
    const b = slot * M_STRIDE;
    const v = newFold(this.nsqds[slot]!, this.ids[slot]!, this.topics[slot]!, f[b + M_FIRST_AT]!);
    v.s = summaryAt(f, b + M_SUMMARY);
    v.channels = this.channelsOf(slot);
    v.table = this;
    v.slot = slot;
    v.gen = this.gens[slot]!;
    return v;
  }

  /** Whether the view's message is still the one at its slot. */
  holds(v: MessageFold): boolean {
    return v.table === this && this.gens[v.slot] === v.gen;
  }

  appliedThrough(slot: number): number {
    return this.messages.data[slot * M_STRIDE + M_APPLIED]!;
  }

  /**
   * Brings a view up to its fold as it is now (rows about to be built from it); when the message
   * was forgotten since, the view keeps the fold it was planned with (a subset of what a committed
   * batch wrote, and merging is idempotent) and marks nothing written.
   */
  refresh(v: MessageFold): void {
    if (!this.holds(v)) {
      v.writtenThrough = -1;
      return;
    }
    const f = this.messages.data;
    const b = v.slot * M_STRIDE;
    v.topic = this.topics[v.slot]!;
    v.firstAt = f[b + M_FIRST_AT]!;
    v.s = summaryAt(f, b + M_SUMMARY);
    v.channels = this.channelsOf(v.slot);
    v.writtenThrough = f[b + M_LAST_SEQ]!;
  }

  /** After the view's batch committed: marks what its rows hold, and forgets a message nothing queued refers to. */
  committed(v: MessageFold): void {
    if (!this.holds(v)) return;
    const f = this.messages.data;
    const b = v.slot * M_STRIDE;
    if (v.writtenThrough > f[b + M_APPLIED]!) f[b + M_APPLIED] = v.writtenThrough;
    if (v.batchLastSeq >= f[b + M_LAST_SEQ]!) this.remove(v.slot);
  }

  private remove(slot: number): void {
    this.index.delete(this.nsqds[slot]!, this.ids[slot]!);
    let c = this.messages.data[slot * M_STRIDE + M_CHANNEL]!;
    while (c >= 0) {
      const next = this.channels.data[c * C_STRIDE + C_NEXT]!;
      this.channels.give(c);
      this.channelNames[c] = '';
      c = next;
    }
    this.ids[slot] = '';
    this.topics[slot] = null;
    this.gens[slot]!++;
    this.messages.give(slot);
    this.size--;
  }

  private channelsOf(slot: number): ChannelFold[] | undefined {
    let c = this.messages.data[slot * M_STRIDE + M_CHANNEL]!;
    if (c < 0) return undefined;
    const out: ChannelFold[] = [];
    const cf = this.channels.data;
    while (c >= 0) {
      out.push({ channel: this.channelNames[c]!, s: summaryAt(cf, c * C_STRIDE + C_SUMMARY) });
      c = cf[c * C_STRIDE + C_NEXT]!;
    }
    return out;
  }
}

/** How long a grown table may stay empty before trimIdle lets its memory go. */
const TRIM_AFTER_MS = 60_000;

export class Lookahead {
  private table = new FoldTable();
  /** Events up to this sequence number are folded in. */
  private through = 0;
  /** When the table was last seen empty, in a row (see trimIdle). */
  private emptySince: number | undefined;

  get size(): number {
    return this.table.size;
  }

  get capacity(): number {
    return this.table.capacity;
  }

  /**
   * Lets the memory of a table grown by a backlog go once it has been empty for a minute (the
   * recorder calls this on its timer): kept while backlogs come and go, since memory touched
   * afresh costs a page fault per 4 KiB. Empty, no folded event waits for a plan (a message is
   * forgotten only once its last folded event is written), and views planned from the old table
   * keep reading it.
   */
  trimIdle(now = performance.now()): void {
    if (this.table.size > 0 || this.table.capacity <= INITIAL_SLOTS) {
      this.emptySince = undefined;
      return;
    }
    this.emptySince ??= now;
    if (now - this.emptySince < TRIM_AFTER_MS) return;
    this.table = new FoldTable();
    this.emptySince = undefined;
  }

  /** Folds the events of `segments` (in sequence order) not folded yet, at most `budget` of them. */
  extend(segments: readonly Segment[], budget = Number.POSITIVE_INFINITY): void {
    const table = this.table;
    for (const seg of segments) {
      if (seg.seq0 + seg.n - 1 <= this.through) continue;
      const from = Math.max(0, this.through + 1 - seg.seq0);
      const to = Math.min(seg.n, from + budget);
      budget -= to - from;
      const slots = table.slotsOf(seg);
      for (let i = from; i < to; i++) {
        const nsqd = seg.nsqd(i);
        const messageId = seg.messageId(i);
        const slot = table.slotOf(nsqd, messageId) ?? table.add(nsqd, messageId, seg.topic(i), seg.at(i));
        table.fold(slot, seg, i);
        slots[i] = slot;
      }
      this.through = seg.seq0 + to - 1;
      if (budget <= 0) return;
    }
  }

  /**
   * What `batch` (whose events must be folded in) writes: per message, its fold so far, or `skip`
   * where a committed batch already wrote it past this batch's events. Rows built later take the
   * fold as it is then (writeSummaries calls `refresh`).
   */
  plan(batch: readonly Segment[]): MessageFold[] {
    const table = this.table;
    const planned = table.views(batch, (v, seg, i) => {
      v.batchLastSeq = seg.seq0 + i;
      notePublish(v, seg, i);
    });
    for (const v of planned) v.skip = v.publish === undefined && v.ensure === undefined && table.appliedThrough(v.slot) >= v.batchLastSeq;
    return planned;
  }

  /** After a planned batch committed: the rows it wrote hold every event folded in when they were built. */
  committed(planned: readonly MessageFold[]): void {
    for (const v of planned) v.table?.committed(v);
  }

  /** Forgets everything (a write failed, or the queue went to the spool). */
  reset(through: number): void {
    // a new table: views planned from the old one keep reading the old one, which nothing folds into any more
    this.table = new FoldTable();
    this.through = through;
  }
}
