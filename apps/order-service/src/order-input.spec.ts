import { describe, expect, it } from '@jest/globals';
import { pointsFor } from './order-created.js';
import { MAX_AMOUNT_CENTS, OrderInputError, parseOrderInput } from './order-input.js';

function rejection(body: unknown): { field: string; message: string } {
  try {
    parseOrderInput(body);
  } catch (err) {
    if (err instanceof OrderInputError) return { field: err.field, message: err.message };
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('parseOrderInput', () => {
  it('accepts a valid order', () => {
    expect(parseOrderInput({ userId: 'u-1.a_b:c', amountCents: 1250 })).toEqual({ userId: 'u-1.a_b:c', amountCents: 1250 });
    expect(parseOrderInput({ userId: 'x'.repeat(64), amountCents: MAX_AMOUNT_CENTS })).toEqual({ userId: 'x'.repeat(64), amountCents: MAX_AMOUNT_CENTS });
  });

  it.each([
    ['not an object', 'text', 'body', /must be a JSON object/],
    ['null', null, 'body', /must be a JSON object/],
    ['an array', [{ userId: 'u1', amountCents: 1 }], 'body', /must be a JSON object/],
    ['an unknown field', { userId: 'u1', amountCents: 1, currency: 'EUR' }, 'currency', /unknown field "currency"/],
    ['no userId', { amountCents: 1 }, 'userId', /userId is required/],
    ['a numeric userId', { userId: 7, amountCents: 1 }, 'userId', /userId must be a string, got number/],
    ['an empty userId', { userId: '', amountCents: 1 }, 'userId', /1-64 characters/],
    ['a userId with a space', { userId: 'a b', amountCents: 1 }, 'userId', /1-64 characters/],
    ['a userId of 65 characters', { userId: 'x'.repeat(65), amountCents: 1 }, 'userId', /1-64 characters/],
    ['no amountCents', { userId: 'u1' }, 'amountCents', /amountCents is required/],
    ['amountCents as a string', { userId: 'u1', amountCents: '1250' }, 'amountCents', /JSON number of cents, got string/],
    ['a fractional amountCents', { userId: 'u1', amountCents: 12.5 }, 'amountCents', /whole number of cents/],
    ['amountCents 0', { userId: 'u1', amountCents: 0 }, 'amountCents', /between 1 and 100000000, got 0/],
    ['a negative amountCents', { userId: 'u1', amountCents: -5 }, 'amountCents', /between 1 and/],
    ['amountCents above the maximum', { userId: 'u1', amountCents: MAX_AMOUNT_CENTS + 1 }, 'amountCents', /between 1 and/],
  ])('rejects %s', (_name, body, field, message) => {
    const r = rejection(body);
    expect(r.field).toBe(field);
    expect(r.message).toMatch(message);
  });
});

describe('pointsFor', () => {
  it('gives one point per whole currency unit', () => {
    expect(pointsFor(1)).toBe(0);
    expect(pointsFor(99)).toBe(0);
    expect(pointsFor(100)).toBe(1);
    expect(pointsFor(1250)).toBe(12);
    expect(pointsFor(MAX_AMOUNT_CENTS)).toBe(1_000_000);
  });
});
