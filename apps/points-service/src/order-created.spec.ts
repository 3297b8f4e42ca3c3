import { describe, expect, it } from '@jest/globals';
import { InvalidOrderEventError, parseOrderCreated } from './order-created.js';

const valid = {
  eventId: '0b6c3f0e-6f1d-4a53-9a3e-2f1a3c9d7e11',
  orderId: '5d1e7c2a-1b3f-4c5d-8e9f-0a1b2c3d4e5f',
  userId: 'u1',
  amountCents: 1250,
  points: 12,
  createdAt: '2026-05-01T12:00:00.000Z',
};

describe('parseOrderCreated', () => {
  it('accepts what order-service publishes', () => {
    expect(parseOrderCreated({ ...valid })).toEqual(valid);
  });

  it.each([
    ['a string payload', 'x', 'payload'],
    ['a bad eventId', { ...valid, eventId: 'nope' }, 'eventId'],
    ['a bad orderId', { ...valid, orderId: 42 }, 'orderId'],
    ['a bad userId', { ...valid, userId: 'a b' }, 'userId'],
    ['negative points', { ...valid, points: -1 }, 'points'],
    ['fractional amountCents', { ...valid, amountCents: 1.5 }, 'amountCents'],
    ['a bad createdAt', { ...valid, createdAt: 'yesterday' }, 'createdAt'],
  ])('rejects %s', (_name, payload, field) => {
    let error: unknown;
    try {
      parseOrderCreated(payload);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidOrderEventError);
    expect((error as InvalidOrderEventError).field).toBe(field);
    expect((error as Error).message).toMatch(/^invalid order.created event: /);
  });
});
