import { NsqFrameError } from './errors.js';

/** The first four bytes of "HTTP/1.1 ..." read as an int32: the peer is an HTTP server, not nsqd's TCP port. */
const HTTP_SIZE = 0x48545450;
export const DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024;

/** Called for each complete frame; `data` is a view into the received bytes, not a copy. Return `false` to pause decoding. */
export type FrameHandler = (type: number, data: Buffer) => boolean | void;

/**
 * Incremental decoder for V2 frames (`[int32 size][int32 frameType][data]`, size = 4 + data length).
 * Frames that arrive whole inside a chunk are handed out as slices of that chunk. A frame split over
 * several chunks is assembled with a single copy once its last byte has arrived, so a 1 MiB body
 * delivered in many small reads costs O(size), not O(size^2).
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingLength = 0;

  constructor(private readonly maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {}

  /** Bytes received but not yet handed out as frames. */
  get buffered(): number {
    return this.pendingLength;
  }

  /**
   * Feeds received bytes. Throws NsqFrameError on a malformed size; the decoder must then be
   * discarded with its connection.
   */
  push(chunk: Buffer, onFrame: FrameHandler): void {
    if (chunk.length === 0) return;
    let buf: Buffer;
    if (this.pendingLength === 0) {
      buf = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      if (this.pendingLength < 4) return;
      const size = this.checkSize(this.peekSize());
      if (this.pendingLength < 4 + size) return;
      buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
    }
    this.decode(buf, onFrame);
  }

  /** Returns and forgets the undecoded bytes (used when a connection switches to TLS or deflate mid-stream). */
  takeRemainder(): Buffer {
    const rest =
      this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    this.pending = [];
    this.pendingLength = 0;
    return rest;
  }

  private decode(buf: Buffer, onFrame: FrameHandler): void {
    let offset = 0;
    const end = buf.length;
    while (end - offset >= 4) {
      const size = this.checkSize(buf.readInt32BE(offset));
      if (end - offset - 4 < size) break;
      const type = buf.readInt32BE(offset + 4);
      const data = buf.subarray(offset + 8, offset + 4 + size);
      offset += 4 + size;
      if (onFrame(type, data) === false) break;
    }
    if (offset < end) {
      const rest = offset === 0 ? buf : buf.subarray(offset);
      this.pending.push(rest);
      this.pendingLength += rest.length;
    }
  }

  private peekSize(): number {
    const first = this.pending[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    // The size header is split over chunks: gather just its 4 bytes. (Concatenating all pending
    // chunks here would copy the whole partial frame on every push: quadratic for a large frame.)
    const head = Buffer.allocUnsafe(4);
    let filled = 0;
    for (const part of this.pending) {
      filled += part.copy(head, filled, 0, Math.min(part.length, 4 - filled));
      if (filled === 4) break;
    }
    return head.readInt32BE(0);
  }

  private checkSize(size: number): number {
    if (size === HTTP_SIZE) {
      throw new NsqFrameError('received "HTTP" where a frame was expected: this address is an HTTP port, not nsqd\'s TCP port');
    }
    if (size < 4) throw new NsqFrameError(`invalid frame size ${size}: a frame is at least 4 bytes (its type)`);
    if (size - 4 > this.maxFrameSize) {
      throw new NsqFrameError(`frame of ${size - 4} bytes exceeds the limit of ${this.maxFrameSize} bytes (maxFrameSize)`);
    }
    return size;
  }
}

/** Encodes one V2 frame (server side, and tests). */
export function encodeFrame(type: number, data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeInt32BE(4 + payload.length, 0);
  out.writeInt32BE(type, 4);
  payload.copy(out, 8);
  return out;
}
