import { describe, it, expect } from '@jest/globals';
import {
  NsqAuthError,
  NsqBackpressureError,
  NsqBadRequestError,
  NsqClosedError,
  NsqConnectionError,
  NsqError,
  NsqFrameError,
  NsqIdentifyError,
  NsqInvalidError,
  NsqMessageStateError,
  NsqPublishError,
  NsqServerError,
  NsqSubscribeError,
  NsqTimeoutError,
  NsqValidationError,
  SERVER_ERROR_CODES,
  isFatalErrorCode,
  serverErrorFromFrame,
} from './errors.js';

type ServerErrorClass = abstract new (...args: never[]) => NsqServerError;

/**
 * The expected mapping, written out independently of SERVER_ERROR_CODES from the error table in
 * nsqd/protocol_v2.go (v1.3.0): only E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED are non-fatal.
 */
const EXPECTED: Record<string, { type: ServerErrorClass; fatal: boolean }> = {
  E_INVALID: { type: NsqInvalidError, fatal: true },
  E_BAD_PROTOCOL: { type: NsqInvalidError, fatal: true },
  E_BAD_BODY: { type: NsqBadRequestError, fatal: true },
  E_BAD_TOPIC: { type: NsqBadRequestError, fatal: true },
  E_BAD_CHANNEL: { type: NsqBadRequestError, fatal: true },
  E_BAD_MESSAGE: { type: NsqBadRequestError, fatal: true },
  E_PUB_FAILED: { type: NsqPublishError, fatal: true },
  E_MPUB_FAILED: { type: NsqPublishError, fatal: true },
  E_DPUB_FAILED: { type: NsqPublishError, fatal: true },
  E_SUB_FAILED: { type: NsqSubscribeError, fatal: true },
  E_IDENTIFY_FAILED: { type: NsqIdentifyError, fatal: true },
  E_AUTH_FIRST: { type: NsqAuthError, fatal: true },
  E_AUTH_DISABLED: { type: NsqAuthError, fatal: true },
  E_AUTH_FAILED: { type: NsqAuthError, fatal: true },
  E_UNAUTHORIZED: { type: NsqAuthError, fatal: true },
  E_AUTH_ERROR: { type: NsqAuthError, fatal: true },
  E_FIN_FAILED: { type: NsqMessageStateError, fatal: false },
  E_REQ_FAILED: { type: NsqMessageStateError, fatal: false },
  E_TOUCH_FAILED: { type: NsqMessageStateError, fatal: false },
};

const FAMILIES = [
  NsqInvalidError,
  NsqBadRequestError,
  NsqPublishError,
  NsqSubscribeError,
  NsqIdentifyError,
  NsqAuthError,
  NsqMessageStateError,
];

describe('SERVER_ERROR_CODES', () => {
  it('lists exactly the 19 codes nsqd 1.3.0 sends', () => {
    expect(Object.keys(SERVER_ERROR_CODES).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it('marks only E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED as non-fatal', () => {
    const nonFatal = Object.entries(SERVER_ERROR_CODES)
      .filter(([, v]) => !v.fatal)
      .map(([code]) => code)
      .sort();
    expect(nonFatal).toEqual(['E_FIN_FAILED', 'E_REQ_FAILED', 'E_TOUCH_FAILED']);
  });
});

describe('serverErrorFromFrame', () => {
  it.each(Object.entries(EXPECTED))('maps %s to its class and fatal flag', (code, { type, fatal }) => {
    const description = `something about ${code.toLowerCase()} "quoted" and  two spaces`;
    const err = serverErrorFromFrame(Buffer.from(`${code} ${description}`, 'utf8'));
    expect(err).toBeInstanceOf(type);
    expect(err).toBeInstanceOf(NsqServerError);
    expect(err).toBeInstanceOf(NsqError);
    expect(err).toBeInstanceOf(Error);
    expect(err.constructor).toBe(type);
    // Exactly one family matches.
    expect(FAMILIES.filter((family) => err instanceof family)).toEqual([type]);
    expect(err.name).toBe(type.name);
    expect(err.code).toBe(code);
    expect(err.fatal).toBe(fatal);
    expect(isFatalErrorCode(code)).toBe(fatal);
    expect(err.description).toBe(description);
    expect(err.message).toBe(`${code} ${description}`);
  });

  it('treats unknown codes as fatal plain NsqServerErrors', () => {
    const err = serverErrorFromFrame('E_SOMETHING_NEW the future is here');
    expect(err.constructor).toBe(NsqServerError);
    expect(FAMILIES.some((family) => err instanceof family)).toBe(false);
    expect(err.name).toBe('NsqServerError');
    expect(err.code).toBe('E_SOMETHING_NEW');
    expect(err.fatal).toBe(true);
    expect(err.description).toBe('the future is here');
    expect(err.message).toBe('E_SOMETHING_NEW the future is here');
    expect(isFatalErrorCode('E_SOMETHING_NEW')).toBe(true);
    expect(isFatalErrorCode('')).toBe(true);
  });

  it('keeps real nsqd error texts intact', () => {
    const texts = [
      'E_INVALID RDY count 2501 out of range 0-2500',
      'E_BAD_TOPIC PUB topic name "a b" is not valid',
      'E_BAD_MESSAGE PUB message too big 1048577 > 1048576',
      'E_FIN_FAILED FIN 0a1b2c3d4e5f6789 failed ID not in flight',
      'E_INVALID invalid command ',
    ];
    for (const text of texts) {
      const err = serverErrorFromFrame(Buffer.from(text));
      expect(err.message).toBe(text);
      expect(err.description).toBe(text.slice(text.indexOf(' ') + 1));
    }
    expect(serverErrorFromFrame('E_INVALID invalid command ').description).toBe('invalid command ');
  });

  it('splits on the first space only (the MPUB "E_BAD_TOPIC E_BAD_TOPIC ..." quirk)', () => {
    const err = serverErrorFromFrame('E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "x y" is not valid');
    expect(err).toBeInstanceOf(NsqBadRequestError);
    expect(err.code).toBe('E_BAD_TOPIC');
    expect(err.description).toBe('E_BAD_TOPIC MPUB topic name "x y" is not valid');
  });

  it('handles a code without a description', () => {
    const err = serverErrorFromFrame(Buffer.from('E_AUTH_FAILED'));
    expect(err).toBeInstanceOf(NsqAuthError);
    expect(err.code).toBe('E_AUTH_FAILED');
    expect(err.description).toBe('');
    expect(err.message).toBe('E_AUTH_FAILED');
  });

  it('decodes the frame data as UTF-8', () => {
    const err = serverErrorFromFrame(Buffer.from('E_UNAUTHORIZED AUTH denied for tópico ✗', 'utf8'));
    expect(err.description).toBe('AUTH denied for tópico ✗');
  });

  it('gives the same result for a string and a Buffer', () => {
    const a = serverErrorFromFrame('E_REQ_FAILED REQ x failed');
    const b = serverErrorFromFrame(Buffer.from('E_REQ_FAILED REQ x failed'));
    expect([a.constructor, a.code, a.description, a.fatal]).toEqual([b.constructor, b.code, b.description, b.fatal]);
    expect(a.fatal).toBe(false);
  });
});

describe('client-side errors', () => {
  it.each([
    [new NsqValidationError('topic', 'bad'), 'ERR_NSQ_VALIDATION', 'NsqValidationError'],
    [new NsqConnectionError('lost'), 'ERR_NSQ_CONNECTION', 'NsqConnectionError'],
    [new NsqClosedError('closed'), 'ERR_NSQ_CLOSED', 'NsqClosedError'],
    [new NsqTimeoutError('slow'), 'ERR_NSQ_TIMEOUT', 'NsqTimeoutError'],
    [new NsqFrameError('garbled'), 'ERR_NSQ_FRAME', 'NsqFrameError'],
    [new NsqBackpressureError('full'), 'ERR_NSQ_BACKPRESSURE', 'NsqBackpressureError'],
  ] as const)('%p has code %s and name %s', (err, code, name) => {
    expect(err).toBeInstanceOf(NsqError);
    expect(err).not.toBeInstanceOf(NsqServerError);
    expect(err.code).toBe(code);
    expect(err.name).toBe(name);
    expect(String(err)).toMatch(new RegExp(`^${name}: `));
  });

  it('NsqValidationError carries its field', () => {
    const err = new NsqValidationError('maxInFlight', 'must be positive');
    expect(err.field).toBe('maxInFlight');
    expect(err.message).toBe('must be positive');
  });

  it('NsqConnectionError keeps its cause', () => {
    const cause = new Error('ECONNRESET');
    expect(new NsqConnectionError('lost', { cause }).cause).toBe(cause);
  });
});
