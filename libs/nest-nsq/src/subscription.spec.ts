import { describe, expect, it } from '@jest/globals';
import { NsqTransportConfigError } from './errors.js';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_IN_FLIGHT, defaultDeadLetterTopic, describe as describeError, resolveSubscription } from './subscription.js';

describe('resolveSubscription', () => {
  it('takes the server defaults, with extras winning', () => {
    const s = resolveSubscription('orders', { channel: 'svc', maxAttempts: 7, body: 'text' }, { maxInFlight: 3, body: 'buffer' });
    expect(s).toMatchObject({ topic: 'orders', channel: 'svc', maxAttempts: 7, maxInFlight: 3, body: 'buffer', deadLetterTopic: 'orders.dead' });
  });

  it('has the documented defaults', () => {
    const s = resolveSubscription('t', { channel: 'c' }, {});
    expect(s).toMatchObject({ maxInFlight: DEFAULT_MAX_IN_FLIGHT, maxAttempts: DEFAULT_MAX_ATTEMPTS, backoff: true, body: 'json', manualAck: false, autoTouch: true });
  });

  it('requires a channel and valid names', () => {
    expect(() => resolveSubscription('t', {}, {})).toThrow(NsqTransportConfigError);
    expect(() => resolveSubscription('bad topic', { channel: 'c' }, {})).toThrow(/not a valid NSQ topic/);
    expect(() => resolveSubscription('t', { channel: 'bad/channel' }, {})).toThrow(/not a valid NSQ channel/);
    expect(() => resolveSubscription('t', { channel: 'c', body: 'xml' as never }, {})).toThrow(NsqTransportConfigError);
  });

  it('names the dead-letter topic, refusing one NSQ would reject', () => {
    expect(resolveSubscription('t', { channel: 'c' }, { deadLetterTopic: 'dlq' }).deadLetterTopic).toBe('dlq');
    expect(resolveSubscription('t', { channel: 'c' }, { deadLetterTopic: (topic, channel) => `${topic}.${channel}.dlq` }).deadLetterTopic).toBe('t.c.dlq');
    expect(resolveSubscription('t', { channel: 'c' }, { deadLetterTopic: false }).deadLetterTopic).toBeUndefined();
    expect(() => resolveSubscription('x'.repeat(62), { channel: 'c' }, {})).toThrow(/dead-letter topic/);
  });

  it('keeps an ephemeral topic ephemeral in its dead-letter name', () => {
    expect(defaultDeadLetterTopic('tmp#ephemeral')).toBe('tmp.dead#ephemeral');
    expect(defaultDeadLetterTopic('orders')).toBe('orders.dead');
  });
});

describe('error text', () => {
  it("reads Errors, strings and Nest's RPC error objects", () => {
    expect(describeError(new Error('boom'))).toBe('boom');
    expect(describeError('plain')).toBe('plain');
    expect(describeError({ status: 'error', message: 'x' })).toBe('{"status":"error","message":"x"}');
  });
});
