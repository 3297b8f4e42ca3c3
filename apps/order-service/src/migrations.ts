import { type MigrationInterface, type QueryRunner, Table, TableIndex, type TableColumnOptions } from 'typeorm';

/**
 * The order-service tables, once for MySQL / MariaDB and sql.js through TypeORM's Table API.
 * Where the drivers differ: the outbox id is `bigint` on MySQL and `integer` on SQLite (whose
 * AUTOINCREMENT needs INTEGER PRIMARY KEY); ids and user ids are binary-collated on MySQL so they
 * compare exactly as the service does.
 */
export class CreateOrderTables1750000000000 implements MigrationInterface {
  name = 'CreateOrderTables1750000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const type = queryRunner.dataSource.options.type;
    const mysql = type === 'mysql' || type === 'mariadb';
    const text = (name: string, length: number, isNullable = false): TableColumnOptions => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable,
      ...(mysql ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : {}),
    });
    const time = (name: string, isNullable = false): TableColumnOptions => ({ name, type: 'datetime', precision: 3, isNullable });

    await queryRunner.createTable(
      new Table({
        name: 'orders',
        columns: [
          { ...text('id', 36), isPrimary: true },
          text('userId', 64),
          { name: 'amountCents', type: mysql ? 'int' : 'integer', isNullable: false },
          { name: 'points', type: mysql ? 'int' : 'integer', isNullable: false },
          time('createdAt'),
        ],
        indices: [new TableIndex({ name: 'IDX_orders_user_id', columnNames: ['userId'] })],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'outbox_event',
        columns: [
          { name: 'id', type: mysql ? 'bigint' : 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          text('eventId', 36),
          text('topic', 64),
          text('orderId', 36),
          { name: 'payload', type: 'text', isNullable: false },
          time('createdAt'),
          time('sentAt', true),
        ],
        indices: [
          new TableIndex({ name: 'UQ_outbox_event_event_id', columnNames: ['eventId'], isUnique: true }),
          new TableIndex({ name: 'IDX_outbox_event_sent_at_id', columnNames: ['sentAt', 'id'] }),
          new TableIndex({ name: 'IDX_outbox_event_order_id', columnNames: ['orderId'] }),
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('outbox_event', true);
    await queryRunner.dropTable('orders', true);
  }
}

export const ORDER_MIGRATIONS = [CreateOrderTables1750000000000];
export const ORDER_MIGRATIONS_TABLE = 'order_service_migrations';
