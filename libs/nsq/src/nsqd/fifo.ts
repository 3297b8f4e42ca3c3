import { MESSAGE_HEADER_LENGTH } from '../protocol/constants.js';
import { NsqdMessage } from './message.js';

/** Bytes per slab: large enough that slabs are few, small enough that a drained slab is freed soon. */
const SLAB_SIZE = 1024 * 1024;
/** [int32 record length][float64 ticket][float64 deferredUntil] before the 26 + N byte message. */
const RECORD_HEADER = 4 + 8 + 8;

/**
 * The memory queue of a topic or channel: a FIFO of messages stored as bytes in 1 MiB slabs rather
 * than as objects. A broker with millions of queued messages then holds a few hundred buffers the
 * garbage collector never has to walk, instead of millions of objects it must trace and promote
 * (that cost more than half the CPU of a publish benchmark). Messages are materialized again when
 * they leave the queue; the body is copied out so an in-flight message does not pin a slab.
 */
export class MessageFifo {
  private slabs: Buffer[] = [];
  /** End of the written bytes of each slab. */
  private ends: number[] = [];
  private readPos = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(msg: NsqdMessage): void {
    const size = RECORD_HEADER + MESSAGE_HEADER_LENGTH + msg.body.length;
    let last = this.slabs.length - 1;
    if (last < 0 || this.ends[last]! + size > this.slabs[last]!.length) {
      this.slabs.push(Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, size)));
      this.ends.push(0);
      last++;
    }
    const slab = this.slabs[last]!;
    const at = this.ends[last]!;
    slab.writeInt32BE(size, at);
    slab.writeDoubleBE(msg.ticket, at + 4);
    slab.writeDoubleBE(msg.deferredUntil, at + 12);
    msg.writeHeader(slab, at + RECORD_HEADER);
    msg.body.copy(slab, at + RECORD_HEADER + MESSAGE_HEADER_LENGTH);
    this.ends[last] = at + size;
    this.count++;
  }

  shift(): NsqdMessage | undefined {
    if (this.count === 0) return undefined;
    if (this.readPos >= this.ends[0]!) {
      this.slabs.shift();
      this.ends.shift();
      this.readPos = 0;
    }
    const slab = this.slabs[0]!;
    const at = this.readPos;
    const size = slab.readInt32BE(at);
    const msg = NsqdMessage.decode(slab.subarray(at + RECORD_HEADER, at + size), true);
    msg.ticket = slab.readDoubleBE(at + 4);
    msg.deferredUntil = slab.readDoubleBE(at + 12);
    this.readPos = at + size;
    this.count--;
    if (this.count === 0) this.reset();
    return msg;
  }

  /** Empties the queue, returning the messages in order. */
  drain(): NsqdMessage[] {
    const out: NsqdMessage[] = [];
    for (let msg = this.shift(); msg !== undefined; msg = this.shift()) out.push(msg);
    return out;
  }

  private reset(): void {
    // keep one slab for the next burst, drop the rest
    if (this.slabs.length > 1) {
      this.slabs = this.slabs.slice(-1);
      this.ends = [0];
    } else if (this.slabs.length === 1) this.ends[0] = 0;
    this.readPos = 0;
  }
}
