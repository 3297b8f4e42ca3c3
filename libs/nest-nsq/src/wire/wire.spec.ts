import { describe, expect, it } from '@jest/globals';
import { NsqDecodeError, NsqEncodeError } from '../errors.js';
import { CONTENT_TYPE, ENVELOPE_MAGIC, MAX_HEADER_BYTES, decodeEnvelope, encodeEnvelope, isEnvelope } from './envelope.js';
import { decodePayload, encodePayload } from './payload.js';
import { buildBody, splitBody, toPayload } from './serializer.js';

describe('payload encoding', () => {
  it('sends objects, arrays, numbers, booleans and null as JSON', () => {
    for (const value of [{ a: 1, b: 'x' }, [1, 'two'], 42, true, null]) {
      const { payload, contentType } = encodePayload(value);
      expect(contentType).toBe(CONTENT_TYPE.json);
      expect(payload.toString('utf8')).toBe(JSON.stringify(value));
    }
  });

  it('sends strings as their UTF-8 bytes and Buffers as they are', () => {
    expect(encodePayload('héllo')).toEqual({ payload: Buffer.from('héllo', 'utf8'), contentType: CONTENT_TYPE.text });
    const bytes = Buffer.from([0, 255, 1]);
    expect(encodePayload(bytes).payload).toBe(bytes);
    expect(encodePayload(new Uint8Array([7, 8])).payload).toEqual(Buffer.from([7, 8]));
  });

  it('refuses values that have no JSON form with a typed error', () => {
    expect(() => encodePayload(() => 1)).toThrow(NsqEncodeError);
    expect(() => encodePayload(10n)).toThrow(NsqEncodeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodePayload(cyclic)).toThrow(NsqEncodeError);
  });
});

describe('payload decoding', () => {
  it('json mode parses JSON and rejects anything else with NsqDecodeError', () => {
    expect(decodePayload(Buffer.from('{"a":[1,2]}'), 'json')).toEqual({ a: [1, 2] });
    expect(decodePayload(Buffer.from('"s"'), 'json')).toBe('s');
    for (const bad of [Buffer.from('not json{'), Buffer.alloc(0), Buffer.from([0xff, 0xfe, 0x7b])]) {
      expect(() => decodePayload(bad, 'json')).toThrow(NsqDecodeError);
    }
  });

  it('text mode needs valid UTF-8; buffer mode takes anything and hands out a copy', () => {
    expect(decodePayload(Buffer.from('plain words'), 'text')).toBe('plain words');
    expect(() => decodePayload(Buffer.from([0xc3, 0x28]), 'text')).toThrow(NsqDecodeError);
    const source = Buffer.from([1, 2, 3]);
    const copy = decodePayload(source, 'buffer') as Buffer;
    expect(copy).toEqual(source);
    source[0] = 9;
    expect(copy[0]).toBe(1);
  });

  it("in json mode, an envelope's content-type decides text and binary payloads", () => {
    expect(decodePayload(Buffer.from('hi'), 'json', CONTENT_TYPE.text)).toBe('hi');
    expect(decodePayload(Buffer.from([1, 2]), 'json', CONTENT_TYPE.binary)).toEqual(Buffer.from([1, 2]));
    expect(decodePayload(Buffer.from('[1]'), 'json', CONTENT_TYPE.json)).toEqual([1]);
  });
});

describe('envelope', () => {
  const headers = { 'message-key': 'k1', traceparent: '00-abc-def-01', 'x-quote': 'a"b\\c' };

  it('round-trips headers and a binary payload', () => {
    const payload = Buffer.from([0, 1, 2, 255]);
    const body = encodeEnvelope(headers, payload);
    expect(body.subarray(0, 6)).toEqual(ENVELOPE_MAGIC);
    expect(isEnvelope(body)).toBe(true);
    const out = decodeEnvelope(body);
    expect({ ...out.headers }).toEqual(headers);
    expect(out.payload).toEqual(payload);
  });

  it('lays the header block out as magic, uint32 length, JSON', () => {
    const body = encodeEnvelope({ a: 'b' }, Buffer.from('xyz'));
    const json = JSON.stringify({ a: 'b' });
    expect(body.readUInt32BE(6)).toBe(json.length);
    expect(body.subarray(10, 10 + json.length).toString()).toBe(json);
    expect(body.subarray(10 + json.length).toString()).toBe('xyz');
  });

  it('is never confused with JSON or text bodies', () => {
    for (const plain of ['{"a":1}', '[]', '"x"', 'hello', '', 'NSQE']) expect(isEnvelope(Buffer.from(plain))).toBe(false);
  });

  it('rejects broken envelopes with NsqDecodeError', () => {
    const good = encodeEnvelope({ a: 'b' }, Buffer.from('p'));
    const cases = [
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0])]), // length cut short
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 50]), Buffer.from('{}')]), // length past the end
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff])]), // absurd length
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 3]), Buffer.from('[1]')]), // not an object
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 7]), Buffer.from('{"a":1}')]), // non-string value
      Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 2]), Buffer.from([0xff, 0xfe])]), // not UTF-8
      good.subarray(0, 12),
    ];
    for (const body of cases) expect(() => decodeEnvelope(body)).toThrow(NsqDecodeError);
  });

  it('refuses non-string header values and oversized header blocks when encoding', () => {
    expect(() => encodeEnvelope({ n: 1 as unknown as string }, Buffer.alloc(0))).toThrow(NsqEncodeError);
    expect(() => encodeEnvelope({ big: 'x'.repeat(MAX_HEADER_BYTES) }, Buffer.alloc(0))).toThrow(NsqEncodeError);
  });
});

describe('bodies on the wire', () => {
  it('stays plain without headers and wraps when there are some', () => {
    const payload = Buffer.from('{"a":1}');
    expect(buildBody(payload, undefined)).toBe(payload);
    expect(buildBody(payload, {})).toBe(payload);
    const wrapped = buildBody(payload, { k: 'v' });
    expect(splitBody(wrapped)).toEqual({ headers: expect.objectContaining({ k: 'v' }), payload });
  });

  it('wraps a plain binary payload that starts with the magic, so a receiver cannot mistake it', () => {
    const tricky = Buffer.concat([ENVELOPE_MAGIC, Buffer.from('rest')]);
    const body = buildBody(tricky, undefined);
    expect(body).not.toBe(tricky);
    const { headers, payload } = splitBody(body);
    expect(Object.keys(headers)).toEqual([]);
    expect(payload).toEqual(tricky);
  });

  it('splits a plain body into no headers and the body itself', () => {
    const body = Buffer.from('plain');
    const { headers, payload } = splitBody(body);
    expect(Object.keys(headers)).toEqual([]);
    expect(payload).toBe(body);
  });

  it("normalises a serializer's results", () => {
    expect(toPayload('s')).toEqual({ payload: Buffer.from('s'), contentType: undefined });
    expect(toPayload({ payload: 'x', contentType: 'application/x-protobuf' })).toEqual({ payload: Buffer.from('x'), contentType: 'application/x-protobuf' });
  });
});
