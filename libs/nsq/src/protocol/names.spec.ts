import { describe, it, expect } from '@jest/globals';
import { NsqValidationError } from './errors.js';
import {
  EPHEMERAL_SUFFIX,
  assertValidChannel,
  assertValidTopic,
  isEphemeral,
  isValidChannelName,
  isValidTopicName,
} from './names.js';

const VALID = [
  'a',
  'Z',
  '0',
  '.',
  '-',
  '_',
  'events',
  'Test.Topic_1-2',
  'a.b.c',
  '...',
  'a#ephemeral',
  '_#ephemeral',
  // every allowed character: 26 + 26 + 10 + 3 = 65, so split over two 64-or-fewer names
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._', // 64 chars
  '-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.', // 64 chars
  'x'.repeat(54) + '#ephemeral', // 64 chars including the suffix
];

const INVALID = [
  '',
  ' ',
  'a b',
  'a/b',
  'a:b',
  'a,b',
  'a*',
  'a+b',
  'a@b',
  'a\tb',
  'a\0',
  'topic!',
  'tópic', // non-ASCII letter
  'トピック',
  'a\n', // a trailing newline must not slip through `$`
  '\na',
  'a\r',
  '#ephemeral', // suffix with nothing before it
  'a#',
  'a#eph',
  'a#ephemeralx',
  'a#Ephemeral',
  'a#EPHEMERAL',
  'a#ephemeral#ephemeral',
  '#ephemeral#ephemeral',
  'a #ephemeral',
];

describe('topic and channel names', () => {
  it('covers the maximum length in the valid fixtures', () => {
    expect(VALID.filter((n) => n.length === 64)).toHaveLength(3);
  });

  it.each(VALID)('accepts %j', (name) => {
    expect(isValidTopicName(name)).toBe(true);
    expect(isValidChannelName(name)).toBe(true);
  });

  it.each(INVALID)('rejects %j', (name) => {
    expect(isValidTopicName(name)).toBe(false);
    expect(isValidChannelName(name)).toBe(false);
  });

  it('allows 64 characters and rejects 65', () => {
    expect(isValidTopicName('a'.repeat(64))).toBe(true);
    expect(isValidTopicName('a'.repeat(65))).toBe(false);
    expect(isValidChannelName('.'.repeat(64))).toBe(true);
    expect(isValidChannelName('.'.repeat(65))).toBe(false);
  });

  it('counts the #ephemeral suffix toward the 64-character limit', () => {
    expect(EPHEMERAL_SUFFIX).toBe('#ephemeral');
    const fits = 'e'.repeat(54) + '#ephemeral';
    const over = 'e'.repeat(55) + '#ephemeral';
    expect(fits).toHaveLength(64);
    expect(over).toHaveLength(65);
    expect(isValidTopicName(fits)).toBe(true);
    expect(isValidChannelName(fits)).toBe(true);
    expect(isValidTopicName(over)).toBe(false);
    expect(isValidChannelName(over)).toBe(false);
    // The part before the suffix alone would be a valid name.
    expect(isValidTopicName('e'.repeat(55))).toBe(true);
  });

  it('returns false for non-string input', () => {
    for (const value of [undefined, null, 42, {}, ['a']]) {
      expect(isValidTopicName(value as unknown as string)).toBe(false);
      expect(isValidChannelName(value as unknown as string)).toBe(false);
    }
  });
});

describe('isEphemeral', () => {
  it('is true only for names ending in #ephemeral', () => {
    expect(isEphemeral('t#ephemeral')).toBe(true);
    expect(isEphemeral('t')).toBe(false);
    expect(isEphemeral('ephemeral')).toBe(false);
    expect(isEphemeral('t#Ephemeral')).toBe(false);
  });
});

describe('assertValidTopic / assertValidChannel', () => {
  it('do not throw for valid names', () => {
    expect(() => assertValidTopic('t#ephemeral')).not.toThrow();
    expect(() => assertValidChannel('c')).not.toThrow();
  });

  it('throw NsqValidationError with field "topic" and a helpful message', () => {
    let err: unknown;
    try {
      assertValidTopic('bad topic');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NsqValidationError);
    const v = err as NsqValidationError;
    expect(v.field).toBe('topic');
    expect(v.code).toBe('ERR_NSQ_VALIDATION');
    expect(v.message).toContain('"bad topic"');
    expect(v.message).toContain('1-64');
    expect(v.message).toContain('[.a-zA-Z0-9_-]');
    expect(v.message).toContain('#ephemeral');
  });

  it('throw NsqValidationError with field "channel" for channels', () => {
    let err: unknown;
    try {
      assertValidChannel('c'.repeat(65));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NsqValidationError);
    expect((err as NsqValidationError).field).toBe('channel');
    expect((err as NsqValidationError).message).toMatch(/^channel name "c{65}" is not valid/);
  });
});
