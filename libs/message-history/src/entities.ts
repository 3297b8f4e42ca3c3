import { AfterLoad, Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { HistoryEventType, HistoryStatus } from './types.js';

/**
 * Auto-increment ids come back as strings from mysql2 (bigNumberStrings) and as numbers from
 * sql.js; loaded entities always get a string, so cursors and comparisons are driver-independent.
 */
abstract class WithId {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @AfterLoad()
  protected normalizeId(): void {
    if (this.id !== undefined && this.id !== null) this.id = String(this.id);
  }
}

/*
 * The DDL lives in the migration (./migrations.ts), which picks per-driver types where the
 * entity's type would be wrong on one of them: `body` is `longblob` on MySQL (plain `blob` caps
 * at 64 KiB) and the ids are `integer` on SQLite (AUTOINCREMENT needs INTEGER PRIMARY KEY).
 * The decorators use types both drivers accept, so one set of entity classes serves both.
 */

/** One message as published to one nsqd (ids are unique per nsqd only), with its summary. */
@Entity('nsq_message')
@Index('UQ_nsq_message_message_id_nsqd', ['messageId', 'nsqd'], { unique: true })
@Index('IDX_nsq_message_topic_published_at', ['topic', 'publishedAt'])
@Index('IDX_nsq_message_status_published_at', ['status', 'publishedAt'])
@Index('IDX_nsq_message_message_key', ['messageKey'])
@Index('IDX_nsq_message_published_at', ['publishedAt'])
export class HistoryMessage extends WithId {
  /** The nsqd the message id is unique on: its identity (broadcast:tcpPort) or the address it was read from. */
  @Column({ type: 'varchar', length: 255 })
  nsqd!: string;

  /** nsqd's 16-character hex message id; on client-side history's producer records (nsqd 'client'), the message key. */
  @Column({ type: 'varchar', length: 64 })
  messageId!: string;

  /** The envelope's message-key header, linking a client-side publish to its deliveries. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  messageKey!: string | null;

  @Column({ type: 'varchar', length: 64 })
  topic!: string;

  /** The body, or its first `maxBodySize` bytes; null when bodies are not stored. */
  @Column({ type: 'blob', nullable: true })
  body!: Buffer | null;

  @Column({ type: 'boolean', default: false })
  bodyTruncated!: boolean;

  /** The full body size in bytes, even when the stored body is truncated or absent. */
  @Column({ type: 'int', default: 0 })
  size!: number;

  @Column({ type: 'datetime', precision: 6 })
  publishedAt!: Date;

  /**
   * The row was written from a recorded publish. Such a publish has no event row of its own (since
   * migration 4): a timeline shows it from this row. False for a row made from events alone or
   * from a consumer-side record.
   */
  @Column({ type: 'boolean', default: false })
  published!: boolean;

  /** 'tcp:<addr>', 'http:<addr>' or 'client:<clientId>'. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  producer!: string | null;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  deferredUntil!: Date | null;

  /** Kept by HistoryEventSubscriber: the status of the latest event of the message. */
  @Column({ type: 'varchar', length: 16, default: 'published' })
  status!: HistoryStatus;

  /** Kept by HistoryEventSubscriber: the highest attempt seen on any channel. */
  @Column({ type: 'int', default: 0 })
  attempts!: number;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  finishedAt!: Date | null;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  deadLetteredAt!: Date | null;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  lastEventAt!: Date | null;
}

/** One lifecycle event of one message. */
@Entity('nsq_message_event')
@Index('UQ_nsq_message_event_event_key', ['eventKey'], { unique: true })
@Index('IDX_nsq_message_event_message', ['nsqd', 'messageId', 'at'])
@Index('IDX_nsq_message_event_at', ['at'])
export class HistoryEvent extends WithId {
  /** `<source>:<epoch>:<seq>`, given by the recorder: a replayed event is ignored, not duplicated. */
  @Column({ type: 'varchar', length: 191 })
  eventKey!: string;

  @Column({ type: 'varchar', length: 255 })
  nsqd!: string;

  @Column({ type: 'varchar', length: 64 })
  messageId!: string;

  /** The message's topic; lets the summary create the message row when its publish was not recorded. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  topic!: string | null;

  @Column({ type: 'varchar', length: 16 })
  type!: HistoryEventType;

  @Column({ type: 'varchar', length: 64, nullable: true })
  channel!: string | null;

  /** The consuming client (nsqd side: its remote address) or service. */
  @Column({ type: 'varchar', length: 255, nullable: true })
  consumer!: string | null;

  @Column({ type: 'int', nullable: true })
  attempt!: number | null;

  @Column({ type: 'datetime', precision: 6 })
  at!: Date;

  /** Requeue delay, drop reason, dead-letter reason and error, deferral, … */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  detail!: string | null;
}

/** The summary of one message on one channel, kept by HistoryEventSubscriber. */
@Entity('nsq_message_channel')
@Index('UQ_nsq_message_channel_key', ['nsqd', 'messageId', 'channel'], { unique: true })
@Index('IDX_nsq_message_channel_channel_status', ['channel', 'status'])
@Index('IDX_nsq_message_channel_last_event_at', ['lastEventAt'])
export class HistoryChannelState extends WithId {
  @Column({ type: 'varchar', length: 255 })
  nsqd!: string;

  @Column({ type: 'varchar', length: 64 })
  messageId!: string;

  @Column({ type: 'varchar', length: 64 })
  channel!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: HistoryStatus;

  @Column({ type: 'int', default: 0 })
  attempts!: number;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  firstDeliveredAt!: Date | null;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  finishedAt!: Date | null;

  @Column({ type: 'datetime', precision: 6, nullable: true })
  deadLetteredAt!: Date | null;

  @Column({ type: 'datetime', precision: 6 })
  lastEventAt!: Date;
}

export const HISTORY_ENTITIES = [HistoryMessage, HistoryEvent, HistoryChannelState];
