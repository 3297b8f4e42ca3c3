import type { HistoryEventType, HistoryStatus } from './types.js';

/**
 * The summary rules, as pure functions so they are testable without a database.
 *
 * A summary (a message's, or one channel's) takes the status of its *latest* event, where
 * "latest" orders events by (at, attempt, phase): the timestamp first; within one millisecond a
 * higher attempt is later (delivery n+1 follows the requeue of n), and within one attempt the
 * phase decides (published < deferred < delivered < requeued / timed out / dropped < finished <
 * dead-lettered). Attempts are the maximum seen, finishedAt / deadLetteredAt the latest such
 * event, firstDeliveredAt the earliest delivery, lastEventAt the latest event.
 *
 * Every rule is a maximum (or minimum), so merging is order-independent and idempotent: a batch
 * replayed from the spool, or events arriving out of order, give the same summary. One
 * approximation: a stored summary keeps its latest event's timestamp and status but not that
 * event's attempt, so it is compared as (lastEventAt, attempts, phase of status); this only
 * matters for two events in the same millisecond that arrive in different batches.
 *
 * A message's overall status is the status of its latest event on any channel (a message finished
 * on one channel and still in flight on another shows whichever happened last); the per-channel
 * states tell the full story.
 */

const STATUS_OF: Record<HistoryEventType, HistoryStatus> = {
  published: 'published',
  deferred: 'deferred',
  delivered: 'in_flight',
  consumed: 'in_flight',
  requeued: 'requeued',
  timed_out: 'timed_out',
  dropped: 'dropped',
  finished: 'finished',
  dead_lettered: 'dead_lettered',
};

const PHASE: Record<HistoryStatus, number> = {
  published: 0,
  deferred: 1,
  in_flight: 2,
  requeued: 3,
  timed_out: 3,
  dropped: 3,
  finished: 4,
  dead_lettered: 5,
};

export interface SummaryEvent {
  type: HistoryEventType;
  at: Date;
  attempt: number | null;
}

export interface SummaryState {
  status: HistoryStatus;
  attempts: number;
  lastEventAt: Date | null;
  finishedAt: Date | null;
  deadLetteredAt: Date | null;
  firstDeliveredAt: Date | null;
}

/** The status an event gives; a publish with a deferral counts as 'deferred'. */
export function statusOf(type: HistoryEventType, deferredPublish = false): HistoryStatus {
  return type === 'published' && deferredPublish ? 'deferred' : STATUS_OF[type];
}

export function phaseOf(status: HistoryStatus): number {
  return PHASE[status] ?? 0;
}

export function emptySummary(): SummaryState {
  return { status: 'published', attempts: 0, lastEventAt: null, finishedAt: null, deadLetteredAt: null, firstDeliveredAt: null };
}

/** True when (at, attempt, phase) of an event is after a summary's latest (lastEventAt -1 = none). */
function isLater(lastEventAt: number, attempts: number, status: HistoryStatus, at: number, attempt: number, phase: number): boolean {
  if (lastEventAt < 0) return true;
  if (at !== lastEventAt) return at > lastEventAt;
  if (attempt !== attempts) return attempt > attempts;
  return phase >= phaseOf(status);
}

/** Folds one event into a summary (in place). */
export function mergeEvent(state: SummaryState, event: SummaryEvent, deferredPublish = false): SummaryState {
  const status = statusOf(event.type, deferredPublish);
  const at = event.at.getTime();
  const attempt = event.attempt ?? 0;
  if (isLater(state.lastEventAt?.getTime() ?? -1, state.attempts, state.status, at, attempt, phaseOf(status))) state.status = status;
  if (attempt > state.attempts) state.attempts = attempt;
  state.lastEventAt = laterDate(state.lastEventAt, event.at);
  if (event.type === 'finished') state.finishedAt = laterDate(state.finishedAt, event.at);
  if (event.type === 'dead_lettered') state.deadLetteredAt = laterDate(state.deadLetteredAt, event.at);
  if (event.type === 'delivered' || event.type === 'consumed') state.firstDeliveredAt = earlierDate(state.firstDeliveredAt, event.at);
  return state;
}

function laterDate(a: Date | null, b: Date): Date {
  return a === null || b.getTime() > a.getTime() ? b : a;
}

function earlierDate(a: Date | null, b: Date): Date {
  return a === null || b.getTime() < a.getTime() ? b : a;
}

/**
 * A summary as the recorder folds a batch into it: the same rules as mergeEvent on epoch ms
 * (-1 = none), so folding hundreds of thousands of events allocates no Date.
 */
export interface SummaryTimes {
  status: HistoryStatus;
  attempts: number;
  lastEventAt: number;
  finishedAt: number;
  deadLetteredAt: number;
  firstDeliveredAt: number;
}

export function emptySummaryTimes(): SummaryTimes {
  return { status: 'published', attempts: 0, lastEventAt: -1, finishedAt: -1, deadLetteredAt: -1, firstDeliveredAt: -1 };
}

/** mergeEvent on a SummaryTimes: `attempt` -1 = none. */
export function mergeEventTimes(state: SummaryTimes, type: HistoryEventType, at: number, attempt: number, deferredPublish = false): void {
  const status = statusOf(type, deferredPublish);
  const a = attempt < 0 ? 0 : attempt;
  if (isLater(state.lastEventAt, state.attempts, state.status, at, a, phaseOf(status))) state.status = status;
  if (a > state.attempts) state.attempts = a;
  if (at > state.lastEventAt) state.lastEventAt = at;
  if (type === 'finished' && at > state.finishedAt) state.finishedAt = at;
  else if (type === 'dead_lettered' && at > state.deadLetteredAt) state.deadLetteredAt = at;
  else if ((type === 'delivered' || type === 'consumed') && (state.firstDeliveredAt < 0 || at < state.firstDeliveredAt)) state.firstDeliveredAt = at;
}

/**
 * The detail of a publish's event: its deferral. A broker's publish has no event row (its message
 * row is the publish), so a timeline rebuilds the event from the row with this.
 */
export function publishDetail(publishedAt: number, deferredUntil: number): string | null {
  return deferredUntil < 0 ? null : `deferred ${deferredUntil - publishedAt} ms`;
}
