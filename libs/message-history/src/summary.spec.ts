import { describe, expect, it } from '@jest/globals';
import { emptySummary, mergeEvent, statusOf, type SummaryEvent, type SummaryState } from './summary.js';

const ev = (type: SummaryEvent['type'], attempt: number | null, at: number): SummaryEvent => ({ type, attempt, at: new Date(at) });

function fold(events: readonly SummaryEvent[], deferred = false): SummaryState {
  const s = emptySummary();
  for (const e of events) mergeEvent(s, e, deferred);
  return s;
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('history summary rules', () => {
  // requeue and redelivery in the same millisecond: attempt and phase order them
  const life = [ev('published', null, 100), ev('delivered', 1, 101), ev('requeued', 1, 102), ev('delivered', 2, 102), ev('timed_out', 2, 103), ev('delivered', 3, 103), ev('finished', 3, 104)];

  it('takes the latest event status, the highest attempt and the event times', () => {
    expect(fold(life)).toEqual({
      status: 'finished',
      attempts: 3,
      lastEventAt: new Date(104),
      finishedAt: new Date(104),
      deadLetteredAt: null,
      firstDeliveredAt: new Date(101),
    });
  });

  it('gives the same summary for every arrival order', () => {
    const expected = fold(life.slice(1, 6));
    for (const order of permutations(life.slice(1, 6))) expect(fold(order)).toEqual(expected);
    expect(expected.status).toBe('in_flight');
  });

  it('is idempotent: an event applied twice changes nothing', () => {
    const once = fold(life);
    const twice = fold([...life, ...life.slice().reverse()]);
    expect(twice).toEqual(once);
  });

  it('puts a redelivery after the requeue of the same millisecond, and a dead-letter after the finish', () => {
    expect(fold([ev('delivered', 2, 50), ev('requeued', 1, 50)]).status).toBe('in_flight');
    expect(fold([ev('finished', 3, 50), ev('dead_lettered', 3, 50)]).status).toBe('dead_lettered');
    expect(fold([ev('dead_lettered', 3, 50), ev('finished', 3, 50)])).toMatchObject({ status: 'dead_lettered', finishedAt: new Date(50), deadLetteredAt: new Date(50) });
  });

  it('counts a deferred publish as deferred until the first delivery', () => {
    expect(statusOf('published', true)).toBe('deferred');
    expect(fold([ev('published', null, 10)], true).status).toBe('deferred');
    expect(fold([ev('published', null, 10), ev('deferred', null, 10)]).status).toBe('deferred');
    expect(fold([ev('published', null, 10), ev('delivered', 1, 10)], true).status).toBe('in_flight');
  });

  it('treats a client-side consume as a delivery', () => {
    expect(fold([ev('consumed', 2, 5)])).toMatchObject({ status: 'in_flight', attempts: 2, firstDeliveredAt: new Date(5) });
  });
});
