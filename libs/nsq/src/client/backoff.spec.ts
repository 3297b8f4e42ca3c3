import { describe, expect, it } from '@jest/globals';
import { BackoffPolicy, reconnectDelay, requeueDelayFor } from './backoff.js';

describe('BackoffPolicy', () => {
  it('doubles per failure from multiplier x 2 and caps at the maximum', () => {
    const b = new BackoffPolicy(1000, 10_000);
    expect(b.duration()).toBe(0);
    expect(b.failure()).toBe(2000);
    expect(b.failure()).toBe(4000);
    expect(b.failure()).toBe(8000);
    expect(b.level).toBe(3);
    // 16000 would exceed the cap: the level stops rising, the wait stays capped.
    expect(b.failure()).toBe(8000);
    expect(b.level).toBe(3);
  });

  it('steps down one level per success until it is back to full speed', () => {
    const b = new BackoffPolicy(100, 60_000);
    b.failure();
    b.failure();
    expect(b.success()).toBe(200);
    expect(b.success()).toBe(0);
    expect(b.success()).toBe(0);
    expect(b.level).toBe(0);
  });

  it('still backs off once when even the first step exceeds the cap', () => {
    const b = new BackoffPolicy(1000, 1500);
    expect(b.failure()).toBe(1500);
    expect(b.level).toBe(1);
  });

  it('full_jitter picks a wait up to the exponential one', () => {
    const b = new BackoffPolicy(1000, 60_000, 'full_jitter', () => 0.5);
    expect(b.failure()).toBe(1000);
    expect(b.failure()).toBe(2000);
  });
});

describe('requeueDelayFor', () => {
  it('grows with attempts and is capped', () => {
    expect(requeueDelayFor(1, 90_000, 900_000)).toBe(90_000);
    expect(requeueDelayFor(3, 90_000, 900_000)).toBe(270_000);
    expect(requeueDelayFor(50, 90_000, 900_000)).toBe(900_000);
    expect(requeueDelayFor(0, 100, 1000)).toBe(100);
  });
});

describe('reconnectDelay', () => {
  it('doubles per failure within +-20 % jitter and respects the cap', () => {
    expect(reconnectDelay(1, 100, 10_000, () => 0.5)).toBe(100);
    expect(reconnectDelay(4, 100, 10_000, () => 0.5)).toBe(800);
    expect(reconnectDelay(30, 100, 10_000, () => 0.5)).toBe(10_000);
    expect(reconnectDelay(1, 100, 10_000, () => 0)).toBe(80);
    expect(reconnectDelay(1, 100, 10_000, () => 1)).toBe(120);
  });
});
