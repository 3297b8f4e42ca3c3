/**
 * Third-party peers against our TypeScript broker (apps/broker, started as processes through the
 * shared harness with impl 'ts'):
 *
 * 1. nsqjs 0.13 (npm): Writer PUB / MPUB / DPUB; Reader with maxInFlight > 1, requeue, touch; a
 *    Reader discovering our nsqd through our nsqlookupd.
 * 2. to_nsq → our nsqd → nsq_tail discovering it through our nsqlookupd.
 * 3. our nsqd registering with the official nsqlookupd (the reverse, the official nsqd with our
 *    nsqlookupd, is in lookupd.test.ts).
 * 4. nsqadmin pointed at our nsqlookupd: nodes, topics, channels, depths and admin actions.
 * 5. nsq_stat against our nsqd and our nsqlookupd.
 *
 * These peers are the contract: when one of them disagrees with our broker the broker is wrong, so
 * a failing test attaches the broker's log (see `withLogs`) instead of being loosened.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import nsq, { type NsqjsBody, type NsqjsMessage, type NsqjsReader, type NsqjsWriter } from 'nsqjs';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { LookupdHttpClient, NsqdHttpClient } from '../../libs/nsq/src/client/http.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Cleanup, channelStats, sortedHex, topicStats, uniqueName, warmChannels } from '../support/client.js';
import { describeWithNsq } from '../support/nsq-bin.js';
import {
  startNsqd,
  startNsqlookupd,
  stopAll,
  type NsqdProcess,
  type NsqlookupdProcess,
  type NsqProcess,
} from '../support/processes.js';
import { runTool, startNsqadmin, startTool, stopTools, type ToolProcess, type ToolResult } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const TEST_TIMEOUT = 60_000;
/** Starting the Nest broker on a loaded 2-core machine takes a few seconds. */
const START_TIMEOUT = 60_000;
const BROKER_START_MS = 30_000;
const SERVER_VERSION = '1.3.0';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());
afterAll(async () => {
  await cleanup.run();
  await stopTools();
  await stopAll();
});

// ---------------------------------------------------------------------------------------------
// helpers

/** Our nsqlookupd and our nsqd registered with it, both broker processes. */
async function startOurCluster(): Promise<{ lookupd: NsqlookupdProcess; nsqd: NsqdProcess }> {
  const lookupd = await startNsqlookupd({ impl: 'ts', startTimeoutMs: BROKER_START_MS });
  const nsqd = await startNsqd({ impl: 'ts', lookupdTcpAddresses: [lookupd.tcpAddress], startTimeoutMs: BROKER_START_MS });
  return { lookupd, nsqd };
}

/** '127.0.0.1:port' of a process's HTTP listener (the Go tools take addresses without a scheme). */
function httpHostPort(p: NsqProcess): string {
  return new URL(p.httpAddress).host;
}

/**
 * Runs `fn`; when it fails, the error gets the tail of each process's log (our broker's, and the
 * tool's output for a ToolProcess), so the report shows what the broker did, not just the symptom.
 */
async function withLogs(procs: () => ReadonlyArray<NsqProcess | ToolProcess | undefined>, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const logs = procs()
      .filter((p): p is NsqProcess | ToolProcess => p !== undefined)
      .map((p) => {
        const [label, text] = 'kind' in p ? [`${p.label} (pid ${p.running ? p.pid : 'exited'})`, p.log()] : [p.name, p.output];
        return `--- ${label} log (last 4000 chars) ---\n${text.slice(-4000)}`;
      })
      .join('\n');
    const stackFrames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
    error.message = `${error.message}\n\n${logs}`;
    error.stack = [`${error.name}: ${error.message}`, ...stackFrames].join('\n');
    throw error;
  }
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

function expectOk(result: ToolResult, what: string): void {
  if (result.code !== 0) {
    throw new Error(`${what} exited with code ${result.code} (signal ${result.signal}):\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** The lines a tool printed (a trailing newline does not make an empty last line). */
function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

// nsqjs ------------------------------------------------------------------------------------------

type PublishCallback = (err?: Error | null) => void;
/**
 * nsqjs 0.13 has Writer.deferPublish (DPUB); test/bench/nsqjs.d.ts does not declare it. Despite its
 * docs it takes a one-element array: a bare body throws "Expect an array of messages".
 */
type DeferringWriter = NsqjsWriter & {
  deferPublish(topic: string, msg: readonly [NsqjsBody], timeMs: number, callback?: PublishCallback): void;
};

interface WriterHandle {
  writer: DeferringWriter;
  /** 'error' events while the writer was open. */
  errors: Error[];
}

async function connectWriter(nsqd: NsqdProcess): Promise<WriterHandle> {
  const writer = new nsq.Writer('127.0.0.1', nsqd.tcpPort) as DeferringWriter;
  const errors: Error[] = [];
  writer.on('error', (err: Error) => errors.push(err));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nsqjs Writer not ready within 10 s; errors: ${errors.map(String).join('; ')}`)), 10_000);
    writer.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  writer.connect();
  await ready;
  return { writer, errors };
}

function viaCallback(start: (cb: PublishCallback) => void, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within 10 s`)), 10_000);
    start((err) => {
      clearTimeout(timer);
      if (err) reject(new Error(`${what}: ${err.message}`, { cause: err }));
      else resolve();
    });
  });
}

/**
 * Closes the writer and returns the errors it reported on the way out. nsqjs's close() sends CLS,
 * which nsqd (1.3.0) answers on a producer connection with the fatal `E_INVALID cannot CLS in
 * current state`; that error, and only that one, is expected here.
 */
async function closeWriter(handle: WriterHandle): Promise<Error[]> {
  const { writer, errors } = handle;
  const before = errors.length;
  const closed = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5000);
    writer.once('closed', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  writer.close();
  await closed;
  return errors.slice(before);
}

interface NsqjsDelivery {
  id: string;
  body: string;
  attempts: number;
  at: number;
}

function startReader(topic: string, channel: string, options: Record<string, unknown>): { reader: NsqjsReader; errors: Error[] } {
  const reader = new nsq.Reader(topic, channel, options);
  const errors: Error[] = [];
  // an 'error' event without a listener would crash the Jest worker (nsqjs#72)
  reader.on('error', (err: Error) => errors.push(err));
  cleanup.add(() => reader.close());
  return { reader, errors };
}

// ---------------------------------------------------------------------------------------------
// 1. nsqjs

describe('nsqjs 0.13 against our broker (nsqd + nsqlookupd)', () => {
  let lookupd: NsqlookupdProcess | undefined;
  let nsqd: NsqdProcess;
  let api: NsqdHttpClient;
  const logs = (): Array<NsqProcess | undefined> => [nsqd, lookupd];

  beforeAll(async () => {
    ({ lookupd, nsqd } = await startOurCluster());
    api = new NsqdHttpClient(nsqd.httpAddress);
  }, START_TIMEOUT);

  it(
    'Writer publishes a single message (PUB), a list (MPUB) and a deferred one (DPUB)',
    () =>
      withLogs(logs, async () => {
        const topic = uniqueName('nsqjs-pub');
        await api.createTopic(topic);
        await api.createChannel(topic, 'ch');
        const handle = await connectWriter(nsqd);
        const { writer } = handle;

        await viaCallback((cb) => writer.publish(topic, 'single', cb), 'PUB');
        await viaCallback((cb) => writer.publish(topic, ['m1', Buffer.from('m2'), 'm3'], cb), 'MPUB');
        // long enough that it is certainly still deferred when the stats are read
        await viaCallback((cb) => writer.deferPublish(topic, ['deferred'], 60_000, cb), 'DPUB');
        expect(handle.errors).toEqual([]);

        const t = await topicStats(nsqd, topic);
        expect(t?.message_count).toBe(5);
        const ch = t?.channels.find((c) => c.channel_name === 'ch');
        expect({ depth: ch?.depth, deferred: ch?.deferred_count, inFlight: ch?.in_flight_count, count: ch?.message_count }).toEqual({
          depth: 4,
          deferred: 1,
          inFlight: 0,
          count: 5,
        });
        // nsqd lists a TCP client that published as a producer, with its user agent and per-topic count
        const stats = await api.stats({ topic });
        const producer = (stats.producers ?? []).find((p) => p.user_agent.startsWith('nsqjs/'));
        expect(producer?.pub_counts).toEqual([{ topic, count: 5 }]);

        const closeErrors = await closeWriter(handle);
        expect(closeErrors.map((e) => e.message).filter((m) => !m.startsWith('E_INVALID'))).toEqual([]);
      }),
    TEST_TIMEOUT,
  );

  it(
    'Reader (maxInFlight 5) gets every message, requeued once then finished, with the right attempts',
    () =>
      withLogs(logs, async () => {
        const topic = uniqueName('nsqjs-sub');
        const channel = 'nsqjs';
        // the deferred message below needs nsqd's deferred-queue scan to cover the new channel
        await warmChannels(nsqd, [[topic, channel]]);
        const base = await channelStats(nsqd, topic, channel);

        const handle = await connectWriter(nsqd);
        const deferMs = 1000;
        await viaCallback((cb) => handle.writer.publish(topic, 'one', cb), 'PUB');
        await viaCallback((cb) => handle.writer.publish(topic, ['two', 'three', 'four'], cb), 'MPUB');
        const deferredAt = Date.now();
        await viaCallback((cb) => handle.writer.deferPublish(topic, ['five'], deferMs, cb), 'DPUB');
        await closeWriter(handle);

        const deliveries: NsqjsDelivery[] = [];
        const finished: string[] = [];
        const { reader, errors } = startReader(topic, channel, { nsqdTCPAddresses: [nsqd.tcpAddress], maxInFlight: 5 });
        reader.on('message', (msg: NsqjsMessage) => {
          const body = msg.body.toString();
          deliveries.push({ id: msg.id, body, attempts: msg.attempts, at: Date.now() });
          if (msg.attempts === 1) {
            msg.requeue(0, false);
          } else {
            msg.finish();
            finished.push(body);
          }
        });
        reader.connect();

        await waitFor(() => finished.length >= 5, 20_000, 'nsqjs finished all five messages');
        expect([...finished].sort()).toEqual(['five', 'four', 'one', 'three', 'two']);
        for (const body of ['one', 'two', 'three', 'four', 'five']) {
          const mine = deliveries.filter((d) => d.body === body);
          expect({ body, attempts: mine.map((d) => d.attempts) }).toEqual({ body, attempts: [1, 2] });
          expect(mine[1]?.id).toBe(mine[0]?.id);
        }
        // DPUB: not handed out before its time (lower bound only; 50 ms for clock granularity)
        const firstFive = deliveries.find((d) => d.body === 'five');
        expect(firstFive!.at - deferredAt).toBeGreaterThanOrEqual(deferMs - 50);

        const ch = await waitFor(
          async () => {
            const c = await channelStats(nsqd, topic, channel);
            return c && c.in_flight_count === 0 && c.clients?.[0]?.finish_count === 5 ? c : undefined;
          },
          5000,
          'nsqd counted the five FINs',
        );
        expect({
          depth: ch.depth,
          deferred: ch.deferred_count,
          messages: ch.message_count - (base?.message_count ?? 0),
          requeued: ch.requeue_count - (base?.requeue_count ?? 0),
          timedOut: ch.timeout_count - (base?.timeout_count ?? 0),
        }).toEqual({ depth: 0, deferred: 0, messages: 5, requeued: 5, timedOut: 0 });
        const client = ch.clients?.[0];
        expect(client?.user_agent).toMatch(/^nsqjs\//);
        expect({ rdy: client?.ready_count, received: client?.message_count, fin: client?.finish_count, req: client?.requeue_count }).toEqual({
          rdy: 5,
          received: 10,
          fin: 5,
          req: 5,
        });
        expect(errors).toEqual([]);
      }),
    TEST_TIMEOUT,
  );

  it(
    'Reader: touch keeps a message past msg_timeout, while an untouched one times out and comes back',
    () =>
      withLogs(logs, async () => {
        const topic = uniqueName('nsqjs-touch');
        const channel = 'nsqjs';
        // the in-flight timeout scan must cover the channel for the untouched message to time out
        await warmChannels(nsqd, [[topic, channel]]);
        const base = await channelStats(nsqd, topic, channel);
        const producer = cleanup.producer(nsqd);
        await producer.publish(topic, 'touched');
        await producer.publish(topic, 'untouched');

        // touched every msgTimeoutMs / 8: a stall of most of msg_timeout does not make it time out
        const msgTimeoutMs = 2000;
        const holdMs = 2 * msgTimeoutMs;
        const deliveries: NsqjsDelivery[] = [];
        let held = 0;
        let maxHeld = 0;
        let touchedFinished = false;
        let untouchedBack = false;
        const timers: NodeJS.Timeout[] = [];
        cleanup.add(() => timers.forEach((t) => clearInterval(t)));
        const { reader, errors } = startReader(topic, channel, {
          nsqdTCPAddresses: [nsqd.tcpAddress],
          maxInFlight: 2,
          messageTimeout: msgTimeoutMs,
        });
        reader.on('message', (msg: NsqjsMessage) => {
          const body = msg.body.toString();
          deliveries.push({ id: msg.id, body, attempts: msg.attempts, at: Date.now() });
          maxHeld = Math.max(maxHeld, ++held);
          if (body === 'touched') {
            const touching = setInterval(() => msg.touch(), msgTimeoutMs / 8);
            timers.push(touching);
            timers.push(
              setTimeout(() => {
                clearInterval(touching);
                msg.finish();
                held--;
                touchedFinished = true;
              }, holdMs),
            );
          } else if (msg.attempts === 1) {
            // left unanswered: nsqd must time it out and deliver it again
          } else {
            held--;
            msg.finish();
            untouchedBack = true;
          }
        });
        reader.connect();

        await waitFor(() => touchedFinished && untouchedBack, 20_000, 'the touched message finished and the untouched one redelivered');
        const touched = deliveries.filter((d) => d.body === 'touched');
        const untouched = deliveries.filter((d) => d.body === 'untouched');
        expect(touched.map((d) => d.attempts)).toEqual([1]);
        expect(untouched.map((d) => d.attempts)).toEqual([1, 2]);
        expect(untouched[1]?.id).toBe(untouched[0]?.id);
        // both were in flight at once (maxInFlight 2)
        expect(maxHeld).toBeGreaterThanOrEqual(2);

        const ch = await waitFor(
          async () => {
            const c = await channelStats(nsqd, topic, channel);
            return c && c.in_flight_count === 0 ? c : undefined;
          },
          5000,
          'nothing left in flight',
        );
        expect({
          depth: ch.depth,
          timedOut: ch.timeout_count - (base?.timeout_count ?? 0),
          requeued: ch.requeue_count - (base?.requeue_count ?? 0),
          fin: ch.clients?.[0]?.finish_count,
        }).toEqual({ depth: 0, timedOut: 1, requeued: 0, fin: 2 });
        // the touched message's FIN was accepted: no E_FIN_FAILED / E_TOUCH_FAILED
        expect(errors).toEqual([]);
      }),
    TEST_TIMEOUT,
  );

  it(
    'Reader with lookupdHTTPAddresses finds our nsqd through our nsqlookupd',
    () =>
      withLogs(logs, async () => {
        const topic = uniqueName('nsqjs-lookup');
        await cleanup.producer(nsqd).publish(topic, 'found via lookupd');
        const lookup = new LookupdHttpClient(lookupd!.httpAddress);
        await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'our nsqd registered the topic with our lookupd');

        const connected: string[] = [];
        const got: string[] = [];
        const { reader, errors } = startReader(topic, 'nsqjs', { lookupdHTTPAddresses: [lookupd!.httpAddress], lookupdPollInterval: 1 });
        reader.on('nsqd_connected', (host: string, port: number) => connected.push(`${host}:${port}`));
        reader.on('message', (msg: NsqjsMessage) => {
          got.push(msg.body.toString());
          msg.finish();
        });
        reader.connect();

        await waitFor(() => got.length === 1, 15_000, 'nsqjs consumed the message');
        expect(got).toEqual(['found via lookupd']);
        expect(connected).toEqual([nsqd.tcpAddress]);
        expect(errors).toEqual([]);
      }),
    TEST_TIMEOUT,
  );
});

// ---------------------------------------------------------------------------------------------
// 2. to_nsq and nsq_tail

describeWithNsq(
  'to_nsq → our nsqd → nsq_tail through our nsqlookupd',
  () => {
    let lookupd: NsqlookupdProcess | undefined;
    let nsqd: NsqdProcess | undefined;

    beforeAll(async () => {
      ({ lookupd, nsqd } = await startOurCluster());
    }, START_TIMEOUT);

    it(
      'nsq_tail prints exactly the lines to_nsq read from stdin',
      () =>
        withLogs(
          () => [nsqd, lookupd],
          async () => {
            const topic = uniqueName('tail');
            const lines = [
              'hello',
              'a line with  spaces\tand a tab',
              '{"order":42,"items":["a","b"]}',
              'ünïcödé ✓ 日本語',
              ...Array.from({ length: 46 }, (_, i) => `line-${i}`),
            ];
            const pub = await runTool('to_nsq', [`--nsqd-tcp-address=${nsqd!.tcpAddress}`, `--topic=${topic}`], {
              input: `${lines.join('\n')}\n`,
            });
            expectOk(pub, 'to_nsq');
            // no channel yet: the topic holds every line
            const t = await topicStats(nsqd!, topic);
            expect({ messages: t?.message_count, depth: t?.depth }).toEqual({ messages: lines.length, depth: lines.length });

            const lookup = new LookupdHttpClient(lookupd!.httpAddress);
            await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'our nsqd registered the topic');

            const tail = await runTool('nsq_tail', [`--lookupd-http-address=${httpHostPort(lookupd!)}`, `--topic=${topic}`, `--n=${lines.length}`], {
              timeoutMs: 20_000,
            });
            expectOk(tail, 'nsq_tail');
            expect(sortedHex(linesOf(tail.stdout))).toEqual(sortedHex(lines));

            // nsq_tail's channel is ephemeral (tail<N>#ephemeral): gone with its last client, on
            // our nsqd and, through UNREGISTER, on our lookupd
            await waitFor(async () => (await topicStats(nsqd!, topic))?.channels.length === 0, 10_000, 'the ephemeral channel deleted on our nsqd');
            await waitFor(async () => (await lookup.channels(topic)).length === 0, 10_000, 'the ephemeral channel unregistered from our lookupd');
          },
        ),
      TEST_TIMEOUT,
    );
  },
  ['to_nsq', 'nsq_tail'],
);

// ---------------------------------------------------------------------------------------------
// 3. our nsqd with the official nsqlookupd

/** nsqlookupd's GET /debug: `<category>:<key>:<subkey>` → the producers in that registration. */
type LookupdDebug = Record<string, Array<{ tcp_port: number; http_port: number; broadcast_address: string }>>;

describeWithNsq(
  'our nsqd registered with the official nsqlookupd',
  () => {
    let goLookupd: NsqlookupdProcess;
    let nsqd: NsqdProcess | undefined;
    let lookup: LookupdHttpClient;
    let api: NsqdHttpClient;
    let tail: ToolProcess | undefined;
    const logs = (): Array<NsqProcess | undefined> => [nsqd, goLookupd];

    async function debugOf(): Promise<LookupdDebug> {
      const { status, body } = await getJson(`${goLookupd.httpAddress}/debug`);
      expect(status).toBe(200);
      return body as LookupdDebug;
    }

    beforeAll(async () => {
      goLookupd = await startNsqlookupd({ impl: 'go' });
      nsqd = await startNsqd({ impl: 'ts', lookupdTcpAddresses: [goLookupd.tcpAddress], startTimeoutMs: BROKER_START_MS });
      lookup = new LookupdHttpClient(goLookupd.httpAddress);
      api = new NsqdHttpClient(nsqd.httpAddress);
    }, START_TIMEOUT);

    it(
      "/lookup, /topics, /channels and /nodes show our node, its topics and channels",
      () =>
        withLogs(logs, async () => {
          const topic = uniqueName('golk');
          await api.createTopic(topic);
          await api.createChannel(topic, 'ch');
          await cleanup.producer(nsqd!).publish(topic, 'x');

          const found = await waitFor(
            async () => {
              const r = await lookup.lookup(topic);
              return r.producers.length === 1 && r.channels.includes('ch') ? r : undefined;
            },
            5000,
            'the official lookupd lists our nsqd and its channel for the topic',
          );
          const p = found.producers[0]!;
          expect({ broadcast: p.broadcast_address, tcp: p.tcp_port, http: p.http_port, version: p.version }).toEqual({
            broadcast: '127.0.0.1',
            tcp: nsqd!.tcpPort,
            http: nsqd!.httpPort,
            version: SERVER_VERSION,
          });
          expect(typeof p.hostname === 'string' && p.hostname.length > 0).toBe(true);
          expect(p.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
          expect(found.channels).toEqual(['ch']);

          expect(await lookup.topics()).toContain(topic);
          expect(await lookup.channels(topic)).toEqual(['ch']);

          const node = (await lookup.nodes()).find((n) => n.tcp_port === nsqd!.tcpPort);
          expect(node).toBeDefined();
          expect({ broadcast: node!.broadcast_address, http: node!.http_port, version: node!.version }).toEqual({
            broadcast: '127.0.0.1',
            http: nsqd!.httpPort,
            version: SERVER_VERSION,
          });
          expect(node!.topics).toContain(topic);
          expect(node!.tombstones).toEqual(node!.topics.map(() => false));
        }),
      TEST_TIMEOUT,
    );

    it(
      'our Consumer and nsq_tail find our nsqd through it and consume',
      () =>
        withLogs(
          () => [nsqd, goLookupd, tail],
          async () => {
            const topic = uniqueName('golk-consume');
            const producer = cleanup.producer(nsqd!);
            await producer.publishMany(topic, ['a', 'b', 'c']);
            await waitFor(async () => (await lookup.lookup(topic)).producers.length === 1, 5000, 'the topic registered');

            const got: string[] = [];
            const consumer = cleanup.track(
              new Consumer({
                topic,
                channel: 'ours',
                lookupdHTTPAddresses: [goLookupd.httpAddress],
                lookupdPollInterval: 200,
                lookupdPollJitter: 0,
                logger: silentLogger,
                handler: (msg) => void got.push(msg.body.toString()),
              }),
            );
            await consumer.start();
            expect(consumer.connectedAddresses()).toEqual([nsqd!.tcpAddress]);
            await waitFor(() => got.length === 3, 10_000, 'our Consumer got the three messages');
            expect([...got].sort()).toEqual(['a', 'b', 'c']);

            // nsq_tail's ephemeral channel only gets what is published once it has subscribed
            tail = startTool('nsq_tail', [`--lookupd-http-address=${httpHostPort(goLookupd)}`, `--topic=${topic}`, '--n=3']);
            const tailChannel = await waitFor(
              async () => (await topicStats(nsqd!, topic))?.channels.find((c) => /^tail\d+#ephemeral$/.test(c.channel_name) && c.client_count === 1),
              15_000,
              "nsq_tail's channel with its client on our nsqd",
            );
            await producer.publishMany(topic, ['x', 'y', 'z']);
            const result = await tail.waitForExit(20_000);
            expectOk(result, 'nsq_tail');
            expect(linesOf(result.stdout).sort()).toEqual(['x', 'y', 'z']);

            // the ephemeral channel dies with nsq_tail; UNREGISTER removes it from the official lookupd
            await waitFor(
              async () => !(await lookup.channels(topic)).includes(tailChannel.channel_name),
              10_000,
              `${tailChannel.channel_name} unregistered from the official lookupd`,
            );
            expect(await lookup.channels(topic)).toEqual(['ours']);
          },
        ),
      TEST_TIMEOUT,
    );

    it(
      'deleting a channel through our nsqd HTTP API sends UNREGISTER',
      () =>
        withLogs(logs, async () => {
          const topic = uniqueName('golk-unreg');
          await api.createTopic(topic);
          await api.createChannel(topic, 'gone');
          await api.createChannel(topic, 'kept');
          const key = `channel:${topic}:gone`;
          await waitFor(async () => (await debugOf())[key]?.some((p) => p.tcp_port === nsqd!.tcpPort), 5000, `${key} registered by our nsqd`);

          await api.deleteChannel(topic, 'gone');
          // nsqlookupd keeps the emptied registration of a non-ephemeral channel; /debug lists
          // only registrations that still have producers
          const debug = await waitFor(
            async () => {
              const d = await debugOf();
              return d[key] === undefined ? d : undefined;
            },
            5000,
            `${key} without producers after the delete`,
          );
          expect(debug[`channel:${topic}:kept`]?.map((p) => p.tcp_port)).toEqual([nsqd!.tcpPort]);
          expect(debug[`topic:${topic}:`]?.map((p) => p.tcp_port)).toEqual([nsqd!.tcpPort]);
        }),
      TEST_TIMEOUT,
    );

    it(
      'a SIGKILLed nsqd of ours disappears from /lookup and /nodes',
      async () => {
        // its own nsqd: the shared one stays up for the other tests
        const doomed = await startNsqd({ impl: 'ts', lookupdTcpAddresses: [goLookupd.tcpAddress], startTimeoutMs: BROKER_START_MS });
        await withLogs(
          () => [doomed, goLookupd],
          async () => {
            const topic = uniqueName('golk-kill');
            await new NsqdHttpClient(doomed.httpAddress).createTopic(topic);
            await waitFor(async () => (await lookup.lookup(topic)).producers.some((p) => p.tcp_port === doomed.tcpPort), 5000, 'registered');
            expect((await lookup.nodes()).some((n) => n.tcp_port === doomed.tcpPort)).toBe(true);

            await doomed.kill('SIGKILL');
            await waitFor(async () => (await lookup.lookup(topic)).producers.length === 0, 10_000, 'gone from /lookup');
            expect((await lookup.nodes()).some((n) => n.tcp_port === doomed.tcpPort)).toBe(false);
          },
        );
      },
      TEST_TIMEOUT,
    );
  },
  ['nsqlookupd', 'nsq_tail'],
);

// ---------------------------------------------------------------------------------------------
// 4. nsqadmin

interface AdminClient {
  client_id: string;
  user_agent: string;
  node: string;
  in_flight_count: number;
  ready_count: number;
  message_count: number;
  finish_count: number;
}
interface AdminChannel {
  node: string;
  topic_name: string;
  channel_name: string;
  depth: number;
  memory_depth: number;
  backend_depth: number;
  in_flight_count: number;
  deferred_count: number;
  requeue_count: number;
  timeout_count: number;
  message_count: number;
  client_count: number;
  paused: boolean;
  nodes: AdminChannel[];
  clients: AdminClient[] | null;
  message: string;
}
interface AdminTopic {
  node: string;
  topic_name: string;
  depth: number;
  memory_depth: number;
  backend_depth: number;
  message_count: number;
  paused: boolean;
  nodes: AdminTopic[] | null;
  channels: AdminChannel[] | null;
  message: string;
}
interface AdminNode {
  broadcast_address: string;
  hostname: string;
  tcp_port: number;
  http_port: number;
  version: string;
  out_of_date: boolean;
  topics: Array<{ topic: string; tombstoned: boolean }> | null;
}

describeWithNsq(
  'nsqadmin pointed at our nsqlookupd',
  () => {
    let lookupd: NsqlookupdProcess | undefined;
    let nsqd: NsqdProcess | undefined;
    let admin: ToolProcess | undefined;
    let adminUrl: string;
    let api: NsqdHttpClient;
    const logs = (): Array<NsqProcess | ToolProcess | undefined> => [nsqd, lookupd, admin];

    async function adminGet<T>(path: string): Promise<T> {
      const { status, body } = await getJson(`${adminUrl}${path}`);
      if (status !== 200) throw new Error(`nsqadmin GET ${path}: ${status} ${JSON.stringify(body)}`);
      return body as T;
    }

    async function adminSend(method: 'POST' | 'DELETE', path: string, body?: object): Promise<void> {
      const res = await fetch(`${adminUrl}${path}`, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      // a partial failure (one nsqd unreachable) is a 200 with a non-empty "message"
      const message = text ? ((JSON.parse(text) as { message?: string }).message ?? '') : '';
      if (res.status !== 200 || message !== '') throw new Error(`nsqadmin ${method} ${path} ${JSON.stringify(body)}: ${res.status} ${text}`);
    }

    beforeAll(async () => {
      ({ lookupd, nsqd } = await startOurCluster());
      api = new NsqdHttpClient(nsqd.httpAddress);
      const started = await startNsqadmin([`--lookupd-http-address=${httpHostPort(lookupd)}`]);
      admin = started.process;
      adminUrl = started.url;
    }, START_TIMEOUT);

    afterAll(async () => {
      await admin?.kill();
    });

    it(
      '/api/nodes, /api/topics, /api/topics/<t> and /api/topics/<t>/<c> show our node, topics, channels and depths',
      () =>
        withLogs(logs, async () => {
          const topic = uniqueName('admin');
          const lonely = uniqueName('admin-nochan');
          await api.createTopic(topic);
          await api.createChannel(topic, 'busy');
          await api.createChannel(topic, 'idle');
          const producer = cleanup.producer(nsqd!);
          await producer.publishMany(topic, Array.from({ length: 10 }, (_, i) => `m${i}`));
          await producer.publishMany(lonely, ['a', 'b', 'c', 'd']);

          // a consumer that never answers: 3 messages stay in flight on 'busy'
          const consumer = new Consumer({
            topic,
            channel: 'busy',
            nsqdTCPAddresses: [nsqd!.tcpAddress],
            maxInFlight: 3,
            userAgent: 'broker-peers-test/1.0',
            logger: silentLogger,
            handler: () => new Promise<void>(() => undefined),
          });
          cleanup.add(() => consumer.close(100));
          await consumer.start();
          await waitFor(async () => (await channelStats(nsqd!, topic, 'busy'))?.in_flight_count === 3, 10_000, '3 in flight on busy');
          const lookup = new LookupdHttpClient(lookupd!.httpAddress);
          await waitFor(
            async () => (await lookup.channels(topic)).length === 2 && (await lookup.lookup(lonely)).producers.length === 1,
            5000,
            'our lookupd knows both topics and the channels',
          );
          const nodeName = httpHostPort(nsqd!);

          const nodes = await adminGet<{ nodes: AdminNode[] | null; message: string }>('/api/nodes');
          expect(nodes.message).toBe('');
          const node = (nodes.nodes ?? []).find((n) => n.tcp_port === nsqd!.tcpPort);
          expect(node).toBeDefined();
          expect({ broadcast: node!.broadcast_address, http: node!.http_port, version: node!.version, outOfDate: node!.out_of_date }).toEqual({
            broadcast: '127.0.0.1',
            http: nsqd!.httpPort,
            version: SERVER_VERSION,
            outOfDate: false,
          });
          expect(node!.topics).toEqual(
            expect.arrayContaining([
              { topic, tombstoned: false },
              { topic: lonely, tombstoned: false },
            ]),
          );

          const topics = await adminGet<{ topics: string[] | null; message: string }>('/api/topics');
          expect(topics.message).toBe('');
          expect(topics.topics).toEqual(expect.arrayContaining([topic, lonely]));

          const t = await adminGet<AdminTopic>(`/api/topics/${topic}`);
          expect(t.message).toBe('');
          expect({ name: t.topic_name, depth: t.depth, messages: t.message_count, paused: t.paused }).toEqual({
            name: topic,
            depth: 0,
            messages: 10,
            paused: false,
          });
          expect((t.nodes ?? []).map((n) => n.node)).toEqual([nodeName]);
          const channels = Object.fromEntries(
            (t.channels ?? []).map((c) => [c.channel_name, { depth: c.depth, inFlight: c.in_flight_count, messages: c.message_count, clients: c.client_count }]),
          );
          expect(channels).toEqual({
            busy: { depth: 7, inFlight: 3, messages: 10, clients: 1 },
            idle: { depth: 10, inFlight: 0, messages: 10, clients: 0 },
          });

          const l = await adminGet<AdminTopic>(`/api/topics/${lonely}`);
          expect(l.message).toBe('');
          expect({ depth: l.depth, memory: l.memory_depth, backend: l.backend_depth, messages: l.message_count, channels: l.channels ?? [] }).toEqual({
            depth: 4,
            memory: 4,
            backend: 0,
            messages: 4,
            channels: [],
          });

          const c = await adminGet<AdminChannel>(`/api/topics/${topic}/busy`);
          expect(c.message).toBe('');
          expect({
            topic: c.topic_name,
            channel: c.channel_name,
            depth: c.depth,
            inFlight: c.in_flight_count,
            deferred: c.deferred_count,
            requeued: c.requeue_count,
            timedOut: c.timeout_count,
            messages: c.message_count,
            clientCount: c.client_count,
            paused: c.paused,
          }).toEqual({
            topic,
            channel: 'busy',
            depth: 7,
            inFlight: 3,
            deferred: 0,
            requeued: 0,
            timedOut: 0,
            messages: 10,
            clientCount: 1,
            paused: false,
          });
          expect(c.nodes.map((n) => n.node)).toEqual([nodeName]);
          expect(
            (c.clients ?? []).map((cl) => ({
              node: cl.node,
              userAgent: cl.user_agent,
              inFlight: cl.in_flight_count,
              rdy: cl.ready_count,
              messages: cl.message_count,
              fin: cl.finish_count,
            })),
          ).toEqual([{ node: nodeName, userAgent: 'broker-peers-test/1.0', inFlight: 3, rdy: 3, messages: 3, fin: 0 }]);
        }),
      TEST_TIMEOUT,
    );

    it(
      'actions through nsqadmin take effect on our nsqd: pause, unpause and empty channel and topic, delete channel',
      () =>
        withLogs(logs, async () => {
          const topic = uniqueName('admin-act');
          const lonely = uniqueName('admin-act-nochan');
          await api.createTopic(topic);
          await api.createChannel(topic, 'a');
          await api.createChannel(topic, 'b');
          const producer = cleanup.producer(nsqd!);
          await producer.publishMany(topic, ['1', '2', '3', '4', '5']);
          await producer.publishMany(lonely, ['1', '2']);
          const lookup = new LookupdHttpClient(lookupd!.httpAddress);
          await waitFor(
            async () => (await lookup.channels(topic)).length === 2 && (await lookup.lookup(lonely)).producers.length === 1,
            5000,
            'our lookupd knows the topics and channels',
          );

          await adminSend('POST', `/api/topics/${topic}/a`, { action: 'pause' });
          expect((await channelStats(nsqd!, topic, 'a'))?.paused).toBe(true);
          expect((await adminGet<AdminChannel>(`/api/topics/${topic}/a`)).paused).toBe(true);
          await adminSend('POST', `/api/topics/${topic}/a`, { action: 'unpause' });
          expect((await channelStats(nsqd!, topic, 'a'))?.paused).toBe(false);

          await adminSend('POST', `/api/topics/${topic}/a`, { action: 'empty' });
          expect((await channelStats(nsqd!, topic, 'a'))?.depth).toBe(0);
          expect((await channelStats(nsqd!, topic, 'b'))?.depth).toBe(5);

          await adminSend('POST', `/api/topics/${topic}`, { action: 'pause' });
          expect((await topicStats(nsqd!, topic))?.paused).toBe(true);
          expect((await adminGet<AdminTopic>(`/api/topics/${topic}`)).paused).toBe(true);
          await adminSend('POST', `/api/topics/${topic}`, { action: 'unpause' });
          expect((await topicStats(nsqd!, topic))?.paused).toBe(false);

          await adminSend('POST', `/api/topics/${lonely}`, { action: 'empty' });
          expect((await topicStats(nsqd!, lonely))?.depth).toBe(0);

          await adminSend('DELETE', `/api/topics/${topic}/b`);
          expect((await topicStats(nsqd!, topic))?.channels.map((ch) => ch.channel_name)).toEqual(['a']);
          await waitFor(async () => (await lookup.channels(topic)).join() === 'a', 5000, 'channel b gone from our lookupd');
        }),
      TEST_TIMEOUT,
    );
  },
  ['nsqadmin'],
);

// ---------------------------------------------------------------------------------------------
// 5. nsq_stat

describeWithNsq(
  'nsq_stat against our broker',
  () => {
    let lookupd: NsqlookupdProcess | undefined;
    let nsqd: NsqdProcess | undefined;

    beforeAll(async () => {
      ({ lookupd, nsqd } = await startOurCluster());
    }, START_TIMEOUT);

    it(
      'prints the channel stats line, from our nsqd and through our nsqlookupd',
      () =>
        withLogs(
          () => [nsqd, lookupd],
          async () => {
            const topic = uniqueName('stat');
            const api = new NsqdHttpClient(nsqd!.httpAddress);
            await api.createTopic(topic);
            await api.createChannel(topic, 'ch');
            await cleanup.producer(nsqd!).publishMany(topic, ['1', '2', '3', '4', '5', '6']);
            const lookup = new LookupdHttpClient(lookupd!.httpAddress);
            await waitFor(async () => (await lookup.lookup(topic)).channels.includes('ch'), 5000, 'registered with our lookupd');

            for (const source of [`--nsqd-http-address=${httpHostPort(nsqd!)}`, `--lookupd-http-address=${httpHostPort(lookupd!)}`]) {
              const result = await runTool('nsq_stat', [source, `--topic=${topic}`, '--channel=ch', '--count=1', '--interval=200ms']);
              expectOk(result, `nsq_stat ${source}`);
              const lines = linesOf(result.stdout);
              expect(lines.slice(0, 2).map((l) => l.replace(/\s+/g, ' ').trim())).toEqual([
                '------rate------+----------------depth----------------+--------------metadata---------------',
                'ingress egress | total mem disk inflt def | req t-o msgs clients',
              ]);
              // ingress egress | total mem disk inflt def | req t-o msgs clients
              const numbers = lines[2]?.replace('|', ' ').replace('|', ' ').trim().split(/\s+/).map(Number);
              expect({ source, numbers }).toEqual({ source, numbers: [0, 0, 6, 6, 0, 0, 0, 0, 0, 6, 0] });
              expect(result.stderr).not.toMatch(/ERROR/);
            }
          },
        ),
      TEST_TIMEOUT,
    );
  },
  ['nsq_stat'],
);
