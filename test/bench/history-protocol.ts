/**
 * What history.bench.ts (the orchestrator) and history-roles.ts (the broker and consumer
 * processes) tell each other over the child_process IPC channel.
 */

export const HISTORY_MODES = ['off', 'events', 'mysql', 'journal', 'naive'] as const;
/** What runs unless --only says otherwise ('events' is a diagnostic). */
export const DEFAULT_MODES: readonly HistoryMode[] = ['off', 'mysql', 'journal', 'naive'];
/**
 * off:    our NSQD, nobody listening to its lifecycle events;
 * events: the same with one listener that only counts the events (what any history pays before
 *         recording anything: nsqd builds an event object per lifecycle step);
 * mysql: HistoryRecorder on MariaDB, fed by recordNsqdEvents;
 * journal: the same behind a HistoryJournal, fed as the broker feeds it (apps/broker's default
 *         with a database: every event also in a write-ahead file, so a SIGKILL loses none);
 * naive: NaiveRecorder on MariaDB (one autocommitted INSERT per event, awaited one after another).
 */
export type HistoryMode = (typeof HISTORY_MODES)[number];

/** Event counts by type, as the broker's nsqd emitted them. */
export type EventCounts = Record<string, number>;

/** The recorder's own account (HistoryRecorderStats for mysql, NaiveRecorder's for naive). */
export interface RecorderReport {
  written: number;
  spooled: number;
  replayed: number;
  failures: number;
  lastError: string | null;
}

// orchestrator → broker
export type ToBroker =
  /** Reply 'recorded' once nsqd emitted `finished` FINs in all and every event so far is in the database. */
  | { type: 'await-recorded'; phase: number; finished: number }
  | { type: 'close' };

// orchestrator → consumer
export type ToConsumer = { type: 'expect'; phase: number; count: number } | { type: 'close' };

// child → orchestrator
export type FromRole =
  | { type: 'ready'; pid: number; tcpAddress?: string; httpAddress?: string }
  | { type: 'expecting'; phase: number }
  /** Consumer: the phase's `count` messages arrived (wall-clock ms of the first and last). */
  | { type: 'received'; phase: number; count: number; firstAt: number; lastAt: number }
  /** Broker: every event of the phase is in the database at `at` (wall clock). */
  | { type: 'recorded'; phase: number; at: number; events: EventCounts; recorder: RecorderReport | null }
  | { type: 'failed'; phase?: number; error: string };

/** `performance.timeOrigin + performance.now()`: wall-clock ms that other processes on this machine can compare. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
