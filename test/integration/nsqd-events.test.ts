/**
 * The lifecycle event stream of our NSQD (the seam message history records from): one message's
 * life — published, delivered, requeued, delivered again, timed out, delivered, finished — and a
 * DPUB's deferral, with ids, channels, clients and attempts as they happened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Producer } from '../../libs/nsq/src/client/producer.js';
import type { Message } from '../../libs/nsq/src/client/message.js';
import type { MessageEvent } from '../../libs/nsq/src/nsqd/events.js';
import { NSQD } from '../../libs/nsq/src/nsqd/nsqd.js';
import { waitFor } from '../support/wait.js';

describe('NSQD lifecycle events', () => {
  let nsqd: NSQD;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsqd-events-'));
    nsqd = new NSQD({ tcpAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', dataPath: dir, broadcastAddress: '127.0.0.1', logger: silentLogger, queueScanInterval: 20 });
    await nsqd.start();
  });
  afterAll(async () => {
    await nsqd.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records one message from publish to finish, through a requeue and a timeout', async () => {
    const events: MessageEvent[] = [];
    const stop = nsqd.events.subscribe((e) => events.push(e));
    const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
    await producer.connect();
    let deliveries = 0;
    let finished = false;
    const consumer = new Consumer({
      topic: 'life',
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      logger: silentLogger,
      msgTimeout: 1000,
      outputBufferTimeout: 25,
      // the second delivery's handler never returns; the third needs a handler slot of its own
      maxInFlight: 2,
      concurrency: 2,
      handler: (msg: Message) => {
        deliveries++;
        if (deliveries === 1) {
          msg.requeue(0);
          return;
        }
        if (deliveries === 2) return new Promise<void>(() => undefined); // never answered: times out
        finished = true;
      },
    });
    consumer.on('error', () => undefined);
    await consumer.start();
    await producer.publish('life', 'hello');
    await producer.publishDeferred('life', 60_000, 'later');
    await waitFor(() => finished, 15_000, 'the third delivery');
    await waitFor(() => events.some((e) => e.type === 'finished'), 5000, 'the finished event');
    stop();
    await Promise.all([consumer.close(100).catch(() => undefined), producer.close()]);

    const published = events.filter((e) => e.type === 'published');
    expect(published.map((e) => (e.type === 'published' ? [e.topic, e.body.toString(), e.deferMs ?? 0] : []))).toEqual([
      ['life', 'hello', 0],
      ['life', 'later', 60_000],
    ]);
    const [hello, later] = published;
    const life = events.filter((e) => e.id === hello!.id).map((e) => [e.type, 'attempt' in e ? e.attempt : 0]);
    expect(life).toEqual([
      ['published', 0],
      ['delivered', 1],
      ['requeued', 1],
      ['delivered', 2],
      ['timed_out', 2],
      ['delivered', 3],
      ['finished', 3],
    ]);
    const deferred = events.filter((e) => e.id === later!.id).map((e) => e.type);
    expect(deferred).toEqual(['published', 'deferred']);
    const delivered = events.find((e) => e.type === 'delivered');
    expect(delivered).toMatchObject({ topic: 'life', channel: 'ch', client: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(hello).toMatchObject({ producer: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+$/) });
  }, 30_000);

  it('builds no events when nobody listens', () => {
    expect(nsqd.events.active).toBe(false);
  });
});
