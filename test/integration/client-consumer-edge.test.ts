/**
 * Consumer edge cases, run against the official nsqd and against ours: bad requeue delays from user code never leave a
 * message unanswered, and handler concurrency below maxInFlight processes every message once.
 */
import { afterAll, expect, it } from '@jest/globals';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Producer } from '../../libs/nsq/src/client/producer.js';
import { channelStats, uniqueName } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { startNsqd, stopAll } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

afterAll(stopAll);

describeEachImpl('Consumer edge cases', (impl) => {
  it('treats requeue(-1), a NaN delay and a throwing requeueDelay as "use the default delay"', async () => {
    const nsqd = await startNsqd({ impl });
    const topic = uniqueName('baddelay');
    const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
    await producer.publish(topic, 'again and again');
    await producer.close();
    const attempts: number[] = [];
    const consumer = new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      backoffMultiplier: 0,
      defaultRequeueDelay: 0,
      requeueDelay: (a) => {
        if (a === 2) return Number.NaN;
        if (a === 3) throw new Error('table lookup failed');
        return 0;
      },
      logger: silentLogger,
      handler: async (msg) => {
        attempts.push(msg.attempts);
        if (msg.attempts === 1) {
          msg.requeue(-1);
          return;
        }
        if (msg.attempts < 4) throw new Error(`fail ${msg.attempts}`);
      },
    });
    try {
      await consumer.start();
      await waitFor(() => consumer.stats().finished === 1, 15_000, 'the fourth attempt to finish');
      expect(attempts).toEqual([1, 2, 3, 4]);
      expect(consumer.stats()).toMatchObject({ requeued: 3, finished: 1, inFlight: 0 });
    } finally {
      await consumer.close();
    }
  }, 30_000);

  it('with concurrency below maxInFlight handles every message exactly once', async () => {
    const nsqd = await startNsqd({ impl });
    const topic = uniqueName('concurrency');
    const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
    const bodies = Array.from({ length: 300 }, (_, i) => `c${i}`);
    await producer.publishMany(topic, bodies);
    await producer.close();
    let running = 0;
    let peak = 0;
    const seen: string[] = [];
    const consumer = new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      maxInFlight: 50,
      concurrency: 3,
      logger: silentLogger,
      handler: async (msg) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(msg.body.toString());
        running--;
      },
    });
    try {
      await consumer.start();
      await waitFor(() => seen.length === 300, 20_000, 'all 300 messages');
      expect(peak).toBe(3);
      expect([...seen].sort()).toEqual([...bodies].sort());
      await waitFor(async () => (await channelStats(nsqd, topic, 'ch'))?.in_flight_count === 0, 5000, 'nothing in flight');
      expect((await channelStats(nsqd, topic, 'ch'))).toMatchObject({ depth: 0, requeue_count: 0, timeout_count: 0 });
    } finally {
      await consumer.close();
    }
  }, 30_000);
});
