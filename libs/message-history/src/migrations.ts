import { type MigrationInterface, type QueryRunner, Table, TableIndex, type TableColumnOptions } from 'typeorm';

function isMysqlFamily(queryRunner: QueryRunner): boolean {
  const type = queryRunner.dataSource.options.type;
  return type === 'mysql' || type === 'mariadb';
}

/**
 * The three history tables, written once for both drivers through TypeORM's Table API. Where the
 * drivers differ the column type is picked here:
 * - ids: `bigint` on MySQL; `integer` on SQLite, whose AUTOINCREMENT needs INTEGER PRIMARY KEY
 *   (a 64-bit integer there anyway);
 * - body: `longblob` on MySQL (`blob` stops at 64 KiB, below the default body cap), `blob` on SQLite;
 * - strings: on MySQL `utf8mb4_bin`, because NSQ names and ids are case-sensitive and a
 *   case-insensitive collation would merge topics `Orders` and `orders` and could collide event keys;
 * - timestamps: `datetime(6)`.
 */
export class CreateHistoryTables1747000000000 implements MigrationInterface {
  name = 'CreateHistoryTables1747000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = isMysqlFamily(queryRunner);
    const id: TableColumnOptions = {
      name: 'id',
      type: mysql ? 'bigint' : 'integer',
      isPrimary: true,
      isGenerated: true,
      generationStrategy: 'increment',
    };
    const text = (name: string, length: number, isNullable = false): TableColumnOptions => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable,
      ...(mysql ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : {}),
    });
    const fixed = (name: string, length: number): TableColumnOptions => ({
      name,
      type: mysql ? 'char' : 'varchar',
      length: String(length),
      isNullable: false,
      ...(mysql ? { charset: 'ascii', collation: 'ascii_bin' } : {}),
    });
    const time = (name: string, isNullable = false): TableColumnOptions => ({ name, type: 'datetime', precision: 6, isNullable });
    const int = (name: string, isNullable = false, dflt?: number): TableColumnOptions => ({
      name,
      type: mysql ? 'int' : 'integer',
      isNullable,
      ...(dflt === undefined ? {} : { default: dflt }),
    });

    await queryRunner.createTable(
      new Table({
        name: 'nsq_message',
        columns: [
          id,
          text('nsqd', 255),
          fixed('messageId', 16),
          text('messageKey', 64, true),
          text('topic', 64),
          { name: 'body', type: mysql ? 'longblob' : 'blob', isNullable: true },
          { name: 'bodyTruncated', type: 'boolean', isNullable: false, default: 0 },
          int('size', false, 0),
          time('publishedAt'),
          text('producer', 255, true),
          time('deferredUntil', true),
          { ...text('status', 16), default: "'published'" },
          int('attempts', false, 0),
          time('finishedAt', true),
          time('deadLetteredAt', true),
          time('lastEventAt', true),
        ],
        indices: [
          new TableIndex({ name: 'UQ_nsq_message_nsqd_message_id', columnNames: ['nsqd', 'messageId'], isUnique: true }),
          new TableIndex({ name: 'IDX_nsq_message_topic_published_at', columnNames: ['topic', 'publishedAt'] }),
          new TableIndex({ name: 'IDX_nsq_message_status_published_at', columnNames: ['status', 'publishedAt'] }),
          new TableIndex({ name: 'IDX_nsq_message_message_key', columnNames: ['messageKey'] }),
          new TableIndex({ name: 'IDX_nsq_message_published_at', columnNames: ['publishedAt'] }),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'nsq_message_event',
        columns: [
          id,
          { ...text('eventKey', 191), ...(mysql ? { charset: 'ascii', collation: 'ascii_bin' } : {}) },
          text('nsqd', 255),
          fixed('messageId', 16),
          text('topic', 64, true),
          text('type', 16),
          text('channel', 64, true),
          text('consumer', 255, true),
          int('attempt', true),
          time('at'),
          text('detail', 1024, true),
        ],
        indices: [
          new TableIndex({ name: 'UQ_nsq_message_event_event_key', columnNames: ['eventKey'], isUnique: true }),
          new TableIndex({ name: 'IDX_nsq_message_event_message', columnNames: ['nsqd', 'messageId', 'at'] }),
          new TableIndex({ name: 'IDX_nsq_message_event_channel_at', columnNames: ['channel', 'at'] }),
          new TableIndex({ name: 'IDX_nsq_message_event_type_at', columnNames: ['type', 'at'] }),
          new TableIndex({ name: 'IDX_nsq_message_event_at', columnNames: ['at'] }),
        ],
      }),
      true,
    );

    await queryRunner.createTable(
      new Table({
        name: 'nsq_message_channel',
        columns: [
          id,
          text('nsqd', 255),
          fixed('messageId', 16),
          text('channel', 64),
          text('status', 16),
          int('attempts', false, 0),
          time('firstDeliveredAt', true),
          time('finishedAt', true),
          time('deadLetteredAt', true),
          time('lastEventAt'),
        ],
        indices: [
          new TableIndex({ name: 'UQ_nsq_message_channel_key', columnNames: ['nsqd', 'messageId', 'channel'], isUnique: true }),
          new TableIndex({ name: 'IDX_nsq_message_channel_channel_status', columnNames: ['channel', 'status'] }),
          new TableIndex({ name: 'IDX_nsq_message_channel_last_event_at', columnNames: ['lastEventAt'] }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('nsq_message_channel', true);
    await queryRunner.dropTable('nsq_message_event', true);
    await queryRunner.dropTable('nsq_message', true);
  }
}

export const HISTORY_MIGRATIONS = [CreateHistoryTables1747000000000];
