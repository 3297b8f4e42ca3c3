import { describe, expect, it } from '@jest/globals';
import { PUBLISHED, Segment, TYPE_CODE } from './segment.js';
import { formatTime, mysqlString, Values } from './sql.js';
import { foldSegments, Lookahead, type MessageFold } from './writer.js';

/** A segment with one message's publish, delivery and finish per id. */
function lifecycle(seq0: number, ids: readonly string[], t: number, only?: 'publish' | 'deliver'): Segment {
  const s = new Segment(seq0, 100);
  for (const id of ids) {
    if (only !== 'deliver') s.push(PUBLISHED, 'n', id, t, 'topic', null, null, -1, null, Buffer.from(id), id.length, false, id.length, 'p', -1, null);
    if (only !== 'publish') {
      s.pushDelivery(TYPE_CODE.delivered, 'n', id, t + 1, 'topic', 'c', 'x', 1, null);
      s.pushDelivery(TYPE_CODE.finished, 'n', id, t + 2, 'topic', 'c', 'x', 1, null);
    }
  }
  return s;
}

const byId = (folds: readonly MessageFold[]): Record<string, MessageFold> => Object.fromEntries(folds.map((m) => [m.messageId, m]));

describe('history batch folding', () => {
  it('folds a batch per message and per channel, remembering the publish', () => {
    const fold = foldSegments([lifecycle(1, ['a', 'b'], 100)]);
    const m = byId(fold.messages);
    expect(Object.keys(m)).toEqual(['a', 'b']);
    expect(m.a!.s).toEqual({ status: 'finished', attempts: 1, lastEventAt: 102, finishedAt: 102, deadLetteredAt: -1, firstDeliveredAt: 101 });
    expect(m.a!.channels).toEqual([{ channel: 'c', s: { status: 'finished', attempts: 1, lastEventAt: 102, finishedAt: 102, deadLetteredAt: -1, firstDeliveredAt: 101 } }]);
    expect(m.a!.publish?.messageId(m.a!.publishIndex)).toBe('a');
    expect(m.a!.firstAt).toBe(100);
  });

  it('plans a publish batch with the events queued after it, and skips them once written', () => {
    const publishes = lifecycle(1, ['a', 'b'], 100, 'publish');
    const deliveries = lifecycle(3, ['a', 'b'], 200, 'deliver');
    const later = lifecycle(7, ['b'], 300, 'deliver');
    const la = new Lookahead();
    la.extend([publishes, deliveries]);
    const first = la.plan([publishes]);
    // the publish rows carry the finish already queued
    expect(first.map((v) => [v.messageId, v.skip, v.s.status])).toEqual([
      ['a', false, 'finished'],
      ['b', false, 'finished'],
    ]);
    // nothing committed yet: a concurrent plan of the deliveries writes its summaries too
    expect(la.plan([deliveries]).every((v) => !v.skip)).toBe(true);
    // rows are built (writtenThrough) and committed
    for (const v of first) v.writtenThrough = v.entry!.lastSeq;
    la.committed(first);
    const second = la.plan([deliveries]);
    expect(second.every((v) => v.skip)).toBe(true);
    for (const v of second) v.writtenThrough = -1;
    la.committed(second);
    expect(la.size).toBe(0);
    // an event folded after the write is written again, with the fold so far
    la.extend([later]);
    const third = la.plan([later]);
    expect(third.map((v) => [v.messageId, v.skip, v.s.lastEventAt])).toEqual([['b', false, 302]]);
  });

  it('folds no further than its budget per step, and forgets everything on reset', () => {
    const la = new Lookahead();
    const s = lifecycle(1, ['a', 'b', 'c', 'd'], 100);
    la.extend([s], 4);
    expect(la.size).toBe(2);
    la.extend([s]);
    expect(la.size).toBe(4);
    la.reset(s.seq0 + s.n - 1);
    expect(la.size).toBe(0);
    // events up to the reset point are not folded again
    la.extend([s]);
    expect(la.size).toBe(0);
  });
});

describe('history SQL literals', () => {
  it('escapes strings as mysql2 does', () => {
    expect(mysqlString('plain')).toBe("'plain'");
    expect(mysqlString(`it's "q" \\ \n\r\t\0\x08\x1a`)).toBe(`'it\\'s \\"q\\" \\\\ \\n\\r\\t\\0\\b\\Z'`);
    expect(mysqlString('ünïcode ☃')).toBe("'ünïcode ☃'");
  });

  it('writes rows as literals for MySQL and as parameters for SQLite', () => {
    const mysql = new Values(true, 4);
    mysql.row(['a', 1, null, Buffer.from([0xde, 0xad])]);
    mysql.row([Number.NaN, 'b', 2.5, new Uint8Array(0)]);
    expect(mysql.text()).toBe("('a', 1, NULL, X'dead'), (NULL, 'b', 2.5, X'')");
    expect(mysql.params).toEqual([]);
    const sqlite = new Values(false, 2);
    sqlite.row(['a', null]);
    sqlite.row([1, 'b']);
    expect(sqlite.text()).toBe('(?, ?), (?, ?)');
    expect(sqlite.params).toEqual(['a', null, 1, 'b']);
    expect(() => mysql.row([{}])).toThrow(TypeError);
  });

  it('formats timestamps as the drivers store DATETIME', () => {
    for (const ms of [0, 1, 999, 86_399_999, 86_400_000, 1_700_000_000_123, 253_402_300_799_999]) {
      const iso = new Date(ms).toISOString();
      expect(formatTime(ms)).toBe(`${iso.slice(0, 10)} ${iso.slice(11, 23)}`);
    }
    expect(formatTime(1_700_000_000_123.9)).toBe('2023-11-14 22:13:20.123');
  });
});
