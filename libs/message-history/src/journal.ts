import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { MessageEvent } from '../../nsq/src/nsqd/events.js';
import { JournalEncoder, readJournal } from './journal-codec.js';
import type { HistoryRecorder, HistoryRecorderStats } from './recorder.js';
import type { HistoryRecord } from './types.js';

export interface HistoryJournalOptions {
  /**
   * Journal files are `<path>.<n>`; `<path>`'s directory is created. Use one path per recorder,
   * beside its spool (e.g. `<spoolPath>.journal`).
   */
  path: string;
  /** ms between checkpoints: a new file is started, and the older ones are deleted once the recorder has flushed them (default 1000). */
  checkpointInterval?: number;
  /** First part of the event keys (default `<hostname>/<pid>`). */
  source?: string;
}

export interface HistoryJournalStats extends HistoryRecorderStats {
  /** Journal bytes not yet known to be in the database or the spool. */
  journalBytes: number;
  /** Events replayed from the journal at start (left by a process that died). */
  journalReplayed: number;
}

/**
 * A write-ahead journal in front of a HistoryRecorder, for history that must survive the process
 * being killed (SIGKILL, OOM, a crash): the recorder holds events in memory for up to a flush
 * interval, and those would be lost.
 *
 * record() hands the event to the recorder as usual and encodes it into the journal's buffer
 * (./journal-codec.ts: nsqd events as bytes, other records as JSON); at the end of the current
 * synchronous run (process.nextTick) what that run encoded is appended with one write(2). A process killed after that point loses nothing: the next start replays the journal
 * into the recorder. An event key is given to every record, so a replay of events the recorder had
 * already written adds nothing (INSERT IGNORE, idempotent summaries). Appends are not fsync'd:
 * the journal survives the process, not the machine (the recorder's spool is fsync'd).
 *
 * Every `checkpointInterval` a new journal file is started; once the recorder has written every
 * event recorded so far (to the database or the fsync'd spool: HistoryRecorder.written(), which
 * does not hurry writes that wait out a burst), the older files are deleted. So the journal holds
 * about two checkpoint intervals of events, or, during a burst, what the recorder holds back.
 *
 * The costs are an encoding per event and a write per run: cheap next to a delivery at the rates
 * of most services, measurable at a broker's full rate (see `npm run bench:history`).
 */
export class HistoryJournal {
  private readonly dir: string;
  private readonly prefix: string;
  private readonly keyPrefix: string;
  private readonly checkpointInterval: number;
  private seq = 0;
  private fileNo = 0;
  private fd: number | undefined;
  private readonly encoder = new JournalEncoder();
  private scheduled = false;
  /** Files written before the current one, not yet known to be flushed. */
  private older: string[] = [];
  private bytes = 0;
  private replayed = 0;
  private timer: NodeJS.Timeout | undefined;
  private state: 'new' | 'started' | 'closed' = 'new';
  private checkpointing: Promise<void> | undefined;

  constructor(
    readonly recorder: HistoryRecorder,
    options: HistoryJournalOptions,
  ) {
    if (!options.path) throw new RangeError('HistoryJournal: path is required');
    this.dir = dirname(options.path);
    this.prefix = `${basename(options.path)}.`;
    this.checkpointInterval = options.checkpointInterval ?? 1000;
    if (!Number.isFinite(this.checkpointInterval) || this.checkpointInterval < 1) {
      throw new RangeError(`HistoryJournal: checkpointInterval must be a number >= 1, got ${String(options.checkpointInterval)}`);
    }
    const source = (options.source ?? `${hostname()}/${process.pid}`).slice(0, 120);
    this.keyPrefix = `${source}:j${Date.now().toString(36)}${randomBytes(3).toString('hex')}:`;
  }

  /** Starts the recorder, replays what a previous process left in the journal, and opens a new file. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    mkdirSync(this.dir, { recursive: true });
    await this.recorder.start();
    const left = this.journalFiles();
    for (const file of left) {
      // a torn end (the process died mid-write) is skipped: it was never acknowledged as written
      for (const r of readJournal(readFileSync(file)).records) {
        this.recorder.record(r);
        this.replayed++;
      }
    }
    this.fileNo = left.reduce((max, f) => Math.max(max, Number(f.slice(f.lastIndexOf('.') + 1))), 0) + 1;
    this.openFile();
    this.state = 'started';
    if (left.length > 0) {
      // the replayed events are in the recorder's memory only: their files go once it has them safe
      this.older = left;
      this.checkpointing = this.release(left.length);
    }
    this.timer = setInterval(() => this.checkpoint(), this.checkpointInterval);
    this.timer.unref();
  }

  /** Queues one event in the recorder and in the journal. Never throws. */
  record(record: HistoryRecord): void {
    if (this.state !== 'started') {
      this.recorder.record(record);
      return;
    }
    try {
      const r: HistoryRecord = record.key === undefined ? { ...record, key: this.keyPrefix + (this.seq++).toString(36) } : record;
      this.recorder.record(r);
      this.encoder.record(r);
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(() => this.writePending());
      }
    } catch {
      // an unserializable record is the recorder's to count as ignored
    }
  }

  /**
   * An nsqd lifecycle event (recordNsqdEvents' path): the same as
   * `record(historyRecordFromNsqdEvent(nsqd, e))`, through the recorder's fast path, with the
   * event encoded as bytes. `nsqd` must already fit its column.
   * @internal
   */
  recordNsqdEvent(nsqd: string, e: MessageEvent): void {
    if (this.state !== 'started') {
      this.recorder.recordNsqdEvent(nsqd, e);
      return;
    }
    try {
      const seq = this.seq++;
      this.recorder.recordNsqdEvent(nsqd, e, this.keyPrefix + seq.toString(36));
      this.encoder.event(seq, nsqd, e, this.keyPrefix);
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(() => this.writePending());
      }
    } catch {
      // the recorder counts what it could not take
    }
  }

  /** Resolves when every event so far is in the database or the recorder's spool. */
  flush(): Promise<void> {
    this.writePending();
    return this.recorder.flush();
  }

  stats(): HistoryJournalStats {
    return { ...this.recorder.stats(), journalBytes: this.bytes, journalReplayed: this.replayed };
  }

  /** Closes the recorder (which flushes or spools everything it holds), then deletes the journal. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasStarted = this.state === 'started';
    this.state = 'closed';
    clearInterval(this.timer);
    this.writePending();
    await this.checkpointing?.catch(() => undefined);
    await this.recorder.close();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    // after close() every event is in the database or the fsync'd spool
    if (wasStarted) for (const file of this.journalFiles()) unlinkSync(file);
  }

  private journalFiles(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.startsWith(this.prefix) && /^\d+$/.test(n.slice(this.prefix.length)))
      .sort((a, b) => Number(a.slice(this.prefix.length)) - Number(b.slice(this.prefix.length)))
      .map((n) => join(this.dir, n));
  }

  private currentPath(): string {
    return join(this.dir, `${this.prefix}${this.fileNo}`);
  }

  private openFile(): void {
    this.fd = openSync(this.currentPath(), 'a');
    this.encoder.reset(this.keyPrefix);
  }

  private writePending(): void {
    this.scheduled = false;
    if (this.encoder.pending === 0 || this.fd === undefined) return;
    const data = this.encoder.take();
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off);
    this.bytes += data.length;
  }

  /** Starts a new file; the finished ones are deleted once the recorder has flushed them. */
  private checkpoint(): void {
    if (this.state !== 'started' || this.checkpointing !== undefined || this.fd === undefined) return;
    this.writePending();
    if (this.bytes === 0 && this.older.length === 0) return;
    // no fsync: the journal only has to outlive the process, and an fsync of a second's appends
    // would stall the event loop (the delivery) for as long as the disk takes
    closeSync(this.fd);
    this.older.push(this.currentPath());
    this.fileNo++;
    this.openFile();
    this.checkpointing = this.release(this.older.length);
  }

  /** Deletes the first `count` older files once everything recorded so far is flushed. */
  private async release(count: number): Promise<void> {
    const bytesBefore = this.bytes;
    try {
      // not flush(): that would make the writes compete with a burst of deliveries for the CPU
      await this.recorder.written();
      const done = this.older.splice(0, count);
      for (const file of done) {
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      }
      this.bytes = Math.max(0, this.bytes - bytesBefore);
    } catch {
      // the recorder is closing or failing: keep the files, a later checkpoint (or start) retries
    } finally {
      this.checkpointing = undefined;
    }
  }
}
