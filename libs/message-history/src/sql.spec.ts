import { describe, expect, it } from '@jest/globals';
import { readTime, statements } from './sql.js';

describe('history SQL helpers', () => {
  it('splits rows by parameter count and by size, never leaving a row behind', () => {
    const rows = Array.from({ length: 10 }, (_, i) => i);
    expect(statements(rows, 3, 9, 1e9, () => 1)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(statements(rows, 1, 1e9, 250, (i) => (i === 4 ? 1000 : 100))).toEqual([[0, 1], [2, 3], [4], [5, 6], [7, 8], [9]]);
    expect(statements([], 3, 9, 100, () => 1)).toEqual([]);
  });

  it('reads DATETIME values as either driver returns them', () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    expect(readTime(at)).toBe(at);
    expect(readTime('2026-01-02 03:04:05.678')).toEqual(at);
    expect(readTime('2026-01-02 03:04:05.678000')).toEqual(at);
    expect(readTime(null)).toBeNull();
    expect(readTime('garbage')).toBeNull();
  });
});
