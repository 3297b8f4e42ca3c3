import { Column, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';

/*
 * The DDL lives in ./migrations.ts (one migration for MySQL and sql.js); the decorators use
 * types both drivers accept.
 */

/** An order as placed through POST /orders. */
@Entity('orders')
@Index('IDX_orders_user_id', ['userId'])
export class Order {
  /** A UUID chosen by the service. */
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ type: 'varchar', length: 64 })
  userId!: string;

  /** The amount in cents (an integer: money is never a float here). */
  @Column({ type: 'int' })
  amountCents!: number;

  /** Loyalty points the order earns: one per whole currency unit (see pointsFor). */
  @Column({ type: 'int' })
  points!: number;

  @Column({ type: 'datetime', precision: 3 })
  createdAt!: Date;
}

/**
 * The transactional outbox: one row per event to publish, written in the transaction of the
 * change it announces (by OutboxSubscriber), published by OutboxRelay, which sets `sentAt` once
 * nsqd acknowledged the message.
 */
@Entity('outbox_event')
@Index('UQ_outbox_event_event_id', ['eventId'], { unique: true })
@Index('IDX_outbox_event_sent_at_id', ['sentAt', 'id'])
@Index('IDX_outbox_event_order_id', ['orderId'])
export class OutboxEvent {
  /** Publication order. Auto-increment ids come back as strings from mysql2 (bigint) and as numbers from sql.js. */
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string | number;

  /** The event's id: the payload's eventId and the envelope's message-key header. */
  @Column({ type: 'varchar', length: 36 })
  eventId!: string;

  @Column({ type: 'varchar', length: 64 })
  topic!: string;

  @Column({ type: 'varchar', length: 36 })
  orderId!: string;

  /** The payload as JSON. */
  @Column({ type: 'text' })
  payload!: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt!: Date;

  /** When nsqd acknowledged the publish; null until then. */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  sentAt!: Date | null;
}

export const ORDER_ENTITIES = [Order, OutboxEvent];
