import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/*
 * The DDL lives in ./migrations.ts (one migration for MySQL and sql.js); the decorators use
 * types both drivers accept.
 */

/**
 * One award per `order.created` event: the primary key on eventId is what makes a redelivered or
 * duplicated event award nothing (it is inserted in the transaction that adds the points).
 */
@Entity('processed_event')
@Index('IDX_processed_event_user_id', ['userId'])
export class ProcessedEvent {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  eventId!: string;

  @Column({ type: 'varchar', length: 36 })
  orderId!: string;

  @Column({ type: 'varchar', length: 64 })
  userId!: string;

  @Column({ type: 'int' })
  points!: number;

  @Column({ type: 'datetime', precision: 3 })
  processedAt!: Date;
}

/** A user's running total. */
@Entity('user_points')
export class UserPoints {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  userId!: string;

  /** mysql2 returns bigint as a string; sql.js as a number. */
  @Column({ type: 'bigint' })
  points!: string | number;

  /** Awards added up in `points`. */
  @Column({ type: 'int' })
  awards!: number;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt!: Date;
}

/** What the `notifications` channel did with each event (idempotent too: one row per event). */
@Entity('notification')
export class Notification {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  eventId!: string;

  @Column({ type: 'varchar', length: 64 })
  userId!: string;

  @Column({ type: 'varchar', length: 255 })
  text!: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt!: Date;
}

export const POINTS_ENTITIES = [ProcessedEvent, UserPoints, Notification];
