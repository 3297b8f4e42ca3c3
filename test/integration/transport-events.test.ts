/**
 * The Nest transport (libs/nest-nsq) end to end, events: NsqClient.emit → nsqd → an
 * @EventPattern handler of an NsqServer microservice, against the official nsqd and ours.
 * Payload kinds and body modes, NsqContext, publish acknowledgement, DPUB and MPUB through
 * NsqRecord, the envelope's headers and metadata, two channels of one topic, bodies no decoder can
 * read (dead-lettered), and interop with nsqjs in both directions.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import nsq, { type NsqjsMessage } from 'nsqjs';
import { randomBytes } from 'node:crypto';
import { CONTENT_TYPE, ENVELOPE_MAGIC, HEADER, type NsqContext, NsqEncodeError, NsqRecord } from '../../libs/nest-nsq/src/index.js';
import { Cleanup, topicStats, uniqueName } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { emit, makeClient, readDeadLetters, serverOptions, startMicroservice } from '../support/transport.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

/** What a handler saw: the payload and every NsqContext getter, copied out. */
interface Seen {
  data: unknown;
  topic: string;
  channel: string;
  attempts: number;
  id: string;
  timestamp: Date;
  nsqdAddress: string;
  headers: Record<string, string>;
  metadata: Record<string, string>;
  messageKey: string | undefined;
  at: number;
}

function see(data: unknown, ctx: NsqContext): Seen {
  return {
    data,
    topic: ctx.getTopic(),
    channel: ctx.getChannel(),
    attempts: ctx.getAttempts(),
    id: ctx.getId(),
    timestamp: ctx.getTimestamp(),
    nsqdAddress: ctx.getNsqdAddress(),
    headers: { ...ctx.getHeaders() },
    metadata: { ...ctx.getMetadata() },
    messageKey: ctx.getMessageKey(),
    at: Date.now(),
  };
}

/** One handler per body mode, each on its own topic. */
function bodyModesController(topics: { json: string; text: string; buffer: string }, seen: Record<'json' | 'text' | 'buffer', Seen[]>) {
  @Controller()
  class BodyModes {
    @EventPattern<string>(topics.json)
    json(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
      seen.json.push(see(data, ctx));
    }

    @EventPattern<string>(topics.text, { body: 'text' })
    text(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
      seen.text.push(see(data, ctx));
    }

    @EventPattern<string>(topics.buffer, { body: 'buffer' })
    buffer(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
      seen.buffer.push(see(data, ctx));
    }
  }
  return BodyModes;
}

function oneTopicController(topic: string, seen: Seen[], extras: Record<string, unknown> = {}) {
  @Controller()
  class OneTopic {
    @EventPattern<string>(topic, extras)
    handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
      seen.push(see(data, ctx));
    }
  }
  return OneTopic;
}

function twoChannelsController(topic: string, got: { a: string[]; b: string[] }) {
  @Controller()
  class TwoChannels {
    @EventPattern<string>(topic, { channel: 'a' })
    onA(@Payload() data: { n: number }, @Ctx() ctx: NsqContext) {
      got.a.push(`${ctx.getChannel()}:${data.n}`);
    }

    @EventPattern<string>(topic, { channel: 'b' })
    onB(@Payload() data: { n: number }, @Ctx() ctx: NsqContext) {
      got.b.push(`${ctx.getChannel()}:${data.n}`);
    }
  }
  return TwoChannels;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describeEachImpl('Nest transport: events', (impl) => {
  let nsqd: NsqdProcess;

  beforeAll(async () => {
    nsqd = await startNsqd({ impl });
  }, TEST_TIMEOUT);
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it(
    'hands each body mode its exact payload, with the NsqContext of the delivery',
    async () => {
      const topics = { json: uniqueName('ev-json'), text: uniqueName('ev-text'), buffer: uniqueName('ev-buf') };
      const seen = { json: [] as Seen[], text: [] as Seen[], buffer: [] as Seen[] };
      await startMicroservice(cleanup, [bodyModesController(topics, seen)], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);

      const order = { id: 'o-1', items: [{ sku: 'a', qty: 2 }], total: 12.5, paid: true, note: null, unicode: 'héllo ✓ 🚀' };
      const text = 'plain text: héllo wörld ✓ 🚀\nline two';
      const binary = Buffer.concat([Buffer.from([0x00, 0xff, 0xfe, 0x80]), randomBytes(200)]);
      // a Buffer that starts like an envelope must still arrive exactly as it was sent
      const lookalike = Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 2]), Buffer.from('{}xyz')]);
      const before = Date.now();
      await emit(client, topics.json, order);
      await emit(client, topics.text, text);
      await emit(client, topics.buffer, binary);
      await emit(client, topics.buffer, lookalike);
      const after = Date.now();

      await waitFor(() => seen.json.length === 1 && seen.text.length === 1 && seen.buffer.length === 2, 10_000, 'all four events handled');
      expect(seen.json[0]!.data).toEqual(order);
      expect(seen.text[0]!.data).toBe(text);
      const buffers = seen.buffer.map((s) => s.data);
      expect(buffers.every((b) => Buffer.isBuffer(b))).toBe(true);
      expect((buffers as Buffer[]).map((b) => b.toString('hex')).sort()).toEqual([binary.toString('hex'), lookalike.toString('hex')].sort());

      const s = seen.json[0]!;
      expect(s.topic).toBe(topics.json);
      expect(s.channel).toBe('svc');
      expect(s.attempts).toBe(1);
      expect(s.id).toMatch(/^[0-9a-f]{16}$/);
      expect(s.nsqdAddress).toBe(nsqd.tcpAddress);
      // nsqd's publish time, to the millisecond (a second of slack for clock granularity)
      expect(s.timestamp.getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(s.timestamp.getTime()).toBeLessThanOrEqual(after + 1000);
      // plain bodies carry no headers
      expect(s.headers).toEqual({});
      expect(s.messageKey).toBeUndefined();
      // nsqd's ids are unique per topic (the official nsqd numbers each topic's messages from its own generator)
      expect(seen.buffer[0]!.id).not.toBe(seen.buffer[1]!.id);
    },
    TEST_TIMEOUT,
  );

  it(
    'emit resolves only once nsqd has the message; a batch NsqRecord is one MPUB of separate messages',
    async () => {
      const topic = uniqueName('ev-ack');
      const client = makeClient(cleanup, nsqd);

      await emit(client, topic, { n: 0 });
      // no consumer exists yet: the only way nsqd can count it is that the PUB was acknowledged
      expect((await topicStats(nsqd, topic))?.message_count).toBe(1);
      await emit(client, topic, new NsqRecord([{ n: 1 }, { n: 2 }, { n: 3 }], { batch: true }));
      const t = await topicStats(nsqd, topic);
      expect({ messages: t?.message_count, depth: t?.depth }).toEqual({ messages: 4, depth: 4 });

      const seen: Seen[] = [];
      await startMicroservice(cleanup, [oneTopicController(topic, seen)], serverOptions(nsqd));
      await waitFor(() => seen.length === 4, 10_000, 'the four messages handled');
      expect(seen.map((s) => (s.data as { n: number }).n).sort()).toEqual([0, 1, 2, 3]);
      expect(new Set(seen.map((s) => s.id)).size).toBe(4);
      await sleep(200);
      expect(seen).toHaveLength(4);
    },
    TEST_TIMEOUT,
  );

  it(
    'emit() rejects what cannot go on the wire with NsqEncodeError, before and after connecting, and publishes nothing',
    async () => {
      const topic = uniqueName('ev-bad');
      const client = makeClient(cleanup, nsqd);
      const attempts: Array<[string, unknown]> = [
        ['bad topic name', { a: 1 }],
        [topic, () => 1],
        [topic, 10n],
        [topic, new NsqRecord({ a: 1 }, { batch: true })],
        [topic, new NsqRecord([1, 2], { batch: true, delayMs: 5 })],
      ];
      for (const round of ['before connect', 'after connect']) {
        if (round === 'after connect') await client.connect();
        for (const [pattern, data] of attempts) {
          const error = await emit(client, pattern, data).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect([round, pattern, error]).toEqual([round, pattern, expect.any(NsqEncodeError)]);
        }
      }
      expect(await topicStats(nsqd, topic)).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  it(
    'a delayed NsqRecord (DPUB) is not delivered before its delay',
    async () => {
      const topic = uniqueName('ev-dpub');
      const seen: Seen[] = [];
      await startMicroservice(cleanup, [oneTopicController(topic, seen)], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);

      const delayMs = 1500;
      const sentAt = Date.now();
      await emit(client, topic, new NsqRecord({ late: true }, { delayMs }));
      await emit(client, topic, { late: false });
      // the official nsqd notices a new channel's deferred messages at its next 5 s scan-list refresh
      await waitFor(() => seen.length === 2, 15_000, 'both messages handled');
      expect(seen.map((s) => s.data)).toEqual([{ late: false }, { late: true }]);
      // lower bound only (a busy machine can only make it later); 50 ms for clock granularity
      expect(seen[1]!.at - sentAt).toBeGreaterThanOrEqual(delayMs - 50);
    },
    TEST_TIMEOUT,
  );

  it(
    'envelope: message-key, timestamp, content-type, NsqRecord headers and setOnDispatchHook metadata reach the context',
    async () => {
      const topic = uniqueName('ev-env');
      const textTopic = uniqueName('ev-env-text');
      const seen: Seen[] = [];
      const seenText: Seen[] = [];
      @Controller()
      class Enveloped {
        @EventPattern<string>(topic)
        json(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          seen.push(see(data, ctx));
        }

        // json mode (the default), but the envelope says text/plain: the handler gets the string
        @EventPattern<string>(textTopic)
        text(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          seenText.push(see(data, ctx));
        }
      }
      await startMicroservice(cleanup, [Enveloped], serverOptions(nsqd));

      const enveloping = makeClient(cleanup, nsqd, { envelope: true });
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      enveloping.setOnDispatchHook((packet) => {
        packet.metadata = { traceparent, tenant: 'acme' };
      });
      const before = Date.now();
      await emit(enveloping, topic, { n: 1 });
      await emit(enveloping, textTopic, 'just text, not JSON');
      // a plain client sends an envelope too as soon as a record has headers
      const plain = makeClient(cleanup, nsqd);
      await emit(plain, topic, new NsqRecord({ n: 2 }, { headers: { 'x-custom': 'v', [HEADER.messageKey]: 'my-key' } }));
      const after = Date.now();

      await waitFor(() => seen.length === 2 && seenText.length === 1, 10_000, 'the three events handled');
      const one = seen.find((s) => (s.data as { n: number }).n === 1)!;
      const two = seen.find((s) => (s.data as { n: number }).n === 2)!;
      expect(one.data).toEqual({ n: 1 });
      expect(one.headers).toEqual({
        [HEADER.messageKey]: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
        [HEADER.timestamp]: expect.stringMatching(/^\d+$/),
        [HEADER.contentType]: CONTENT_TYPE.json,
        traceparent,
        tenant: 'acme',
      });
      expect(one.metadata).toEqual(one.headers);
      expect(one.messageKey).toBe(one.headers[HEADER.messageKey]);
      const ts = Number(one.headers[HEADER.timestamp]);
      expect(ts).toBeGreaterThanOrEqual(before);
      expect(ts).toBeLessThanOrEqual(after);

      expect(two.headers).toEqual({
        [HEADER.messageKey]: 'my-key',
        [HEADER.timestamp]: expect.stringMatching(/^\d+$/),
        [HEADER.contentType]: CONTENT_TYPE.json,
        'x-custom': 'v',
      });
      expect(two.messageKey).toBe('my-key');

      expect(seenText[0]!.data).toBe('just text, not JSON');
      expect(seenText[0]!.headers[HEADER.contentType]).toBe(CONTENT_TYPE.text);
      expect(seenText[0]!.headers.traceparent).toBe(traceparent);
      expect(seenText[0]!.headers[HEADER.messageKey]).not.toBe(one.messageKey);
    },
    TEST_TIMEOUT,
  );

  it(
    'two channels of one topic in one app: each handler gets every message exactly once',
    async () => {
      const topic = uniqueName('ev-2ch');
      const got = { a: [] as string[], b: [] as string[] };
      const { server } = await startMicroservice(cleanup, [twoChannelsController(topic, got)], serverOptions(nsqd));
      expect(server.unwrap().consumers.map((c) => `${c.topic}/${c.channel}`).sort()).toEqual([`${topic}/a`, `${topic}/b`]);
      const client = makeClient(cleanup, nsqd);

      await Promise.all(range(50).map((n) => emit(client, topic, { n })));
      await waitFor(() => got.a.length >= 50 && got.b.length >= 50, 15_000, 'both channels handled 50 messages');
      await sleep(300);
      expect([...got.a].sort()).toEqual(range(50).map((n) => `a:${n}`).sort());
      expect([...got.b].sort()).toEqual(range(50).map((n) => `b:${n}`).sort());
    },
    TEST_TIMEOUT,
  );

  it(
    'bodies the json decoder cannot read go to <topic>.dead (decode_failed) unhandled; the app keeps going',
    async () => {
      const topic = uniqueName('ev-garbage');
      const seen: Seen[] = [];
      await startMicroservice(cleanup, [oneTopicController(topic, seen)], serverOptions(nsqd));
      const dead = await readDeadLetters(cleanup, nsqd, `${topic}.dead`);
      const producer = cleanup.producer(nsqd);

      const textTopic = uniqueName('ev-garbage-text');
      const seenText: Seen[] = [];
      await startMicroservice(cleanup, [oneTopicController(textTopic, seenText, { body: 'text' })], serverOptions(nsqd));
      const deadText = await readDeadLetters(cleanup, nsqd, `${textTopic}.dead`);
      const notUtf8 = Buffer.from([0x61, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
      await producer.publish(textTopic, notUtf8);
      await producer.publish(textTopic, 'valid text');

      const garbage = {
        'not json': Buffer.from('not json{'),
        binary: Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80]), randomBytes(60)]),
        'truncated envelope': Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0x00, 0x01])]),
        'envelope with a header block longer than the body': Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 50]), Buffer.from('{"a":"b"}')]),
        'envelope whose headers are not strings': Buffer.concat([ENVELOPE_MAGIC, Buffer.from([0, 0, 0, 7]), Buffer.from('{"a":1}{}')]),
      };
      for (const body of Object.values(garbage)) await producer.publish(topic, body);

      await waitFor(() => dead.length === Object.keys(garbage).length, 10_000, 'every unreadable body dead-lettered');
      for (const [what, body] of Object.entries(garbage)) {
        // the payload is the body as it arrived (a broken envelope cannot be unwrapped)
        const letter = dead.find((d) => d.payload.equals(body));
        expect({ what, found: letter !== undefined }).toEqual({ what, found: true });
        expect({ what, headers: letter!.headers }).toEqual({
          what,
          headers: expect.objectContaining({
            [HEADER.deadLetterReason]: 'decode_failed',
            [HEADER.originalTopic]: topic,
            [HEADER.originalChannel]: 'svc',
            [HEADER.originalAttempts]: '1',
            [HEADER.originalNsqd]: nsqd.tcpAddress,
            [HEADER.originalMessageId]: expect.stringMatching(/^[0-9a-f]{16}$/),
            [HEADER.deadLetterError]: expect.any(String),
          }),
        });
      }
      const errors = dead.map((d) => d.headers[HEADER.deadLetterError]!);
      expect(errors.some((e) => /not JSON/.test(e))).toBe(true);
      expect(errors.some((e) => /envelope cut short/.test(e))).toBe(true);
      expect(seen).toEqual([]);

      // text mode refuses invalid UTF-8 the same way
      await waitFor(() => deadText.length === 1 && seenText.length === 1, 10_000, 'the text-mode messages');
      expect(deadText[0]!.payload).toEqual(notUtf8);
      expect(deadText[0]!.headers[HEADER.deadLetterReason]).toBe('decode_failed');
      expect(deadText[0]!.headers[HEADER.deadLetterError]).toMatch(/not valid UTF-8/);
      expect(seenText.map((s) => s.data)).toEqual(['valid text']);

      await producer.publish(topic, JSON.stringify({ fine: true }));
      await waitFor(() => seen.length === 1, 10_000, 'the valid message handled');
      expect(seen[0]!.data).toEqual({ fine: true });
      expect(dead).toHaveLength(Object.keys(garbage).length);
    },
    TEST_TIMEOUT,
  );

  it(
    'one handler with several patterns subscribes to each topic',
    async () => {
      const topics = [uniqueName('ev-multi-a'), uniqueName('ev-multi-b')];
      const seen: Seen[] = [];
      @Controller()
      class Multi {
        @EventPattern(topics)
        handle(@Payload() data: unknown, @Ctx() ctx: NsqContext) {
          seen.push(see(data, ctx));
        }
      }
      await startMicroservice(cleanup, [Multi], serverOptions(nsqd));
      const client = makeClient(cleanup, nsqd);
      for (const topic of topics) await emit(client, topic, { topic });
      await waitFor(() => seen.length === 2, 10_000, 'one event per topic');
      expect(seen.map((s) => s.topic).sort()).toEqual([...topics].sort());
      expect(seen.every((s) => (s.data as { topic: string }).topic === s.topic)).toBe(true);
    },
    TEST_TIMEOUT,
  );

  describe('nsqjs interop', () => {
    it(
      'an nsqjs Writer publishes JSON; the @EventPattern handler gets the parsed object',
      async () => {
        const topic = uniqueName('ev-nsqjs-in');
        const seen: Seen[] = [];
        await startMicroservice(cleanup, [oneTopicController(topic, seen)], serverOptions(nsqd));

        const writer = new nsq.Writer('127.0.0.1', nsqd.tcpPort);
        const errors: Error[] = [];
        writer.on('error', (err: Error) => errors.push(err));
        cleanup.add(() => writer.close());
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('nsqjs Writer not ready within 10 s')), 10_000);
          writer.once('ready', () => {
            clearTimeout(timer);
            resolve();
          });
          writer.connect();
        });
        const order = { id: 7, items: ['a', 'b'], nested: { ok: true }, text: 'ü✓' };
        await new Promise<void>((resolve, reject) => writer.publish(topic, JSON.stringify(order), (err) => (err ? reject(err) : resolve())));

        await waitFor(() => seen.length === 1, 10_000, 'the nsqjs message handled');
        expect(seen[0]!.data).toEqual(order);
        expect(seen[0]!.headers).toEqual({});
        expect(errors).toEqual([]);
      },
      TEST_TIMEOUT,
    );

    it(
      'an nsqjs Reader reads what NsqClient.emit sent as the same JSON text',
      async () => {
        const topic = uniqueName('ev-nsqjs-out');
        const got: Array<{ text: string; attempts: number }> = [];
        const reader = new nsq.Reader(topic, 'nsqjs', { nsqdTCPAddresses: [nsqd.tcpAddress] });
        const errors: Error[] = [];
        // an 'error' event without a listener would crash the Jest worker (nsqjs#72)
        reader.on('error', (err: Error) => errors.push(err));
        reader.on('message', (msg: NsqjsMessage) => {
          got.push({ text: msg.body.toString('utf8'), attempts: msg.attempts });
          msg.finish();
        });
        cleanup.add(() => reader.close());
        reader.connect();

        const client = makeClient(cleanup, nsqd);
        const order = { id: 8, items: [1, 2, 3], text: 'ü✓' };
        await emit(client, topic, order);
        await waitFor(() => got.length === 1, 10_000, 'nsqjs read the message');
        expect(got[0]!.text).toBe(JSON.stringify(order));
        expect(got[0]!.attempts).toBe(1);
        expect(errors).toEqual([]);
      },
      TEST_TIMEOUT,
    );
  });
});
