/** Items of a PriorityQueue: ordered by `pri`, `index` maintained by the queue (-1 when out). */
export interface Prioritized {
  pri: number;
  index: number;
}

/**
 * A binary min-heap keyed by `pri` with O(log n) removal of any item through its stored index
 * (nsqd's in_flight_pqueue.go): in-flight messages by deadline, deferred ones by due time.
 */
export class PriorityQueue<T extends Prioritized> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    item.index = this.items.length;
    this.items.push(item);
    this.up(item.index);
  }

  peek(): T | undefined {
    return this.items[0];
  }

  /** Removes and returns the smallest item if its pri <= max. */
  popIfDue(max: number): T | undefined {
    const top = this.items[0];
    if (top === undefined || top.pri > max) return undefined;
    this.removeAt(0);
    return top;
  }

  remove(item: T): void {
    if (item.index < 0 || this.items[item.index] !== item) return;
    this.removeAt(item.index);
  }

  /** Re-sorts an item after its pri changed. */
  update(item: T): void {
    if (item.index < 0 || this.items[item.index] !== item) return;
    this.up(item.index);
    this.down(item.index);
  }

  /** Empties the queue, returning the items (unordered). */
  drain(): T[] {
    const out = this.items;
    this.items = [];
    for (const item of out) item.index = -1;
    return out;
  }

  values(): readonly T[] {
    return this.items;
  }

  private removeAt(i: number): void {
    const items = this.items;
    const last = items.pop()!;
    const removed = i < items.length ? items[i]! : last;
    removed.index = -1;
    if (i < items.length) {
      items[i] = last;
      last.index = i;
      this.up(i);
      this.down(last.index);
    }
  }

  private up(i: number): void {
    const items = this.items;
    const item = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (p.pri <= item.pri) break;
      items[i] = p;
      p.index = i;
      i = parent;
    }
    items[i] = item;
    item.index = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i]!;
    while (true) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && items[right]!.pri < items[child]!.pri) child = right;
      const c = items[child]!;
      if (c.pri >= item.pri) break;
      items[i] = c;
      c.index = i;
      i = child;
    }
    items[i] = item;
    item.index = i;
  }
}
