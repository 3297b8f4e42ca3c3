import { randomUUID } from 'node:crypto';
import { type EntitySubscriberInterface, EventSubscriber, type InsertEvent } from 'typeorm';
import { Order, OutboxEvent } from './entities.js';
import { ORDER_CREATED, type OrderCreated } from './order-created.js';

/**
 * Writes the `order.created` outbox row for every inserted order, through the inserting
 * transaction's own EntityManager: the order and its event commit together or not at all, and
 * no code path can insert an order and forget the event.
 */
@EventSubscriber()
export class OutboxSubscriber implements EntitySubscriberInterface<Order> {
  listenTo(): typeof Order {
    return Order;
  }

  async afterInsert(event: InsertEvent<Order>): Promise<void> {
    const order = event.entity;
    const payload: OrderCreated = {
      eventId: randomUUID(),
      orderId: order.id,
      userId: order.userId,
      amountCents: order.amountCents,
      points: order.points,
      createdAt: order.createdAt.toISOString(),
    };
    await event.manager.insert(OutboxEvent, {
      eventId: payload.eventId,
      topic: ORDER_CREATED,
      orderId: order.id,
      payload: JSON.stringify(payload),
      createdAt: order.createdAt,
      sentAt: null,
    });
  }
}
