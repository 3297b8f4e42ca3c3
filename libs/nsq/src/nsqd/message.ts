import { MESSAGE_HEADER_LENGTH, MESSAGE_ID_LENGTH } from '../protocol/constants.js';

const TWO_POW_32 = 4294967296;

/**
 * A message inside our nsqd. The id is kept as its 16-character wire form (what FIN/REQ/TOUCH
 * carry), the timestamp as UnixNano in a float (precise to ~256 ns, enough for a publish time).
 */
export class NsqdMessage {
  attempts = 0;
  /** Absolute due time (ms since epoch) while deferred, else 0. */
  deferredUntil = 0;
  /** Set while in flight. */
  clientId = 0;
  deliveredAt = 0;
  /** Heap priority: in-flight deadline or deferred due time (ms since epoch). */
  pri = 0;
  /** Heap index while in a priority queue, -1 otherwise. */
  index = -1;
  /**
   * The ticket of the owning queue's disk record this message was read from, still needed for crash
   * recovery (acked when the message is finished or written anew), or -1 for a message from memory.
   */
  ticket = -1;

  constructor(
    readonly id: string,
    readonly body: Buffer,
    /** UnixNano of the publish. */
    readonly timestamp: number,
  ) {}

  /** Same id, body and timestamp for another channel of the topic (nsqd copies per channel). */
  copy(): NsqdMessage {
    const m = new NsqdMessage(this.id, this.body, this.timestamp);
    m.attempts = this.attempts;
    m.deferredUntil = this.deferredUntil;
    return m;
  }

  /** The 26 + N byte encoding used on the wire and in disk queue records. */
  encode(): Buffer {
    const out = Buffer.allocUnsafe(MESSAGE_HEADER_LENGTH + this.body.length);
    this.writeHeader(out, 0);
    this.body.copy(out, MESSAGE_HEADER_LENGTH);
    return out;
  }

  writeHeader(out: Buffer, offset: number): void {
    const hi = Math.floor(this.timestamp / TWO_POW_32);
    out.writeUInt32BE(hi >>> 0, offset);
    out.writeUInt32BE((this.timestamp - hi * TWO_POW_32) >>> 0, offset + 4);
    out.writeUInt16BE(this.attempts & 0xffff, offset + 8);
    out.write(this.id, offset + 10, MESSAGE_ID_LENGTH, 'latin1');
  }

  /** Decodes a disk record; the body is copied out of `data` only if `copyBody`. */
  static decode(data: Buffer, copyBody = false): NsqdMessage {
    if (data.length < MESSAGE_HEADER_LENGTH) throw new RangeError(`message record too short: ${data.length} bytes`);
    const timestamp = data.readUInt32BE(0) * TWO_POW_32 + data.readUInt32BE(4);
    const id = data.toString('latin1', 10, 10 + MESSAGE_ID_LENGTH);
    const bodyView = data.subarray(MESSAGE_HEADER_LENGTH);
    const m = new NsqdMessage(id, copyBody ? Buffer.from(bodyView) : bodyView, timestamp);
    m.attempts = data.readUInt16BE(8);
    return m;
  }
}

/** UnixNano now, as a float. */
export function nowNanos(): number {
  return (performance.timeOrigin + performance.now()) * 1e6;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function hex32(n: number): string {
  return HEX[(n >>> 24) & 0xff]! + HEX[(n >>> 16) & 0xff]! + HEX[(n >>> 8) & 0xff]! + HEX[n & 0xff]!;
}

const TWEPOCH = 1288834974288;
const SEQUENCE_MASK = 0xfff;

/**
 * nsqd's snowflake ids (guid.go): ((UnixNano >> 20) - twepoch) << 22 | nodeId << 12 | sequence,
 * hex encoded. Where nsqd makes the publisher wait for the next ~1 ms tick when 4096 ids were
 * taken in one tick, we borrow the next tick instead: ids stay unique and increasing.
 */
export class GuidFactory {
  private lastTs = 0;
  private sequence = 0;

  constructor(private readonly nodeId: number) {}

  next(): string {
    let ts = Math.floor(nowNanos() / 1048576) - TWEPOCH;
    if (ts <= this.lastTs) {
      ts = this.lastTs;
      this.sequence = (this.sequence + 1) & SEQUENCE_MASK;
      if (this.sequence === 0) ts = ++this.lastTs;
    } else {
      this.sequence = 0;
      this.lastTs = ts;
    }
    // 64-bit id = ts * 2^22 + nodeId * 2^12 + seq, split in two 32-bit halves
    const hi = Math.floor(ts / 1024);
    const lo = ((ts % 1024) * 4194304 + this.nodeId * 4096 + this.sequence) >>> 0;
    return hex32(hi >>> 0) + hex32(lo);
  }
}
