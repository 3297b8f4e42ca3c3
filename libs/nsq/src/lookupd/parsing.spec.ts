import { describe, expect, it } from '@jest/globals';
import { goJson, parseGoQuery } from './http.js';
import { decodeIdentifyBody } from './tcp.js';

const body = (text: string): Buffer => Buffer.from(text, 'utf8');

describe('decodeIdentifyBody (Go json.Unmarshal into PeerInfo)', () => {
  it('reads the fields nsqd sends and ignores unknown keys', () => {
    expect(
      decodeIdentifyBody(body('{"broadcast_address":"h","hostname":"x","http_port":4151,"tcp_port":4150,"version":"1.3.0","extra":[1]}')),
    ).toEqual({ remote_address: '', hostname: 'x', broadcast_address: 'h', tcp_port: 4150, http_port: 4151, version: '1.3.0' });
  });

  it('matches keys case-insensitively, an exact match first', () => {
    const out = decodeIdentifyBody(body('{"BROADCAST_ADDRESS":"a","Tcp_Port":1,"http_port":2,"version":"v"}'));
    expect(out.broadcast_address).toBe('a');
    expect(out.tcp_port).toBe(1);
  });

  it('treats null (whole body or a field) as unset', () => {
    expect(decodeIdentifyBody(body('null')).tcp_port).toBe(0);
    expect(decodeIdentifyBody(body('{"tcp_port":null,"version":null}')).version).toBe('');
  });

  it.each([
    ['not JSON', '{bad'],
    ['empty body', ''],
    ['an array', '[]'],
    ['a string', '"x"'],
    ['a fractional port', '{"tcp_port":1.5}'],
    ['a string port', '{"tcp_port":"4150"}'],
    ['a numeric version', '{"version":1}'],
  ])('rejects %s', (_what, text) => {
    expect(() => decodeIdentifyBody(body(text))).toThrow();
  });
});

describe('parseGoQuery (Go url.ParseQuery)', () => {
  it('keeps the first value, decodes + and %XX, accepts keys without =', () => {
    const { values, error } = parseGoQuery('topic=a+b&topic=second&channel=%63h&flag');
    expect(error).toBe(false);
    expect(values.get('topic')).toBe('a b');
    expect(values.get('channel')).toBe('ch');
    expect(values.get('flag')).toBe('');
  });

  it.each(['topic=a;b', 'topic=%zz', 'topic=%4'])('flags %s as an error', (raw) => {
    expect(parseGoQuery(raw).error).toBe(true);
  });
});

describe('goJson', () => {
  it('escapes like encoding/json', () => {
    expect(goJson({ h: '<a&b>\u2028\u2029é' })).toBe('{"h":"\\u003ca\\u0026b\\u003e\\u2028\\u2029é"}');
  });
});
