/**
 * NsqdHttpClient / LookupdHttpClient against nsqd and nsqlookupd (the official 1.3.0, and ours; nsqd
 * registered with the lookupd), plus the error mapping (NsqHttpError, NsqValidationError, NsqConnectionError,
 * NsqTimeoutError), the legacy `{"data":...}` envelope (from a fake server), and the process helpers
 * of test/support (restart on the same ports and data dir, kill by PID).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { LookupdHttpClient, NsqdHttpClient, NsqHttpError } from '../../libs/nsq/src/client/http.js';
import {
  FrameDecoder,
  FrameType,
  MAGIC_V2,
  NsqConnectionError,
  NsqError,
  NsqTimeoutError,
  NsqValidationError,
  RESPONSE_HEARTBEAT,
  decodeMessage,
  encodeFin,
  encodeNop,
  encodeRdy,
  encodeSub,
} from '../../libs/nsq/src/protocol/index.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { makeSelfSignedCert } from '../support/tls.js';
import { startNsqd, startNsqlookupd, stopAll, type NsqdProcess, type NsqlookupdProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

let seq = 0;
const unique = (prefix: string): string => `${prefix}-${process.pid}-${Date.now()}-${++seq}`;

/** Subscribes over raw TCP (protocol codecs only), reads `count` messages, FINs them, returns their bodies. */
function consume(tcpAddress: string, topic: string, channel: string, count: number, timeoutMs = 5000): Promise<Buffer[]> {
  const [host, port] = tcpAddress.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const bodies: Buffer[] = [];
    const decoder = new FrameDecoder();
    const socket = connect(Number(port), host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`consume: got ${bodies.length}/${count} messages from ${topic}/${channel} in ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      socket.end();
      if (err) reject(err);
      else resolve(bodies);
    };
    socket.on('error', finish);
    socket.on('connect', () => {
      socket.write(Buffer.concat([MAGIC_V2, encodeSub(topic, channel), encodeRdy(count)]));
    });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk, (type, data) => {
        if (type === FrameType.Error) return finish(new Error(`nsqd error frame: ${data.toString()}`));
        if (type === FrameType.Response) {
          if (data.toString() === RESPONSE_HEARTBEAT) socket.write(encodeNop());
          return;
        }
        const msg = decodeMessage(data);
        bodies.push(Buffer.from(msg.body));
        socket.write(encodeFin(msg.id));
        if (bodies.length === count) finish();
      });
    });
  });
}

/** Retries an assertion until it passes (5 s); the timeout error quotes the last failure. */
async function eventually(assertion: () => Promise<void>, what: string): Promise<void> {
  await waitFor(async () => (await assertion(), true), 5000, what);
}

/** A port nothing listens on (bound by the OS, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function expectHttpError(promise: Promise<unknown>, status: number, serverMessage: string): Promise<NsqHttpError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected NsqHttpError ${status} ${serverMessage}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NsqHttpError);
  expect(err).toBeInstanceOf(NsqError);
  expect(err).toMatchObject({ code: 'ERR_NSQ_HTTP', status, serverMessage });
  return err as NsqHttpError;
}

describeEachImpl('HTTP clients against nsqd and nsqlookupd', (impl) => {
  let lookupd: NsqlookupdProcess;
  let nsqd: NsqdProcess;
  let api: NsqdHttpClient;
  let lookup: LookupdHttpClient;

  beforeAll(async () => {
    lookupd = await startNsqlookupd({ impl });
    nsqd = await startNsqd({ impl, lookupdTcpAddresses: [lookupd.tcpAddress] });
    api = new NsqdHttpClient(nsqd.httpAddress);
    lookup = new LookupdHttpClient(lookupd.httpAddress);
  });

  afterAll(stopAll);

  const topicStats = async (topic: string) => {
    const stats = await api.stats({ topic });
    return stats.topics.find((t) => t.topic_name === topic);
  };
  const channelStats = async (topic: string, channel: string) =>
    (await topicStats(topic))?.channels.find((c) => c.channel_name === channel);
  // nsqd's topic pump copies messages to the channels asynchronously: a channel's depth lags the publish.
  const channelEventually = (topic: string, channel: string, expected: Record<string, unknown>) =>
    eventually(async () => expect(await channelStats(topic, channel)).toMatchObject(expected), `${topic}/${channel} stats`);

  describe('nsqd', () => {
    it('pings and reports /info with the broadcast address and ports', async () => {
      await expect(api.ping()).resolves.toBe(true);
      const info = await api.info();
      expect(info).toMatchObject({
        version: '1.3.0',
        broadcast_address: '127.0.0.1',
        tcp_port: nsqd.tcpPort,
        http_port: nsqd.httpPort,
      });
      expect(typeof info.max_heartbeat_interval).toBe('number');
    });

    it('accepts a base URL without a scheme and with a trailing slash', async () => {
      const bare = new NsqdHttpClient(`127.0.0.1:${nsqd.httpPort}`);
      expect(bare.baseUrl).toBe(nsqd.httpAddress);
      await expect(bare.ping()).resolves.toBe(true);
      const slash = new NsqdHttpClient(`${nsqd.httpAddress}/`);
      expect(slash.baseUrl).toBe(nsqd.httpAddress);
      await expect(slash.info()).resolves.toMatchObject({ tcp_port: nsqd.tcpPort });
    });

    it('publish auto-creates the topic; stats shows depth, message_count and message_bytes', async () => {
      const topic = unique('pub');
      await api.publish(topic, 'hello');
      await api.publish(topic, Buffer.from('world!'));
      const t = await topicStats(topic);
      expect(t).toMatchObject({ topic_name: topic, depth: 2, message_count: 2, message_bytes: 11, paused: false, channels: [] });
      expect(t?.e2e_processing_latency).toEqual({ count: 0, percentiles: null });
    });

    it('publish delivers the exact bytes to a channel', async () => {
      const topic = unique('bytes');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      const binary = Buffer.from([0, 1, 2, 0x0a, 0xff, 0xfe]);
      await api.publish(topic, binary);
      await api.publish(topic, 'ünïcødé');
      await channelEventually(topic, 'ch', { depth: 2, message_count: 2 });
      const bodies = await consume(nsqd.tcpAddress, topic, 'ch', 2);
      expect(bodies).toEqual([binary, Buffer.from('ünïcødé')]);
    });

    it('publishMany binary (the default) carries newlines and arbitrary bytes', async () => {
      const topic = unique('mpub-bin');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      const bodies = [Buffer.from('line1\nline2'), Buffer.from([0, 0, 0, 4]), 'x'.repeat(10_000)];
      await api.publishMany(topic, bodies);
      await channelEventually(topic, 'ch', { depth: 3, message_count: 3 });
      await api.publishMany(topic, ['one'], { binary: true });
      await channelEventually(topic, 'ch', { depth: 4 });
      const received = await consume(nsqd.tcpAddress, topic, 'ch', 4);
      expect(received.map((b) => b.toString('latin1'))).toEqual([
        'line1\nline2',
        '\0\0\0\u0004',
        'x'.repeat(10_000),
        'one',
      ]);
    });

    it('publishMany text sends newline-separated bodies', async () => {
      const topic = unique('mpub-text');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      await api.publishMany(topic, ['alpha', Buffer.from('beta'), 'gamma\r'], { binary: false });
      await channelEventually(topic, 'ch', { depth: 3, message_count: 3 });
      const received = await consume(nsqd.tcpAddress, topic, 'ch', 3);
      // nsqd only splits on \n: a \r stays part of the body
      expect(received.map(String)).toEqual(['alpha', 'beta', 'gamma\r']);
    });

    it('publish with deferMs is counted as deferred, not in depth', async () => {
      const topic = unique('defer');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      await api.publish(topic, 'later', { deferMs: 60_000 });
      await api.publish(topic, 'soon', { deferMs: 0 });
      await channelEventually(topic, 'ch', { depth: 1, deferred_count: 1, message_count: 2 });
    });

    it('publish with a defer over --max-req-timeout is 400 INVALID_DEFER', async () => {
      await expectHttpError(api.publish(unique('defer'), 'x', { deferMs: 2 * 3600 * 1000 }), 400, 'INVALID_DEFER');
    });

    it('a message over --max-msg-size is 413 MSG_TOO_BIG', async () => {
      await expectHttpError(api.publish(unique('big'), Buffer.alloc(1024 * 1024 + 1, 1)), 413, 'MSG_TOO_BIG');
    });

    it('pauses and unpauses a topic (messages stay in the topic while paused)', async () => {
      const topic = unique('pause-topic');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      await api.pauseTopic(topic);
      expect(await topicStats(topic)).toMatchObject({ paused: true });
      await api.publish(topic, 'held');
      // a paused topic does not copy to its channels
      expect(await topicStats(topic)).toMatchObject({ depth: 1, channels: [{ channel_name: 'ch', depth: 0 }] });
      await api.unpauseTopic(topic);
      expect(await topicStats(topic)).toMatchObject({ paused: false });
      await waitFor(async () => (await channelStats(topic, 'ch'))?.depth === 1, 5000, 'the held message to reach the channel');
      expect(await topicStats(topic)).toMatchObject({ depth: 0 });
    });

    it('pauses and unpauses a channel', async () => {
      const topic = unique('pause-channel');
      await api.createTopic(topic);
      await api.createChannel(topic, 'ch');
      await api.createChannel(topic, 'other');
      await api.pauseChannel(topic, 'ch');
      expect(await channelStats(topic, 'ch')).toMatchObject({ paused: true });
      expect(await channelStats(topic, 'other')).toMatchObject({ paused: false });
      expect(await topicStats(topic)).toMatchObject({ paused: false });
      await api.unpauseChannel(topic, 'ch');
      expect(await channelStats(topic, 'ch')).toMatchObject({ paused: false });
    });

    it('empties a topic and a channel', async () => {
      const topic = unique('empty');
      await api.publishMany(topic, ['1', '2', '3']);
      expect(await topicStats(topic)).toMatchObject({ depth: 3 });
      await api.emptyTopic(topic);
      expect(await topicStats(topic)).toMatchObject({ depth: 0, message_count: 3 });

      await api.createChannel(topic, 'ch');
      await api.publishMany(topic, ['4', '5']);
      await waitFor(async () => (await channelStats(topic, 'ch'))?.depth === 2, 5000, 'channel depth 2');
      await api.emptyChannel(topic, 'ch');
      expect(await channelStats(topic, 'ch')).toMatchObject({ depth: 0, in_flight_count: 0, deferred_count: 0 });
    });

    it('deletes a channel and a topic', async () => {
      const topic = unique('delete');
      await api.createTopic(topic);
      await api.createChannel(topic, 'a');
      await api.createChannel(topic, 'b');
      await api.deleteChannel(topic, 'a');
      expect((await topicStats(topic))?.channels.map((c) => c.channel_name)).toEqual(['b']);
      await api.deleteTopic(topic);
      expect((await api.stats({ topic })).topics).toEqual([]);
      await expectHttpError(api.deleteTopic(topic), 404, 'TOPIC_NOT_FOUND');
    });

    it('stats honours the channel, includeClients and includeMem filters', async () => {
      const topic = unique('stats');
      await api.createTopic(topic);
      await api.createChannel(topic, 'a');
      await api.createChannel(topic, 'b');
      const full = await api.stats({ topic });
      expect(full.version).toBe('1.3.0');
      expect(full.health).toBe('OK');
      expect(typeof full.start_time).toBe('number');
      expect(full.memory).toMatchObject({ heap_objects: expect.any(Number), gc_total_runs: expect.any(Number) });
      expect(full.topics[0]?.channels.map((c) => c.channel_name)).toEqual(['a', 'b']);
      expect(full.topics[0]?.channels[0]?.clients).toEqual([]);

      const one = await api.stats({ topic, channel: 'b' });
      expect(one.topics[0]?.channels.map((c) => c.channel_name)).toEqual(['b']);

      const lean = await api.stats({ topic, includeClients: false, includeMem: false });
      expect(lean.memory).toBeUndefined();
      expect(lean.producers).toBeNull();
      expect(lean.topics[0]?.channels[0]).toMatchObject({ clients: null, client_count: 0 });

      expect((await api.stats({ topic: unique('nope') })).topics).toEqual([]);
      const all = await api.stats();
      expect(all.topics.some((t) => t.topic_name === topic)).toBe(true);
      const names = all.topics.map((t) => t.topic_name);
      expect(names).toEqual([...names].sort());
    });

    it('maps nsqd errors to NsqHttpError with the status and the server code', async () => {
      const missing = unique('missing');
      await expectHttpError(api.emptyTopic(missing), 404, 'TOPIC_NOT_FOUND');
      await expectHttpError(api.pauseTopic(missing), 404, 'TOPIC_NOT_FOUND');
      await expectHttpError(api.deleteChannel(missing, 'ch'), 404, 'TOPIC_NOT_FOUND');
      await expectHttpError(api.createChannel(missing, 'ch'), 404, 'TOPIC_NOT_FOUND');
      const topic = unique('nochan');
      await api.createTopic(topic);
      await expectHttpError(api.deleteChannel(topic, 'ch'), 404, 'CHANNEL_NOT_FOUND');
      const err = await expectHttpError(api.emptyChannel(topic, 'ch'), 404, 'CHANNEL_NOT_FOUND');
      expect(err.method).toBe('POST');
      expect(err.url).toContain('/channel/empty?');
      expect(err.message).toContain('404 CHANNEL_NOT_FOUND');
    });
  });

  describe('nsqlookupd', () => {
    it('pings and reports its version', async () => {
      await expect(lookup.ping()).resolves.toBe(true);
      await expect(lookup.info()).resolves.toEqual({ version: '1.3.0' });
      const bare = new LookupdHttpClient(`127.0.0.1:${lookupd.httpPort}`);
      await expect(bare.ping()).resolves.toBe(true);
    });

    it('finds the nsqd (broadcast address, tcp and http ports) once a topic is published', async () => {
      const topic = unique('lookup');
      await api.publish(topic, 'x');
      const result = await waitFor(
        async () => {
          const r = await lookup.lookup(topic);
          return r.producers.length > 0 ? r : undefined;
        },
        5000,
        `nsqd to register ${topic} with nsqlookupd`,
      );
      expect(result.channels).toEqual([]);
      expect(result.producers).toHaveLength(1);
      expect(result.producers[0]).toMatchObject({
        broadcast_address: '127.0.0.1',
        tcp_port: nsqd.tcpPort,
        http_port: nsqd.httpPort,
        version: '1.3.0',
      });
      expect(result.producers[0]?.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);

      await api.createChannel(topic, 'ch');
      await waitFor(async () => (await lookup.lookup(topic)).channels.includes('ch'), 5000, 'channel ch in /lookup');
      expect(await lookup.channels(topic)).toEqual(['ch']);
      expect(await lookup.topics()).toContain(topic);

      const nodes = await lookup.nodes();
      const node = nodes.find((n) => n.tcp_port === nsqd.tcpPort);
      expect(node).toMatchObject({ broadcast_address: '127.0.0.1', http_port: nsqd.httpPort, version: '1.3.0' });
      expect(node?.topics).toContain(topic);
      expect(node?.tombstones).toHaveLength(node?.topics.length ?? -1);
    });

    it('lookup of an unknown topic gives empty lists instead of 404', async () => {
      await expect(lookup.lookup(unique('unknown'))).resolves.toEqual({ channels: [], producers: [] });
      await expect(lookup.channels(unique('unknown'))).resolves.toEqual([]);
    });

    it('creates and deletes topics and channels in the registry', async () => {
      const topic = unique('registry');
      await lookup.createTopic(topic);
      expect(await lookup.topics()).toContain(topic);
      await expect(lookup.lookup(topic)).resolves.toEqual({ channels: [], producers: [] });
      await lookup.createChannel(topic, 'c1');
      await lookup.createChannel(topic, 'c2');
      expect((await lookup.channels(topic)).sort()).toEqual(['c1', 'c2']);
      await lookup.deleteChannel(topic, 'c1');
      expect(await lookup.channels(topic)).toEqual(['c2']);
      await expectHttpError(lookup.deleteChannel(topic, 'c1'), 404, 'CHANNEL_NOT_FOUND');
      await lookup.deleteTopic(topic);
      expect(await lookup.topics()).not.toContain(topic);
      expect(await lookup.channels(topic)).toEqual([]);
    });

    it('tombstones a topic producer', async () => {
      const topic = unique('tombstone');
      await api.createTopic(topic);
      await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, `${topic} registered`);
      await lookup.tombstoneTopicProducer(topic, `127.0.0.1:${nsqd.httpPort}`);
      expect((await lookup.lookup(topic)).producers).toEqual([]);
      const node = (await lookup.nodes()).find((n) => n.tcp_port === nsqd.tcpPort);
      const index = node?.topics.indexOf(topic) ?? -1;
      expect(index).toBeGreaterThanOrEqual(0);
      expect(node?.tombstones[index]).toBe(true);
    });

    it('maps lookupd errors to NsqHttpError', async () => {
      await expectHttpError(lookup.deleteChannel(unique('t'), 'nope'), 404, 'CHANNEL_NOT_FOUND');
    });
  });

  describe('client-side errors', () => {
    let deadUrl: string;

    beforeAll(async () => {
      deadUrl = `http://127.0.0.1:${await closedPort()}`;
    });

    // A client aimed at a closed port: any request would fail with NsqConnectionError, so an
    // NsqValidationError proves the input was rejected before sending anything.
    it('rejects invalid names, bodies and options with NsqValidationError, without a request', async () => {
      const dead = new NsqdHttpClient(deadUrl);
      const deadLookup = new LookupdHttpClient(deadUrl);
      const cases: Array<[Promise<unknown>, string]> = [
        [dead.publish('bad topic', 'x'), 'topic'],
        [dead.publish('x'.repeat(65), 'x'), 'topic'],
        [dead.publish('ok', ''), 'body'],
        [dead.publish('ok', 'x', { deferMs: -1 }), 'deferMs'],
        [dead.publish('ok', 'x', { deferMs: 1.5 }), 'deferMs'],
        [dead.publishMany('ok', []), 'bodies'],
        [dead.publishMany('ok', ['a', '']), 'bodies[1]'],
        [dead.publishMany('ok', ['a', 'b\nc'], { binary: false }), 'bodies[1]'],
        [dead.createTopic('a/b'), 'topic'],
        [dead.createChannel('ok', 'bad channel'), 'channel'],
        [dead.deleteChannel('ok', ''), 'channel'],
        [dead.pauseChannel('#ephemeral', 'ch'), 'topic'],
        [dead.stats({ topic: 'a b' }), 'topic'],
        [dead.stats({ topic: 'ok', channel: 'c!' }), 'channel'],
        [deadLookup.lookup('bad topic'), 'topic'],
        [deadLookup.channels('x'.repeat(70)), 'topic'],
        [deadLookup.createChannel('ok', 'b@d'), 'channel'],
        [deadLookup.tombstoneTopicProducer('ok', 'no-port'), 'node'],
      ];
      for (const [promise, fieldName] of cases) {
        const err = await promise.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NsqValidationError);
        expect(err).toMatchObject({ code: 'ERR_NSQ_VALIDATION', field: fieldName });
      }
      expect(() => new NsqdHttpClient('')).toThrow(NsqValidationError);
      expect(() => new NsqdHttpClient('ftp://127.0.0.1:1')).toThrow(NsqValidationError);
      expect(() => new LookupdHttpClient('127.0.0.1:1', { timeoutMs: 0 })).toThrow(NsqValidationError);
    });

    it('a refused connection is an NsqConnectionError', async () => {
      const dead = new NsqdHttpClient(deadUrl);
      const err = await dead.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NsqConnectionError);
      expect(err).toMatchObject({ code: 'ERR_NSQ_CONNECTION' });
      expect((err as Error).message).toMatch(/ECONNREFUSED/);
      await expect(dead.publish('ok', 'x')).rejects.toBeInstanceOf(NsqConnectionError);
      await expect(new LookupdHttpClient(deadUrl).lookup('ok')).rejects.toBeInstanceOf(NsqConnectionError);
    });

    describe('against a fake server', () => {
      let server: Server;
      let url: string;
      const routes = new Map<string, { status: number; body: string; headers?: Record<string, string> }>();
      const requests: Array<{ method: string; url: string; accept: string | undefined; body: Buffer }> = [];

      beforeAll(async () => {
        server = createServer((req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            requests.push({ method: req.method ?? '', url: req.url ?? '', accept: req.headers.accept, body: Buffer.concat(chunks) });
            const path = (req.url ?? '').split('?')[0] ?? '';
            if (path.startsWith('/hang')) return; // never answers
            const route = routes.get(path);
            if (!route) {
              res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"NOT_FOUND"}');
              return;
            }
            res.writeHead(route.status, { 'Content-Type': 'application/json', ...route.headers }).end(route.body);
          });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      });

      afterAll(async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });

      it('a slow answer is an NsqTimeoutError', async () => {
        const client = new NsqdHttpClient(`${url}/hang`, { timeoutMs: 200 });
        const started = Date.now();
        const err = await client.info().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NsqTimeoutError);
        expect(err).toMatchObject({ code: 'ERR_NSQ_TIMEOUT' });
        expect(Date.now() - started).toBeLessThan(2000);
      });

      it('sends the nsq Accept header and the binary mpub layout', async () => {
        routes.set('/mpub', { status: 200, body: 'OK' });
        requests.length = 0;
        await new NsqdHttpClient(url).publishMany('t', ['ab', Buffer.from([7])]);
        const req = requests[0];
        expect(req?.method).toBe('POST');
        expect(req?.url).toBe('/mpub?topic=t&binary=true');
        expect(req?.accept).toBe('application/vnd.nsq; version=1.0');
        // [int32 count=2][int32 2]"ab"[int32 1][7], no outer size
        expect(req?.body).toEqual(Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 0x61, 0x62, 0, 0, 0, 1, 7]));
      });

      it('unwraps the legacy {"data":...} envelope of pre-1.0 nsqlookupd', async () => {
        const producer = {
          remote_address: '10.0.0.1:5000',
          hostname: 'h',
          broadcast_address: 'h',
          tcp_port: 4150,
          http_port: 4151,
          version: '0.3.8',
        };
        routes.set('/lookup', {
          status: 200,
          body: JSON.stringify({ status_code: 200, status_txt: 'OK', data: { channels: ['c'], producers: [producer] } }),
        });
        routes.set('/topics', { status: 200, body: JSON.stringify({ status_code: 200, status_txt: 'OK', data: { topics: ['a', 'b'] } }) });
        routes.set('/channels', { status: 200, body: JSON.stringify({ status_code: 200, status_txt: 'OK', data: { channels: null } }) });
        routes.set('/nodes', {
          status: 200,
          body: JSON.stringify({ status_code: 200, status_txt: 'OK', data: { producers: [{ ...producer, topics: ['a'], tombstones: [false] }] } }),
        });
        const legacy = new LookupdHttpClient(url);
        await expect(legacy.lookup('t')).resolves.toEqual({ channels: ['c'], producers: [producer] });
        await expect(legacy.topics()).resolves.toEqual(['a', 'b']);
        await expect(legacy.channels('t')).resolves.toEqual([]);
        await expect(legacy.nodes()).resolves.toEqual([{ ...producer, topics: ['a'], tombstones: [false] }]);
      });

      it('reads legacy errors: TOPIC_NOT_FOUND in status_txt, and an error status inside a 200 envelope', async () => {
        routes.set('/lookup', { status: 404, body: JSON.stringify({ status_code: 404, status_txt: 'TOPIC_NOT_FOUND', data: null }) });
        await expect(new LookupdHttpClient(url).lookup('t')).resolves.toEqual({ channels: [], producers: [] });
        routes.set('/topics', { status: 200, body: JSON.stringify({ status_code: 500, status_txt: 'INTERNAL_ERROR', data: null }) });
        await expectHttpError(new LookupdHttpClient(url).topics(), 500, 'INTERNAL_ERROR');
      });

      it('does not unwrap a 1.x answer that has the X-NSQ-Content-Type header', async () => {
        routes.set('/topics', {
          status: 200,
          body: JSON.stringify({ topics: ['x'], data: { topics: ['wrong'] } }),
          headers: { 'X-NSQ-Content-Type': 'nsq; version=1.0' },
        });
        await expect(new LookupdHttpClient(url).topics()).resolves.toEqual(['x']);
      });

      it('reports 500 NOK from /ping as false (unhealthy) and a non-JSON body as an NsqHttpError', async () => {
        routes.set('/ping', { status: 500, body: 'NOK - disk full' });
        await expect(new NsqdHttpClient(url).ping()).resolves.toBe(false);
        routes.set('/info', { status: 200, body: '<html>' });
        const err = await expectHttpError(new NsqdHttpClient(url).info(), 200, 'INVALID_JSON_RESPONSE <html>');
        expect(err.status).toBe(200);
      });
    });
  });
});

describeEachImpl('test support: nsqd process helpers', (impl) => {
  afterAll(stopAll);

  it('restart() comes back on the same ports with the same data dir', async () => {
    const nsqd = await startNsqd({ impl });
    const api = new NsqdHttpClient(nsqd.httpAddress);
    const { tcpPort, httpPort, dataPath, pid } = nsqd;
    expect(nsqd.tcpAddress).toBe(`127.0.0.1:${tcpPort}`);
    expect(nsqd.log()).toMatch(/TCP: listening on 127\.0\.0\.1:\d+/);

    const topic = unique('persist');
    await api.createTopic(topic);
    await api.createChannel(topic, 'ch');
    await api.publishMany(topic, ['a', 'b']);
    await api.pauseChannel(topic, 'ch');
    await nsqd.stop(); // graceful: flushes messages to disk, persists metadata
    expect(nsqd.running).toBe(false);
    expect(nsqd.exit).toEqual({ code: 0, signal: null });

    await nsqd.restart();
    expect(nsqd.pid).not.toBe(pid);
    expect([nsqd.tcpPort, nsqd.httpPort, nsqd.dataPath]).toEqual([tcpPort, httpPort, dataPath]);
    await eventually(async () => {
      const channel = (await api.stats({ topic })).topics[0]?.channels[0];
      expect(channel).toMatchObject({ channel_name: 'ch', depth: 2, paused: true });
    }, 'the persisted messages and pause state');
  });

  it('kill() sends SIGKILL by PID and restart() recovers from it', async () => {
    const nsqd = await startNsqd({ impl });
    const since = nsqd.logLength;
    await nsqd.kill();
    expect(nsqd.exit).toEqual({ code: null, signal: 'SIGKILL' });
    await expect(new NsqdHttpClient(nsqd.httpAddress).ping()).rejects.toBeInstanceOf(NsqConnectionError);
    await nsqd.restart();
    await expect(nsqd.waitForLog(/HTTP: listening on/, { since })).resolves.toBe('HTTP: listening on');
    await expect(new NsqdHttpClient(nsqd.httpAddress).ping()).resolves.toBe(true);
  });

  it('starts nsqd with TLS required and an OS-picked HTTPS port (makeSelfSignedCert)', async () => {
    const cert = makeSelfSignedCert();
    try {
      expect(cert.cert).toContain('BEGIN CERTIFICATE');
      expect(cert.key).toContain('PRIVATE KEY');
      const nsqd = await startNsqd({
        impl,
        args: ['--https-address=127.0.0.1:0', `--tls-cert=${cert.certPath}`, `--tls-key=${cert.keyPath}`, '--tls-required=true'],
      });
      expect(nsqd.httpsPort).toEqual(expect.any(Number));
      expect(nsqd.httpsAddress).toBe(`https://127.0.0.1:${nsqd.httpsPort}`);
      // the plain HTTP listener refuses everything when TLS is required
      await expectHttpError(new NsqdHttpClient(nsqd.httpAddress).info(), 403, 'TLS_REQUIRED');
      const httpsPort = nsqd.httpsPort;
      await nsqd.restart();
      expect(nsqd.httpsPort).toBe(httpsPort);
    } finally {
      await stopAll();
      cert.remove();
    }
  });

  it('a start that fails reports the log', async () => {
    await expect(startNsqd({ impl, args: ['--no-such-flag'] })).rejects.toThrow(/exited during start[\s\S]*no-such-flag/);
  });
});
