import { NsqDecodeError, NsqEncodeError } from '../errors.js';
import { CONTENT_TYPE } from './envelope.js';

/**
 * How a handler reads message bodies:
 * - `json` (default): the body is JSON (any NSQ producer's `json.Marshal` / `JSON.stringify`);
 *   inside an envelope, a text or binary content-type gives a string or a Buffer instead.
 * - `text`: the body is UTF-8 text, handed over as a string.
 * - `buffer`: the bytes as they are (a copy the handler may keep).
 * A body the mode cannot read (bad JSON, invalid UTF-8) is a decode failure: the message goes to
 * the dead-letter topic and the handler is not called.
 */
export type NsqBodyMode = 'json' | 'text' | 'buffer';

export interface EncodedPayload {
  payload: Buffer;
  contentType: string;
}

/** Objects, numbers, booleans and null go out as JSON; strings as UTF-8 text; Buffers as they are. */
export function encodePayload(value: unknown): EncodedPayload {
  if (Buffer.isBuffer(value)) return { payload: value, contentType: CONTENT_TYPE.binary };
  if (value instanceof Uint8Array) return { payload: Buffer.from(value.buffer, value.byteOffset, value.byteLength), contentType: CONTENT_TYPE.binary };
  if (typeof value === 'string') return { payload: Buffer.from(value, 'utf8'), contentType: CONTENT_TYPE.text };
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new NsqEncodeError(`payload cannot be encoded as JSON: ${(error as Error).message}`, { cause: error });
  }
  if (json === undefined) throw new NsqEncodeError(`payload of type ${typeof value} has no JSON form`);
  return { payload: Buffer.from(json, 'utf8'), contentType: CONTENT_TYPE.json };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function text(payload: Buffer): string {
  try {
    return utf8.decode(payload);
  } catch {
    throw new NsqDecodeError(`body is not valid UTF-8 (${payload.length} bytes)`);
  }
}

/** Reads a payload in the handler's mode; `contentType` comes from an envelope, when there is one. */
export function decodePayload(payload: Buffer, mode: NsqBodyMode, contentType?: string): unknown {
  if (mode === 'buffer') return Buffer.from(payload);
  if (mode === 'text') return text(payload);
  if (contentType !== undefined) {
    if (contentType.startsWith('text/')) return text(payload);
    if (contentType === CONTENT_TYPE.binary) return Buffer.from(payload);
  }
  if (payload.length === 0) throw new NsqDecodeError('body is empty, which is not JSON (use body: "text" or "buffer" for such messages)');
  const source = text(payload);
  try {
    return JSON.parse(source);
  } catch (error) {
    const preview = source.length > 40 ? `${source.slice(0, 40)}…` : source;
    throw new NsqDecodeError(`body is not JSON (${(error as Error).message}): ${JSON.stringify(preview)}`, { cause: error });
  }
}
