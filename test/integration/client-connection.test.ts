/**
 * Connection-level behaviour, against the official nsqd 1.3.0 and against ours: what IDENTIFY negotiates, AUTH only
 * when nsqd requires it (checked against a real authd HTTP server implementing nsqd's
 * --auth-http-address contract), max_rdy_count respected, and the missed-heartbeat timeout.
 */
import { afterAll, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Producer } from '../../libs/nsq/src/client/producer.js';
import { NsqAuthError, NsqTimeoutError, NsqValidationError } from '../../libs/nsq/src/protocol/errors.js';
import { channelClients, uniqueName } from '../support/client.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { startNsqd, stopAll } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

afterAll(stopAll);

/** An authd: grants everything to secret "open-sesame", refuses every other secret. */
async function startAuthd(): Promise<{ server: Server; address: string; queries: URLSearchParams[] }> {
  const queries: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://authd');
    queries.push(url.searchParams);
    if (url.pathname !== '/auth' || url.searchParams.get('secret') !== 'open-sesame') {
      res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"message":"NOT_AUTHORIZED"}');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(
      JSON.stringify({
        ttl: 3600,
        identity: 'test-user',
        identity_url: 'http://authd/test-user',
        authorizations: [{ topic: '.*', channels: ['.*'], permissions: ['subscribe', 'publish'] }],
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, address: `127.0.0.1:${port}`, queries };
}

describeEachImpl('Connection against nsqd', (impl) => {
  it('sends its IDENTIFY settings, which nsqd applies (client_id, user_agent, sample_rate, msg_timeout)', async () => {
    const nsqd = await startNsqd({ impl });
    const topic = uniqueName('identify');
    const consumer = new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      clientId: 'billing-worker-7',
      hostname: 'worker-7.example',
      userAgent: 'identify-test/1.0',
      sampleRate: 42,
      msgTimeout: 5000,
      logger: silentLogger,
      handler: () => undefined,
    });
    try {
      await consumer.start();
      const [client] = await waitFor(async () => {
        const clients = await channelClients(nsqd, topic, 'ch');
        return clients.length === 1 ? clients : undefined;
      }, 5000, 'the consumer in nsqd stats');
      expect(client).toMatchObject({
        client_id: 'billing-worker-7',
        hostname: 'worker-7.example',
        user_agent: 'identify-test/1.0',
        sample_rate: 42,
        state: 3,
      });
    } finally {
      await consumer.close();
    }
  }, 30_000);

  it('keeps RDY within nsqd --max-rdy-count even when maxInFlight is larger', async () => {
    const nsqd = await startNsqd({ impl, args: ['--max-rdy-count=10'] });
    const topic = uniqueName('maxrdy');
    const errors: Error[] = [];
    const consumer = new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      maxInFlight: 100,
      logger: silentLogger,
      handler: () => undefined,
    });
    consumer.on('error', (e: Error) => errors.push(e));
    const disconnects: unknown[] = [];
    consumer.on('disconnect', (a: unknown) => disconnects.push(a));
    try {
      await consumer.start();
      const [client] = await waitFor(async () => {
        const clients = await channelClients(nsqd, topic, 'ch');
        return clients.length === 1 && clients[0]!.ready_count > 0 ? clients : undefined;
      }, 5000, 'RDY on the consumer');
      expect(client!.ready_count).toBe(10);
      expect(errors).toEqual([]);
      expect(disconnects).toEqual([]);
    } finally {
      await consumer.close();
    }
  }, 30_000);

  it('AUTHs only when nsqd says auth_required, and maps refusals to typed errors', async () => {
    const authd = await startAuthd();
    try {
      const nsqd = await startNsqd({ impl, args: [`--auth-http-address=${authd.address}`] });
      const topic = uniqueName('auth');

      const granted = new Producer(nsqd.tcpAddress, { authSecret: 'open-sesame', logger: silentLogger });
      await granted.publish(topic, 'with the right secret');
      await granted.close();
      expect(authd.queries.some((q) => q.get('secret') === 'open-sesame')).toBe(true);

      const refused = new Producer(nsqd.tcpAddress, { authSecret: 'wrong', logger: silentLogger });
      await expect(refused.publish(topic, 'x')).rejects.toBeInstanceOf(NsqAuthError);
      await refused.close();

      const noSecret = new Producer(nsqd.tcpAddress, { logger: silentLogger });
      const error = await noSecret.publish(topic, 'x').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NsqValidationError);
      expect((error as NsqValidationError).field).toBe('authSecret');
      await noSecret.close();

      const received: string[] = [];
      const consumer = new Consumer({
        topic,
        channel: 'ch',
        nsqdTCPAddresses: [nsqd.tcpAddress],
        authSecret: 'open-sesame',
        logger: silentLogger,
        handler: (m) => void received.push(m.body.toString()),
      });
      await consumer.start();
      await waitFor(() => received.length === 1, 5000, 'the authorized message');
      expect(received).toEqual(['with the right secret']);
      await consumer.close();

      // An nsqd without auth never sees AUTH (it would answer E_AUTH_DISABLED, fatal), even with a secret set.
      const plain = await startNsqd({ impl });
      const producer = new Producer(plain.tcpAddress, { authSecret: 'open-sesame', logger: silentLogger });
      await producer.publish(topic, 'no auth needed');
      await producer.close();
    } finally {
      authd.server.close();
    }
  }, 30_000);

  it('drops a connection whose nsqd stops answering (missed heartbeats) and reconnects when it is back', async () => {
    const nsqd = await startNsqd({ impl });
    const topic = uniqueName('heartbeat');
    const received: string[] = [];
    const disconnects: unknown[] = [];
    const consumer = new Consumer({
      topic,
      channel: 'ch',
      nsqdTCPAddresses: [nsqd.tcpAddress],
      heartbeatInterval: 1000,
      readTimeout: 2500,
      reconnectDelay: 100,
      maxReconnectDelay: 500,
      logger: silentLogger,
      handler: (m) => void received.push(m.body.toString()),
    });
    consumer.on('disconnect', (_address: string, error: unknown) => disconnects.push(error));
    try {
      await consumer.start();
      expect(consumer.stats().connections).toBe(1);
      await nsqd.pause(); // SIGSTOP: the socket stays open but nothing is read or written
      await waitFor(() => disconnects.length > 0, 8000, 'the missed-heartbeat timeout');
      expect(disconnects[0]).toBeInstanceOf(NsqTimeoutError);
      await nsqd.resume();
      await waitFor(() => consumer.stats().connections === 1, 10_000, 'the reconnect');
      const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
      await producer.publish(topic, 'after the stall');
      await producer.close();
      await waitFor(() => received.includes('after the stall'), 5000, 'a message after the reconnect');
    } finally {
      await nsqd.resume().catch(() => undefined);
      await consumer.close();
    }
  }, 30_000);
});
