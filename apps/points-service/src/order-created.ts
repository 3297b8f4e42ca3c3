/** The topic points-service consumes (published by order-service). */
export const ORDER_CREATED = 'order.created';
/** The channel of the award handler, and the channel of the notification handler (fan-out: each gets every event). */
export const POINTS_CHANNEL = 'points';
export const NOTIFICATIONS_CHANNEL = 'notifications';

/** The `order.created` payload as order-service publishes it (apps/order-service/src/order-created.ts). */
export interface OrderCreated {
  eventId: string;
  orderId: string;
  userId: string;
  amountCents: number;
  points: number;
  createdAt: string;
}

/** An event points-service cannot use; the handler fails, so the transport retries it and finally dead-letters it. */
export class InvalidOrderEventError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid order.created event: ${message}`);
    this.name = 'InvalidOrderEventError';
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const USER_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_POINTS = 2 ** 31 - 1;

/** Checks a decoded `order.created` payload field by field. */
export function parseOrderCreated(data: unknown): OrderCreated {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new InvalidOrderEventError('payload', 'the payload is not a JSON object');
  const e = data as Record<string, unknown>;
  const uuid = (field: 'eventId' | 'orderId'): string => {
    const v = e[field];
    if (typeof v !== 'string' || !UUID.test(v)) throw new InvalidOrderEventError(field, `${field} must be a UUID, got ${JSON.stringify(v)}`);
    return v;
  };
  const count = (field: 'amountCents' | 'points'): number => {
    const v = e[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_POINTS) {
      throw new InvalidOrderEventError(field, `${field} must be an integer from 0 to ${MAX_POINTS}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const eventId = uuid('eventId');
  const orderId = uuid('orderId');
  const userId = e.userId;
  if (typeof userId !== 'string' || !USER_ID_PATTERN.test(userId)) {
    throw new InvalidOrderEventError('userId', `userId must be 1-64 characters of letters, digits, ".", "_", ":" or "-", got ${JSON.stringify(userId)}`);
  }
  const amountCents = count('amountCents');
  const points = count('points');
  const createdAt = e.createdAt;
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
    throw new InvalidOrderEventError('createdAt', `createdAt must be an ISO 8601 time, got ${JSON.stringify(createdAt)}`);
  }
  return { eventId, orderId, userId, amountCents, points, createdAt };
}

/** The topic and every channel points-service consumes it on (created up front: see provisionChannels). */
export const channelsToProvision = { topic: ORDER_CREATED, channels: [POINTS_CHANNEL, NOTIFICATIONS_CHANNEL] } as const;
