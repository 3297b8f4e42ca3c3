/**
 * Durability of our TypeScript nsqd (the broker process, --role nsqd):
 * - kill -9 while a producer publishes and a consumer consumes, with --mem-queue-size=0
 *   --sync-every=1: after the restart every message that got OK is delivered at least once.
 *   Unlike the official nsqd (see client-reliability.test.ts) the stream is not paused around the
 *   kill: publishes are in flight at the moment of the SIGKILL, several times.
 * - graceful restart (SIGTERM) with messages in memory, in flight and deferred: none is lost.
 */
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { NsqdHttpClient } from '../../libs/nsq/src/client/http.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Cleanup, uniqueName } from '../support/client.js';
import { brokerMain } from '../support/nsq-bin.js';
import { startNsqd, stopAll } from '../support/processes.js';
import { sleep, waitFor } from '../support/wait.js';

const cleanup = new Cleanup();

describe('our nsqd keeps what it acknowledged', () => {
  afterEach(() => cleanup.run());
  afterAll(stopAll);

  it('has the broker built', () => {
    expect(brokerMain()).toMatch(/main\.js$/);
  });

  it(
    'kill -9 mid-stream (mem-queue-size 0, sync-every 1), three times: every acknowledged message is delivered',
    async () => {
      const nsqd = await startNsqd({ impl: 'ts', args: ['--mem-queue-size=0', '--sync-every=1'] });
      const topic = uniqueName('crash');
      const api = new NsqdHttpClient(nsqd.httpAddress);
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');

      const received = new Map<string, number>();
      const consumer = cleanup.track(
        new Consumer({
          topic,
          channel: 'ch',
          nsqdTCPAddresses: [nsqd.tcpAddress],
          logger: silentLogger,
          maxInFlight: 10,
          outputBufferTimeout: 25,
          reconnectDelay: 50,
          maxReconnectDelay: 200,
          handler: async (msg) => {
            const body = msg.body.toString();
            received.set(body, (received.get(body) ?? 0) + 1);
            await sleep(1);
          },
        }),
      );
      consumer.on('error', () => undefined);
      await consumer.start();

      const producer = cleanup.producer(nsqd, { reconnectDelay: 50, maxReconnectDelay: 200 });
      producer.on('error', () => undefined);
      await producer.connect();

      const acked = new Set<string>();
      let failed = 0;
      let next = 0;
      let stop = false;
      // 8 publishers in parallel, so that several PUBs are in flight when the SIGKILL lands
      const publishers = Array.from({ length: 8 }, async () => {
        while (!stop) {
          const body = `m-${next++}`;
          try {
            await producer.publish(topic, body);
            acked.add(body);
          } catch {
            failed++;
            await sleep(20);
          }
        }
      });

      for (let round = 0; round < 3; round++) {
        const target = acked.size + 150;
        await waitFor(() => acked.size >= target, 30_000, `150 more acknowledged publishes (round ${round})`);
        await nsqd.kill('SIGKILL');
        await sleep(100);
        await nsqd.restart();
      }
      const last = acked.size + 150;
      await waitFor(() => acked.size >= last, 30_000, '150 publishes after the last restart');
      stop = true;
      await Promise.all(publishers);

      await waitFor(() => [...acked].every((b) => received.has(b)), 60_000, 'every acknowledged message consumed').catch(() => undefined);
      const missing = [...acked].filter((b) => !received.has(b));
      expect(missing).toEqual([]);
      expect(acked.size).toBeGreaterThanOrEqual(600);
      // the kills really interrupted publishing
      expect(failed).toBeGreaterThan(0);
    },
    180_000,
  );

  it(
    'graceful restart with messages in memory, in flight and deferred: none is lost',
    async () => {
      const nsqd = await startNsqd({ impl: 'ts' });
      const topic = uniqueName('graceful');
      const api = new NsqdHttpClient(nsqd.httpAddress);
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      const producer = cleanup.producer(nsqd);
      await producer.connect();
      const queued = Array.from({ length: 200 }, (_, i) => `queued-${i}`);
      const deferred = Array.from({ length: 20 }, (_, i) => `deferred-${i}`);
      await producer.publishMany(topic, queued);
      for (const body of deferred) await producer.publishDeferred(topic, 600_000, body);
      // a topic with no channel yet holds its messages in the topic queue
      const topicOnly = uniqueName('topic-only');
      await producer.publishMany(topicOnly, ['t-1', 't-2', 't-3']);

      // a consumer holds 30 messages in flight and never finishes them
      const held: string[] = [];
      const holder = new Consumer({
        topic,
        channel: 'ch',
        nsqdTCPAddresses: [nsqd.tcpAddress],
        logger: silentLogger,
        maxInFlight: 30,
        outputBufferTimeout: 25,
        handler: (msg) => {
          held.push(msg.body.toString());
          return new Promise(() => undefined);
        },
      });
      holder.on('error', () => undefined);
      await holder.start();
      await waitFor(() => held.length === 30, 10_000, '30 messages in flight');
      const stats = (await api.stats({ topic })).topics.find((t) => t.topic_name === topic)!;
      const ch = stats.channels.find((c) => c.channel_name === 'ch')!;
      expect({ inFlight: ch.in_flight_count, deferred: ch.deferred_count, depth: ch.depth }).toEqual({ inFlight: 30, deferred: 20, depth: 170 });

      const status = await nsqd.stop();
      expect(status).toEqual({ code: 0, signal: null });
      void holder.close(0).catch(() => undefined);
      await nsqd.restart();

      const all = new Map<string, number>();
      const consumer = cleanup.track(
        new Consumer({
          topic,
          channel: 'ch',
          nsqdTCPAddresses: [nsqd.tcpAddress],
          logger: silentLogger,
          maxInFlight: 100,
          outputBufferTimeout: 25,
          handler: (msg) => {
            all.set(msg.body.toString(), msg.attempts);
          },
        }),
      );
      consumer.on('error', () => undefined);
      await consumer.start();
      const expected = [...queued, ...deferred];
      await waitFor(() => expected.every((b) => all.has(b)), 20_000, 'all 220 messages after the restart').catch(() => undefined);
      expect(expected.filter((b) => !all.has(b))).toEqual([]);
      // the 30 that were in flight keep their attempt count across the restart
      for (const body of held) expect(all.get(body)).toBe(2);

      const topicOnlyReceived: string[] = [];
      const c2 = cleanup.track(
        new Consumer({
          topic: topicOnly,
          channel: 'late',
          nsqdTCPAddresses: [nsqd.tcpAddress],
          logger: silentLogger,
          outputBufferTimeout: 25,
          handler: (msg) => {
            topicOnlyReceived.push(msg.body.toString());
          },
        }),
      );
      await c2.start();
      await waitFor(() => topicOnlyReceived.length === 3, 10_000, 'the topic-only messages');
      expect(topicOnlyReceived.sort()).toEqual(['t-1', 't-2', 't-3']);
    },
    60_000,
  );
});
