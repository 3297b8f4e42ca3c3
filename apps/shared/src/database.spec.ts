import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Column, Entity, type MigrationInterface, PrimaryColumn, type QueryRunner } from 'typeorm';
import { SampleDatabase } from './database.js';

@Entity('item')
class Item {
  @PrimaryColumn({ type: 'varchar', length: 16 })
  id!: string;

  @Column({ type: 'int' })
  n!: number;
}

class CreateItem1700000000000 implements MigrationInterface {
  name = 'CreateItem1700000000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE TABLE item (id varchar(16) PRIMARY KEY NOT NULL, n integer NOT NULL)');
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE item');
  }
}

const dir = mkdtempSync(join(tmpdir(), 'sample-db-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function open(name: string): Promise<SampleDatabase> {
  return SampleDatabase.open({
    connection: { type: 'sqljs', location: join(dir, name) },
    entities: [Item],
    migrations: [CreateItem1700000000000],
    migrationsTableName: 'test_migrations',
  });
}

describe('SampleDatabase on sql.js', () => {
  it('runs concurrent transactions one at a time, each durable when it resolves', async () => {
    const db = await open('concurrent.sqlite');
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        db.transaction(async (em) => {
          await em.insert(Item, { id: `a${i}`, n: i });
          // a second statement after an await: another transaction must not slip in between
          await em.update(Item, { id: `a${i}` }, { n: i + 1 });
        }),
      ),
    );
    // what the file holds, read by a second instance before the first is closed
    const copy = await open('concurrent.sqlite');
    expect(await copy.read((em) => em.count(Item))).toBe(300);
    expect(await copy.read((em) => em.sum(Item, 'n'))).toBe((300 * 301) / 2);
    await copy.close();
    await db.close();
  });

  it('rolls a failed transaction back and recognises a unique-key violation', async () => {
    const db = await open('unique.sqlite');
    await db.transaction((em) => em.insert(Item, { id: 'x', n: 1 }));
    let error: unknown;
    try {
      await db.transaction(async (em) => {
        await em.insert(Item, { id: 'y', n: 2 });
        await em.insert(Item, { id: 'x', n: 3 });
      });
    } catch (err) {
      error = err;
    }
    expect(db.isUniqueViolation(error)).toBe(true);
    expect(db.isUniqueViolation(new Error('disk I/O error'))).toBe(false);
    expect(await db.read((em) => em.find(Item, { order: { id: 'ASC' } }))).toEqual([{ id: 'x', n: 1 }]);
    await db.close();
    await db.close();
    const reopened = await open('unique.sqlite');
    expect(await reopened.read((em) => em.count(Item))).toBe(1);
    await reopened.close();
  });
});
