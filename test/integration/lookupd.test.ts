/**
 * Our NSQLookupd and nsqd's lookupd peer (LookupPeers) against the official NSQ 1.3.0 binaries:
 *
 * - the official nsqd registers with our NSQLookupd; our client, nsqjs and nsqd's own channel
 *   pre-creation discover through it; a killed nsqd disappears from it;
 * - LookupPeers registers with the official nsqlookupd, survives its restart and reads /channels;
 * - the HTTP API and raw TCP V1 exchanges are run against both lookupds and must answer the same
 *   bytes (up to ports, addresses and Go's random map order); malformed input that would crash or
 *   bloat nsqlookupd is checked against ours alone, while another peer keeps being served.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import nsq, { type NsqjsMessage } from 'nsqjs';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { LookupdHttpClient } from '../../libs/nsq/src/client/http.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { NSQLookupd, type LookupdRegistrationEvent } from '../../libs/nsq/src/lookupd/index.js';
import { LookupPeers, type LookupRegistration } from '../../libs/nsq/src/nsqd/lookup-peer.js';
import { Cleanup, captureLogger, channelStats, uniqueName } from '../support/client.js';
import { describeWithNsq } from '../support/nsq-bin.js';
import { startNsqd, startNsqlookupd, stopAll, type NsqdProcess, type NsqlookupdProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 30_000;
const cleanup = new Cleanup();

async function startOurLookupd(logger = captureLogger()): Promise<NSQLookupd> {
  const lookupd = new NSQLookupd({ tcpAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', broadcastAddress: '127.0.0.1', logger });
  cleanup.track(lookupd);
  await lookupd.start();
  return lookupd;
}

/** Both lookupds, addressed the same way. */
interface Target {
  name: 'ours' | 'official';
  tcpAddress: string;
  /** http://127.0.0.1:port */
  httpUrl: string;
}

const ours = (l: NSQLookupd): Target => ({ name: 'ours', tcpAddress: l.tcpAddress, httpUrl: `http://${l.httpAddress}` });
const official = (l: NsqlookupdProcess): Target => ({ name: 'official', tcpAddress: l.tcpAddress, httpUrl: l.httpAddress });

// ---------------------------------------------------------------------------------------------
// raw V1 helpers

function identify(body: string | object): Buffer {
  const json = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const len = Buffer.alloc(4);
  len.writeInt32BE(json.length);
  return Buffer.concat([Buffer.from('IDENTIFY\n'), len, json]);
}

function sizePrefix(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

const MAGIC = Buffer.from('  V1');
const NSQD_IDENTITY = { broadcast_address: '127.0.0.1', hostname: 'h', tcp_port: 4150, http_port: 4151, version: '1.3.0' };

/**
 * Writes `writes` in order, then (unless `halfClose` is false) shuts down our side, and collects
 * everything until the server closes. Resolves with the bytes and whether the server closed.
 */
function exchange(address: string, writes: Buffer[], opts: { halfClose?: boolean; timeoutMs?: number } = {}): Promise<{ data: Buffer; closed: boolean }> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const socket = connect({ host: host!, port: Number(port), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      for (const w of writes) socket.write(w);
      if (opts.halfClose !== false) socket.end();
    });
  });
}

/** Splits `[int32 size][data]` responses; an IDENTIFY JSON answer becomes its key list. */
function responses(data: Buffer): string[] {
  const out: string[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < 4) throw new Error(`trailing ${data.length - offset} bytes: ${data.subarray(offset).toString('hex')}`);
    const size = data.readInt32BE(offset);
    const body = data.subarray(offset + 4, offset + 4 + size);
    if (body.length !== size) throw new Error(`response of ${size} bytes truncated to ${body.length}`);
    const text = body.toString('latin1');
    out.push(text.startsWith('{') ? `JSON keys ${Object.keys(JSON.parse(text) as object).join(',')}` : text);
    offset += 4 + size;
  }
  return out;
}

/** A long-lived V1 client that sends one command at a time and reads its answer. */
class RawPeer {
  private buffer = Buffer.alloc(0);
  private waiting: Array<(text: string) => void> = [];
  closed = false;

  private constructor(private readonly socket: ReturnType<typeof connect>) {
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      while (this.buffer.length >= 4 && this.buffer.length >= 4 + this.buffer.readInt32BE(0)) {
        const size = this.buffer.readInt32BE(0);
        const text = this.buffer.subarray(4, 4 + size).toString('utf8');
        this.buffer = this.buffer.subarray(4 + size);
        this.waiting.shift()?.(text);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w('<closed>');
    });
  }

  static async open(address: string): Promise<RawPeer> {
    const [host, port] = address.split(':');
    const socket = connect({ host: host!, port: Number(port) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.write(MAGIC);
    return new RawPeer(socket);
  }

  command(bytes: Buffer | string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(typeof bytes === 'string' ? `${bytes}\n` : bytes);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

async function openPeer(address: string, topics: string[]): Promise<RawPeer> {
  const peer = cleanup.track(await RawPeer.open(address));
  expect(await peer.command(identify(NSQD_IDENTITY))).toMatch(/^\{/);
  for (const t of topics) expect(await peer.command(`REGISTER ${t}`)).toBe('OK');
  return peer;
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | null>;
}

const COMPARED_HEADERS = ['content-type', 'x-nsq-content-type', 'allow', 'location', 'content-length'];

async function http(base: string, method: string, path: string): Promise<HttpAnswer> {
  const res = await fetch(base + path, {
    method,
    redirect: 'manual',
    headers: { Accept: 'application/vnd.nsq; version=1.0' },
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.text();
  return { status: res.status, body, headers: Object.fromEntries(COMPARED_HEADERS.map((h) => [h, res.headers.get(h)])) };
}

async function json<T>(base: string, path: string): Promise<T> {
  const answer = await http(base, 'GET', path);
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as T;
}

interface NodeJson {
  remote_address: string;
  broadcast_address: string;
  tcp_port: number;
  http_port: number;
  version: string;
  topics: string[];
  tombstones: boolean[];
}

// ---------------------------------------------------------------------------------------------

afterEach(() => cleanup.run());
afterAll(stopAll);

describeWithNsq('official nsqd 1.3.0 registered with our NSQLookupd', () => {
  let lookupd: NSQLookupd;
  let logs: ReturnType<typeof captureLogger>;
  let nsqd: NsqdProcess;
  const events: Array<{ kind: string } & Partial<LookupdRegistrationEvent>> = [];
  let lookup: LookupdHttpClient;

  beforeAll(async () => {
    logs = captureLogger();
    lookupd = new NSQLookupd({ tcpAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', broadcastAddress: '127.0.0.1', logger: logs });
    lookupd.on('register', (e) => events.push({ kind: 'register', ...e }));
    lookupd.on('unregister', (e) => events.push({ kind: 'unregister', ...e }));
    lookupd.on('peer-connect', () => events.push({ kind: 'peer-connect' }));
    lookupd.on('peer-disconnect', () => events.push({ kind: 'peer-disconnect' }));
    await lookupd.start();
    lookup = new LookupdHttpClient(`http://${lookupd.httpAddress}`);
    nsqd = await startNsqd({ lookupdTcpAddresses: [lookupd.tcpAddress] });
    await waitFor(() => lookupd.nodes().length === 1, 10_000, 'the nsqd identified itself');
  }, TEST_TIMEOUT);
  afterAll(() => lookupd.close());

  it('logs like nsqlookupd', () => {
    const text = logs.lines.join('\n');
    expect(text).toContain(`TCP: listening on ${lookupd.tcpAddress}`);
    expect(text).toContain(`HTTP: listening on ${lookupd.httpAddress}`);
    expect(text).toMatch(new RegExp(`CLIENT\\(127\\.0\\.0\\.1:\\d+\\): IDENTIFY Address:127\\.0\\.0\\.1 TCP:${nsqd.tcpPort} HTTP:${nsqd.httpPort} Version:1\\.3\\.0`));
    expect(text).toMatch(/DB: client\(127\.0\.0\.1:\d+\) REGISTER category:client key: subkey:/);
  });

  it(
    'shows the topic and channel in /lookup, /topics, /channels and /nodes; our Consumer discovers the nsqd and consumes',
    async () => {
      const topic = uniqueName('lk-topic');
      await cleanup.producer(nsqd).publish(topic, 'hello through our lookupd');
      await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'the topic registered');
      expect(events).toContainEqual(expect.objectContaining({ kind: 'register', topic, channel: undefined }));
      expect(lookupd.topics()).toContain(topic);

      const got: string[] = [];
      const consumer = cleanup.track(
        new Consumer({
          topic,
          channel: 'ch',
          lookupdHTTPAddresses: [`http://${lookupd.httpAddress}`],
          lookupdPollInterval: 200,
          lookupdPollJitter: 0,
          logger: silentLogger,
          handler: (msg) => void got.push(msg.body.toString()),
        }),
      );
      await consumer.start();
      expect(consumer.connectedAddresses()).toEqual([nsqd.tcpAddress]);
      await waitFor(() => got.length === 1, 5000, 'the message consumed');
      expect(got).toEqual(['hello through our lookupd']);

      await waitFor(async () => (await lookup.channels(topic)).includes('ch'), 5000, 'the channel registered');
      const looked = await json<{ channels: string[]; producers: Array<Record<string, unknown>> }>(
        `http://${lookupd.httpAddress}`,
        `/lookup?topic=${topic}`,
      );
      expect(looked.channels).toEqual(['ch']);
      expect(looked.producers).toHaveLength(1);
      const [producer] = looked.producers;
      expect(Object.keys(producer!)).toEqual(['remote_address', 'hostname', 'broadcast_address', 'tcp_port', 'http_port', 'version']);
      expect(producer).toMatchObject({ broadcast_address: '127.0.0.1', tcp_port: nsqd.tcpPort, http_port: nsqd.httpPort, version: '1.3.0' });
      expect(producer!.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(await lookup.topics()).toContain(topic);
      expect(lookupd.channels(topic)).toEqual(['ch']);

      const { producers: nodes } = await json<{ producers: NodeJson[] }>(`http://${lookupd.httpAddress}`, '/nodes');
      expect(nodes).toHaveLength(1);
      expect(nodes[0]).toMatchObject({ broadcast_address: '127.0.0.1', tcp_port: nsqd.tcpPort, http_port: nsqd.httpPort, version: '1.3.0' });
      expect(nodes[0]!.topics).toContain(topic);
      expect(nodes[0]!.tombstones).toHaveLength(nodes[0]!.topics.length);
      expect(events).toContainEqual(expect.objectContaining({ kind: 'register', topic, channel: 'ch' }));
    },
    TEST_TIMEOUT,
  );

  it(
    'lets nsqjs discover the official nsqd through it and consume',
    async () => {
      const topic = uniqueName('lk-nsqjs');
      await cleanup.producer(nsqd).publish(topic, 'for nsqjs');
      await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'the topic registered');

      const reader = new nsq.Reader(topic, 'nsqjs', { lookupdHTTPAddresses: [`http://${lookupd.httpAddress}`], lookupdPollInterval: 1 });
      const got: string[] = [];
      const errors: Error[] = [];
      reader.on('message', (msg: NsqjsMessage) => {
        got.push(msg.body.toString());
        msg.finish();
      });
      reader.on('error', (err: Error) => errors.push(err));
      cleanup.add(() => reader.close());
      reader.connect();
      await waitFor(() => got.length === 1, 10_000, 'nsqjs consumed the message');
      expect(got).toEqual(['for nsqjs']);
      expect(errors).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  it(
    "answers nsqd's /channels query, so a new topic on nsqd gets the channels other nsqd have",
    async () => {
      const topic = uniqueName('lk-pre');
      const created = await http(`http://${lookupd.httpAddress}`, 'POST', `/channel/create?topic=${topic}&channel=precreated`);
      expect(created.status).toBe(200);
      await cleanup.producer(nsqd).publish(topic, 'kept for precreated');
      // nsqd asked us for the topic's channels before it took the message: the channel holds it
      const ch = await waitFor(() => channelStats(nsqd, topic, 'precreated'), 5000, 'nsqd created the channel');
      expect(ch.depth + ch.in_flight_count).toBe(1);
      await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'the topic registered');
    },
    TEST_TIMEOUT,
  );

  it(
    'drops a killed nsqd from /lookup and /nodes (its connection closed)',
    async () => {
      const topic = uniqueName('lk-kill');
      await cleanup.producer(nsqd).publish(topic, 'x');
      await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'the topic registered');
      await nsqd.kill('SIGKILL');
      await waitFor(async () => (await lookup.nodes()).length === 0, 5000, 'the nsqd left /nodes');
      // the registration itself stays (nsqlookupd keeps keys), with no producer
      expect(await lookup.lookup(topic)).toEqual({ channels: [], producers: [] });
      expect(lookupd.nodes()).toEqual([]);
      expect(events.filter((e) => e.kind === 'peer-disconnect')).toHaveLength(1);
      expect(events).toContainEqual(expect.objectContaining({ kind: 'unregister', topic, channel: undefined }));
    },
    TEST_TIMEOUT,
  );
});

describeWithNsq('LookupPeers against the official nsqlookupd 1.3.0', () => {
  it(
    'registers and unregisters, comes back after a lookupd restart, PINGs, and reads /channels',
    async () => {
      const official = await startNsqlookupd();
      const api = new LookupdHttpClient(official.httpAddress);
      const t0 = uniqueName('lp0');
      const t1 = uniqueName('lp1');
      const t2 = uniqueName('lp2');
      const regs: LookupRegistration[] = [{ topic: t0 }];
      const logs = captureLogger();
      const peers = cleanup.track(
        new LookupPeers({
          addresses: [official.tcpAddress],
          identify: { broadcast_address: '127.0.0.1', hostname: 'ts-nsqd', tcp_port: 14150, http_port: 14151, version: '1.3.0' },
          registrations: () => regs,
          logger: logs,
          pingIntervalMs: 100,
        }),
      );
      const connects: Array<{ httpPort: number; broadcastAddress: string }> = [];
      peers.on('connect', ({ info }) => connects.push(info));
      const register = (topic: string, channel?: string): void => {
        regs.push(channel === undefined ? { topic } : { topic, channel });
        peers.register(topic, channel);
      };
      peers.start();
      expect(peers.addresses).toEqual([official.tcpAddress]);

      await waitFor(() => connects.length === 1, 5000, 'IDENTIFY answered');
      expect(connects[0]).toEqual({ broadcastAddress: '127.0.0.1', httpPort: official.httpPort, tcpPort: official.tcpPort, version: '1.3.0' });
      await waitFor(async () => (await api.lookup(t0)).producers.length === 1, 5000, 'the initial registration');
      expect((await api.lookup(t0)).producers[0]).toMatchObject({ broadcast_address: '127.0.0.1', hostname: 'ts-nsqd', tcp_port: 14150, http_port: 14151 });

      register(t1, 'c1');
      register(t1, 'c2');
      register(t1, 'e#ephemeral');
      register(t2);
      await waitFor(async () => (await api.channels(t1)).length === 3 && (await api.lookup(t2)).producers.length === 1, 5000, 'the new registrations');
      const node = await waitFor(async () => (await api.nodes()).find((n) => n.tcp_port === 14150), 5000, 'the node');
      expect([...node.topics].sort()).toEqual([t0, t1, t2].sort());
      expect(node.tombstones).toEqual([false, false, false]);
      expect((await peers.channelsFor(t1)).sort()).toEqual(['c1', 'c2']);
      expect(await peers.channelsFor(uniqueName('unknown'))).toEqual([]);

      // an ephemeral channel's registration goes with its last producer; a topic UNREGISTER removes the producer
      regs.splice(regs.findIndex((r) => r.channel === 'e#ephemeral'), 1);
      peers.unregister(t1, 'e#ephemeral');
      regs.splice(regs.findIndex((r) => r.topic === t2), 1);
      peers.unregister(t2);
      await waitFor(async () => (await api.channels(t1)).length === 2 && (await api.lookup(t2)).producers.length === 0, 5000, 'the unregistrations');

      // PINGs keep last_update moving
      const lastUpdate = async (): Promise<number> => {
        const debug = await json<Record<string, Array<{ last_update: number }>>>(official.httpAddress, '/debug');
        return debug['client::']?.[0]?.last_update ?? 0;
      };
      const before = await lastUpdate();
      await waitFor(async () => (await lastUpdate()) > before, 5000, 'a PING updated last_update');

      // the lookupd restarts with an empty db: the peer reconnects and registers everything again
      await official.restart();
      await waitFor(() => connects.length === 2, 15_000, 'reconnected after the restart');
      await waitFor(
        async () => (await api.lookup(t0)).producers.length === 1 && (await api.channels(t1)).sort().join() === 'c1,c2',
        5000,
        'the registrations came back',
      );
      expect(await api.topics()).not.toContain(t2);

      await peers.close();
      await waitFor(async () => (await api.nodes()).length === 0, 5000, 'the peer left');
    },
    TEST_TIMEOUT,
  );

  it(
    'logs an error answer from lookupd, reconnects and re-registers instead of throwing',
    async () => {
      const official = await startNsqlookupd();
      const api = new LookupdHttpClient(official.httpAddress);
      const topic = uniqueName('lp-err');
      const logs = captureLogger();
      const peers = cleanup.track(
        new LookupPeers({
          addresses: [official.tcpAddress],
          identify: { broadcast_address: '127.0.0.1', hostname: 'ts-nsqd', tcp_port: 14160, http_port: 14161, version: '1.3.0' },
          registrations: () => [{ topic }],
          logger: logs,
        }),
      );
      let connects = 0;
      peers.on('connect', () => connects++);
      peers.start();
      await waitFor(() => connects === 1, 5000, 'connected');
      peers.register('bad!topic');
      await waitFor(() => logs.lines.some((l) => l.includes("E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid")), 5000, 'the error logged');
      await waitFor(() => connects === 2, 10_000, 'reconnected');
      await waitFor(async () => (await api.lookup(topic)).producers.length === 1, 5000, 'registered again');
    },
    TEST_TIMEOUT,
  );

  it(
    'setAddresses moves the registrations to another lookupd',
    async () => {
      const [a, b] = await Promise.all([startNsqlookupd(), startNsqlookupd()]);
      const topic = uniqueName('lp-move');
      const peers = cleanup.track(
        new LookupPeers({
          addresses: [a.tcpAddress],
          identify: { broadcast_address: '127.0.0.1', hostname: 'ts-nsqd', tcp_port: 14170, http_port: 14171, version: '1.3.0' },
          registrations: () => [{ topic }],
          logger: silentLogger,
        }),
      );
      peers.start();
      await waitFor(async () => (await new LookupdHttpClient(a.httpAddress).lookup(topic)).producers.length === 1, 5000, 'on a');
      peers.setAddresses([b.tcpAddress]);
      expect(peers.addresses).toEqual([b.tcpAddress]);
      await waitFor(async () => (await new LookupdHttpClient(b.httpAddress).lookup(topic)).producers.length === 1, 5000, 'on b');
      await waitFor(async () => (await new LookupdHttpClient(a.httpAddress).nodes()).length === 0, 5000, 'gone from a');
    },
    TEST_TIMEOUT,
  );
});

describeWithNsq(
  'our NSQLookupd answers like nsqlookupd 1.3.0',
  () => {
    let lookupd: NSQLookupd;
    let reference: NsqlookupdProcess;

    beforeAll(async () => {
      reference = await startNsqlookupd();
      lookupd = new NSQLookupd({ tcpAddress: '127.0.0.1:0', httpAddress: '127.0.0.1:0', broadcastAddress: '127.0.0.1', logger: silentLogger });
      await lookupd.start();
    }, TEST_TIMEOUT);
    afterAll(() => lookupd.close());

    const both = (): Target[] => [ours(lookupd), official(reference)];

    it(
      'HTTP: same status, body and headers for errors, routing and the empty/created states',
      async () => {
        const topic = uniqueName('h');
        const requests: Array<[string, string]> = [
          ['GET', '/ping'],
          ['GET', '/info'],
          ['GET', '/topics'],
          ['GET', '/nodes'],
          ['GET', '/debug'],
          ['GET', '/lookup'],
          ['GET', `/lookup?topic=${topic}`],
          ['GET', '/lookup?topic=a;b'],
          ['GET', '/lookup?topic=%zz'],
          ['GET', '/channels'],
          ['GET', `/channels?topic=${topic}`],
          ['POST', '/topic/create'],
          ['POST', '/topic/create?topic=b!d'],
          ['POST', `/topic/create?topic=${topic}`],
          ['GET', '/topics'],
          ['GET', `/lookup?topic=${topic}`],
          ['POST', '/channel/create?channel=c'],
          ['POST', `/channel/create?topic=${topic}`],
          ['POST', `/channel/create?topic=${topic}&channel=b!`],
          ['POST', `/channel/create?topic=${topic}&channel=c`],
          ['GET', `/channels?topic=${topic}`],
          ['GET', `/lookup?topic=${topic}`],
          ['POST', `/channel/delete?topic=${topic}&channel=nope`],
          ['POST', `/channel/delete?topic=${topic}&channel=c`],
          ['GET', `/channels?topic=${topic}`],
          ['POST', '/topic/delete'],
          ['POST', `/topic/delete?topic=${topic}`],
          ['GET', '/topics'],
          ['POST', '/topic/tombstone'],
          ['POST', `/topic/tombstone?topic=${topic}`],
          ['POST', `/topic/tombstone?topic=${topic}&node=127.0.0.1:1`],
          ['GET', '/nothing'],
          ['PUT', '/nothing'],
          ['POST', `/lookup?topic=${topic}`],
          ['GET', '/topic/create'],
          ['DELETE', '/topics'],
          ['HEAD', '/ping'],
          ['OPTIONS', '/lookup'],
          ['OPTIONS', '/topic/create'],
          ['GET', '/ping/'],
          ['GET', '/PING'],
          ['GET', `/Lookup?topic=${topic}`],
          ['POST', `/topic/create/?topic=${topic}`],
          ['POST', '/Topic/Create'],
        ];
        for (const [method, path] of requests) {
          const [mine, theirs] = await Promise.all(both().map((t) => http(t.httpUrl, method, path)));
          expect({ request: `${method} ${path}`, ...mine }).toEqual({ request: `${method} ${path}`, ...theirs });
        }
      },
      TEST_TIMEOUT,
    );

    it(
      'HTTP: /topic/tombstone hides the producer from /lookup but not from /nodes, the same in both',
      async () => {
        const topic = uniqueName('tomb');
        const other = uniqueName('tomb-other');
        const results = [];
        for (const target of both()) {
          await openPeer(target.tcpAddress, [topic, other]);
          const before = await json<{ producers: unknown[] }>(target.httpUrl, `/lookup?topic=${topic}`);
          expect(before.producers).toHaveLength(1);
          const res = await http(target.httpUrl, 'POST', `/topic/tombstone?topic=${topic}&node=127.0.0.1:4151`);
          expect(res.status).toBe(200);
          const after = await json<{ channels: string[]; producers: unknown[] }>(target.httpUrl, `/lookup?topic=${topic}`);
          const otherLookup = await json<{ producers: unknown[] }>(target.httpUrl, `/lookup?topic=${other}`);
          const { producers } = await json<{ producers: NodeJson[] }>(target.httpUrl, '/nodes');
          const node = producers.find((p) => p.topics.includes(topic))!;
          const flags = Object.fromEntries(node.topics.map((t, i) => [t, node.tombstones[i]]));
          results.push({ after, other: otherLookup.producers.length, flags, keys: Object.keys(node) });
        }
        expect(results[0]).toEqual({
          after: { channels: [], producers: [] },
          other: 1,
          flags: { [topic]: true, [other]: false },
          keys: ['remote_address', 'hostname', 'broadcast_address', 'tcp_port', 'http_port', 'version', 'tombstones', 'topics'],
        });
        expect(results[0]).toEqual(results[1]);
      },
      TEST_TIMEOUT,
    );

    it(
      'TCP: the same bytes for good and malformed exchanges',
      async () => {
        const okIdentify = identify(NSQD_IDENTITY);
        const cases: Array<[string, Buffer[]]> = [
          ['bad magic', [Buffer.from('  V2')]],
          ['empty line', [MAGIC, Buffer.from('\n')]],
          ['unknown command', [MAGIC, Buffer.from('FOO bar\n')]],
          ['PING with spaces and CRLF', [MAGIC, Buffer.from('PING\n\t PING  \r\n')]],
          ['REGISTER before IDENTIFY', [MAGIC, Buffer.from('REGISTER t\n')]],
          ['UNREGISTER before IDENTIFY', [MAGIC, Buffer.from('UNREGISTER t c\n')]],
          ['IDENTIFY bad JSON', [MAGIC, identify('{bad')]],
          ['IDENTIFY missing fields', [MAGIC, identify({ broadcast_address: 'x' })]],
          ['IDENTIFY empty body', [MAGIC, identify('')]],
          ['IDENTIFY null', [MAGIC, identify('null')]],
          ['IDENTIFY array', [MAGIC, identify('[]')]],
          ['IDENTIFY fractional port', [MAGIC, identify('{"broadcast_address":"x","tcp_port":1.5,"http_port":2,"version":"1"}')]],
          ['IDENTIFY string port', [MAGIC, identify('{"broadcast_address":"x","tcp_port":"1","http_port":2,"version":"1"}')]],
          ['IDENTIFY keys in other case', [MAGIC, identify('{"BROADCAST_ADDRESS":"x","Tcp_Port":1,"http_port":2,"version":"1"}'), Buffer.from('PING\n')]],
          ['IDENTIFY twice', [MAGIC, okIdentify, identify({})]],
          ['REGISTER without params', [MAGIC, okIdentify, Buffer.from('REGISTER\n')]],
          ['REGISTER topic, channel, bad channel', [MAGIC, okIdentify, Buffer.from('REGISTER t\nREGISTER t c\nREGISTER t c!\n')]],
          ['REGISTER with two spaces', [MAGIC, okIdentify, Buffer.from('REGISTER  t\n')]],
          ['REGISTER bad topic', [MAGIC, okIdentify, Buffer.from('REGISTER t\u00e9\n', 'utf8')]],
          ['REGISTER extra params, UNREGISTER', [MAGIC, okIdentify, Buffer.from('REGISTER t c extra\nUNREGISTER t c\nUNREGISTER t\nUNREGISTER\n')]],
          ['IDENTIFY cut in the size', [MAGIC, Buffer.from('IDENTIFY\n\x00\x00', 'latin1')]],
          ['IDENTIFY cut in the body', [MAGIC, Buffer.from('IDENTIFY\n'), sizePrefix(16), Buffer.from('{}')]],
          ['partial last line', [MAGIC, Buffer.from('PING\nPIN')]],
          ['magic only', [MAGIC]],
          ['half a magic', [Buffer.from('  ')]],
        ];
        for (const [name, writes] of cases) {
          const [mine, theirs] = await Promise.all(both().map((t) => exchange(t.tcpAddress, writes)));
          expect({ name, closed: mine!.closed, responses: responses(mine!.data) }).toEqual({
            name,
            closed: theirs!.closed,
            responses: responses(theirs!.data),
          });
        }
        // and the IDENTIFY answer carries our own ports
        const { data } = await exchange(lookupd.tcpAddress, [MAGIC, okIdentify]);
        const answer = JSON.parse(data.subarray(4).toString()) as Record<string, unknown>;
        const [, tcpPort] = lookupd.tcpAddress.split(':');
        const [, httpPort] = lookupd.httpAddress.split(':');
        expect(answer).toMatchObject({ broadcast_address: '127.0.0.1', tcp_port: Number(tcpPort), http_port: Number(httpPort), version: '1.3.0' });
      },
      TEST_TIMEOUT,
    );
  },
  ['nsqlookupd'],
);

describe('our NSQLookupd under malformed TCP input', () => {
  it(
    'rejects what would crash or bloat nsqlookupd, handles trickled input, and keeps serving another peer',
    async () => {
      const lookupd = await startOurLookupd();
      const topic = uniqueName('survivor');
      const survivor = await openPeer(lookupd.tcpAddress, [topic]);
      const api = new LookupdHttpClient(`http://${lookupd.httpAddress}`);

      const negative = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.from('IDENTIFY\n'), sizePrefix(-1)], { halfClose: false });
      expect(negative.closed).toBe(true);
      expect(responses(negative.data)).toEqual(['E_BAD_BODY IDENTIFY invalid body size -1']);

      const huge = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.from('IDENTIFY\n'), sizePrefix(0x7fffffff)], { halfClose: false });
      expect(huge.closed).toBe(true);
      expect(responses(huge.data)).toEqual(['E_BAD_BODY IDENTIFY invalid body size 2147483647']);

      // a line with no end: closed once it passes 64 KiB, nothing buffered beyond that
      const endless = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.alloc(70 * 1024, 0x41)], { halfClose: false });
      expect(endless).toEqual({ data: Buffer.alloc(0), closed: true });

      // a long but complete line is just an unknown command
      const long = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.alloc(60 * 1024, 0x41), Buffer.from('\n')]);
      expect(responses(long.data)).toEqual([`E_INVALID invalid command ${'A'.repeat(60 * 1024)}`]);

      // one byte per write: IDENTIFY and REGISTER still parse
      const trickled = [...Buffer.concat([MAGIC, identify(NSQD_IDENTITY), Buffer.from(`REGISTER ${topic} trickled\nPING\n`)])].map((b) => Buffer.from([b]));
      const slow = await exchange(lookupd.tcpAddress, trickled);
      expect(responses(slow.data)).toEqual(['JSON keys broadcast_address,hostname,http_port,tcp_port,version', 'OK', 'OK']);

      // many commands in one write, answered in order
      const pipelined = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.from('PING\n'.repeat(1000))]);
      expect(responses(pipelined.data)).toHaveLength(1000);

      // binary garbage
      const garbage = await exchange(lookupd.tcpAddress, [MAGIC, Buffer.from([0, 1, 2, 0xff, 0xfe, 10])]);
      expect(garbage.closed).toBe(true);
      expect(responses(garbage.data)[0]).toMatch(/^E_INVALID invalid command /);

      expect(survivor.closed).toBe(false);
      expect(await survivor.command('PING')).toBe('OK');
      expect((await api.lookup(topic)).producers).toHaveLength(1);
      expect(await api.ping()).toBe(true);
    },
    TEST_TIMEOUT,
  );

  it(
    'LookupPeers registers with our NSQLookupd; close() drops every peer and is idempotent',
    async () => {
      const lookupd = await startOurLookupd();
      const topic = uniqueName('self');
      const peers = cleanup.track(
        new LookupPeers({
          addresses: [lookupd.tcpAddress],
          identify: { broadcast_address: '127.0.0.1', hostname: 'ts-nsqd', tcp_port: 14180, http_port: 14181, version: '1.3.0' },
          registrations: () => [{ topic, channel: 'c' }],
          logger: silentLogger,
        }),
      );
      const disconnects: string[] = [];
      peers.on('disconnect', ({ address }) => disconnects.push(address));
      peers.start();
      await waitFor(() => lookupd.channels(topic).includes('c'), 5000, 'registered');
      expect(lookupd.nodes()).toMatchObject([{ broadcast_address: '127.0.0.1', tcp_port: 14180, http_port: 14181, topics: [topic], tombstones: [false] }]);

      const httpAddress = lookupd.httpAddress;
      await Promise.all([lookupd.close(), lookupd.close()]);
      await lookupd.close();
      expect(lookupd.nodes()).toEqual([]);
      await waitFor(() => disconnects.length === 1, 5000, 'the peer saw the close');
      await expect(fetch(`http://${httpAddress}/ping`)).rejects.toThrow();
      expect(() => lookupd.tcpAddress).toThrow(/start\(\)/);
    },
    TEST_TIMEOUT,
  );
});
