/**
 * Consumer behaviour against nsqd / nsqlookupd (the official 1.3.0, and ours): requeue with attempts counted,
 * the maxAttempts hook, TOUCH against msg_timeout, discovery of several nsqd through nsqlookupd with
 * RDY spread over them, and a graceful close with handlers in flight.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Consumer, type ConsumerInput } from '../../libs/nsq/src/client/consumer.js';
import { LookupdHttpClient } from '../../libs/nsq/src/client/http.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import type { Message } from '../../libs/nsq/src/client/message.js';
import type { Producer } from '../../libs/nsq/src/client/producer.js';
import { NsqMessageStateError } from '../../libs/nsq/src/protocol/errors.js';
import {
  Cleanup,
  captureLogger,
  channelClients,
  channelStats,
  snapshot,
  sortedHex,
  uniqueName,
  warmChannels,
  type Delivery,
} from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { startNsqd, startNsqlookupd, stopAll, type NsqdProcess } from '../support/processes.js';
import { sleep, waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

const producerFor = (nsqd: NsqdProcess): Producer => cleanup.producer(nsqd);

function consumerFor(nsqd: NsqdProcess, options: Partial<ConsumerInput> & Pick<ConsumerInput, 'topic' | 'handler'>): Consumer {
  return cleanup.track(new Consumer({ channel: 'ch', nsqdTCPAddresses: [nsqd.tcpAddress], logger: silentLogger, ...options }));
}

describeEachImpl(
  'Consumer against nsqd',
  (impl) => {
    let nsqd: NsqdProcess;
    const touchTopic = uniqueName('touch');
    const noTouchTopic = uniqueName('no-touch');

    beforeAll(async () => {
      nsqd = await startNsqd({ impl });
      // msg_timeout is only enforced once nsqd's queue scanner lists the channel (refreshed every 5 s).
      // Ours scans every channel every 100 ms, so for 'ts' this is unnecessary but harmless.
      await warmChannels(nsqd, [
        [touchTopic, 'ch'],
        [noTouchTopic, 'ch'],
      ]);
    }, TEST_TIMEOUT);
    afterEach(() => cleanup.run());
    afterAll(stopAll);

    describe('requeue', () => {
      it(
        'redelivers a failed message with attempts 1, 2, 3 until the handler succeeds, then FINs it',
        async () => {
          const topic = uniqueName('requeue');
          const seen: Delivery[] = [];
          const consumer = consumerFor(nsqd, {
            topic,
            maxInFlight: 1,
            requeueDelay: 0,
            backoffMultiplier: 10,
            maxBackoffDuration: 100,
            handler: (msg) => {
              seen.push(snapshot(msg));
              if (msg.attempts < 3) throw new Error(`failing attempt ${msg.attempts}`);
            },
          });
          const backoffs: number[] = [];
          consumer.on('backoff', (ms: number) => backoffs.push(ms));
          await consumer.start();
          await producerFor(nsqd).publish(topic, 'retry me');

          await waitFor(() => consumer.stats().finished === 1, 10_000, 'the message finished');
          expect(seen.map((d) => d.attempts)).toEqual([1, 2, 3]);
          expect(new Set(seen.map((d) => d.id)).size).toBe(1);
          expect(seen.every((d) => d.body.toString() === 'retry me')).toBe(true);
          expect(consumer.stats()).toMatchObject({ received: 3, requeued: 2, finished: 1, inFlight: 0 });
          // failures back off (10 ms x 2^n); a redelivery racing the RDY 0 may fail inside the same window
          expect(backoffs.length).toBeGreaterThanOrEqual(1);
          expect(backoffs.every((ms) => ms > 0 && ms <= 100)).toBe(true);

          await waitFor(async () => {
            const ch = await channelStats(nsqd, topic, 'ch');
            return ch?.depth === 0 && ch.in_flight_count === 0 && ch.clients?.[0]?.finish_count === 1 && ch;
          }, 5000, 'nsqd saw the FIN');
          const ch = (await channelStats(nsqd, topic, 'ch'))!;
          expect(ch).toMatchObject({ message_count: 1, requeue_count: 2, timeout_count: 0, deferred_count: 0 });
          expect(ch.clients?.[0]).toMatchObject({ message_count: 3, requeue_count: 2, finish_count: 1 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('maxAttempts', () => {
      it(
        'hands the message to onMaxAttempts (attempts 3) after 2 failed handler calls, then FINs it',
        async () => {
          const topic = uniqueName('max-attempts');
          let handlerCalls = 0;
          const hooked: Delivery[] = [];
          const consumer = consumerFor(nsqd, {
            topic,
            maxAttempts: 2,
            requeueDelay: 0,
            backoffMultiplier: 0,
            handler: () => {
              handlerCalls++;
              throw new Error('always fails');
            },
            onMaxAttempts: (msg) => {
              hooked.push(snapshot(msg));
            },
          });
          await consumer.start();
          await producerFor(nsqd).publish(topic, 'poison');

          await waitFor(() => hooked.length === 1 && consumer.stats().finished === 1, 10_000, 'the hook and the FIN');
          expect(hooked[0]).toMatchObject({ attempts: 3 });
          expect(hooked[0]!.body.toString()).toBe('poison');
          expect(handlerCalls).toBe(2);
          expect(consumer.stats()).toMatchObject({ received: 3, requeued: 2, finished: 1, overMaxAttempts: 1, inFlight: 0 });

          await waitFor(async () => {
            const ch = await channelStats(nsqd, topic, 'ch');
            return ch?.depth === 0 && ch.in_flight_count === 0 && ch.clients?.[0]?.finish_count === 1;
          }, 5000, 'nsqd saw the FIN');
          expect(await channelStats(nsqd, topic, 'ch')).toMatchObject({
            depth: 0,
            in_flight_count: 0,
            deferred_count: 0,
            requeue_count: 2,
            message_count: 1,
          });
          expect(handlerCalls).toBe(2);
          expect(hooked).toHaveLength(1);
        },
        TEST_TIMEOUT,
      );

      it(
        'requeues the message (does not lose it) when onMaxAttempts throws',
        async () => {
          const topic = uniqueName('max-attempts-throw');
          let handlerCalls = 0;
          const hooked: Delivery[] = [];
          const logger = captureLogger();
          const consumer = consumerFor(nsqd, {
            topic,
            logger,
            maxAttempts: 2,
            requeueDelay: 0,
            backoffMultiplier: 0,
            handler: () => {
              handlerCalls++;
              throw new Error('always fails');
            },
            onMaxAttempts: async (msg) => {
              hooked.push(snapshot(msg));
              if (hooked.length === 1) throw new Error('dead-letter store unavailable');
            },
          });
          await consumer.start();
          await producerFor(nsqd).publish(topic, 'poison');

          await waitFor(() => hooked.length === 2 && consumer.stats().finished === 1, 10_000, 'the hook twice, then the FIN');
          expect(hooked.map((d) => d.attempts)).toEqual([3, 4]);
          expect(new Set(hooked.map((d) => d.id)).size).toBe(1);
          expect(handlerCalls).toBe(2);
          expect(consumer.stats()).toMatchObject({ received: 4, requeued: 3, finished: 1, overMaxAttempts: 2 });
          expect(logger.lines.some((l) => l.startsWith('error') && l.includes('onMaxAttempts failed'))).toBe(true);

          await waitFor(async () => {
            const ch = await channelStats(nsqd, topic, 'ch');
            return ch?.depth === 0 && ch.in_flight_count === 0 && ch.clients?.[0]?.finish_count === 1;
          }, 5000, 'nsqd saw the FIN');
          expect(await channelStats(nsqd, topic, 'ch')).toMatchObject({ requeue_count: 3, message_count: 1, deferred_count: 0 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('touch and msg_timeout', () => {
      it(
        'touch() keeps a message past msgTimeout 1000: delivered once, never timed out',
        async () => {
          const topic = touchTopic;
          const seen: Delivery[] = [];
          const errors: unknown[] = [];
          let handlerMs = 0;
          const consumer = consumerFor(nsqd, {
            topic,
            msgTimeout: 1000,
            maxInFlight: 2, // room for a redelivery, should nsqd time the message out
            handler: async (msg) => {
              seen.push(snapshot(msg));
              const start = Date.now();
              while (Date.now() - start < 2500) {
                await sleep(400);
                msg.touch();
              }
              handlerMs = Date.now() - start;
            },
          });
          consumer.on('error', (e) => errors.push(e));
          await consumer.start();
          await producerFor(nsqd).publish(topic, 'slow but alive');

          await waitFor(() => consumer.stats().finished === 1, 10_000, 'the slow handler finished');
          await waitFor(async () => (await channelStats(nsqd, topic, 'ch'))?.in_flight_count === 0, 5000, 'in flight 0');
          expect(handlerMs).toBeGreaterThanOrEqual(2500);
          expect(seen).toHaveLength(1);
          expect(seen[0]!.attempts).toBe(1);
          expect(consumer.stats()).toMatchObject({ received: 1, finished: 1, requeued: 0 });
          expect(errors).toEqual([]); // the FIN was accepted (no E_FIN_FAILED)
          const ch = await channelStats(nsqd, topic, 'ch');
          expect(ch).toMatchObject({ timeout_count: 0, depth: 0, in_flight_count: 0, requeue_count: 0 });
          expect(ch?.clients?.[0]).toMatchObject({ finish_count: 1, message_count: 1 });
        },
        TEST_TIMEOUT,
      );

      it(
        'without touch() the same slow handler loses the message to msg_timeout: redelivered with attempts 2',
        async () => {
          const topic = noTouchTopic;
          const seen: Delivery[] = [];
          const errors: unknown[] = [];
          const consumer = consumerFor(nsqd, {
            topic,
            msgTimeout: 1000,
            maxInFlight: 2,
            handler: async (msg: Message) => {
              seen.push(snapshot(msg));
              if (msg.attempts === 1) await sleep(2500);
            },
          });
          consumer.on('error', (e) => errors.push(e));
          await consumer.start();
          await producerFor(nsqd).publish(topic, 'too slow');

          await waitFor(() => seen.length >= 2 && consumer.stats().running === 0, 10_000, 'the redelivery and both handlers done');
          expect(seen.map((d) => d.attempts)).toEqual([1, 2]);
          expect(seen[0]!.id).toBe(seen[1]!.id);
          // the late FIN of the first delivery is refused by nsqd (non-fatal, the connection stays)
          await waitFor(() => errors.length > 0, 5000, 'E_FIN_FAILED');
          expect(errors[0]).toBeInstanceOf(NsqMessageStateError);
          expect(errors[0]).toMatchObject({ code: 'E_FIN_FAILED', fatal: false });
          expect(consumer.connectedAddresses()).toEqual([nsqd.tcpAddress]);
          const ch = await channelStats(nsqd, topic, 'ch');
          expect(ch).toMatchObject({ timeout_count: 1, depth: 0, in_flight_count: 0 });
        },
        TEST_TIMEOUT,
      );
    });

    describe('close()', () => {
      it(
        'waits for running handlers, FINs their messages and requeues those not started',
        async () => {
          const topic = uniqueName('close');
          const total = 20;
          const bodies = Array.from({ length: total }, (_, i) => `close-${i}`);
          const producer = producerFor(nsqd);
          await Promise.all(bodies.map((b) => producer.publish(topic, b)));

          const started: string[] = [];
          const done: Array<{ body: string; at: number }> = [];
          const a = consumerFor(nsqd, {
            topic,
            maxInFlight: 6,
            concurrency: 3,
            handler: async (msg) => {
              const body = msg.body.toString();
              started.push(body);
              await sleep(500);
              done.push({ body, at: Date.now() });
            },
          });
          await a.start();
          await waitFor(() => a.stats().running === 3 && a.stats().inFlight === 6, 5000, '3 running and 3 waiting');
          expect(done).toHaveLength(0);

          await a.close();
          const closedAt = Date.now();
          // close resolved only after every started handler had finished
          expect(started).toHaveLength(3);
          expect(done).toHaveLength(3);
          expect(Math.max(...done.map((d) => d.at))).toBeLessThanOrEqual(closedAt);
          const aStats = a.stats();
          expect(aStats.finished).toBe(3);
          expect(aStats.requeued).toBe(aStats.received - 3);
          expect(aStats.requeued).toBeGreaterThanOrEqual(3);
          expect(aStats.inFlight).toBe(0);

          // nsqd: the 3 handled are FINed, the rest back in the queue (requeued, not timed out)
          await waitFor(async () => (await channelStats(nsqd, topic, 'ch'))?.client_count === 0, 5000, 'A disconnected');
          const afterA = (await channelStats(nsqd, topic, 'ch'))!;
          expect(afterA).toMatchObject({
            in_flight_count: 0,
            deferred_count: 0,
            depth: total - 3,
            requeue_count: aStats.requeued,
            timeout_count: 0,
          });

          // a second consumer gets exactly the others: nothing A handled comes again
          const got: Delivery[] = [];
          const b = consumerFor(nsqd, { topic, maxInFlight: 20, handler: (msg) => void got.push(snapshot(msg)) });
          await b.start();
          await waitFor(async () => {
            const ch = await channelStats(nsqd, topic, 'ch');
            return got.length >= total - 3 && ch?.depth === 0 && ch.in_flight_count === 0;
          }, 10_000, 'B drained the channel');
          const handledByA = done.map((d) => d.body);
          const gotBodies = got.map((d) => d.body.toString());
          expect(gotBodies).toHaveLength(total - 3);
          expect(gotBodies.filter((body) => handledByA.includes(body))).toEqual([]);
          expect(sortedHex([...gotBodies, ...handledByA])).toEqual(sortedHex(bodies));
          // those A had received but not started come with attempts 2
          expect(got.filter((d) => d.attempts === 2)).toHaveLength(aStats.requeued);
          expect(b.stats().received).toBe(total - 3);
        },
        TEST_TIMEOUT,
      );
    });

    describe('discovery through nsqlookupd', () => {
      it(
        'connects to every nsqd producing the topic, spreads RDY, joins a new nsqd and drops a stopped one',
        async () => {
          const lookupd = await startNsqlookupd({ impl });
          const join = { impl, lookupdTcpAddresses: [lookupd.tcpAddress] };
          const [n1, n2] = await Promise.all([startNsqd(join), startNsqd(join)]);
          const topic = uniqueName('disc');
          const lookup = new LookupdHttpClient(lookupd.httpAddress);
          const producers = new Map<NsqdProcess, Producer>();
          const publish = async (n: NsqdProcess, prefix: string, count: number): Promise<string[]> => {
            if (!producers.has(n)) producers.set(n, producerFor(n));
            const bodies = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
            await Promise.all(bodies.map((b) => producers.get(n)!.publish(topic, b)));
            return bodies;
          };
          const registered = async (expected: NsqdProcess[]): Promise<boolean> => {
            const found = (await lookup.lookup(topic)).producers.map((p) => `${p.broadcast_address}:${p.tcp_port}`).sort();
            return JSON.stringify(found) === JSON.stringify(expected.map((n) => n.tcpAddress).sort());
          };
          const readyCounts = async (ns: NsqdProcess[]): Promise<number[]> =>
            Promise.all(ns.map(async (n) => (await channelClients(n, topic, 'ch')).reduce((s, c) => s + c.ready_count, 0)));

          const sent = [...(await publish(n1, 'one', 10)), ...(await publish(n2, 'two', 10))];
          await waitFor(() => registered([n1, n2]), 5000, 'both nsqd registered with the lookupd');

          const got: Delivery[] = [];
          const errors: Error[] = [];
          const consumer = cleanup.track(
            new Consumer({
              topic,
              channel: 'ch',
              lookupdHTTPAddresses: [lookupd.httpAddress],
              lookupdPollInterval: 200,
              lookupdPollJitter: 0,
              maxInFlight: 5,
              reconnectDelay: 50,
              maxReconnectDelay: 200,
              logger: silentLogger,
              handler: (msg) => void got.push(snapshot(msg)),
            }),
          );
          consumer.on('error', (e: Error) => errors.push(e));
          await consumer.start();
          expect(consumer.connectedAddresses().sort()).toEqual([n1.tcpAddress, n2.tcpAddress].sort());
          await waitFor(() => got.length >= sent.length, 10_000, 'all messages of both nsqd');
          expect(sortedHex(got.map((d) => d.body))).toEqual(sortedHex(sent));
          for (const d of got) expect(d.nsqdAddress).toBe(d.body.toString().startsWith('one') ? n1.tcpAddress : n2.tcpAddress);

          // RDY: maxInFlight 5 over two connections = 3 + 2
          const rdy2 = await waitFor(async () => {
            const counts = await readyCounts([n1, n2]);
            return counts.reduce((s, c) => s + c, 0) === 5 ? counts : undefined;
          }, 5000, 'RDY sum 5 over two nsqd');
          expect([...rdy2].sort()).toEqual([2, 3]);

          // a third nsqd appears: joined on a later poll
          const n3 = await startNsqd(join);
          const sent3 = await publish(n3, 'three', 5);
          await waitFor(() => consumer.connectedAddresses().includes(n3.tcpAddress), 5000, 'the third nsqd joined');
          expect(consumer.connectedAddresses()).toHaveLength(3);
          await waitFor(() => sent3.every((b) => got.some((d) => d.body.toString() === b)), 5000, "the third nsqd's messages");
          const rdy3 = await waitFor(async () => {
            const counts = await readyCounts([n1, n2, n3]);
            return counts.reduce((s, c) => s + c, 0) === 5 && counts.every((c) => c > 0) ? counts : undefined;
          }, 5000, 'RDY sum 5 over three nsqd');
          expect([...rdy3].sort()).toEqual([1, 2, 2]);

          // the second nsqd stops (SIGTERM: it unregisters from the lookupd): dropped, not retried forever
          await n2.stop();
          await waitFor(() => registered([n1, n3]), 5000, 'the stopped nsqd unregistered');
          await waitFor(
            () => JSON.stringify(consumer.connectedAddresses().sort()) === JSON.stringify([n1.tcpAddress, n3.tcpAddress].sort()),
            5000,
            'the stopped nsqd dropped',
          );
          await sleep(400); // two more polls: the lookupd answer without it has been applied
          const errorsFor2 = (): number => errors.filter((e) => e.message.includes(n2.tcpAddress)).length;
          const before = errorsFor2();
          await sleep(1000); // with maxReconnectDelay 200 a still-wanted address would be retried ~5 times here
          expect(errorsFor2()).toBe(before);
          expect(consumer.connectedAddresses()).toHaveLength(2);
          const rdyAfter = await waitFor(async () => {
            const counts = await readyCounts([n1, n3]);
            return counts.reduce((s, c) => s + c, 0) === 5 ? counts : undefined;
          }, 5000, 'RDY sum 5 over the remaining two');
          expect([...rdyAfter].sort()).toEqual([2, 3]);

          const sentAfter = [...(await publish(n1, 'one-after', 3)), ...(await publish(n3, 'three-after', 3))];
          await waitFor(() => sentAfter.every((b) => got.some((d) => d.body.toString() === b)), 5000, 'messages after the drop');
          expect(got.every((d) => d.attempts === 1)).toBe(true);
          expect(consumer.stats().received).toBe(got.length);
        },
        TEST_TIMEOUT,
      );
    });
  },
  ['nsqd', 'nsqlookupd'],
);
