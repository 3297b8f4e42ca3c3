import type { Message } from '../../../nsq/src/index.js';
import { CONTENT_TYPE, HEADER, type NsqHeaders, decodeEnvelope, encodeEnvelope, isEnvelope } from './envelope.js';
import { type NsqBodyMode, decodePayload, encodePayload } from './payload.js';

/** What a serializer returns: the payload, and its content-type when known (written to the envelope). */
export type NsqSerializedPayload = Buffer | string | { payload: Buffer | string; contentType?: string };

/** Turns an outgoing packet's data into payload bytes. Replace it for protobuf, msgpack, …; may be async. */
export interface NsqPayloadSerializer {
  serialize(packet: { pattern: unknown; data: unknown }): NsqSerializedPayload | Promise<NsqSerializedPayload>;
}

export interface NsqDeserializeOptions {
  topic: string;
  channel: string;
  body: NsqBodyMode;
}

/** A decoded message as the server dispatches it; `id` is set on requests (the correlation id). */
export interface NsqIncomingPacket<T = unknown> {
  pattern: string;
  data: T;
  id?: string;
  /** The envelope's headers ({} for a plain body). */
  metadata: NsqHeaders;
}

/** Turns a delivered message into a packet; may be async. */
export interface NsqPacketDeserializer {
  deserialize(message: Message, options: NsqDeserializeOptions): NsqIncomingPacket | Promise<NsqIncomingPacket>;
}

/** The default serializer: JSON for objects, UTF-8 for strings, raw Buffers (see encodePayload). */
export class NsqSerializer implements NsqPayloadSerializer {
  serialize(packet: { pattern: unknown; data: unknown }): NsqSerializedPayload {
    return encodePayload(packet.data);
  }
}

/** The default deserializer: unwraps an envelope when there is one, then reads the payload in the handler's body mode. */
export class NsqDeserializer implements NsqPacketDeserializer {
  deserialize(message: Message, options: NsqDeserializeOptions): NsqIncomingPacket {
    const { headers, payload } = splitBody(message.body);
    const data = this.decodeData(payload, headers, options);
    const correlationId = headers[HEADER.correlationId];
    const packet: NsqIncomingPacket = { pattern: options.topic, data, metadata: headers };
    if (correlationId !== undefined && headers[HEADER.replyTo] !== undefined) packet.id = correlationId;
    return packet;
  }

  /** Override to decode payloads another way (headers carry the content-type when the publisher set one). */
  protected decodeData(payload: Buffer, headers: NsqHeaders, options: NsqDeserializeOptions): unknown {
    return decodePayload(payload, options.body, headers[HEADER.contentType]);
  }
}

/** Headers and payload of a body, with or without an envelope. Throws NsqDecodeError on a broken envelope. */
export function splitBody(body: Buffer): { headers: NsqHeaders; payload: Buffer } {
  return isEnvelope(body) ? decodeEnvelope(body) : { headers: Object.create(null) as NsqHeaders, payload: body };
}

/** Normalises a serializer's result. */
export function toPayload(result: NsqSerializedPayload): { payload: Buffer; contentType: string | undefined } {
  if (Buffer.isBuffer(result)) return { payload: result, contentType: undefined };
  if (typeof result === 'string') return { payload: Buffer.from(result, 'utf8'), contentType: undefined };
  const payload = typeof result.payload === 'string' ? Buffer.from(result.payload, 'utf8') : result.payload;
  return { payload, contentType: result.contentType };
}

/**
 * The body that goes to nsqd: the payload alone, or an envelope when there are headers to carry or
 * when a plain body would be mistaken for an envelope.
 */
export function buildBody(payload: Buffer, headers: NsqHeaders | undefined): Buffer {
  if (headers !== undefined && Object.keys(headers).length > 0) return encodeEnvelope(headers, payload);
  if (isEnvelope(payload)) return encodeEnvelope({}, payload);
  return payload;
}

export { CONTENT_TYPE };
