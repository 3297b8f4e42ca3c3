import { describe, expect, it } from '@jest/globals';
import { NsqValidationError } from '../protocol/errors.js';
import { Consumer } from './consumer.js';
import { CONSUMER_OPTIONS, PRODUCER_OPTIONS, type ProducerOptions, optionsMarkdown, resolveOptions } from './options.js';
import { Producer } from './producer.js';

function validationError(fn: () => unknown): NsqValidationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NsqValidationError);
    return error as NsqValidationError;
  }
  throw new Error('expected an NsqValidationError');
}

describe('option tables', () => {
  it('fill defaults', () => {
    const o = resolveOptions<ProducerOptions>(PRODUCER_OPTIONS, {}, 'Producer');
    expect(o.heartbeatInterval).toBe(30_000);
    expect(o.maxOutstanding).toBe(1000);
    expect(o.outputBufferTimeout).toBe(250);
  });

  it('reject nonsense with a message naming the option and its range', () => {
    const e = validationError(() => new Producer('127.0.0.1:4150', { heartbeatInterval: 10 }));
    expect(e.field).toBe('heartbeatInterval');
    expect(e.message).toContain('1000..60000');
    expect(validationError(() => new Producer('127.0.0.1:4150', { maxOutstanding: 1.5 })).message).toContain('integer');
    expect(validationError(() => new Producer('127.0.0.1:4150', { sampleRate: 100 })).field).toBe('sampleRate');
    expect(validationError(() => new Producer('127.0.0.1:4150', { outputBufferTimeout: 5 })).field).toBe('outputBufferTimeout');
    expect(validationError(() => new Producer('127.0.0.1:4150', { deflate: 'yes' as unknown as boolean })).field).toBe('deflate');
  });

  it('accept the special values nsqd accepts (-1 disables output buffering)', () => {
    expect(() => new Producer('127.0.0.1:4150', { outputBufferSize: -1, outputBufferTimeout: -1 })).not.toThrow();
  });

  it('reject unknown (misspelt) options', () => {
    const e = validationError(() => new Producer('127.0.0.1:4150', { maxInflight: 5 } as unknown as ProducerOptions));
    expect(e.field).toBe('maxInflight');
    expect(e.message).toContain('unknown option');
  });

  it('derive readTimeout from heartbeatInterval (two missed heartbeats) unless given', () => {
    expect(resolveOptions<ProducerOptions>(PRODUCER_OPTIONS, { heartbeatInterval: 1000 }, 'Producer').readTimeout).toBe(2000);
    expect(resolveOptions<ProducerOptions>(PRODUCER_OPTIONS, {}, 'Producer').readTimeout).toBe(60_000);
    expect(resolveOptions<ProducerOptions>(PRODUCER_OPTIONS, { heartbeatInterval: 5000, readTimeout: 7000 }, 'Producer').readTimeout).toBe(7000);
  });

  it('require readTimeout >= heartbeatInterval', () => {
    expect(validationError(() => new Producer('127.0.0.1:4150', { heartbeatInterval: 30_000, readTimeout: 10_000 })).field).toBe('readTimeout');
  });

  it('reject bad addresses', () => {
    expect(validationError(() => new Producer('nsqd')).field).toBe('nsqd address');
    expect(validationError(() => new Producer('127.0.0.1:99999')).field).toBe('nsqd address');
  });

  it('validate consumer topic, channel, handler and addresses', () => {
    const handler = (): void => undefined;
    const base = { topic: 't', channel: 'c', handler, nsqdTCPAddresses: ['127.0.0.1:4150'] };
    expect(validationError(() => new Consumer({ ...base, topic: 'no spaces' })).field).toBe('topic');
    expect(validationError(() => new Consumer({ ...base, channel: 'x'.repeat(65) })).field).toBe('channel');
    expect(validationError(() => new Consumer({ ...base, nsqdTCPAddresses: [] })).field).toBe('nsqdTCPAddresses');
    expect(validationError(() => new Consumer({ ...base, handler: undefined as unknown as typeof handler })).field).toBe('handler');
    expect(validationError(() => new Consumer({ ...base, maxInFlight: -1 })).field).toBe('maxInFlight');
    expect(validationError(() => new Consumer({ ...base, lookupdPollJitter: 2 })).field).toBe('lookupdPollJitter');
    expect(() => new Consumer({ ...base, topic: 'events#ephemeral', channel: 'tail#ephemeral' })).not.toThrow();
  });

  it('document every option in the generated table', () => {
    const md = optionsMarkdown(CONSUMER_OPTIONS);
    for (const name of Object.keys(CONSUMER_OPTIONS)) expect(md).toContain(`\`${name}\``);
  });
});

describe('libs/nsq/OPTIONS.md', () => {
  it('is the generated reference (run `npm run docs:options` after changing an option)', async () => {
    const { readFile } = await import('node:fs/promises');
    const { optionsReference } = await import('./options.js');
    const file = await readFile(new URL('../../OPTIONS.md', import.meta.url), 'utf8');
    expect(file).toBe(optionsReference());
  });
});
