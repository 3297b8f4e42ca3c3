import { fsyncSync, writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

const NEWLINE = 0x0a;
const INITIAL_READ = 1 << 20;

/**
 * An append-only file of JSON lines, replayed from a persisted offset. Appends are fsync'd, so
 * a line the recorder counts as spooled survives a crash. The replay offset is kept in
 * `<path>.offset`, written after each replayed batch but not fsync'd: after a crash the replay may
 * repeat a batch, which the recorder's idempotent writes absorb.
 *
 * Appends, resets and close run one at a time; reads only touch bytes already appended.
 */
export class Spool {
  private fh: FileHandle | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** Bytes appended (and synced). */
  size = 0;
  /** Bytes replayed. */
  offset = 0;

  constructor(readonly path: string) {}

  get offsetPath(): string {
    return `${this.path}.offset`;
  }

  get pendingBytes(): number {
    return this.size - this.offset;
  }

  get isOpen(): boolean {
    return this.fh !== undefined;
  }

  /** Opens (or creates) the file and restores the replay offset. */
  async open(): Promise<void> {
    if (this.fh !== undefined) return;
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.path, 'a+');
    this.fh = fh;
    this.size = (await fh.stat()).size;
    if (this.size > 0) {
      // a crash mid-append leaves a torn last line: end it, so the next append starts a line of its own
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, this.size - 1);
      if (last[0] !== NEWLINE) {
        await fh.write('\n');
        await fh.sync();
        this.size++;
      }
    }
    this.offset = 0;
    try {
      const saved = Number((await readFile(this.offsetPath, 'utf8')).trim());
      if (Number.isInteger(saved) && saved >= 0 && saved <= this.size) this.offset = saved;
    } catch {
      // no offset file: replay from the start
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Appends `data` (complete lines) and fsyncs. */
  append(data: string): Promise<void> {
    return this.exclusive(async () => {
      const fh = this.handle();
      const buf = Buffer.from(data, 'utf8');
      let written = 0;
      while (written < buf.length) {
        const { bytesWritten } = await fh.write(buf, written, buf.length - written);
        written += bytesWritten;
      }
      await fh.sync();
      this.size += buf.length;
    });
  }

  /** Appends synchronously (the last resort of a close that ran out of time). */
  appendSync(data: string): void {
    const fh = this.handle();
    const buf = Buffer.from(data, 'utf8');
    let written = 0;
    while (written < buf.length) written += writeSync(fh.fd, buf, written, buf.length - written);
    fsyncSync(fh.fd);
    this.size += buf.length;
  }

  /**
   * Up to `maxLines` complete lines from the replay offset, and the offset after them. Reads
   * never pass `size`, so a concurrent append is never seen half-written.
   */
  async read(maxLines: number): Promise<{ lines: string[]; end: number }> {
    const fh = this.handle();
    const start = this.offset;
    const limit = this.size;
    let want = Math.min(INITIAL_READ, limit - start);
    while (want > 0) {
      const buf = Buffer.alloc(want);
      const { bytesRead } = await fh.read(buf, 0, want, start);
      const lines: string[] = [];
      let pos = 0;
      while (lines.length < maxLines) {
        const nl = buf.indexOf(NEWLINE, pos);
        if (nl === -1 || nl >= bytesRead) break;
        lines.push(buf.toString('utf8', pos, nl));
        pos = nl + 1;
      }
      if (lines.length > 0) return { lines, end: start + pos };
      if (want >= limit - start) break;
      want = Math.min(want * 2, limit - start);
    }
    return { lines: [], end: start };
  }

  /** Marks everything before `end` as replayed. */
  async commit(end: number): Promise<void> {
    this.offset = end;
    await writeFile(this.offsetPath, String(end));
  }

  /** Empties the file if everything in it was replayed; returns whether it did. */
  resetIfReplayed(): Promise<boolean> {
    return this.exclusive(async () => {
      if (this.offset < this.size) return false;
      await this.handle().truncate(0);
      this.size = 0;
      this.offset = 0;
      await rm(this.offsetPath, { force: true });
      return true;
    });
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      const fh = this.fh;
      this.fh = undefined;
      await fh?.close();
    });
  }

  private handle(): FileHandle {
    if (this.fh === undefined) throw new Error(`history spool ${this.path} is not open`);
    return this.fh;
  }
}
