import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { Spool } from './spool.js';

describe('history spool file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spool-spec-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replays appended lines in order, in batches, and resumes from the saved offset', async () => {
    const path = join(dir, 'a', 'spool.jsonl');
    const spool = new Spool(path);
    await spool.open();
    await spool.append('one\ntwo\n');
    await spool.append('three\n');
    const first = await spool.read(2);
    expect(first.lines).toEqual(['one', 'two']);
    await spool.commit(first.end);
    await spool.close();

    const again = new Spool(path);
    await again.open();
    expect(again.pendingBytes).toBe('three\n'.length);
    const rest = await again.read(10);
    expect(rest.lines).toEqual(['three']);
    await again.commit(rest.end);
    expect(await again.read(10)).toEqual({ lines: [], end: rest.end });
    expect(await again.resetIfReplayed()).toBe(true);
    expect(statSync(path).size).toBe(0);
    await again.close();
  });

  it('does not empty a file with lines not yet replayed', async () => {
    const spool = new Spool(join(dir, 'b.jsonl'));
    await spool.open();
    await spool.append('x\n');
    expect(await spool.resetIfReplayed()).toBe(false);
    expect(spool.pendingBytes).toBe(2);
    await spool.close();
  });

  it('ends a torn last line (a crash mid-append) before appending', async () => {
    const path = join(dir, 'c.jsonl');
    appendFileSync(path, 'whole\ntor');
    const spool = new Spool(path);
    await spool.open();
    await spool.append('next\n');
    expect(readFileSync(path, 'utf8')).toBe('whole\ntor\nnext\n');
    expect((await spool.read(10)).lines).toEqual(['whole', 'tor', 'next']);
    await spool.close();
  });

  it('reads lines longer than one read buffer', async () => {
    const spool = new Spool(join(dir, 'd.jsonl'));
    await spool.open();
    const long = 'y'.repeat(3 * 1024 * 1024);
    await spool.append(`${long}\nshort\n`);
    const { lines } = await spool.read(5);
    expect(lines.map((l) => l.length)).toEqual([long.length, 5]);
    spool.appendSync('sync\n');
    await spool.commit((await spool.read(5)).end);
    expect((await spool.read(5)).lines).toEqual([]);
    await spool.close();
  });
});
