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

const MESSAGE_ID_TABLES = ['nsq_message', 'nsq_message_event', 'nsq_message_channel'] as const;

/**
 * `messageId` from nsqd's fixed 16 characters to up to 64: client-side history (./transport.ts)
 * files a producer's publish under its message key (a UUID, or a key of the application's own).
 * MySQL/MariaDB only: SQLite does not enforce a declared varchar length, so its tables take
 * longer ids as they are. Still ASCII with a binary collation (the recorder only writes ids of
 * [A-Za-z0-9._:-] there); the unique and lookup indexes are rebuilt with the column. Also an
 * index on `nsq_message(messageId)`, on both engines: a lookup by id without the nsqd, or by key,
 * finds its message rows through it, then their events through the (nsqd, messageId) indexes.
 */
export class WidenHistoryMessageId1748000000000 implements MigrationInterface {
  name = 'WidenHistoryMessageId1748000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // a message looked up by id alone (no nsqd) or by key must not scan the table
    await queryRunner.query('CREATE INDEX `IDX_nsq_message_message_id` ON `nsq_message` (`messageId`)');
    if (!isMysqlFamily(queryRunner)) return;
    for (const table of MESSAGE_ID_TABLES) {
      await queryRunner.query(`ALTER TABLE \`${table}\` MODIFY \`messageId\` varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL`);
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (!isMysqlFamily(queryRunner)) {
      await queryRunner.query('DROP INDEX `IDX_nsq_message_message_id`');
      return;
    }
    for (const table of MESSAGE_ID_TABLES) {
      // narrowing would cut the client-side ids (or fail in strict mode): refuse while there are any
      const rows = (await queryRunner.query(`SELECT COUNT(*) AS n FROM \`${table}\` WHERE CHAR_LENGTH(\`messageId\`) > 16`)) as Array<{ n: number | string }>;
      const n = Number(rows[0]?.n ?? 0);
      if (n > 0) throw new Error(`cannot revert ${this.name}: ${table} has ${n} rows with a messageId longer than 16 characters (client-side history); delete them first`);
    }
    for (const table of MESSAGE_ID_TABLES) {
      await queryRunner.query(`ALTER TABLE \`${table}\` MODIFY \`messageId\` char(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL`);
    }
    await queryRunner.query('DROP INDEX `IDX_nsq_message_message_id` ON `nsq_message`');
  }
}

const UNREAD_EVENT_INDEXES = [
  { name: 'IDX_nsq_message_event_channel_at', columns: '`channel`, `at`' },
  { name: 'IDX_nsq_message_event_type_at', columns: '`type`, `at`' },
] as const;

/**
 * Drops the event table's (channel, at) and (type, at) indexes: no query reads them (searches by
 * channel or status go through nsq_message_channel and nsq_message, a timeline through
 * (nsqd, messageId, at)), and each event row paid for them. Three event rows a message made them
 * six of a message's 29 index writes; without them the recorder writes about a quarter more
 * messages a second to MariaDB (`npm run bench:history`).
 */
export class DropUnreadHistoryEventIndexes1749000000000 implements MigrationInterface {
  name = 'DropUnreadHistoryEventIndexes1749000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const on = isMysqlFamily(queryRunner) ? ' ON `nsq_message_event`' : '';
    for (const index of UNREAD_EVENT_INDEXES) await queryRunner.query(`DROP INDEX \`${index.name}\`${on}`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const index of UNREAD_EVENT_INDEXES) await queryRunner.query(`CREATE INDEX \`${index.name}\` ON \`nsq_message_event\` (${index.columns})`);
  }
}

/**
 * A recorded publish is its message row, not also an event row:
 * - `nsq_message.published` marks a row written from a publish the recorder saw. The recorder no
 *   longer writes a 'published' event row for a broker's publish (the row already holds its time,
 *   topic, producer and deferral); a timeline shows it from the row (HistoryQueryService). Rows
 *   from before keep their event rows, and a timeline shows each publish once.
 * - The unique key (nsqd, messageId) becomes (messageId, nsqd): it serves a lookup by id without
 *   the nsqd too, so IDX_nsq_message_message_id goes.
 * Each message had 5 rows and 23 index entries written; now 4 and 18 (`npm run bench:history`).
 */
export class HistoryPublishIsTheMessageRow1750000000000 implements MigrationInterface {
  name = 'HistoryPublishIsTheMessageRow1750000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = isMysqlFamily(queryRunner);
    const on = mysql ? ' ON `nsq_message`' : '';
    await queryRunner.query(`ALTER TABLE \`nsq_message\` ADD \`published\` boolean NOT NULL DEFAULT 0`);
    await queryRunner.query('CREATE UNIQUE INDEX `UQ_nsq_message_message_id_nsqd` ON `nsq_message` (`messageId`, `nsqd`)');
    await queryRunner.query(`DROP INDEX \`UQ_nsq_message_nsqd_message_id\`${on}`);
    await queryRunner.query(`DROP INDEX \`IDX_nsq_message_message_id\`${on}`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const mysql = isMysqlFamily(queryRunner);
    const on = mysql ? ' ON `nsq_message`' : '';
    // the publishes written since have no event row: give them one, as the earlier schema had (with
    // the recorder's detail of a deferred publish, see publishDetail)
    const key = mysql ? "CONCAT('row-publish:', `id`)" : "'row-publish:' || `id`";
    const deferredMs = mysql
      ? 'TIMESTAMPDIFF(MICROSECOND, `publishedAt`, `deferredUntil`) DIV 1000'
      : 'CAST(ROUND((julianday(`deferredUntil`) - julianday(`publishedAt`)) * 86400000) AS INTEGER)';
    const detail = `CASE WHEN \`deferredUntil\` IS NULL THEN NULL ELSE ${mysql ? `CONCAT('deferred ', ${deferredMs}, ' ms')` : `'deferred ' || ${deferredMs} || ' ms'`} END`;
    await queryRunner.query(
      'INSERT INTO `nsq_message_event` (`eventKey`, `nsqd`, `messageId`, `topic`, `type`, `at`, `detail`) ' +
        `SELECT ${key}, \`nsqd\`, \`messageId\`, \`topic\`, 'published', \`publishedAt\`, ${detail} FROM \`nsq_message\` m ` +
        "WHERE `published` = 1 AND NOT EXISTS (SELECT 1 FROM `nsq_message_event` e WHERE e.`nsqd` = m.`nsqd` AND e.`messageId` = m.`messageId` AND e.`type` = 'published')",
    );
    await queryRunner.query('CREATE INDEX `IDX_nsq_message_message_id` ON `nsq_message` (`messageId`)');
    await queryRunner.query('CREATE UNIQUE INDEX `UQ_nsq_message_nsqd_message_id` ON `nsq_message` (`nsqd`, `messageId`)');
    await queryRunner.query(`DROP INDEX \`UQ_nsq_message_message_id_nsqd\`${on}`);
    await queryRunner.query('ALTER TABLE `nsq_message` DROP COLUMN `published`');
  }
}

export const HISTORY_MIGRATIONS = [
  CreateHistoryTables1747000000000,
  WidenHistoryMessageId1748000000000,
  DropUnreadHistoryEventIndexes1749000000000,
  HistoryPublishIsTheMessageRow1750000000000,
];
