import { describe, expect, it } from '@jest/globals';
import { distributeRdy, planRdy, rotateRdy, type RdyConnectionState } from './rdy.js';

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

describe('distributeRdy', () => {
  it('gives the remainder to the first connections so the sum equals maxInFlight', () => {
    expect(distributeRdy(9, [2500, 2500, 2500, 2500, 2500, 2500])).toEqual([2, 2, 2, 1, 1, 1]);
    expect(distributeRdy(5, [2500, 2500])).toEqual([3, 2]);
    expect(distributeRdy(2500, [2500])).toEqual([2500]);
  });

  it('keeps the sum for many sizes', () => {
    for (let conns = 1; conns <= 12; conns++) {
      for (const max of [conns, conns + 1, 7 * conns + 3, 1000]) {
        const plan = distributeRdy(max, new Array(conns).fill(2500));
        expect(sum(plan)).toBe(max);
        expect(Math.max(...plan) - Math.min(...plan)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('respects each connection max_rdy_count and hands the excess to the others', () => {
    expect(distributeRdy(3000, [100, 2500])).toEqual([100, 2500]);
    expect(distributeRdy(1000, [100, 2500, 2500])).toEqual([100, 450, 450]);
    expect(distributeRdy(10_000, [2500, 2500])).toEqual([2500, 2500]);
  });

  it('is all zero when paused or without connections', () => {
    expect(distributeRdy(0, [2500, 2500])).toEqual([0, 0]);
    expect(distributeRdy(10, [])).toEqual([]);
  });
});

function conns(n: number, overrides: Partial<RdyConnectionState>[] = []): RdyConnectionState[] {
  return Array.from({ length: n }, (_, i) => ({ maxRdyCount: 2500, rdy: 0, lastMessageAt: 0, ...overrides[i] }));
}

describe('rotateRdy (more connections than maxInFlight)', () => {
  it('gives RDY 1 to exactly maxInFlight connections', () => {
    const plan = rotateRdy(2, conns(5), 0, 10_000, 5000);
    expect(sum(plan.rdy)).toBe(2);
    expect(plan.rdy).toEqual([1, 1, 0, 0, 0]);
  });

  it('moves RDY from idle connections to the next ones in turn, reaching every connection', () => {
    const state = conns(5);
    let cursor = 0;
    const seen = new Set<number>();
    let now = 0;
    for (let round = 0; round < 5; round++) {
      now += 6000;
      const plan = rotateRdy(2, state, cursor, now, 5000);
      expect(sum(plan.rdy)).toBe(2);
      plan.rdy.forEach((r, i) => {
        state[i]!.rdy = r;
        if (r) seen.add(i);
      });
      cursor = plan.cursor;
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('lets a connection that is receiving messages keep its RDY', () => {
    const now = 100_000;
    const state = conns(4, [{ rdy: 1, lastMessageAt: now - 10 }, { rdy: 1, lastMessageAt: now - 60_000 }]);
    const plan = rotateRdy(2, state, 2, now, 5000);
    expect(plan.rdy[0]).toBe(1); // active: kept
    expect(plan.rdy[1]).toBe(0); // idle: handed on
    expect(plan.rdy[2]).toBe(1);
    expect(sum(plan.rdy)).toBe(2);
  });

  it('skips connections that cannot take RDY', () => {
    const plan = rotateRdy(1, conns(3, [{ maxRdyCount: 0 }]), 0, 0, 5000);
    expect(plan.rdy).toEqual([0, 1, 0]);
  });
});

describe('planRdy', () => {
  it('distributes when connections <= maxInFlight and rotates otherwise', () => {
    expect(planRdy(5, conns(2), 0, 0, 5000).rdy).toEqual([3, 2]);
    expect(sum(planRdy(1, conns(3), 0, 0, 5000).rdy)).toBe(1);
    expect(planRdy(0, conns(3), 0, 0, 5000).rdy).toEqual([0, 0, 0]);
  });
});
