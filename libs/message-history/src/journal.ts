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
  /**
   * Failed writes (or opens) of journal files. Their events are still in the recorder, only not
   * in the journal; the journal goes on in a new file (a damaged file replays up to the damage).
   */
  journalErrors: number;
  lastJournalError: string | undefined;
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
  private errors = 0;
  private lastError: string | undefined;

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
    const replayed: string[] = [];
    for (const file of left) {
      let data: Buffer;
      try {
        data = readFileSync(file);
      } catch (err) {
        // kept for a later start: it may hold events nothing else has
        this.noteError(err);
        continue;
      }
      // a torn end (the process died mid-write) is skipped: it was never acknowledged as written
      for (const r of readJournal(data).records) {
        this.recorder.record(r);
        this.replayed++;
      }
      replayed.push(file);
    }
    this.fileNo = left.reduce((max, f) => Math.max(max, Number(f.slice(f.lastIndexOf('.') + 1))), 0) + 1;
    this.openFile();
    this.state = 'started';
    if (replayed.length > 0) {
      // the replayed events are in the recorder's memory only: their files go once it has them safe
      this.older = replayed;
      this.checkpointing = this.release(replayed.length);
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
    return { ...this.recorder.stats(), journalBytes: this.bytes, journalReplayed: this.replayed, journalErrors: this.errors, lastJournalError: this.lastError };
  }

  /** Closes the recorder (which flushes or spools everything it holds), then deletes the journal. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasStarted = this.state === 'started';
    this.state = 'closed';
    clearInterval(this.timer);
    this.writePending();
    // the recorder first: a checkpoint waits for its writes, which close() makes happen (or spools)
    await this.recorder.close();
    await this.checkpointing?.catch(() => undefined);
    this.closeFile();
    // after close() every event is in the database or the fsync'd spool, unless the spool failed
    // too: then the journal is all there is, and the next start replays it
    if (wasStarted && this.recorder.stats().lost === 0) {
      for (const file of this.journalFiles()) {
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      }
    }
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

  /** Opens the next journal file; on failure the journal is off (fd undefined) until a checkpoint opens one. */
  private openFile(): void {
    this.encoder.reset(this.keyPrefix);
    try {
      this.fd = openSync(this.currentPath(), 'a');
    } catch (err) {
      this.fd = undefined;
      this.noteError(err);
    }
  }

  /** `afterFailure`: the file just failed a write, so its close failing too is no news. */
  private closeFile(afterFailure = false): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch (err) {
      if (!afterFailure) this.noteError(err);
    }
    this.fd = undefined;
  }

  private noteError(err: unknown): void {
    this.errors++;
    this.lastError = err instanceof Error ? err.message : String(err);
  }

  private writePending(): void {
    this.scheduled = false;
    if (this.encoder.pending === 0) return;
    const data = this.encoder.take();
    // no file (it could not be opened): the events are in the recorder only
    if (this.fd === undefined) return;
    let off = 0;
    try {
      while (off < data.length) off += writeSync(this.fd, data, off);
      this.bytes += data.length;
    } catch (err) {
      // a partial frame ends what this file replays: go on in a new one (with its own string table)
      this.noteError(err);
      this.bytes += off;
      this.rotate(true);
    }
  }

  /** Closes the current file (it is deleted once the recorder has written its events) and opens the next. */
  private rotate(afterFailure = false): void {
    if (this.fd !== undefined) {
      this.closeFile(afterFailure);
      this.older.push(this.currentPath());
    }
    this.fileNo++;
    this.openFile();
  }

  /** Starts a new file; the finished ones are deleted once the recorder has flushed them. */
  private checkpoint(): void {
    if (this.state !== 'started' || this.checkpointing !== undefined) return;
    this.writePending();
    if (this.fd !== undefined && this.bytes === 0 && this.older.length === 0) return;
    // no fsync: the journal only has to outlive the process, and an fsync of a second's appends
    // would stall the event loop (the delivery) for as long as the disk takes
    this.rotate();
    if (this.older.length > 0) this.checkpointing = this.release(this.older.length);
  }

  /** Deletes the first `count` older files once everything recorded so far is flushed. */
  private async release(count: number): Promise<void> {
    const bytesBefore = this.bytes;
    const lostBefore = this.recorder.stats().lost;
    try {
      // not flush(): that would make the writes compete with a burst of deliveries for the CPU
      await this.recorder.written();
      const done = this.older.splice(0, count);
      // events the recorder could neither write nor spool are in these files only: the next start replays them
      if (this.recorder.stats().lost > lostBefore) return;
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
