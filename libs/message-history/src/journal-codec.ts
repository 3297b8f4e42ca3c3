import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { historyRecordFromNsqdEvent } from './nsqd.js';
import { HISTORY_EVENT_TYPES, type HistoryEventType, type HistoryRecord } from './types.js';

/*
 * The journal's file format. A file starts with MAGIC, then frames: a u32 length (of what follows
 * it), a kind byte, the kind's fields (little-endian):
 *
 *   PREFIX  utf8 text            the key prefix of this file's EVENT frames
 *   STRING  u16 number, utf8     defines string `number` (1..) of this file: names, addresses
 *   EVENT   an nsqd lifecycle event, written field by field (see encodeEvent)
 *   RECORD  utf8 JSON            any other HistoryRecord (journalLine)
 *
 * An nsqd event is written as bytes into one growing buffer, its repeating strings (nsqd, topic,
 * channel, client, producer) by number, its body as it is: no JSON, no base64, no object. A file
 * that does not start with MAGIC is a journal of JSON lines, as earlier versions wrote them, and is
 * read as such. A frame cut short (the process died mid-write) ends the file: what came before it
 * is read.
 */
export const JOURNAL_MAGIC = Buffer.from('NSQHJ\u00001\n', 'latin1');

const PREFIX = 1;
const STRING = 2;
const EVENT = 3;
const RECORD = 4;

/** nsqd event types, by the byte an EVENT frame stores. */
const NSQD_TYPES = ['published', 'delivered', 'finished', 'requeued', 'timed_out', 'deferred', 'dropped'] as const;
const NSQD_TYPE_CODE: Readonly<Record<MessageEvent['type'], number>> = Object.fromEntries(NSQD_TYPES.map((t, i) => [t, i])) as Record<MessageEvent['type'], number>;
/** Strings a file may number; past this, events are written as RECORD frames. */
const MAX_STRINGS = 0xffff;
/** Fixed part of an EVENT frame: length 4, kind 1, type 1, at 8, seq 8, extra 8, attempt 4, four string numbers 8, id length 1. */
const EVENT_FIXED = 43;
/** nsqd, topic, channel, and client (or producer, or a drop's reason). */
const STRING_COLUMNS = 4;
/** Longest id an EVENT frame takes, in characters (its UTF-8 bytes must fit in one byte). */
const MAX_ID = 85;

const EVENT_TYPES = new Set<string>(HISTORY_EVENT_TYPES);

/** A record's journal line (JSON). */
export function journalLine(r: HistoryRecord): string {
  return JSON.stringify({
    k: r.key,
    t: r.type,
    n: r.nsqd,
    m: r.messageId,
    a: r.at.getTime(),
    tp: r.topic,
    b: r.body?.toString('base64'),
    s: r.size,
    p: r.producer,
    d: r.deferredUntil?.getTime(),
    mk: r.messageKey,
    c: r.channel,
    cs: r.consumer,
    at: r.attempt,
    dt: r.detail,
    em: r.ensureMessage,
    pa: r.publishedAt?.getTime(),
  });
}

/** The record of a journal line; undefined when the line is not one. */
export function recordOfLine(line: string): HistoryRecord | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (o === null || typeof o !== 'object') return undefined;
  if (typeof o.k !== 'string' || typeof o.t !== 'string' || !EVENT_TYPES.has(o.t) || typeof o.n !== 'string' || typeof o.m !== 'string' || typeof o.a !== 'number') {
    return undefined;
  }
  const r: HistoryRecord = { key: o.k, type: o.t as HistoryEventType, nsqd: o.n, messageId: o.m, at: new Date(o.a) };
  if (typeof o.tp === 'string') r.topic = o.tp;
  if (typeof o.b === 'string') r.body = Buffer.from(o.b, 'base64');
  if (typeof o.s === 'number') r.size = o.s;
  if (typeof o.p === 'string') r.producer = o.p;
  if (typeof o.d === 'number') r.deferredUntil = new Date(o.d);
  if (typeof o.mk === 'string') r.messageKey = o.mk;
  if (typeof o.c === 'string') r.channel = o.c;
  if (typeof o.cs === 'string') r.consumer = o.cs;
  if (typeof o.at === 'number') r.attempt = o.at;
  if (typeof o.dt === 'string') r.detail = o.dt;
  if (o.em === true) r.ensureMessage = true;
  if (typeof o.pa === 'number') r.publishedAt = new Date(o.pa);
  return r;
}

/**
 * Builds the bytes of one journal file: `reset()` at each new file (its string numbers start
 * over), `take()` for what to append since the last take.
 */
export class JournalEncoder {
  private buf = Buffer.allocUnsafe(1 << 20);
  private pos = 0;
  private readonly numbers = new Map<string, number>();
  /** Per string column: the last string and its number (most events repeat the previous one). */
  private readonly lastString: Array<string | undefined> = new Array<string | undefined>(STRING_COLUMNS);
  private readonly lastNumber = new Uint16Array(STRING_COLUMNS);
  /** The key prefix of a file whose header is not written yet (see reset). */
  private headerPrefix: string | undefined;

  /**
   * Starts a file: its first frame will be preceded by the magic and `keyPrefix` (for the EVENT
   * frames that follow). Only then: a file nothing was recorded into stays empty, so an idle
   * journal has nothing to write and no reason to start another file at its checkpoints.
   */
  reset(keyPrefix: string): void {
    this.numbers.clear();
    this.lastString.fill(undefined);
    this.headerPrefix = keyPrefix;
  }

  private writeHeader(keyPrefix: string): void {
    this.headerPrefix = undefined;
    this.ensure(JOURNAL_MAGIC.length);
    this.pos += JOURNAL_MAGIC.copy(this.buf, this.pos);
    this.text(PREFIX, keyPrefix);
  }

  get pending(): number {
    return this.pos;
  }

  /** The bytes since the last take (a view of the encoder's buffer: write it before the next append). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.pos = 0;
    return out;
  }

  /** Any record, as a RECORD frame. */
  record(r: HistoryRecord): void {
    if (this.headerPrefix !== undefined) this.writeHeader(this.headerPrefix);
    this.text(RECORD, journalLine(r));
  }

  /**
   * An nsqd event with sequence number `seq` of this file's key prefix (its key is the prefix +
   * seq in base 36). Falls back to a RECORD frame where a field does not fit the EVENT frame.
   */
  event(seq: number, nsqd: string, e: MessageEvent, keyPrefix: string): void {
    if (this.headerPrefix !== undefined) this.writeHeader(this.headerPrefix);
    const id = e.id;
    const body = e.type === 'published' ? e.body : undefined;
    const extra = e.type === 'published' ? e.deferMs : e.type === 'requeued' ? e.delayMs : e.type === 'deferred' ? e.until : undefined;
    const attempt = 'attempt' in e ? e.attempt : -1;
    const channel = e.type === 'published' ? undefined : e.channel;
    const client = e.type === 'published' ? e.producer : 'client' in e ? e.client : e.type === 'dropped' ? e.reason : undefined;
    if (id.length > MAX_ID || this.numbers.size + STRING_COLUMNS > MAX_STRINGS || !(attempt >= -1 && attempt <= 0x7fffffff && Number.isInteger(attempt))) {
      this.record({ ...historyRecordFromNsqdEvent(nsqd, e), key: keyPrefix + seq.toString(36) });
      return;
    }
    const n0 = this.number(0, nsqd);
    const n1 = this.number(1, e.topic);
    const n2 = this.number(2, channel);
    const n3 = this.number(3, client);
    const bodyLength = body === undefined ? 0 : body.length;
    const size = EVENT_FIXED + id.length * 3 + (body === undefined ? 0 : 4 + bodyLength);
    this.ensure(size);
    const buf = this.buf;
    const start = this.pos;
    let p = start + 4;
    buf[p++] = EVENT;
    buf[p++] = NSQD_TYPE_CODE[e.type];
    buf.writeDoubleLE(e.at, p);
    buf.writeDoubleLE(seq, p + 8);
    buf.writeDoubleLE(extra ?? Number.NaN, p + 16);
    buf.writeInt32LE(attempt, p + 24);
    buf.writeUInt16LE(n0, p + 28);
    buf.writeUInt16LE(n1, p + 30);
    buf.writeUInt16LE(n2, p + 32);
    buf.writeUInt16LE(n3, p + 34);
    p += 36;
    // nsqd's ids are ASCII: a loop is cheaper than a native write for 16 characters
    let k = 0;
    for (; k < id.length; k++) {
      const c = id.charCodeAt(k);
      if (c > 0x7f) break;
      buf[p + 1 + k] = c;
    }
    const idBytes = k === id.length ? k : buf.write(id, p + 1, 'utf8');
    buf[p] = idBytes;
    p += 1 + idBytes;
    if (body !== undefined) {
      buf.writeUInt32LE(bodyLength, p);
      // TypedArray#set: far less call overhead than Buffer#copy for a small body
      buf.set(body, p + 4);
      p += 4 + bodyLength;
    }
    buf.writeUInt32LE(p - start - 4, start);
    this.pos = p;
  }

  /** The number of `value` in column `column` (0 for undefined), defining it first if new. */
  private number(column: number, value: string | undefined): number {
    if (value === undefined) return 0;
    if (value === this.lastString[column]) return this.lastNumber[column]!;
    let n = this.numbers.get(value);
    if (n === undefined) {
      n = this.numbers.size + 1;
      this.numbers.set(value, n);
      const bytes = Buffer.byteLength(value, 'utf8');
      this.ensure(4 + 1 + 2 + bytes);
      const start = this.pos;
      this.buf.writeUInt32LE(1 + 2 + bytes, start);
      this.buf[start + 4] = STRING;
      this.buf.writeUInt16LE(n, start + 5);
      this.buf.write(value, start + 7, 'utf8');
      this.pos = start + 7 + bytes;
    }
    this.lastString[column] = value;
    this.lastNumber[column] = n;
    return n;
  }

  private text(kind: number, value: string): void {
    const bytes = Buffer.byteLength(value, 'utf8');
    this.ensure(5 + bytes);
    this.buf.writeUInt32LE(1 + bytes, this.pos);
    this.buf[this.pos + 4] = kind;
    this.buf.write(value, this.pos + 5, 'utf8');
    this.pos += 5 + bytes;
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + bytes));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

export interface JournalContents {
  records: HistoryRecord[];
  /** Frames or lines that could not be read (a torn end counts one). */
  unreadable: number;
}

/** The records of one journal file, binary or JSON lines. */
export function readJournal(data: Buffer): JournalContents {
  if (data.length < JOURNAL_MAGIC.length || !data.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC)) return readLines(data);
  const records: HistoryRecord[] = [];
  let unreadable = 0;
  const strings: string[] = [];
  let prefix = '';
  let p = JOURNAL_MAGIC.length;
  while (p < data.length) {
    if (p + 5 > data.length) {
      unreadable++;
      break;
    }
    const length = data.readUInt32LE(p);
    const end = p + 4 + length;
    if (length < 1 || end > data.length) {
      unreadable++;
      break;
    }
    const kind = data[p + 4];
    if (kind === PREFIX) prefix = data.toString('utf8', p + 5, end);
    else if (kind === STRING && length >= 3) strings[data.readUInt16LE(p + 5)] = data.toString('utf8', p + 7, end);
    else if (kind === RECORD) {
      const r = recordOfLine(data.toString('utf8', p + 5, end));
      if (r === undefined) unreadable++;
      else records.push(r);
    } else if (kind === EVENT) {
      let r: HistoryRecord | undefined;
      try {
        r = readEvent(data, p + 5, end, strings, prefix);
      } catch {
        // a frame damaged inside its bounds: skipped like any unreadable one
      }
      if (r === undefined) unreadable++;
      else records.push(r);
    } else unreadable++;
    p = end;
  }
  return { records, unreadable };
}

function readLines(data: Buffer): JournalContents {
  const records: HistoryRecord[] = [];
  let unreadable = 0;
  for (const line of data.toString('utf8').split('\n')) {
    if (line === '') continue;
    const r = recordOfLine(line);
    if (r === undefined) unreadable++;
    else records.push(r);
  }
  return { records, unreadable };
}

/** An EVENT frame's record (as historyRecordFromNsqdEvent makes it, with its key). */
function readEvent(data: Buffer, p: number, end: number, strings: readonly string[], prefix: string): HistoryRecord | undefined {
  if (p + 38 > end) return undefined;
  const type = NSQD_TYPES[data[p]!];
  const at = data.readDoubleLE(p + 1);
  const seq = data.readDoubleLE(p + 9);
  const extra = data.readDoubleLE(p + 17);
  const attempt = data.readInt32LE(p + 25);
  const str = (offset: number): string | undefined => {
    const n = data.readUInt16LE(p + offset);
    return n === 0 ? undefined : strings[n];
  };
  const nsqd = str(29);
  const topic = str(31);
  const channel = str(33);
  const client = str(35);
  const idLength = data[p + 37]!;
  const idEnd = p + 38 + idLength;
  if (type === undefined || nsqd === undefined || topic === undefined || idEnd > end || !Number.isFinite(seq)) return undefined;
  const id = data.toString('utf8', p + 38, idEnd);
  const opt = Number.isNaN(extra) ? undefined : extra;
  let e: MessageEvent;
  switch (type) {
    case 'published': {
      if (idEnd + 4 > end) return undefined;
      const bodyLength = data.readUInt32LE(idEnd);
      if (idEnd + 4 + bodyLength !== end) return undefined;
      // a copy: the file's buffer would otherwise stay alive as long as any one body
      const body = Buffer.from(data.subarray(idEnd + 4, end));
      e = { type, at, topic, id, producer: client ?? '', body, ...(opt === undefined ? {} : { deferMs: opt }) };
      break;
    }
    case 'delivered':
    case 'finished':
    case 'timed_out':
      if (channel === undefined) return undefined;
      e = { type, at, topic, channel, id, client: client ?? '', attempt };
      break;
    case 'requeued':
      if (channel === undefined || opt === undefined) return undefined;
      e = { type, at, topic, channel, id, client: client ?? '', attempt, delayMs: opt };
      break;
    case 'deferred':
      if (channel === undefined || opt === undefined) return undefined;
      e = { type, at, topic, channel, id, until: opt };
      break;
    case 'dropped':
      e = { type, at, topic, id, reason: client ?? '', ...(channel === undefined ? {} : { channel }) };
      break;
  }
  return { ...historyRecordFromNsqdEvent(nsqd, e), key: prefix + seq.toString(36) };
}
