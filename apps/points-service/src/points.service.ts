import { Inject, Injectable } from '@nestjs/common';
import { SampleDatabase } from '../../shared/src/index.js';
import { Notification, ProcessedEvent, UserPoints } from './entities.js';
import type { OrderCreated } from './order-created.js';

/** The event was handled before (a redelivery, or a duplicate publish): nothing was changed. */
class DuplicateEventError extends Error {}

export type HandleOutcome = 'done' | 'duplicate';

export interface UserPointsView {
  userId: string;
  points: number;
  /** Orders whose points are in the total. */
  awards: number;
}

/** `2026-05-01 12:00:00.123`: a UTC datetime both MySQL and SQLite take as a bound parameter. */
function sqlTime(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

@Injectable()
export class PointsService {
  constructor(@Inject(SampleDatabase) private readonly db: SampleDatabase) {}

  /**
   * Awards the event's points, once per eventId: in one transaction a processed_event row (primary
   * key eventId) and the user's total. A second delivery of the same event fails on that key,
   * rolls back and changes nothing. Resolves once the outcome is durable, so the message is
   * finished only then.
   */
  async award(event: OrderCreated): Promise<HandleOutcome> {
    const upsert =
      this.db.type === 'sqljs'
        ? 'INSERT INTO user_points (userId, points, awards, updatedAt) VALUES (?, ?, 1, ?) ' +
          'ON CONFLICT(userId) DO UPDATE SET points = points + excluded.points, awards = awards + 1, updatedAt = excluded.updatedAt'
        : 'INSERT INTO user_points (userId, points, awards, updatedAt) VALUES (?, ?, 1, ?) ' +
          'ON DUPLICATE KEY UPDATE points = points + VALUES(points), awards = awards + 1, updatedAt = VALUES(updatedAt)';
    const now = new Date();
    return this.once(async (em) => {
      await this.insertOnce(() => em.insert(ProcessedEvent, { eventId: event.eventId, orderId: event.orderId, userId: event.userId, points: event.points, processedAt: now }));
      await em.query(upsert, [event.userId, event.points, sqlTime(now)]);
    });
  }

  /** The notifications channel: records (once per eventId) what would be sent to the user. */
  notify(event: OrderCreated): Promise<HandleOutcome> {
    const text = `order ${event.orderId}: ${event.points} point${event.points === 1 ? '' : 's'} for ${(event.amountCents / 100).toFixed(2)}`;
    return this.once(async (em) => {
      await this.insertOnce(() => em.insert(Notification, { eventId: event.eventId, userId: event.userId, text, createdAt: new Date() }));
    });
  }

  async pointsOf(userId: string): Promise<UserPointsView> {
    const row = await this.db.read((em) => em.findOneBy(UserPoints, { userId }));
    return { userId, points: row ? Number(row.points) : 0, awards: row?.awards ?? 0 };
  }

  /** Events handled per channel (rows in processed_event and notification). */
  async counts(): Promise<{ awards: number; notifications: number }> {
    return this.db.read(async (em) => ({ awards: await em.count(ProcessedEvent), notifications: await em.count(Notification) }));
  }

  private async once(fn: Parameters<SampleDatabase['transaction']>[0]): Promise<HandleOutcome> {
    try {
      await this.db.transaction(fn);
      return 'done';
    } catch (err) {
      if (!(err instanceof DuplicateEventError)) throw err;
      // the first delivery's commit must be on disk before this one is finished (sql.js)
      await this.db.persisted();
      return 'duplicate';
    }
  }

  private async insertOnce(insert: () => Promise<unknown>): Promise<void> {
    try {
      await insert();
    } catch (err) {
      if (this.db.isUniqueViolation(err)) throw new DuplicateEventError('already handled', { cause: err });
      throw err;
    }
  }
}
