import {
  closeSync,
  constants as fsConstants,
  copyFileSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { NsqLogger } from '../client/logger.js';
import { NsqError } from '../protocol/errors.js';

/**
 * A go-diskqueue 1.1.0 compatible file queue (same file names, record format and metadata text, so a
 * Go nsqd can take over our data directory and the other way round), with two differences in what
 * survives a crash:
 * - the persisted read position is the oldest record not yet acknowledged (a low-water mark), not the
 *   read cursor, so messages that were in flight when the process died are replayed, not lost;
 * - on open, records written after the last metadata write are recovered (go-diskqueue skips to a new
 *   file and abandons them) and a torn last record is cut off.
 *
 * Everything is synchronous: when put() returns, the record is in the OS page cache, which survives
 * kill -9; fsync happens every `syncEvery` writes+reads and on the `syncTimeoutMs` timer.
 */

export interface DiskQueueOptions {
  dataPath: string;
  /** Already escaped by the caller: `<topic>` or `<topic>:<channel>`. */
  name: string;
  maxBytesPerFile: number;
  /** Smallest valid record payload (nsqd: 26, the message header). */
  minMsgSize: number;
  /** Largest valid record payload (nsqd: maxMsgSize + 26). */
  maxMsgSize: number;
  /** fsync + metadata after this many writes + reads (go-diskqueue counts the same way). */
  syncEvery: number;
  /** ms between fsyncs while there are unsynced changes. */
  syncTimeoutMs: number;
  logger: NsqLogger;
}

export class DiskQueueError extends NsqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NSQ_DISKQUEUE', message, options);
  }
}

export function diskQueueFileName(dataPath: string, name: string, fileNum: number): string {
  return join(dataPath, `${name}.diskqueue.${String(fileNum).padStart(6, '0')}.dat`);
}

export function metaFileName(dataPath: string, name: string): string {
  return join(dataPath, `${name}.diskqueue.meta.dat`);
}

/** Reads are done in chunks of up to this size, so a backlog costs one syscall per ~4k small records. */
const READ_CHUNK = 1 << 20;
/** Smallest read buffer: queues that only ever hold a little data do not keep 1 MiB each. */
const MIN_READ_BUFFER = 64 * 1024;
const RING_INITIAL = 1024;
/** An idle ring larger than this is given back, so one burst does not pin memory forever. */
const RING_KEEP = 1 << 16;

const META_RE = /^(-?\d+)\n(\d+),(\d+)\n(\d+),(\d+)\n?\s*$/;

interface Metadata {
  depth: number;
  readFileNum: number;
  readPos: number;
  writeFileNum: number;
  writePos: number;
}

interface ScanResult {
  count: number;
  /** End of the last complete, valid record. */
  end: number;
  size: number;
}

interface QueueFiles {
  data: number[];
  other: string[];
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function readFully(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
}

export class DiskQueue {
  readonly name: string;
  private readonly dataPath: string;
  private readonly maxBytesPerFile: number;
  private readonly minMsgSize: number;
  private readonly maxMsgSize: number;
  private readonly syncEvery: number;
  private readonly syncTimeoutMs: number;
  private readonly logger: NsqLogger;
  private readonly metaPath: string;
  private readonly filePrefix: string;

  private writeFileNum = 0;
  private writePos = 0;
  private writeFd: number | undefined;

  // The read cursor: the next record readNext() returns.
  private readFileNum = 0;
  private readPos = 0;
  private readFd: number | undefined;
  /** Size of the read file once it is complete (no longer the write file); -1 while unknown. */
  private readFileEnd = -1;
  private rbuf: Buffer | undefined;
  private rbufPos = 0;
  private rbufLen = 0;
  private unread = 0;

  // Records handed out by readNext(), in read order, from the oldest un-acked one on: a ring of
  // (fileNum, pos, acked). The head is the low-water mark; ticket - firstTicket is the index.
  private ringFile = new Float64Array(RING_INITIAL);
  private ringPos = new Float64Array(RING_INITIAL);
  private ringAcked = new Uint8Array(RING_INITIAL);
  private ringHead = 0;
  private ringLen = 0;
  private firstTicket = 0;
  private unacked = 0;
  /** Oldest data file not yet deleted by us; files below the low-water mark's file go. */
  private lowFileNum = 0;

  private count = 0;
  private dirty = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  private constructor(options: DiskQueueOptions) {
    this.name = options.name;
    this.dataPath = options.dataPath;
    this.maxBytesPerFile = options.maxBytesPerFile;
    this.minMsgSize = options.minMsgSize;
    this.maxMsgSize = options.maxMsgSize;
    this.syncEvery = Math.max(1, options.syncEvery);
    this.syncTimeoutMs = options.syncTimeoutMs;
    this.logger = options.logger;
    this.metaPath = metaFileName(this.dataPath, this.name);
    this.filePrefix = `${this.name}.diskqueue.`;
  }

  /** Opens (creating dataPath if needed) and recovers the queue. Throws DiskQueueError on I/O failure. */
  static open(options: DiskQueueOptions): DiskQueue {
    const queue = new DiskQueue(options);
    try {
      queue.recover();
    } catch (err) {
      queue.closeFds();
      throw err instanceof DiskQueueError
        ? err
        : new DiskQueueError(`DISKQUEUE(${options.name}) cannot open: ${errorText(err)}`, { cause: err });
    }
    queue.timer = setInterval(() => queue.onSyncTimer(), queue.syncTimeoutMs);
    queue.timer.unref();
    return queue;
  }

  /** Records not yet returned by readNext(). */
  get depth(): number {
    return this.unread;
  }

  /** Records returned by readNext() and not yet acknowledged. */
  get unackedCount(): number {
    return this.unacked;
  }

  put(payload: Buffer): void {
    this.putMany([payload]);
  }

  /**
   * Appends the records with one write per data file touched. Sizes are checked before anything is
   * written; if a write fails, what this call wrote is cut off again.
   */
  putMany(payloads: readonly Buffer[]): void {
    if (this.closed) throw new DiskQueueError(`DISKQUEUE(${this.name}) is closed`);
    for (const p of payloads) {
      if (p.length < this.minMsgSize || p.length > this.maxMsgSize) {
        throw new DiskQueueError(
          `DISKQUEUE(${this.name}) invalid message write size (${p.length}) minMsgSize=${this.minMsgSize} maxMsgSize=${this.maxMsgSize}`,
        );
      }
    }
    if (payloads.length === 0) return;

    const startFile = this.writeFileNum;
    const startPos = this.writePos;
    const startUnread = this.unread;
    let rolled = false;
    try {
      let i = 0;
      while (i < payloads.length) {
        const first = payloads[i]!;
        if (this.writePos > 0 && this.writePos + 4 + first.length > this.maxBytesPerFile) {
          this.roll();
          rolled = true;
        }
        // Gather as many records as fit in this file (at least one: a record may exceed the limit
        // only in an empty file, as in go-diskqueue).
        let bytes = 4 + first.length;
        let j = i + 1;
        while (j < payloads.length) {
          const size = 4 + payloads[j]!.length;
          if (this.writePos + bytes + size > this.maxBytesPerFile) break;
          bytes += size;
          j++;
        }
        const buf = Buffer.allocUnsafe(bytes);
        let off = 0;
        for (let k = i; k < j; k++) {
          const p = payloads[k]!;
          buf.writeInt32BE(p.length, off);
          p.copy(buf, off + 4);
          off += 4 + p.length;
        }
        this.writeAll(buf);
        this.writePos += bytes;
        this.unread += j - i;
        i = j;
      }
    } catch (err) {
      this.rollback(startFile, startPos, startUnread);
      throw err instanceof DiskQueueError
        ? err
        : new DiskQueueError(`DISKQUEUE(${this.name}) write failed: ${errorText(err)}`, { cause: err });
    }
    // Only now: a rollback may still need the files a roll finished.
    if (rolled) this.releaseFiles(true);
    this.count += payloads.length;
    this.dirty = true;
    if (this.count >= this.syncEvery) this.sync();
  }

  /**
   * The next unread record, or undefined when everything has been read. Corrupt data never throws:
   * the file is set aside as `.bad` and reading goes on with the next one.
   */
  readNext(): { data: Buffer; ticket: number } | undefined {
    if (this.closed) return undefined;
    for (;;) {
      if (this.readFileNum === this.writeFileNum && this.readPos >= this.writePos) {
        this.fixDepthAtTail();
        return undefined;
      }
      if (this.readFd === undefined && !this.openReadFile()) continue;
      const end = this.readFileNum === this.writeFileNum ? this.writePos : this.readFileEnd;
      if (this.readPos >= end) {
        this.nextReadFile();
        continue;
      }
      if (end - this.readPos < 4 || !this.fill(this.readPos, 4, end)) {
        this.skipBadFile('truncated record length', true);
        continue;
      }
      const size = this.rbuf!.readInt32BE(this.readPos - this.rbufPos);
      if (size < this.minMsgSize || size > this.maxMsgSize) {
        this.skipBadFile(`invalid record length ${size}`, true);
        continue;
      }
      if (this.readPos + 4 + size > end) {
        this.skipBadFile(`record of ${size} bytes runs past the end of the file (${end})`, true);
        continue;
      }
      const data = this.readPayload(size, end);
      if (data === undefined) {
        this.skipBadFile('short read', true);
        continue;
      }
      const ticket = this.pushHandedOut(this.readFileNum, this.readPos);
      this.readPos += 4 + size;
      if (this.unread > 0) this.unread--;
      if (this.readFileNum < this.writeFileNum && this.readPos >= this.readFileEnd) this.nextReadFile();
      this.count++;
      this.dirty = true;
      if (this.count >= this.syncEvery) {
        try {
          this.sync();
        } catch (err) {
          // The record is read; the metadata is written again by the next sync.
          this.logger.error(errorText(err));
        }
      }
      return { data, ticket };
    }
  }

  /** The record is no longer needed. Idempotent; unknown and old tickets are ignored. */
  ack(ticket: number): void {
    if (this.closed) return;
    const index = ticket - this.firstTicket;
    if (!(index >= 0 && index < this.ringLen) || !Number.isInteger(index)) return;
    const mask = this.ringFile.length - 1;
    const slot = (this.ringHead + index) & mask;
    if (this.ringAcked[slot] === 1) return;
    this.ringAcked[slot] = 1;
    this.unacked--;
    this.dirty = true;
    if (index !== 0) return;
    while (this.ringLen > 0 && this.ringAcked[this.ringHead] === 1) {
      this.ringHead = (this.ringHead + 1) & mask;
      this.ringLen--;
      this.firstTicket++;
    }
    if (this.ringLen === 0) this.resetRing();
    this.releaseFiles(false);
  }

  /** fsync the write file and persist the metadata. No-op once closed. */
  sync(): void {
    if (this.closed) return;
    this.syncNow();
  }

  /** Drops everything: data files deleted, counters zeroed, file numbers move on (as go-diskqueue). */
  empty(): void {
    if (this.closed) throw new DiskQueueError(`DISKQUEUE(${this.name}) is closed`);
    this.closeFds();
    const lastFile = this.writeFileNum;
    this.writeFileNum = lastFile + 1;
    this.writePos = 0;
    this.readFileNum = this.writeFileNum;
    this.readPos = 0;
    this.readFileEnd = -1;
    this.rbuf = undefined;
    this.rbufLen = 0;
    this.unread = 0;
    this.firstTicket += this.ringLen;
    this.ringLen = 0;
    this.unacked = 0;
    this.resetRing();
    this.lowFileNum = this.writeFileNum;
    let failure: unknown;
    try {
      // Metadata first: a crash in between leaves files below the read position, which open() removes.
      this.persistMetadata();
      this.count = 0;
      this.dirty = false;
    } catch (err) {
      failure = err;
    }
    try {
      for (const n of this.listFiles().data) {
        if (n <= lastFile) unlinkIfExists(this.fileName(n));
      }
    } catch (err) {
      failure ??= err;
    }
    if (failure !== undefined) {
      throw new DiskQueueError(`DISKQUEUE(${this.name}) empty failed: ${errorText(failure)}`, { cause: failure });
    }
  }

  /** Syncs, persists the metadata and closes the files. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.stopTimer();
    try {
      this.syncNow();
    } finally {
      this.closed = true;
      this.closeFds();
      this.releaseMemory();
    }
  }

  /** Closes (without syncing) and removes every file of this queue, including `.bad` ones. */
  delete(): void {
    if (!this.closed) {
      this.stopTimer();
      this.closed = true;
      this.closeFds();
      this.releaseMemory();
    }
    let failure: unknown;
    let files: QueueFiles;
    try {
      files = this.listFiles();
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw new DiskQueueError(`DISKQUEUE(${this.name}) delete failed: ${errorText(err)}`, { cause: err });
    }
    const paths = [...files.data.map((n) => this.fileName(n)), ...files.other.map((f) => join(this.dataPath, f))];
    for (const path of paths) {
      try {
        unlinkIfExists(path);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) {
      throw new DiskQueueError(`DISKQUEUE(${this.name}) delete failed: ${errorText(failure)}`, { cause: failure });
    }
  }

  // ---- write side ----

  private fileName(fileNum: number): string {
    return diskQueueFileName(this.dataPath, this.name, fileNum);
  }

  private writeAll(buf: Buffer): void {
    if (this.writeFd === undefined) {
      this.writeFd = openSync(this.fileName(this.writeFileNum), fsConstants.O_WRONLY | fsConstants.O_CREAT, 0o600);
    }
    let off = 0;
    while (off < buf.length) {
      off += writeSync(this.writeFd, buf, off, buf.length - off, this.writePos + off);
    }
  }

  /** Moves writing to a new file; the finished one is fsynced and the metadata says so. */
  private roll(): void {
    if (this.writeFd !== undefined) {
      fsyncSync(this.writeFd);
      closeSync(this.writeFd);
      this.writeFd = undefined;
    }
    const finishedFile = this.writeFileNum;
    const finishedSize = this.writePos;
    this.writeFileNum++;
    this.writePos = 0;
    if (this.readFileNum === finishedFile) {
      this.readFileEnd = finishedSize;
      // Never leave the cursor (and so the persisted position) at the end of a complete file.
      if (this.readPos >= finishedSize) this.moveReadCursorToNextFile();
    }
    this.syncNow();
  }

  /** Undoes a failed putMany: cut the first file back, drop files it created. */
  private rollback(startFile: number, startPos: number, startUnread: number): void {
    if (this.writeFd !== undefined) {
      try {
        closeSync(this.writeFd);
      } catch {
        // the fd is gone either way
      }
      this.writeFd = undefined;
    }
    const rolled = this.writeFileNum !== startFile;
    for (let n = startFile + 1; n <= this.writeFileNum; n++) {
      try {
        unlinkIfExists(this.fileName(n));
      } catch (err) {
        this.logger.error(`DISKQUEUE(${this.name}) cannot remove ${this.fileName(n)}: ${errorText(err)}`);
      }
    }
    try {
      truncateSync(this.fileName(startFile), startPos);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT' || startPos > 0) {
        this.logger.error(`DISKQUEUE(${this.name}) cannot cut back ${this.fileName(startFile)}: ${errorText(err)}`);
      }
    }
    this.writeFileNum = startFile;
    this.writePos = startPos;
    this.unread = startUnread;
    if (this.readFileNum > startFile) {
      // a roll moved the cursor into a file that no longer exists
      this.closeReadFd();
      this.readFileNum = startFile;
      this.readPos = startPos;
    }
    if (this.readFileNum === startFile) this.readFileEnd = -1;
    if (rolled) {
      try {
        this.persistMetadata();
      } catch (err) {
        this.logger.error(errorText(err));
      }
    }
  }

  // ---- read side ----

  private openReadFile(): boolean {
    const path = this.fileName(this.readFileNum);
    try {
      this.readFd = openSync(path, 'r');
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') {
        throw new DiskQueueError(`DISKQUEUE(${this.name}) cannot open ${path}: ${errorText(err)}`, { cause: err });
      }
      if (this.readFileNum === this.writeFileNum) {
        this.skipBadFile('data file is missing', false);
      } else {
        this.logger.warn(`DISKQUEUE(${this.name}) ${path} is missing, skipping to the next file`);
        this.skipMissingFiles();
      }
      return false;
    }
    this.rbufLen = 0;
    this.readFileEnd = this.readFileNum < this.writeFileNum ? fstatSync(this.readFd).size : -1;
    return true;
  }

  /** Makes rbuf hold [pos, pos + n) of the read file, reading as much as possible up to `end`. */
  private fill(pos: number, n: number, end: number): boolean {
    if (this.rbuf !== undefined && pos >= this.rbufPos && pos + n <= this.rbufPos + this.rbufLen) return true;
    const want = Math.min(end - pos, READ_CHUNK);
    if (this.rbuf === undefined || this.rbuf.length < want) {
      this.rbuf = Buffer.allocUnsafe(Math.max(want, MIN_READ_BUFFER));
    }
    this.rbufPos = pos;
    this.rbufLen = 0;
    try {
      this.rbufLen = readFully(this.readFd!, this.rbuf, 0, want, pos);
    } catch (err) {
      this.logger.error(`DISKQUEUE(${this.name}) read error in ${this.fileName(this.readFileNum)}: ${errorText(err)}`);
      return false;
    }
    return this.rbufLen >= n;
  }

  /** A fresh Buffer with the payload of the record at readPos (its length already checked). */
  private readPayload(size: number, end: number): Buffer | undefined {
    const data = Buffer.allocUnsafe(size);
    if (4 + size <= READ_CHUNK) {
      if (!this.fill(this.readPos, 4 + size, end)) return undefined;
      const start = this.readPos + 4 - this.rbufPos;
      this.rbuf!.copy(data, 0, start, start + size);
      return data;
    }
    try {
      return readFully(this.readFd!, data, 0, size, this.readPos + 4) === size ? data : undefined;
    } catch (err) {
      this.logger.error(`DISKQUEUE(${this.name}) read error in ${this.fileName(this.readFileNum)}: ${errorText(err)}`);
      return undefined;
    }
  }

  private closeReadFd(): void {
    if (this.readFd !== undefined) {
      try {
        closeSync(this.readFd);
      } catch {
        // nothing to do about a failed close of a read-only fd
      }
      this.readFd = undefined;
    }
    this.readFileEnd = -1;
    this.rbufLen = 0;
  }

  private moveReadCursorToNextFile(): void {
    this.closeReadFd();
    this.readFileNum++;
    this.readPos = 0;
  }

  private nextReadFile(): void {
    this.moveReadCursorToNextFile();
    this.releaseFiles(false);
  }

  /** Jumps over a gap in the file numbers (files renamed .bad or removed by hand). */
  private skipMissingFiles(): void {
    this.closeReadFd();
    let next = this.writeFileNum;
    try {
      for (const n of this.listFiles().data) {
        if (n > this.readFileNum && n < next) next = n;
      }
    } catch (err) {
      this.logger.error(`DISKQUEUE(${this.name}) cannot list ${this.dataPath}: ${errorText(err)}`);
      next = this.readFileNum + 1;
    }
    this.readFileNum = next;
    this.readPos = 0;
    this.releaseFiles(false);
  }

  /**
   * The read file holds data that is not a record: set it aside as `.bad` and go on with the next
   * file. When the file is the write file, writing moves to a new file too (as go-diskqueue).
   * Records before the bad one that are still un-acked must survive a crash, so in that case the
   * file is copied to `.bad` and cut back to its good part instead of renamed.
   */
  private skipBadFile(reason: string, setAside: boolean): void {
    const fileNum = this.readFileNum;
    const badPos = this.readPos;
    const path = this.fileName(fileNum);
    this.logger.warn(
      `DISKQUEUE(${this.name}) ${path}: ${reason} at offset ${badPos}; ${setAside ? 'renaming it to .bad and ' : ''}skipping to the next file`,
    );
    this.closeReadFd();
    if (fileNum === this.writeFileNum) {
      if (this.writeFd !== undefined) {
        try {
          closeSync(this.writeFd);
        } catch {
          // abandoning this file anyway
        }
        this.writeFd = undefined;
      }
      this.writeFileNum++;
      this.writePos = 0;
    }
    if (setAside) {
      try {
        if (badPos > 0 && this.ringLen > 0) {
          copyFileSync(path, `${path}.bad`);
          truncateSync(path, badPos);
        } else {
          renameSync(path, `${path}.bad`);
        }
      } catch (err) {
        this.logger.error(`DISKQUEUE(${this.name}) cannot set ${path} aside: ${errorText(err)}`);
      }
    }
    this.readFileNum = fileNum + 1;
    this.readPos = 0;
    this.dirty = true;
    try {
      this.syncNow();
    } catch (err) {
      this.logger.error(errorText(err));
    }
    this.releaseFiles(true);
  }

  /** Nothing is left to read, so depth must be 0; it is not after lost data or bad metadata. */
  private fixDepthAtTail(): void {
    if (this.unread === 0) return;
    this.logger.warn(`DISKQUEUE(${this.name}) depth ${this.unread} at the end of the queue, resetting it to 0`);
    this.unread = 0;
    this.dirty = true;
  }

  // ---- acknowledgement ring ----

  private pushHandedOut(fileNum: number, pos: number): number {
    if (this.ringLen === this.ringFile.length) this.growRing();
    const slot = (this.ringHead + this.ringLen) & (this.ringFile.length - 1);
    this.ringFile[slot] = fileNum;
    this.ringPos[slot] = pos;
    this.ringAcked[slot] = 0;
    this.ringLen++;
    this.unacked++;
    return this.firstTicket + this.ringLen - 1;
  }

  private growRing(): void {
    const capacity = this.ringFile.length * 2;
    const mask = this.ringFile.length - 1;
    const files = new Float64Array(capacity);
    const positions = new Float64Array(capacity);
    const acked = new Uint8Array(capacity);
    for (let i = 0; i < this.ringLen; i++) {
      const slot = (this.ringHead + i) & mask;
      files[i] = this.ringFile[slot]!;
      positions[i] = this.ringPos[slot]!;
      acked[i] = this.ringAcked[slot]!;
    }
    this.ringFile = files;
    this.ringPos = positions;
    this.ringAcked = acked;
    this.ringHead = 0;
  }

  /** Only while the ring is empty. */
  private resetRing(): void {
    this.ringHead = 0;
    if (this.ringFile.length > RING_KEEP) {
      this.ringFile = new Float64Array(RING_INITIAL);
      this.ringPos = new Float64Array(RING_INITIAL);
      this.ringAcked = new Uint8Array(RING_INITIAL);
    }
  }

  private lowWaterFile(): number {
    return this.ringLen > 0 ? this.ringFile[this.ringHead]! : this.readFileNum;
  }

  /**
   * Deletes the files that lie entirely below the low-water mark, after the metadata that no longer
   * points into them is on disk.
   */
  private releaseFiles(synced: boolean): void {
    const low = this.lowWaterFile();
    if (low <= this.lowFileNum) return;
    if (!synced) {
      try {
        this.syncNow();
      } catch (err) {
        this.logger.error(errorText(err));
        return;
      }
    }
    try {
      if (low - this.lowFileNum <= 64) {
        for (let n = this.lowFileNum; n < low; n++) unlinkIfExists(this.fileName(n));
      } else {
        for (const n of this.listFiles().data) if (n < low) unlinkIfExists(this.fileName(n));
      }
    } catch (err) {
      this.logger.error(`DISKQUEUE(${this.name}) cannot remove a finished data file: ${errorText(err)}`);
    }
    this.lowFileNum = low;
  }

  // ---- sync and metadata ----

  private onSyncTimer(): void {
    if (this.closed || (!this.dirty && this.count === 0)) return;
    try {
      this.syncNow();
    } catch (err) {
      this.logger.error(errorText(err));
    }
  }

  private syncNow(): void {
    try {
      if (this.writeFd !== undefined) fsyncSync(this.writeFd);
      this.persistMetadata();
    } catch (err) {
      throw err instanceof DiskQueueError
        ? err
        : new DiskQueueError(`DISKQUEUE(${this.name}) sync failed: ${errorText(err)}`, { cause: err });
    }
    this.count = 0;
    this.dirty = false;
  }

  /**
   * The persisted read position is the low-water mark and the depth counts everything from it, so a
   * restart replays every record that was not acknowledged.
   */
  private persistMetadata(): void {
    const readFile = this.lowWaterFile();
    const readPos = this.ringLen > 0 ? this.ringPos[this.ringHead]! : this.readPos;
    const text = `${this.unread + this.ringLen}\n${readFile},${readPos}\n${this.writeFileNum},${this.writePos}\n`;
    const tmp = `${this.metaPath}.${Math.floor(Math.random() * Number.MAX_SAFE_INTEGER)}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.metaPath);
    } catch (err) {
      try {
        unlinkIfExists(tmp);
      } catch {
        // the original error is the one worth reporting
      }
      throw new DiskQueueError(`DISKQUEUE(${this.name}) cannot write metadata: ${errorText(err)}`, { cause: err });
    }
  }

  private loadMetadata(): { meta?: Metadata; corrupt: boolean } {
    let text: string;
    try {
      text = readFileSync(this.metaPath, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { corrupt: false };
      throw err;
    }
    const m = META_RE.exec(text);
    const values = m ? m.slice(1, 6).map(Number) : [];
    if (!m || values.some((v) => !Number.isSafeInteger(v))) {
      this.logger.error(`DISKQUEUE(${this.name}) ${this.metaPath} is corrupt (${JSON.stringify(text.slice(0, 80))}), rebuilding from the data files`);
      return { corrupt: true };
    }
    const [depth, readFileNum, readPos, writeFileNum, writePos] = values as [number, number, number, number, number];
    return { meta: { depth, readFileNum, readPos, writeFileNum, writePos }, corrupt: false };
  }

  // ---- recovery ----

  /** Data file numbers (sorted) and every other file of this queue (metadata, tmp, .bad). */
  private listFiles(): QueueFiles {
    const data: number[] = [];
    const other: string[] = [];
    for (const entry of readdirSync(this.dataPath)) {
      if (!entry.startsWith(this.filePrefix)) continue;
      const rest = entry.slice(this.filePrefix.length);
      const dat = /^(\d+)\.dat$/.exec(rest);
      if (dat) data.push(Number(dat[1]));
      else if (/^\d+\.dat\.bad$/.test(rest) || /^meta\.dat(\.\d+\.tmp)?$/.test(rest)) other.push(entry);
    }
    data.sort((a, b) => a - b);
    return { data, other };
  }

  /** Counts the valid records of a file from `from` up to `limit`; undefined if the file is missing. */
  private scanFile(fileNum: number, from: number, buf: Buffer, limit = Infinity): ScanResult | undefined {
    let fd: number;
    try {
      fd = openSync(this.fileName(fileNum), 'r');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const size = fstatSync(fd).size;
      const end = Math.min(size, limit);
      let pos = from;
      let count = 0;
      let bufPos = 0;
      let bufLen = 0;
      while (pos + 4 <= end) {
        if (pos < bufPos || pos + 4 > bufPos + bufLen) {
          bufPos = pos;
          bufLen = readFully(fd, buf, 0, Math.min(buf.length, end - pos), pos);
          if (bufLen < 4) break;
        }
        const len = buf.readInt32BE(pos - bufPos);
        if (len < this.minMsgSize || len > this.maxMsgSize || pos + 4 + len > end) break;
        count++;
        pos += 4 + len;
      }
      return { count, end: Math.max(pos, from), size };
    } finally {
      closeSync(fd);
    }
  }

  private recover(): void {
    mkdirSync(this.dataPath, { recursive: true });
    const files = this.listFiles();
    for (const f of files.other) {
      if (f.endsWith('.tmp')) unlinkIfExists(join(this.dataPath, f));
    }
    const { meta, corrupt } = this.loadMetadata();
    const scanBuf = Buffer.allocUnsafe(READ_CHUNK);
    let changed = corrupt;
    let recount = false;

    if (meta) {
      this.unread = meta.depth;
      this.readFileNum = meta.readFileNum;
      this.readPos = meta.readPos;
      this.writeFileNum = meta.writeFileNum;
      this.writePos = meta.writePos;
    } else if (files.data.length > 0) {
      // A crash before the first metadata write, or corrupt metadata: every data file is unread.
      const first = files.data[0]!;
      this.logger.info(`DISKQUEUE(${this.name}) no usable metadata, rebuilding from ${files.data.length} data file(s)`);
      this.readFileNum = first;
      this.writeFileNum = first;
      this.unread = 0;
      changed = true;
    }

    // Records written after the last metadata write: the write file past writePos, and any later file.
    const tailFiles = [this.writeFileNum, ...files.data.filter((n) => n > this.writeFileNum)];
    let recovered = 0;
    for (const [i, fileNum] of tailFiles.entries()) {
      const from = i === 0 ? this.writePos : 0;
      let scan = this.scanFile(fileNum, from, scanBuf);
      if (scan === undefined) {
        if (from > 0) {
          this.logger.warn(`DISKQUEUE(${this.name}) ${this.fileName(fileNum)} is missing although the metadata has data in it`);
          recount = true;
          changed = true;
        }
        this.writeFileNum = fileNum;
        this.writePos = 0;
        continue;
      }
      if (scan.size < from) {
        // Shorter than the metadata says: find the last record boundary from a known one.
        const known = this.readFileNum === fileNum && this.readPos <= scan.size ? this.readPos : 0;
        if (this.readFileNum === fileNum && this.readPos > scan.size) this.readPos = 0;
        this.logger.warn(
          `DISKQUEUE(${this.name}) ${this.fileName(fileNum)} has ${scan.size} bytes, less than the metadata's ${from}; rescanning it`,
        );
        scan = this.scanFile(fileNum, known, scanBuf)!;
        recount = true;
        changed = true;
      } else {
        recovered += scan.count;
        this.unread += scan.count;
      }
      if (scan.end < scan.size) {
        this.logger.warn(
          `DISKQUEUE(${this.name}) ${this.fileName(fileNum)}: cutting off ${scan.size - scan.end} bytes of torn or invalid data at offset ${scan.end}`,
        );
        truncateSync(this.fileName(fileNum), scan.end);
        changed = true;
      }
      this.writeFileNum = fileNum;
      this.writePos = scan.end;
    }
    if (recovered > 0) {
      if (meta) this.logger.info(`DISKQUEUE(${this.name}) recovered ${recovered} record(s) written after the last metadata`);
      changed = true;
    }

    if (this.readFileNum > this.writeFileNum || (this.readFileNum === this.writeFileNum && this.readPos > this.writePos)) {
      this.logger.error(
        `DISKQUEUE(${this.name}) read position ${this.readFileNum},${this.readPos} is past the write position ${this.writeFileNum},${this.writePos}; the queue starts empty`,
      );
      this.readFileNum = this.writeFileNum;
      this.readPos = this.writePos;
      this.unread = 0;
      recount = false;
      changed = true;
    }

    if (!recount && !this.depthPlausible()) {
      this.logger.warn(`DISKQUEUE(${this.name}) depth ${this.unread} does not fit the data files, recounting`);
      recount = true;
    }
    if (recount) {
      let depth = 0;
      const inRange = files.data.filter((n) => n >= this.readFileNum && n < this.writeFileNum);
      for (const n of [...inRange, this.writeFileNum]) {
        const limit = n === this.writeFileNum ? this.writePos : Infinity;
        depth += this.scanFile(n, n === this.readFileNum ? this.readPos : 0, scanBuf, limit)?.count ?? 0;
      }
      if (depth !== this.unread) changed = true;
      this.unread = depth;
    }

    // Files below the read position were finished before a crash stopped their removal.
    for (const n of files.data) {
      if (n < this.readFileNum) unlinkIfExists(this.fileName(n));
    }
    this.lowFileNum = this.readFileNum;
    if (changed) this.persistMetadata();
  }

  /** Whether `depth` records of valid sizes can fill exactly the bytes between read and write position. */
  private depthPlausible(): boolean {
    if (this.unread < 0) return false;
    let bytes = 0;
    if (this.readFileNum === this.writeFileNum) {
      bytes = this.writePos - this.readPos;
    } else {
      for (const n of this.listFiles().data) {
        if (n < this.readFileNum || n >= this.writeFileNum) continue;
        bytes += statSync(this.fileName(n)).size - (n === this.readFileNum ? this.readPos : 0);
      }
      bytes += this.writePos;
    }
    return this.unread * (4 + this.minMsgSize) <= bytes && this.unread * (4 + this.maxMsgSize) >= bytes;
  }

  // ---- teardown ----

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private closeFds(): void {
    this.closeReadFd();
    if (this.writeFd !== undefined) {
      try {
        closeSync(this.writeFd);
      } catch {
        // closing is best effort; data was synced before when it mattered
      }
      this.writeFd = undefined;
    }
  }

  private releaseMemory(): void {
    this.rbuf = undefined;
    this.rbufLen = 0;
  }
}
