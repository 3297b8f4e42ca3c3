import { type MigrationInterface, type QueryRunner, Table, TableIndex, type TableColumnOptions } from 'typeorm';

/**
 * The points-service tables, once for MySQL / MariaDB and sql.js through TypeORM's Table API
 * (ids binary-collated on MySQL, so they compare exactly as the service does).
 */
export class CreatePointsTables1750000000000 implements MigrationInterface {
  name = 'CreatePointsTables1750000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const type = queryRunner.dataSource.options.type;
    const mysql = type === 'mysql' || type === 'mariadb';
    const text = (name: string, length: number): TableColumnOptions => ({
      name,
      type: 'varchar',
      length: String(length),
      isNullable: false,
      ...(mysql ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : {}),
    });
    const time = (name: string): TableColumnOptions => ({ name, type: 'datetime', precision: 3, isNullable: false });
    const int = (name: string): TableColumnOptions => ({ name, type: mysql ? 'int' : 'integer', isNullable: false });

    await queryRunner.createTable(
      new Table({
        name: 'processed_event',
        columns: [{ ...text('eventId', 36), isPrimary: true }, text('orderId', 36), text('userId', 64), int('points'), time('processedAt')],
        indices: [new TableIndex({ name: 'IDX_processed_event_user_id', columnNames: ['userId'] })],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'user_points',
        columns: [{ ...text('userId', 64), isPrimary: true }, { name: 'points', type: 'bigint', isNullable: false }, int('awards'), time('updatedAt')],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'notification',
        columns: [{ ...text('eventId', 36), isPrimary: true }, text('userId', 64), text('text', 255), time('createdAt')],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('notification', true);
    await queryRunner.dropTable('user_points', true);
    await queryRunner.dropTable('processed_event', true);
  }
}

export const POINTS_MIGRATIONS = [CreatePointsTables1750000000000];
export const POINTS_MIGRATIONS_TABLE = 'points_service_migrations';
