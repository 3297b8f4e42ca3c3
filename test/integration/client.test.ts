/**
 * Our Producer and Consumer against nsqd (the official 1.3.0, and ours): PUB / MPUB / DPUB round trips with
 * exact bodies, client-side validation that never reaches the wire, server errors mapped to typed
 * rejections, pipelining order, backpressure, deflate, TLS and heartbeats.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { Consumer, type ConsumerInput } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import type { Producer} from '../../libs/nsq/src/client/producer.js';
import { type ProducerInput } from '../../libs/nsq/src/client/producer.js';
import { NsqdHttpClient } from '../../libs/nsq/src/client/http.js';
import {
  NsqBackpressureError,
  NsqBadRequestError,
  NsqConnectionError,
  NsqIdentifyError,
  NsqServerError,
  NsqValidationError,
} from '../../libs/nsq/src/protocol/errors.js';
import {
  Cleanup,
  channelClients,
  channelStats,
  nsqdStats,
  settle,
  snapshot,
  sortedHex,
  topicStats,
  uniqueName,
  warmChannels,
  type Delivery,
} from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { startNsqd, stopAll, type NsqdProcess } from '../support/processes.js';
import { makeSelfSignedCert, type SelfSignedCert } from '../support/tls.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

const producerFor = (nsqd: NsqdProcess, options: ProducerInput = {}): Producer => cleanup.producer(nsqd, options);

/** A started consumer that records every delivery (and FINs it by returning). */
async function collect(
  nsqd: NsqdProcess,
  topic: string,
  options: Partial<ConsumerInput> = {},
): Promise<{ consumer: Consumer; got: Delivery[] }> {
  const got: Delivery[] = [];
  const consumer = cleanup.track(
    new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      logger: silentLogger,
      maxInFlight: 10,
      handler: (msg) => {
        got.push(snapshot(msg));
      },
      ...options,
    }),
  );
  await consumer.start();
  expect(consumer.connectedAddresses()).toEqual([nsqd.tcpAddress]);
  return { consumer, got };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  const r = await settle(p);
  if (r.ok) throw new Error('expected the promise to reject, but it resolved');
  return r.error;
}

/** Bodies covering the awkward cases: binary non-UTF-8, NUL, newlines, unicode, 1 byte, 64 KiB. */
function mixedBodies(): Array<Buffer | string> {
  const bodies: Array<Buffer | string> = [
    Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28]), // not valid UTF-8
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)), // every byte value
    Buffer.from([0xed, 0xa0, 0x80]), // a lone UTF-16 surrogate encoded as UTF-8 (invalid)
    'hello',
    'unicode: héllo wörld ✓ 🚀',
    'line\nbreaks\r\n\tand\u0000nul',
    'x',
    randomBytes(64 * 1024),
  ];
  for (let i = 0; i < 24; i++) bodies.push(i % 2 ? `string-${i}` : Buffer.from([i, 0xff - i, 0x00, 0x80 | i]));
  return bodies;
}

describeEachImpl(
  'client (Producer/Consumer) against nsqd',
  (impl) => {
    let nsqd: NsqdProcess;
    const dpubTopic = uniqueName('dpub');

    beforeAll(async () => {
      nsqd = await startNsqd({ impl });
      // so the deferred message is released on time rather than at nsqd's next 5 s scan-list refresh
      // (ours scans every channel every 100 ms: unnecessary for 'ts', but harmless)
      await warmChannels(nsqd, [[dpubTopic, 'ch']]);
    }, TEST_TIMEOUT);
    afterEach(() => cleanup.run());
    afterAll(stopAll);

    describe('PUB round trip', () => {
      it.each([
        ['PUBs coalesced into MPUB (default)', true],
        ['one PUB per publish', false],
      ])(
        'delivers Buffer and string bodies byte for byte, with attempts 1, a 16-char id and a current timestamp: %s',
        async (_label, coalescePublishes) => {
          const topic = uniqueName('rt');
          const { got } = await collect(nsqd, topic);
          const producer = producerFor(nsqd, { coalescePublishes });
          const bodies = mixedBodies();
          const before = Date.now();
          await Promise.all(bodies.map((b) => producer.publish(topic, b)));
          const after = Date.now();

          await waitFor(() => got.length >= bodies.length, 10_000, `${bodies.length} messages`);
          expect(got).toHaveLength(bodies.length);
          expect(sortedHex(got.map((d) => d.body))).toEqual(sortedHex(bodies));
          for (const d of got) {
            expect(d.attempts).toBe(1);
            expect(d.id).toHaveLength(16);
            expect(d.id).toMatch(/^[0-9a-f]{16}$/);
            expect(d.topic).toBe(topic);
            expect(d.channel).toBe('ch');
            expect(d.nsqdAddress).toBe(nsqd.tcpAddress);
            // nanoseconds since the epoch, set by nsqd when it took the message
            expect(d.timestamp).toBeGreaterThanOrEqual(BigInt(before - 1000) * 1_000_000n);
            expect(d.timestamp).toBeLessThanOrEqual(BigInt(after + 1000) * 1_000_000n);
          }
          expect(new Set(got.map((d) => d.id)).size).toBe(bodies.length);

          // every message was FINed: nothing left on the channel
          await waitFor(async () => {
            const ch = await channelStats(nsqd, topic, 'ch');
            return ch?.depth === 0 && ch.in_flight_count === 0 && ch.message_count === bodies.length;
          }, 5000, 'channel drained');
        },
        TEST_TIMEOUT,
      );
    });

    describe('MPUB', () => {
      it(
        'publishMany delivers the whole batch, atomically',
        async () => {
          const topic = uniqueName('mpub');
          const { got } = await collect(nsqd, topic, { maxInFlight: 100 });
          const producer = producerFor(nsqd);
          const batch = mixedBodies().concat(Array.from({ length: 50 }, (_, i) => `batch-${i}`));
          await producer.publishMany(topic, batch);
          // resolved on nsqd's OK: the whole batch is in the topic at once
          expect((await topicStats(nsqd, topic))?.message_count).toBe(batch.length);

          await waitFor(() => got.length >= batch.length, 10_000, `${batch.length} messages`);
          expect(sortedHex(got.map((d) => d.body))).toEqual(sortedHex(batch));
          expect(got.every((d) => d.attempts === 1)).toBe(true);
        },
        TEST_TIMEOUT,
      );

      it(
        'rejects an invalid batch with NsqValidationError before anything reaches nsqd',
        async () => {
          const topic = uniqueName('mpub-bad');
          const api = new NsqdHttpClient(nsqd.httpAddress);
          await api.createTopic(topic);
          await api.createChannel(topic, 'ch');
          const producer = producerFor(nsqd);
          let connects = 0;
          producer.on('connect', () => connects++);

          const tooBig = Buffer.alloc(1024 * 1024 + 1, 0x61); // client default maxMsgSize = nsqd's 1 MiB
          const invalid: Array<Array<Buffer | string>> = [
            [],
            [Buffer.alloc(0)],
            ['ok', ''],
            ['ok', Buffer.from('fine'), Buffer.alloc(0)],
            ['ok', tooBig],
          ];
          for (const bodies of invalid) {
            const err = await rejection(producer.publishMany(topic, bodies));
            expect(err).toBeInstanceOf(NsqValidationError);
            expect((err as NsqValidationError).code).toBe('ERR_NSQ_VALIDATION');
          }
          // also PUB and DPUB with bad bodies
          expect(await rejection(producer.publish(topic, ''))).toBeInstanceOf(NsqValidationError);
          expect(await rejection(producer.publish(topic, tooBig))).toBeInstanceOf(NsqValidationError);
          expect(await rejection(producer.publishDeferred(topic, 10, Buffer.alloc(0)))).toBeInstanceOf(NsqValidationError);

          // nothing touched the wire: no connection was even made, nsqd holds no message
          expect(connects).toBe(0);
          expect(producer.isConnected).toBe(false);
          const t = await topicStats(nsqd, topic);
          expect(t).toMatchObject({ depth: 0, message_count: 0 });
          expect(t?.channels[0]).toMatchObject({ channel_name: 'ch', depth: 0, message_count: 0 });

          // the producer still works afterwards
          await producer.publishMany(topic, ['a', 'b']);
          expect(connects).toBe(1);
          expect(await channelStats(nsqd, topic, 'ch')).toMatchObject({ depth: 2, message_count: 2 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('DPUB', () => {
      it(
        'publishDeferred delivers no earlier than the delay; nsqd holds it deferred meanwhile',
        async () => {
          const topic = dpubTopic;
          const { got } = await collect(nsqd, topic);
          const producer = producerFor(nsqd);
          const sentAt = Date.now();
          await producer.publishDeferred(topic, 1500, 'later');
          await producer.publish(topic, 'now');

          // the immediate message overtakes the deferred one
          await waitFor(() => got.length >= 1, 5000, 'the immediate message');
          expect(got[0]!.body.toString()).toBe('now');
          const meanwhile = await channelStats(nsqd, topic, 'ch');
          expect(meanwhile).toMatchObject({ deferred_count: 1, depth: 0 });
          expect(Date.now() - sentAt).toBeLessThan(1500); // the stats above were taken within the delay

          await waitFor(() => got.length >= 2, 10_000, 'the deferred message');
          const later = got[1]!;
          expect(later.body.toString()).toBe('later');
          expect(later.attempts).toBe(1);
          expect(later.at - sentAt).toBeGreaterThanOrEqual(1500);
          expect(later.at - sentAt).toBeLessThan(3500); // nsqd scans deferred messages every 100 ms
          await waitFor(async () => (await channelStats(nsqd, topic, 'ch'))?.deferred_count === 0, 5000, 'deferred 0');
          expect(got).toHaveLength(2);
        },
        TEST_TIMEOUT,
      );
    });

    describe('producer errors and pipelining', () => {
      it(
        'maps a server error to the publish that caused it (E_BAD_MESSAGE, fatal) and reconnects for later publishes',
        async () => {
          const small = await startNsqd({ impl, args: ['--max-msg-size=100'] });
          const topic = uniqueName('bad-msg');
          // one PUB per command, so each promise gets the answer to its own command
          const producer = producerFor(small, { maxMsgSize: 1000, coalescePublishes: false });
          const events: string[] = [];
          producer.on('connect', () => events.push('connect'));
          producer.on('close', () => events.push('close'));
          producer.on('error', () => undefined);

          await producer.publish(topic, 'first');
          // three pipelined publishes in one write: OK, E_BAD_MESSAGE (nsqd then closes), never answered
          const before = producer.publish(topic, Buffer.alloc(50, 1));
          const bad = producer.publish(topic, Buffer.alloc(200, 2));
          const after = producer.publish(topic, Buffer.alloc(50, 3));
          const [r1, r2, r3] = await Promise.all([settle(before), settle(bad), settle(after)]);
          expect(r1.ok).toBe(true);
          expect(r2.ok).toBe(false);
          const err = (r2 as { error: unknown }).error;
          expect(err).toBeInstanceOf(NsqBadRequestError);
          expect(err).toBeInstanceOf(NsqServerError);
          expect(err).toMatchObject({ code: 'E_BAD_MESSAGE', fatal: true });
          expect(r3.ok).toBe(false);
          expect((r3 as { error: unknown }).error).toBeInstanceOf(NsqConnectionError);
          await waitFor(() => events.includes('close'), 5000, "the producer's 'close' event");

          // later publishes reconnect and succeed
          await producer.publish(topic, 'again');
          expect(events).toEqual(['connect', 'close', 'connect']);
          expect(await topicStats(small, topic)).toMatchObject({ message_count: 3 });
          await small.stop();
        },
        TEST_TIMEOUT,
      );

      it(
        'with coalesced PUBs, a refused message fails exactly the publishes nsqd did not store',
        async () => {
          const small = await startNsqd({ impl, args: ['--max-msg-size=100'] });
          const topic = uniqueName('bad-coalesced');
          const producer = producerFor(small, { maxMsgSize: 1000 }); // coalescePublishes: default on
          producer.on('error', () => undefined);
          await producer.publish(topic, 'first');

          // alone in its turn: its own PUB, its own error
          const alone = await rejection(producer.publish(topic, Buffer.alloc(200, 2)));
          expect(alone).toBeInstanceOf(NsqBadRequestError);
          expect(alone).toMatchObject({ code: 'E_BAD_MESSAGE', fatal: true });

          // same turn: they travel as one MPUB that nsqd refuses whole, so none may resolve
          const results = await Promise.all(
            [Buffer.alloc(50, 1), Buffer.alloc(200, 2), Buffer.alloc(50, 3)].map((b) => settle(producer.publish(topic, b))),
          );
          for (const r of results) {
            expect(r.ok).toBe(false);
            expect((r as { error: unknown }).error).toMatchObject({ code: 'E_BAD_MESSAGE' });
          }
          expect(await topicStats(small, topic)).toMatchObject({ message_count: 1 });

          await Promise.all([producer.publish(topic, 'a'), producer.publish(topic, 'b')]);
          expect(await topicStats(small, topic)).toMatchObject({ message_count: 3 });
          await small.stop();
        },
        TEST_TIMEOUT,
      );

      it.each([
        ['coalesced (default)', true],
        ['one PUB per publish', false],
      ])(
        'resolves 5,000 outstanding publishes, in order: %s',
        async (_label, coalescePublishes) => {
          const topic = uniqueName('pipeline');
          const producer = producerFor(nsqd, { coalescePublishes });
          await producer.connect();
          const order: number[] = [];
          const all = Array.from({ length: 5000 }, (_, i) => producer.publish(topic, `m-${i}`).then(() => void order.push(i)));
          expect(producer.pending).toBe(5000);
          await Promise.all(all);
          expect(order).toHaveLength(5000);
          expect(order).toEqual(Array.from({ length: 5000 }, (_, i) => i));
          expect(producer.pending).toBe(0);
          expect(await topicStats(nsqd, topic)).toMatchObject({ message_count: 5000, depth: 5000 });
        },
        TEST_TIMEOUT,
      );

      it(
        'rejects publishes beyond the queue (maxQueued 100, maxOutstanding 10) with NsqBackpressureError at once; the rest succeed',
        async () => {
          const topic = uniqueName('backpressure');
          const producer = producerFor(nsqd, { maxOutstanding: 10, maxQueued: 100 });
          await producer.connect();
          const settled: Array<{ i: number; ok: boolean; error?: unknown }> = [];
          const all = Array.from({ length: 1000 }, (_, i) =>
            producer.publish(topic, `bp-${i}`).then(
              () => void settled.push({ i, ok: true }),
              (error: unknown) => void settled.push({ i, ok: false, error }),
            ),
          );
          // "at once": the rejections settle within a few microtask turns, before any I/O
          for (let k = 0; k < 5; k++) await Promise.resolve();
          const early = settled.filter((s) => !s.ok).length;
          expect(settled.filter((s) => s.ok)).toHaveLength(0);

          await Promise.all(all);
          const ok = settled.filter((s) => s.ok).map((s) => s.i);
          const failed = settled.filter((s) => !s.ok);
          // accepted: the 100 queued, plus at most the 10 of the window if they left the queue at once
          expect(ok.length).toBeGreaterThanOrEqual(100);
          expect(ok.length).toBeLessThanOrEqual(110);
          expect(ok).toEqual(Array.from({ length: ok.length }, (_, i) => i)); // the first ones, in order
          expect(failed).toHaveLength(1000 - ok.length);
          expect(early).toBe(failed.length); // every rejection was immediate
          for (const f of failed) {
            expect(f.i).toBeGreaterThanOrEqual(ok.length);
            expect(f.error).toBeInstanceOf(NsqBackpressureError);
            expect((f.error as NsqBackpressureError).code).toBe('ERR_NSQ_BACKPRESSURE');
          }
          expect(await topicStats(nsqd, topic)).toMatchObject({ message_count: ok.length });
          // once drained, the producer accepts publishes again
          await producer.publish(topic, 'after');
          expect(await topicStats(nsqd, topic)).toMatchObject({ message_count: ok.length + 1 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('heartbeats', () => {
      it(
        'keeps idle connections up with heartbeatInterval 1000 (nsqd drops a client after 2 missed NOPs)',
        async () => {
          const topic = uniqueName('hb');
          const events: string[] = [];
          const hb = { heartbeatInterval: 1000, readTimeout: 2500 };
          const producer = producerFor(nsqd, hb);
          producer.on('connect', () => events.push('producer connect'));
          producer.on('close', () => events.push('producer close'));
          await producer.publish(topic, 'first');

          const got: Delivery[] = [];
          const consumer = cleanup.track(
            new Consumer({
              topic,
              channel: 'ch',
              nsqdTCPAddresses: [nsqd.tcpAddress],
              logger: silentLogger,
              ...hb,
              handler: (msg) => void got.push(snapshot(msg)),
            }),
          );
          consumer.on('connect', () => events.push('consumer connect'));
          consumer.on('disconnect', () => events.push('consumer disconnect'));
          await consumer.start();
          await waitFor(() => got.length === 1, 5000, 'the first message');
          const connectTs = (await channelClients(nsqd, topic, 'ch'))[0]?.connect_ts;
          expect(connectTs).toBeGreaterThan(0);

          await sleep(3500); // idle: only heartbeats flow

          await producer.publish(topic, 'after idle');
          await waitFor(() => got.length === 2, 5000, 'the message published after 3.5 s idle');
          expect(got[1]!.body.toString()).toBe('after idle');
          expect(events).toEqual(['producer connect', 'consumer connect']);
          const clients = await channelClients(nsqd, topic, 'ch');
          expect(clients).toHaveLength(1);
          expect(clients[0]!.connect_ts).toBe(connectTs);
        },
        TEST_TIMEOUT,
      );
    });

    describe('deflate', () => {
      it(
        'round trips with deflate: true, and nsqd reports the clients as deflate',
        async () => {
          const topic = uniqueName('deflate');
          const { consumer, got } = await collect(nsqd, topic, { deflate: true });
          const producer = producerFor(nsqd, { deflate: true, deflateLevel: 6 });
          const bodies = [...mixedBodies(), Buffer.alloc(200_000, 0x61), 'z'.repeat(10_000)];
          await Promise.all(bodies.map((b) => producer.publish(topic, b)));
          await waitFor(() => got.length >= bodies.length, 10_000, `${bodies.length} messages`);
          expect(sortedHex(got.map((d) => d.body))).toEqual(sortedHex(bodies));

          const stats = await nsqdStats(nsqd, topic);
          const clients = stats.topics[0]?.channels[0]?.clients ?? [];
          expect(clients).toHaveLength(1);
          expect(clients[0]).toMatchObject({ deflate: true, tls: false, snappy: false });
          const publishers = (stats.producers ?? []).filter((p) => p.pub_counts?.some((c) => c.topic === topic));
          expect(publishers).toHaveLength(1);
          expect(publishers[0]).toMatchObject({ deflate: true });
          expect(consumer.stats()).toMatchObject({ received: bodies.length, finished: bodies.length });
        },
        TEST_TIMEOUT,
      );
    });

    describe('TLS', () => {
      let cert: SelfSignedCert;
      let tlsNsqd: NsqdProcess;

      beforeAll(async () => {
        cert = makeSelfSignedCert();
        tlsNsqd = await startNsqd({ impl, args: [`--tls-cert=${cert.certPath}`, `--tls-key=${cert.keyPath}`] });
      });
      afterAll(async () => {
        await tlsNsqd.stop();
        cert.remove();
      });

      async function roundTrip(options: { deflate: boolean }): Promise<void> {
        const topic = uniqueName(options.deflate ? 'tls-deflate' : 'tls');
        const tls = { ca: cert.cert, rejectUnauthorized: true };
        const { got } = await collect(tlsNsqd, topic, { tls, deflate: options.deflate });
        const producer = producerFor(tlsNsqd, { tls, deflate: options.deflate });
        const bodies = [...mixedBodies(), Buffer.alloc(100_000, 0x62)];
        await Promise.all(bodies.map((b) => producer.publish(topic, b)));
        await waitFor(() => got.length >= bodies.length, 10_000, `${bodies.length} messages`);
        expect(sortedHex(got.map((d) => d.body))).toEqual(sortedHex(bodies));

        const stats = await nsqdStats(tlsNsqd, topic);
        const clients = stats.topics[0]?.channels[0]?.clients ?? [];
        expect(clients).toHaveLength(1);
        expect(clients[0]).toMatchObject({ tls: true, deflate: options.deflate });
        expect(clients[0]!.tls_version).toMatch(/^TLS/);
        const publishers = (stats.producers ?? []).filter((p) => p.pub_counts?.some((c) => c.topic === topic));
        expect(publishers).toHaveLength(1);
        expect(publishers[0]).toMatchObject({ tls: true, deflate: options.deflate });
      }

      it('round trips over TLS verified against the self-signed CA', () => roundTrip({ deflate: false }), TEST_TIMEOUT);

      it('round trips with TLS and deflate together', () => roundTrip({ deflate: true }), TEST_TIMEOUT);

      it(
        'does not trust a certificate signed by another CA (rejectUnauthorized)',
        async () => {
          const other = makeSelfSignedCert();
          try {
            const producer = producerFor(tlsNsqd, { tls: { ca: other.cert, rejectUnauthorized: true } });
            const err = await rejection(producer.connect());
            expect(err).toBeInstanceOf(NsqConnectionError);
            expect(String((err as Error).message)).toMatch(/TLS|certificate|self.signed/i);
          } finally {
            other.remove();
          }
        },
        TEST_TIMEOUT,
      );

      it(
        'tls: true against an nsqd without TLS rejects with NsqIdentifyError',
        async () => {
          const producer = producerFor(nsqd, { tls: true });
          const err = await rejection(producer.connect());
          expect(err).toBeInstanceOf(NsqIdentifyError);
          expect(producer.isConnected).toBe(false);
          // a refusal is not network trouble: the publish gets the typed error itself
          const publishErr = await rejection(producer.publish(uniqueName('no-tls'), 'x'));
          expect(publishErr).toBeInstanceOf(NsqIdentifyError);

          const consumer = cleanup.track(
            new Consumer({
              topic: uniqueName('no-tls'),
              channel: 'ch',
              nsqdTCPAddresses: [nsqd.tcpAddress],
              logger: silentLogger,
              tls: true,
              reconnectDelay: 5000,
              handler: () => undefined,
            }),
          );
          const errors: unknown[] = [];
          consumer.on('error', (e) => errors.push(e));
          await consumer.start();
          expect(consumer.connectedAddresses()).toEqual([]);
          expect(errors[0]).toBeInstanceOf(NsqIdentifyError);
        },
        TEST_TIMEOUT,
      );
    });
  },
  ['nsqd'],
);
