/**
 * Backoff arithmetic, kept pure for unit tests.
 */

/** Exponential reconnect delay with +-20 % jitter: initial x 2^(failures-1), capped. */
export function reconnectDelay(failures: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(initialMs * 2 ** Math.max(0, failures - 1), maxMs);
  return Math.max(1, Math.round(exp * (0.8 + 0.4 * random())));
}

export type BackoffStrategy = 'exponential' | 'full_jitter';

/**
 * go-nsq's consumer backoff: each handler failure raises a counter, each success lowers it; while
 * the counter is above zero the consumer pauses for multiplier x 2^counter (capped), then probes
 * with RDY 1. The counter only rises while the next duration stays within the cap.
 */
export class BackoffPolicy {
  private counter = 0;

  constructor(
    private readonly multiplierMs: number,
    private readonly maxMs: number,
    private readonly strategy: BackoffStrategy = 'exponential',
    private readonly random: () => number = Math.random,
  ) {}

  get level(): number {
    return this.counter;
  }

  /** Records a failure; returns the pause to apply. */
  failure(): number {
    if (this.exponential(this.counter + 1) <= this.maxMs) this.counter++;
    else if (this.counter === 0) this.counter = 1;
    return this.duration();
  }

  /** Records a success; returns the pause still to apply (0 = back to full speed). */
  success(): number {
    if (this.counter > 0) this.counter--;
    return this.duration();
  }

  /** The pause for the current level (0 when not backing off). */
  duration(): number {
    if (this.counter === 0) return 0;
    const d = Math.min(this.exponential(this.counter), this.maxMs);
    return this.strategy === 'full_jitter' ? Math.round(d * this.random()) : d;
  }

  private exponential(level: number): number {
    return this.multiplierMs * 2 ** level;
  }
}

/** go-nsq's default requeue delay: defaultDelay x attempts, capped at maxDelay. */
export function requeueDelayFor(attempts: number, defaultDelayMs: number, maxDelayMs: number): number {
  return Math.min(defaultDelayMs * Math.max(1, attempts), maxDelayMs);
}
