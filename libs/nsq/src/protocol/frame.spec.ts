import { describe, it, expect, jest, afterEach } from '@jest/globals';
import { FrameType } from './constants.js';
import { NsqError, NsqFrameError } from './errors.js';
import { DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encodeFrame } from './frame.js';
import type { FrameHandler } from './frame.js';

interface Received {
  type: number;
  /** A copy of the frame's data, taken inside the handler. */
  data: Buffer;
}

/** Collects frames; copies each payload so later pushes cannot change what was recorded. */
function collector(): { frames: Received[]; onFrame: (type: number, data: Buffer) => void } {
  const frames: Received[] = [];
  return { frames, onFrame: (type, data) => void frames.push({ type, data: Buffer.from(data) }) };
}

/** Hand-built frame bytes, independent of encodeFrame: [int32 size][int32 type][data]. */
function rawFrame(type: number, data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const header = Buffer.alloc(8);
  header.writeInt32BE(payload.length + 4, 0);
  header.writeInt32BE(type, 4);
  return Buffer.concat([header, payload]);
}

/** Deterministic, non-repeating-looking bytes (a linear congruential generator). */
function patternBytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Splits `buf` into consecutive chunks whose sizes cycle through `sizes`. */
function split(buf: Buffer, sizes: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (let i = 0; offset < buf.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(buf.subarray(offset, Math.min(offset + size, buf.length)));
    offset += size;
  }
  return chunks;
}

/** Copies chunks into fresh buffers, as a socket would hand them over. */
function fresh(chunks: readonly Buffer[]): Buffer[] {
  return chunks.map((c) => Buffer.from(c));
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to throw');
}

const MIB = 1024 * 1024;

/** Three frames of each type, one with an empty payload, used as a small stream. */
const SAMPLE: Received[] = [
  { type: FrameType.Response, data: Buffer.from('OK') },
  { type: FrameType.Error, data: Buffer.from('E_INVALID invalid command FOO') },
  { type: FrameType.Message, data: patternBytes(40, 7) },
  { type: FrameType.Response, data: Buffer.alloc(0) },
  { type: FrameType.Response, data: Buffer.from('_heartbeat_') },
];
const SAMPLE_STREAM = Buffer.concat(SAMPLE.map((f) => rawFrame(f.type, f.data)));

describe('encodeFrame', () => {
  it('writes [int32 size = 4 + data length][int32 type][data]', () => {
    expect(encodeFrame(FrameType.Response, 'OK')).toEqual(Buffer.from([0, 0, 0, 6, 0, 0, 0, 0, 0x4f, 0x4b]));
    expect(encodeFrame(FrameType.Error, Buffer.from('E_X'))).toEqual(
      Buffer.from([0, 0, 0, 7, 0, 0, 0, 1, 0x45, 0x5f, 0x58]),
    );
    expect(encodeFrame(FrameType.Message, Buffer.alloc(0))).toEqual(Buffer.from([0, 0, 0, 4, 0, 0, 0, 2]));
  });

  it('counts UTF-8 bytes, not characters, for string data', () => {
    const frame = encodeFrame(FrameType.Response, 'é€');
    expect(frame.readInt32BE(0)).toBe(4 + 5);
    expect(frame.subarray(8).toString('utf8')).toBe('é€');
  });
});

describe('FrameDecoder', () => {
  describe('whole frames', () => {
    it('decodes a single frame delivered in one chunk', () => {
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      decoder.push(rawFrame(FrameType.Response, 'OK'), onFrame);
      expect(frames).toEqual([{ type: FrameType.Response, data: Buffer.from('OK') }]);
      expect(decoder.buffered).toBe(0);
    });

    it('decodes a frame with an empty payload (size = 4)', () => {
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      decoder.push(Buffer.from([0, 0, 0, 4, 0, 0, 0, 2]), onFrame);
      expect(frames).toEqual([{ type: FrameType.Message, data: Buffer.alloc(0) }]);
      expect(decoder.buffered).toBe(0);
    });

    it('decodes many frames in one chunk, in order', () => {
      const expected: Received[] = [];
      for (let i = 0; i < 1000; i++) {
        expected.push({ type: i % 3, data: patternBytes(i % 97, i + 1) });
      }
      const chunk = Buffer.concat(expected.map((f) => rawFrame(f.type, f.data)));
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      decoder.push(chunk, onFrame);
      expect(frames).toHaveLength(1000);
      expect(frames).toEqual(expected);
      expect(decoder.buffered).toBe(0);
    });

    it('delivers the whole frames of a chunk and keeps a trailing partial frame for the next push', () => {
      const stream = Buffer.concat([rawFrame(0, 'one'), rawFrame(0, 'two'), rawFrame(2, 'three')]);
      const cut = stream.length - 3;
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      decoder.push(Buffer.from(stream.subarray(0, cut)), onFrame);
      expect(frames.map((f) => f.data.toString())).toEqual(['one', 'two']);
      expect(decoder.buffered).toBe(cut - 2 * rawFrame(0, 'one').length);
      decoder.push(Buffer.from(stream.subarray(cut)), onFrame);
      expect(frames.map((f) => f.data.toString())).toEqual(['one', 'two', 'three']);
      expect(frames[2]!.type).toBe(FrameType.Message);
      expect(decoder.buffered).toBe(0);
    });

    it('hands out frames that arrive whole in a chunk as views of that chunk (no copy)', () => {
      const chunk = Buffer.concat([rawFrame(0, 'first'), rawFrame(2, 'second'), rawFrame(1, 'thi')]);
      const views: Buffer[] = [];
      new FrameDecoder().push(chunk, (_type, data) => void views.push(data));
      expect(views).toHaveLength(3);
      const expectedOffsets = [8, 8 + 5 + 8, 8 + 5 + 8 + 6 + 8];
      views.forEach((view, i) => {
        expect(view.buffer).toBe(chunk.buffer);
        expect(view.byteOffset).toBe(chunk.byteOffset + expectedOffsets[i]!);
      });
      // Writing to the chunk is visible through the view: it shares memory.
      chunk[8] = 0x46; // 'F'
      expect(views[0]!.toString()).toBe('First');
    });

    it('also hands out views for whole frames that follow the completion of a split frame', () => {
      const decoder = new FrameDecoder();
      const first = rawFrame(0, 'split');
      decoder.push(Buffer.from(first.subarray(0, 6)), () => undefined);
      const views: Buffer[] = [];
      decoder.push(Buffer.concat([first.subarray(6), rawFrame(0, 'after')]), (_type, data) => void views.push(data));
      expect(views.map((v) => v.toString())).toEqual(['split', 'after']);
      // Both are views of the one buffer the split frame was assembled into, at their offsets in it.
      expect(views[1]!.buffer).toBe(views[0]!.buffer);
      expect(views[1]!.byteOffset).toBe(views[0]!.byteOffset + 'split'.length + 8);
    });
  });

  describe('frames split over chunks', () => {
    it('decodes a stream delivered one byte at a time, each frame exactly once when its last byte arrives', () => {
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      const frameEnds: number[] = [];
      let end = 0;
      for (const f of SAMPLE) frameEnds.push((end += 8 + f.data.length));
      for (let i = 0; i < SAMPLE_STREAM.length; i++) {
        decoder.push(Buffer.from([SAMPLE_STREAM[i]!]), onFrame);
        const complete = frameEnds.filter((e) => e <= i + 1).length;
        expect(frames).toHaveLength(complete);
      }
      expect(frames).toEqual(SAMPLE);
      expect(decoder.buffered).toBe(0);
    });

    it('decodes correctly for every two-way split point (inside the size header, inside the type, inside the data)', () => {
      for (let cut = 1; cut < SAMPLE_STREAM.length; cut++) {
        const decoder = new FrameDecoder();
        const { frames, onFrame } = collector();
        const [a, b] = [SAMPLE_STREAM.subarray(0, cut), SAMPLE_STREAM.subarray(cut)];
        decoder.push(Buffer.from(a), onFrame);
        decoder.push(Buffer.from(b), onFrame);
        expect({ cut, frames }).toEqual({ cut, frames: SAMPLE });
        expect(decoder.buffered).toBe(0);
      }
    });

    it('decodes correctly for every three-way split of a two-frame stream', () => {
      const expected = SAMPLE.slice(0, 2);
      const stream = Buffer.concat(expected.map((f) => rawFrame(f.type, f.data)));
      for (let i = 1; i < stream.length - 1; i++) {
        for (let j = i + 1; j < stream.length; j++) {
          const decoder = new FrameDecoder();
          const { frames, onFrame } = collector();
          for (const part of [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]) {
            decoder.push(Buffer.from(part), onFrame);
          }
          expect({ i, j, frames }).toEqual({ i, j, frames: expected });
        }
      }
    });

    it('waits with a size header split 1+1+1+1 bytes, then a type split 2+2, then the data', () => {
      const frame = rawFrame(FrameType.Error, 'E_BAD_TOPIC bad');
      const parts = [1, 1, 1, 1, 2, 2, frame.length - 8];
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      let offset = 0;
      for (const size of parts) {
        expect(frames).toHaveLength(0);
        decoder.push(Buffer.from(frame.subarray(offset, offset + size)), onFrame);
        offset += size;
        if (offset < frame.length) expect(decoder.buffered).toBe(offset);
      }
      expect(frames).toEqual([{ type: FrameType.Error, data: Buffer.from('E_BAD_TOPIC bad') }]);
      expect(decoder.buffered).toBe(0);
    });

    it('decodes the whole sample stream in assorted odd chunk sizes', () => {
      for (const sizes of [[2], [3], [5], [7], [9, 1], [13, 3, 1], [11]]) {
        const decoder = new FrameDecoder();
        const { frames, onFrame } = collector();
        for (const chunk of fresh(split(SAMPLE_STREAM, sizes))) decoder.push(chunk, onFrame);
        expect({ sizes, frames }).toEqual({ sizes, frames: SAMPLE });
      }
    });
  });

  describe('a 1 MiB message body', () => {
    const body = patternBytes(MIB, 42);
    const frame = rawFrame(FrameType.Message, body);

    function deliver(chunks: readonly Buffer[]): Received[] {
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      let deliveredEarly = 0;
      chunks.forEach((chunk, i) => {
        decoder.push(chunk, onFrame);
        if (i < chunks.length - 1 && frames.length > 0) deliveredEarly++;
      });
      expect(deliveredEarly).toBe(0); // nothing before the last byte arrived
      expect(decoder.buffered).toBe(0);
      return frames;
    }

    it('arrives intact, exactly once, when delivered in 64 KiB chunks', () => {
      const chunks = fresh(split(frame, [64 * 1024]));
      expect(chunks.length).toBeGreaterThan(16);
      const frames = deliver(chunks);
      expect(frames).toHaveLength(1);
      expect(frames[0]!.type).toBe(FrameType.Message);
      expect(frames[0]!.data.length).toBe(MIB);
      expect(frames[0]!.data.equals(body)).toBe(true);
    });

    it('arrives intact, exactly once, when delivered in odd-sized chunks (first chunk ends inside the size header)', () => {
      const chunks = fresh(split(frame, [3, 1, 4093, 7, 65537, 2, 100003, 31]));
      const frames = deliver(chunks);
      expect(frames).toHaveLength(1);
      expect(frames[0]!.data.equals(body)).toBe(true);
    });

    it('arrives intact when delivered in 3-byte chunks', () => {
      const frames = deliver(split(frame, [3]));
      expect(frames).toHaveLength(1);
      expect(frames[0]!.data.equals(body)).toBe(true);
    });

    it('is followed correctly by a frame sharing its last chunk', () => {
      const stream = Buffer.concat([frame, rawFrame(FrameType.Response, '_heartbeat_')]);
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      for (const chunk of fresh(split(stream, [65535]))) decoder.push(chunk, onFrame);
      expect(frames).toHaveLength(2);
      expect(frames[0]!.data.equals(body)).toBe(true);
      expect(frames[1]).toEqual({ type: FrameType.Response, data: Buffer.from('_heartbeat_') });
    });

    describe('copying cost', () => {
      afterEach(() => {
        jest.restoreAllMocks();
      });

      // Regression: a size header split across chunks used to make every later push concatenate all
      // pending chunks to re-read the size, i.e. O(size^2 / chunkSize) copying.
      it('assembles a split frame with one copy even when the chunk boundary falls inside the size header', () => {
        let copied = 0;
        const concat = Buffer.concat.bind(Buffer);
        jest.spyOn(Buffer, 'concat').mockImplementation((list, totalLength) => {
          const out = concat(list, totalLength);
          copied += out.length;
          return out;
        });
        const chunks = [frame.subarray(0, 2), ...split(frame.subarray(2), [4096])];
        const frames = deliver(chunks);
        expect(frames).toHaveLength(1);
        expect(copied).toBeGreaterThan(0); // the spy did see the assembly
        expect(copied).toBeLessThanOrEqual(frame.length + 8);
      });
    });
  });

  describe('zero-length reads', () => {
    it('ignores an empty chunk on an idle decoder', () => {
      const decoder = new FrameDecoder();
      const onFrame = jest.fn<FrameHandler>();
      decoder.push(Buffer.alloc(0), onFrame);
      expect(onFrame).not.toHaveBeenCalled();
      expect(decoder.buffered).toBe(0);
    });

    it('ignores an empty chunk in the middle of a split frame', () => {
      const frame = rawFrame(FrameType.Response, 'CLOSE_WAIT');
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      decoder.push(Buffer.from(frame.subarray(0, 2)), onFrame);
      decoder.push(Buffer.alloc(0), onFrame);
      expect(decoder.buffered).toBe(2);
      decoder.push(Buffer.from(frame.subarray(2, 9)), onFrame);
      decoder.push(Buffer.alloc(0), onFrame);
      expect(decoder.buffered).toBe(9);
      expect(frames).toHaveLength(0);
      decoder.push(Buffer.from(frame.subarray(9)), onFrame);
      expect(frames).toEqual([{ type: FrameType.Response, data: Buffer.from('CLOSE_WAIT') }]);
    });
  });

  describe('pausing', () => {
    const one = rawFrame(FrameType.Response, '{"tls_v1":true}');
    const two = rawFrame(FrameType.Response, 'OK');
    const three = rawFrame(FrameType.Message, patternBytes(30));

    it('stops after the frame whose handler returned false, and takeRemainder() returns exactly the rest', () => {
      const decoder = new FrameDecoder();
      const seen: string[] = [];
      const garbageAfterUpgrade = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]); // e.g. a TLS record
      decoder.push(Buffer.concat([one, two, three, garbageAfterUpgrade]), (_type, data) => {
        seen.push(data.toString());
        return false;
      });
      expect(seen).toEqual(['{"tls_v1":true}']);
      const rest = Buffer.concat([two, three, garbageAfterUpgrade]);
      expect(decoder.buffered).toBe(rest.length);
      expect(decoder.takeRemainder()).toEqual(rest);
      expect(decoder.buffered).toBe(0);
      expect(decoder.takeRemainder()).toEqual(Buffer.alloc(0));
    });

    it('does not pause when the handler returns true or nothing', () => {
      for (const result of [true, undefined]) {
        const decoder = new FrameDecoder();
        let calls = 0;
        decoder.push(Buffer.concat([one, two, three]), () => {
          calls++;
          return result;
        });
        expect(calls).toBe(3);
        expect(decoder.buffered).toBe(0);
      }
    });

    it('pauses on a frame that was assembled from several chunks', () => {
      const decoder = new FrameDecoder();
      const seen: number[] = [];
      const onFrame = (type: number): boolean => {
        seen.push(type);
        return false;
      };
      decoder.push(Buffer.from(one.subarray(0, 3)), onFrame);
      decoder.push(Buffer.from(one.subarray(3, 10)), onFrame);
      expect(seen).toEqual([]);
      decoder.push(Buffer.concat([one.subarray(10), two, three.subarray(0, 5)]), onFrame);
      expect(seen).toEqual([FrameType.Response]);
      expect(decoder.takeRemainder()).toEqual(Buffer.concat([two, three.subarray(0, 5)]));
      expect(decoder.buffered).toBe(0);
    });

    it('returns an empty remainder when the paused frame was the last byte received', () => {
      const decoder = new FrameDecoder();
      decoder.push(Buffer.concat([one, two]), (_type, data) => data.toString() !== 'OK');
      expect(decoder.buffered).toBe(0);
      expect(decoder.takeRemainder().length).toBe(0);
    });

    it('resumes with the buffered frames when more bytes are pushed instead of taking the remainder', () => {
      const decoder = new FrameDecoder();
      const seen: string[] = [];
      let pauseNext = true;
      const onFrame = (_type: number, data: Buffer): boolean => {
        seen.push(data.toString('latin1').slice(0, 4));
        const result = !pauseNext;
        pauseNext = false;
        return result;
      };
      decoder.push(Buffer.concat([one, two]), onFrame);
      expect(seen).toEqual(['{"tl']);
      decoder.push(Buffer.from(three), onFrame);
      expect(seen).toEqual(['{"tl', 'OK', three.subarray(8, 12).toString('latin1')]);
      expect(decoder.buffered).toBe(0);
    });

    it('starts clean after takeRemainder(): the next push is decoded from a frame boundary', () => {
      const decoder = new FrameDecoder();
      decoder.push(Buffer.concat([one, two.subarray(0, 5)]), () => false);
      expect(decoder.takeRemainder()).toEqual(two.subarray(0, 5));
      const { frames, onFrame } = collector();
      decoder.push(Buffer.from(three), onFrame);
      expect(frames).toHaveLength(1);
      expect(frames[0]!.data).toEqual(three.subarray(8));
    });

    it('takeRemainder() on a decoder holding a partial frame returns those bytes', () => {
      const decoder = new FrameDecoder();
      decoder.push(Buffer.from(three.subarray(0, 2)), () => undefined);
      decoder.push(Buffer.from(three.subarray(2, 11)), () => undefined);
      expect(decoder.takeRemainder()).toEqual(three.subarray(0, 11));
    });
  });

  describe('errors', () => {
    function frameError(decoder: FrameDecoder, ...chunks: Buffer[]): NsqFrameError {
      const err = catchError(() => {
        for (const chunk of chunks) decoder.push(chunk, () => undefined);
      });
      expect(err).toBeInstanceOf(NsqFrameError);
      expect(err).toBeInstanceOf(NsqError);
      expect((err as NsqFrameError).code).toBe('ERR_NSQ_FRAME');
      expect((err as NsqFrameError).name).toBe('NsqFrameError');
      return err as NsqFrameError;
    }

    function sizeHeader(size: number): Buffer {
      const b = Buffer.alloc(8);
      b.writeInt32BE(size, 0);
      return b;
    }

    it.each([0, 1, 3, -1, -2147483648])('rejects a frame size of %i (less than the 4-byte type)', (size) => {
      const err = frameError(new FrameDecoder(), sizeHeader(size));
      expect(err.message).toContain(`invalid frame size ${size}`);
      expect(err.message).toMatch(/at least 4 bytes/);
    });

    it('rejects a bad size even when its header arrives one byte at a time', () => {
      const header = sizeHeader(2).subarray(0, 4);
      const decoder = new FrameDecoder();
      for (let i = 0; i < 3; i++) decoder.push(Buffer.from([header[i]!]), () => undefined);
      const err = frameError(decoder, Buffer.from([header[3]!]));
      expect(err.message).toContain('invalid frame size 2');
    });

    it('rejects a bad size that follows valid frames in the same chunk, after delivering those frames', () => {
      const decoder = new FrameDecoder();
      const { frames, onFrame } = collector();
      const err = catchError(() => decoder.push(Buffer.concat([rawFrame(0, 'OK'), sizeHeader(1)]), onFrame));
      expect(err).toBeInstanceOf(NsqFrameError);
      expect(frames).toEqual([{ type: 0, data: Buffer.from('OK') }]);
    });

    it('recognises an HTTP response and says the address is an HTTP port', () => {
      const http = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK', 'latin1');
      const err = frameError(new FrameDecoder(), http);
      expect(err.message).toMatch(/HTTP/);
      expect(err.message).toMatch(/HTTP port/);
      expect(err.message).toMatch(/TCP port/);
    });

    it('recognises an HTTP response whose first bytes are split over chunks', () => {
      const err = frameError(new FrameDecoder(), Buffer.from('HT'), Buffer.from('TP/1.0 400 Bad Request\r\n'));
      expect(err.message).toMatch(/HTTP port/);
    });

    it('recognises an HTTP error page as well ("HTTP/1.1 400 Bad Request")', () => {
      const err = frameError(new FrameDecoder(), Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n', 'latin1'));
      expect(err.message).toMatch(/not nsqd's TCP port/);
    });

    it('rejects a frame over maxFrameSize as soon as its header arrives, naming both sizes', () => {
      const decoder = new FrameDecoder(1024);
      // Only the 8-byte header: the decoder must not wait for (or buffer) the oversized body.
      const err = frameError(decoder, sizeHeader(4 + 1025));
      expect(err.message).toContain('1025');
      expect(err.message).toContain('1024');
      expect(err.message).toMatch(/maxFrameSize/);
    });

    it('accepts a frame of exactly maxFrameSize data bytes', () => {
      const decoder = new FrameDecoder(1024);
      const { frames, onFrame } = collector();
      const data = patternBytes(1024, 3);
      decoder.push(rawFrame(FrameType.Message, data), onFrame);
      expect(frames).toEqual([{ type: FrameType.Message, data }]);
    });

    it('rejects an oversized frame whose header is split over chunks', () => {
      const header = sizeHeader(4 + 101).subarray(0, 4);
      const err = frameError(new FrameDecoder(100), Buffer.from(header.subarray(0, 3)), Buffer.from(header.subarray(3)));
      expect(err.message).toContain('101 bytes exceeds the limit of 100');
    });

    it('defaults maxFrameSize to 64 MiB', () => {
      expect(DEFAULT_MAX_FRAME_SIZE).toBe(64 * MIB);
      const decoder = new FrameDecoder();
      // Exactly 64 MiB of data is accepted (the decoder waits for the body)...
      decoder.push(sizeHeader(4 + 64 * MIB), () => undefined);
      expect(decoder.buffered).toBe(8);
      // ...one byte more is not.
      const err = frameError(new FrameDecoder(), sizeHeader(4 + 64 * MIB + 1));
      expect(err.message).toContain(String(64 * MIB + 1));
    });
  });
});
