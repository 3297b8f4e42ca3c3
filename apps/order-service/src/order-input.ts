/** The body of POST /orders. */
export interface OrderInput {
  userId: string;
  amountCents: number;
}

/** What POST /orders rejects, naming the field at fault; the API answers 400 with the message. */
export class OrderInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'OrderInputError';
  }
}

export const USER_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
/** 1,000,000.00 in cents: a sample order, not a wire transfer. */
export const MAX_AMOUNT_CENTS = 100_000_000;
const FIELDS = ['userId', 'amountCents'] as const;
const EXAMPLE = '{"userId":"u1","amountCents":1250}';

/**
 * Checks a POST /orders body by hand (the project has no class-validator), one rule at a time:
 * a JSON object, no unknown fields, `userId` a string of 1-64 letters, digits, `.`, `_`, `:` or
 * `-`, `amountCents` an integer number (not a string) from 1 to 100,000,000.
 */
export function parseOrderInput(body: unknown): OrderInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new OrderInputError('body', `the body must be a JSON object like ${EXAMPLE} (sent with Content-Type: application/json)`);
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new OrderInputError(key, `unknown field ${JSON.stringify(key)}: an order has only ${FIELDS.join(' and ')}`);
    }
  }
  const { userId, amountCents } = record;
  if (userId === undefined || userId === null) throw new OrderInputError('userId', `userId is required, e.g. ${EXAMPLE}`);
  if (typeof userId !== 'string') throw new OrderInputError('userId', `userId must be a string, got ${typeof userId}`);
  if (!USER_ID_PATTERN.test(userId)) {
    throw new OrderInputError('userId', 'userId must be 1-64 characters of letters, digits, ".", "_", ":" or "-"');
  }
  if (amountCents === undefined || amountCents === null) throw new OrderInputError('amountCents', `amountCents is required, e.g. ${EXAMPLE}`);
  if (typeof amountCents !== 'number') {
    throw new OrderInputError('amountCents', `amountCents must be a JSON number of cents, got ${typeof amountCents}`);
  }
  if (!Number.isInteger(amountCents)) throw new OrderInputError('amountCents', `amountCents must be a whole number of cents, got ${amountCents}`);
  if (amountCents < 1 || amountCents > MAX_AMOUNT_CENTS) {
    throw new OrderInputError('amountCents', `amountCents must be between 1 and ${MAX_AMOUNT_CENTS}, got ${amountCents}`);
  }
  return { userId, amountCents };
}
