/**
 * RDY policy, kept pure for unit tests. RDY is a window per connection (nsqd sends while
 * in-flight < RDY), so the consumer's job is only to split maxInFlight over its connections.
 */

export interface RdyConnectionState {
  /** nsqd's max_rdy_count from IDENTIFY. */
  maxRdyCount: number;
  /** RDY currently sent on the connection. */
  rdy: number;
  /** ms timestamp of the last message received on it (0 = never). */
  lastMessageAt: number;
}

/**
 * Splits maxInFlight so the sum over connections equals it (when their caps allow): each gets
 * floor(maxInFlight / n), the first (maxInFlight mod n) one more (go-nsq drops that remainder,
 * go-nsq#378), and what a capped connection cannot take goes to the others.
 */
export function distributeRdy(maxInFlight: number, maxRdyCounts: readonly number[]): number[] {
  const n = maxRdyCounts.length;
  const out = new Array<number>(n).fill(0);
  if (n === 0 || maxInFlight <= 0) return out;
  let left = maxInFlight;
  let open = maxRdyCounts.map((_, i) => i);
  while (left > 0 && open.length > 0) {
    const share = Math.floor(left / open.length);
    let extra = left % open.length;
    const next: number[] = [];
    let given = 0;
    for (const i of open) {
      const want = share + (extra > 0 ? 1 : 0);
      if (extra > 0) extra--;
      const room = maxRdyCounts[i]! - out[i]!;
      const take = Math.min(want, room);
      out[i]! += take;
      given += take;
      if (out[i]! < maxRdyCounts[i]!) next.push(i);
    }
    left -= given;
    if (given === 0) break;
    open = next;
  }
  return out;
}

export interface RdyPlan {
  rdy: number[];
  /** Round-robin position for the next rotation. */
  cursor: number;
}

/**
 * More connections than maxInFlight: `slots` connections get RDY 1, the rest 0. A connection keeps
 * its RDY while it received a message within `idleMs`; idle ones hand theirs to the next connections
 * in round-robin order, so every nsqd is drained in turn (go-nsq's rdyLoop, without its 30 s stalls).
 */
export function rotateRdy(
  slots: number,
  connections: readonly RdyConnectionState[],
  cursor: number,
  now: number,
  idleMs: number,
): RdyPlan {
  const n = connections.length;
  const rdy = new Array<number>(n).fill(0);
  if (n === 0 || slots <= 0) return { rdy, cursor: 0 };
  let used = 0;
  for (let i = 0; i < n && used < slots; i++) {
    const c = connections[i]!;
    if (c.rdy > 0 && c.maxRdyCount > 0 && now - c.lastMessageAt < idleMs) {
      rdy[i] = 1;
      used++;
    }
  }
  const start = ((cursor % n) + n) % n;
  let next = start;
  // First to connections without RDY (idle holders give theirs up), then to anyone left.
  for (const wantEmpty of [true, false]) {
    for (let step = 0; step < n && used < slots; step++) {
      const i = (start + step) % n;
      const c = connections[i]!;
      if (rdy[i] === 0 && c.maxRdyCount > 0 && (!wantEmpty || c.rdy === 0)) {
        rdy[i] = 1;
        used++;
        next = i + 1;
      }
    }
  }
  return { rdy, cursor: next % n };
}

/** The RDY to send on each connection. */
export function planRdy(
  maxInFlight: number,
  connections: readonly RdyConnectionState[],
  cursor: number,
  now: number,
  idleMs: number,
): RdyPlan {
  if (connections.length <= maxInFlight || maxInFlight <= 0) {
    return { rdy: distributeRdy(maxInFlight, connections.map((c) => c.maxRdyCount)), cursor };
  }
  return rotateRdy(maxInFlight, connections, cursor, now, idleMs);
}
