/** The topic of the event every new order publishes. */
export const ORDER_CREATED = 'order.created';

/**
 * The `order.created` payload (JSON). points-service awards `points` once per `eventId`, which
 * is also the envelope's `message-key` header, so the message history links the publish and
 * its deliveries.
 */
export interface OrderCreated {
  eventId: string;
  orderId: string;
  userId: string;
  amountCents: number;
  points: number;
  /** ISO 8601. */
  createdAt: string;
}

/** The points rule: one point per whole currency unit (1250 cents → 12 points). */
export function pointsFor(amountCents: number): number {
  return Math.floor(amountCents / 100);
}
