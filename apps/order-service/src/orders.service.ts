import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { IsNull } from 'typeorm';
import { SampleDatabase } from '../../shared/src/index.js';
import { Order, OutboxEvent } from './entities.js';
import { pointsFor } from './order-created.js';
import type { OrderInput } from './order-input.js';
import { OutboxRelay } from './outbox.relay.js';

/** What POST /orders and GET /orders/:id answer. */
export interface OrderView {
  id: string;
  userId: string;
  amountCents: number;
  points: number;
  createdAt: string;
  /** The order's `order.created` event: `sentAt` is set once nsqd acknowledged it. */
  event: { eventId: string; topic: string; sentAt: string | null } | null;
}

function view(order: Order, event: OutboxEvent | null): OrderView {
  return {
    id: order.id,
    userId: order.userId,
    amountCents: order.amountCents,
    points: order.points,
    createdAt: new Date(order.createdAt).toISOString(),
    event: event ? { eventId: event.eventId, topic: event.topic, sentAt: event.sentAt ? new Date(event.sentAt).toISOString() : null } : null,
  };
}

@Injectable()
export class OrdersService {
  constructor(
    @Inject(SampleDatabase) private readonly db: SampleDatabase,
    @Inject(OutboxRelay) private readonly relay: OutboxRelay,
  ) {}

  /**
   * Stores the order; OutboxSubscriber adds its `order.created` outbox row in the same
   * transaction. Resolves once both are committed (and on disk, for sql.js); the relay is kicked
   * to publish the event right away.
   */
  async create(input: OrderInput): Promise<OrderView> {
    const order = Object.assign(new Order(), {
      id: randomUUID(),
      userId: input.userId,
      amountCents: input.amountCents,
      points: pointsFor(input.amountCents),
      createdAt: new Date(),
    });
    const event = await this.db.transaction(async (em) => {
      await em.insert(Order, order);
      return em.findOneByOrFail(OutboxEvent, { orderId: order.id });
    });
    this.relay.kick();
    return view(order, event);
  }

  /** The order and its event; undefined when there is no such order. */
  async find(id: string): Promise<OrderView | undefined> {
    return this.db.read(async (em) => {
      const order = await em.findOneBy(Order, { id });
      if (!order) return undefined;
      return view(order, await em.findOneBy(OutboxEvent, { orderId: id }));
    });
  }

  /** Outbox rows not yet acknowledged by nsqd. */
  unsentEvents(): Promise<number> {
    return this.db.read((em) => em.countBy(OutboxEvent, { sentAt: IsNull() }));
  }
}
