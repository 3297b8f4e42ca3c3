/**
 * Client benchmark: our Producer/Consumer against nsqjs 0.13, on the official nsqd (1.3.0).
 *
 *   npm run bench:client                      # table on stdout, progress on stderr
 *   npm run -s bench:client -- --json         # only {"figures":[...]} on stdout
 *
 * Workloads (each client gets a fresh topic per measurement; clients alternate, first one swapped
 * every run; a warm-up of each client per workload first):
 *   pub      single PUB, a sliding window of `--window` (1,000) publishes outstanding
 *   mpub     MPUB of `--batch` (200) messages, `--batches` (5) batches outstanding
 *   consume  a channel prefilled with `--messages` messages (our MPUB), consumed with maxInFlight
 *            `--max-in-flight` (2,500) until every message was received and finished
 *
 * Flags: --messages N (200000) --size N (200) --runs N (3) --warmup N (20000) --window N (1000)
 *        --batch N (200) --batches N (5) --max-in-flight N (2500) --only pub,pub-single,mpub,consume
 *        --output-buffer-timeout MS (IDENTIFY output_buffer_timeout of both consumers; default: nsqd's
 *          250 ms, which also quantizes the consume time: the last partial buffer waits for the tick)
 *        --stat best|median (best) --json --strict (exit 1 when a target ratio is missed)
 *        --go (also run the official bench_writer/bench_reader) --go-runfor 5s
 *
 * Exits non-zero on any error (count mismatch, publish error, timeout). nsqd is started here
 * (127.0.0.1, OS-picked ports, temp --data-path, --mem-queue-size=1000000) and killed by PID at the
 * end, on failure and on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import nsq, { type NsqjsMessage } from 'nsqjs';
import { Consumer, NsqdHttpClient, type NsqdTopicStats, Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { nsqBinary } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd, stopAll } from '../support/processes.js';
import { sleep } from '../support/wait.js';

type Workload = 'pub' | 'pub-single' | 'mpub' | 'consume';
type Client = 'ours' | 'nsqjs';
const WORKLOADS: readonly Workload[] = ['pub', 'pub-single', 'mpub', 'consume'];
// pub-single has no target: it shows what one connection of single PUB frames gets (nsqd answers
// every PUB with its own flushed OK, which caps it), next to the default, coalescing Producer.
const TARGETS: Record<Workload, number> = { pub: 3, 'pub-single': 0, mpub: 2.5, consume: 3 };
const LABELS: Record<Workload, string> = {
  pub: 'PUB (window {window})',
  'pub-single': 'PUB, coalescing off (window {window})',
  mpub: 'MPUB x{batch} ({batches} outstanding)',
  consume: 'consume (maxInFlight {maxInFlight})',
};
/** Bound for one measurement; a stalled client fails the run instead of hanging it. */
const MEASURE_TIMEOUT_MS = 120_000;

interface Args {
  messages: number;
  size: number;
  runs: number;
  warmup: number;
  window: number;
  batch: number;
  batches: number;
  maxInFlight: number;
  /** IDENTIFY output_buffer_timeout (ms) for both consumers; undefined = each client's default (nsqd's 250 ms). */
  outputBufferTimeout: number | undefined;
  only: Workload[];
  stat: 'best' | 'median';
  json: boolean;
  strict: boolean;
  go: boolean;
  goRunfor: string;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    messages: 200_000,
    size: 200,
    runs: 3,
    warmup: 20_000,
    window: 1000,
    batch: 200,
    batches: 5,
    maxInFlight: 2500,
    outputBufferTimeout: undefined,
    only: [...WORKLOADS],
    stat: 'best',
    json: false,
    strict: false,
    go: false,
    goRunfor: '5s',
  };
  const ints: Record<string, keyof Args> = {
    '--messages': 'messages',
    '--size': 'size',
    '--runs': 'runs',
    '--warmup': 'warmup',
    '--window': 'window',
    '--batch': 'batch',
    '--batches': 'batches',
    '--max-in-flight': 'maxInFlight',
    '--output-buffer-timeout': 'outputBufferTimeout',
  };
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.indexOf('=');
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (eq > 0) return raw.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    const intKey = ints[flag];
    if (intKey) {
      const text = value();
      const n = Number(text);
      const min = intKey === 'warmup' ? 0 : 1;
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
      (args as unknown as Record<string, number>)[intKey] = n;
      continue;
    }
    switch (flag) {
      case '--json':
        args.json = true;
        break;
      case '--strict':
        args.strict = true;
        break;
      case '--go':
        args.go = true;
        break;
      case '--go-runfor':
        args.goRunfor = value();
        break;
      case '--stat': {
        const s = value();
        if (s !== 'best' && s !== 'median') throw new Error(`--stat must be best or median, got ${JSON.stringify(s)}`);
        args.stat = s;
        break;
      }
      case '--only': {
        const list = value().split(',').map((w) => w.trim()).filter(Boolean);
        for (const w of list) {
          if (!WORKLOADS.includes(w as Workload)) throw new Error(`--only: unknown workload ${JSON.stringify(w)} (pub, pub-single, mpub, consume)`);
        }
        args.only = WORKLOADS.filter((w) => list.includes(w));
        break;
      }
      case '--help':
      case '-h':
        process.stderr.write(`usage: node dist/test/bench/client.bench.js [--messages N] [--size N] [--runs N] [--warmup N] [--window N]
  [--batch N] [--batches N] [--max-in-flight N] [--output-buffer-timeout MS] [--only pub,pub-single,mpub,consume] [--stat best|median] [--json] [--strict]
  [--go] [--go-runfor 5s]\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${JSON.stringify(raw)} (try --help)`);
    }
  }
  if (args.messages % args.batch !== 0) {
    throw new Error(`--messages (${args.messages}) must be a multiple of --batch (${args.batch})`);
  }
  if (args.warmup % args.batch !== 0) args.warmup -= args.warmup % args.batch;
  return args;
}

// ---------------------------------------------------------------------------------------------
// nsqd helpers (HTTP API)

class Nsqd {
  readonly http: NsqdHttpClient;

  constructor(readonly proc: NsqdProcess) {
    this.http = new NsqdHttpClient(proc.httpAddress, { timeoutMs: 10_000 });
  }

  get tcpAddress(): string {
    return this.proc.tcpAddress;
  }
  get tcpPort(): number {
    return this.proc.tcpPort;
  }

  createTopic(topic: string): Promise<void> {
    return this.http.createTopic(topic);
  }

  createChannel(topic: string, channel: string): Promise<void> {
    return this.http.createChannel(topic, channel);
  }

  deleteTopic(topic: string): Promise<void> {
    return this.http.deleteTopic(topic);
  }

  async topicStats(topic: string): Promise<NsqdTopicStats> {
    const stats = await this.http.stats({ topic, includeClients: false });
    const found = stats.topics.find((t) => t.topic_name === topic);
    if (!found) throw new Error(`nsqd /stats has no topic ${topic}`);
    return found;
  }
}

// ---------------------------------------------------------------------------------------------
// measurement plumbing

interface Context {
  args: Args;
  nsqd: Nsqd;
  body: Buffer;
  batch: Buffer[];
  seq: number;
}

function freshTopic(ctx: Context, workload: Workload, client: Client | 'go'): string {
  return `bench_${workload}_${client}_${process.pid}_${ctx.seq++}`;
}

function withTimeout<T>(promise: Promise<T>, what: string, ms = MEASURE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function once(emitter: NodeJS.EventEmitter, event: string, what: string, ms = 10_000): Promise<unknown[]> {
  return withTimeout(
    new Promise<unknown[]>((resolve, reject) => {
      const onEvent = (...values: unknown[]): void => {
        emitter.off('error', onError);
        resolve(values);
      };
      const onError = (error: unknown): void => {
        emitter.off(event, onEvent);
        reject(error instanceof Error ? error : new Error(String(error)));
      };
      emitter.once(event, onEvent);
      if (event !== 'error') emitter.once('error', onError);
    }),
    what,
    ms,
  );
}

/**
 * Runs `count` operations keeping `window` outstanding: `start(onDone)` begins one operation and
 * must call `onDone(error?)` exactly once when it completes.
 */
function slidingWindow(count: number, window: number, start: (onDone: (error?: Error | null) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let started = 0;
    let done = 0;
    let failed = false;
    const onDone = (error?: Error | null): void => {
      if (failed) return;
      if (error) {
        failed = true;
        reject(error);
        return;
      }
      done++;
      if (started < count) {
        started++;
        start(onDone);
      } else if (done === count) {
        resolve();
      }
    };
    const first = Math.min(window, count);
    for (let i = 0; i < first; i++) {
      started++;
      start(onDone);
    }
    if (count === 0) resolve();
  });
}

/** After a publish workload: nsqd must hold exactly `expected` messages on the topic. */
async function verifyPublished(ctx: Context, topic: string, expected: number, who: string): Promise<void> {
  const stats = await ctx.nsqd.topicStats(topic);
  if (stats.message_count !== expected) {
    throw new Error(`${who}: nsqd counted ${stats.message_count} messages on ${topic}, expected ${expected}`);
  }
  if (stats.backend_depth > 0) warn(`${who}: ${stats.backend_depth} messages spilled to disk on ${topic} (raise --mem-queue-size)`);
}

function warn(text: string): void {
  process.stderr.write(`warning: ${text}\n`);
}

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// PUB

async function pubOurs(ctx: Context, count: number, coalescePublishes = true): Promise<number> {
  const { nsqd, body, args } = ctx;
  const topic = freshTopic(ctx, 'pub', 'ours');
  await nsqd.createTopic(topic);
  const producer = new Producer(nsqd.tcpAddress, {
    maxOutstanding: Math.max(1000, args.window),
    coalescePublishes,
    logger: silentLogger,
  });
  try {
    await producer.connect();
    const t0 = performance.now();
    await withTimeout(
      slidingWindow(count, args.window, (onDone) => {
        producer.publish(topic, body).then(() => onDone(), onDone);
      }),
      'ours pub',
    );
    const ms = performance.now() - t0;
    await verifyPublished(ctx, topic, count, 'ours pub');
    return (count / ms) * 1000;
  } finally {
    await producer.close();
    await nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

async function connectWriter(ctx: Context): Promise<InstanceType<typeof nsq.Writer>> {
  const writer = new nsq.Writer('127.0.0.1', ctx.nsqd.tcpPort);
  const ready = once(writer, 'ready', 'nsqjs Writer connect');
  writer.connect();
  await ready;
  return writer;
}

async function closeWriter(writer: InstanceType<typeof nsq.Writer>): Promise<void> {
  const closed = once(writer, 'closed', 'nsqjs Writer close', 5000).catch(() => undefined);
  // nsqjs's close() sends CLS, which nsqd answers with E_INVALID for a producer: ignore errors now.
  writer.removeAllListeners('error');
  writer.on('error', () => undefined);
  writer.close();
  await closed;
}

/** Rejects as soon as the nsqjs emitter reports an error, in parallel with the workload. */
function errorsOf(emitter: NodeJS.EventEmitter, who: string): { promise: Promise<never>; dispose(): void } {
  let onError: (error: unknown) => void = () => undefined;
  const promise = new Promise<never>((_, reject) => {
    onError = (error: unknown) => reject(new Error(`${who}: ${error instanceof Error ? error.message : String(error)}`));
    emitter.on('error', onError);
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => emitter.off('error', onError) };
}

async function pubNsqjs(ctx: Context, count: number): Promise<number> {
  const { nsqd, body, args } = ctx;
  const topic = freshTopic(ctx, 'pub', 'nsqjs');
  await nsqd.createTopic(topic);
  const writer = await connectWriter(ctx);
  const errors = errorsOf(writer, 'nsqjs pub');
  try {
    const t0 = performance.now();
    await withTimeout(
      Promise.race([
        slidingWindow(count, args.window, (onDone) => writer.publish(topic, body, onDone)),
        errors.promise,
      ]),
      'nsqjs pub',
    );
    const ms = performance.now() - t0;
    await verifyPublished(ctx, topic, count, 'nsqjs pub');
    return (count / ms) * 1000;
  } finally {
    errors.dispose();
    await closeWriter(writer);
    await nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// MPUB

async function mpubOurs(ctx: Context, count: number): Promise<number> {
  const { nsqd, batch, args } = ctx;
  const topic = freshTopic(ctx, 'mpub', 'ours');
  await nsqd.createTopic(topic);
  const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
  try {
    await producer.connect();
    const t0 = performance.now();
    await withTimeout(
      slidingWindow(count / args.batch, args.batches, (onDone) => {
        producer.publishMany(topic, batch).then(() => onDone(), onDone);
      }),
      'ours mpub',
    );
    const ms = performance.now() - t0;
    await verifyPublished(ctx, topic, count, 'ours mpub');
    return (count / ms) * 1000;
  } finally {
    await producer.close();
    await nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

async function mpubNsqjs(ctx: Context, count: number): Promise<number> {
  const { nsqd, batch, args } = ctx;
  const topic = freshTopic(ctx, 'mpub', 'nsqjs');
  await nsqd.createTopic(topic);
  const writer = await connectWriter(ctx);
  const errors = errorsOf(writer, 'nsqjs mpub');
  try {
    const t0 = performance.now();
    await withTimeout(
      Promise.race([
        slidingWindow(count / args.batch, args.batches, (onDone) => writer.publish(topic, batch, onDone)),
        errors.promise,
      ]),
      'nsqjs mpub',
    );
    const ms = performance.now() - t0;
    await verifyPublished(ctx, topic, count, 'nsqjs mpub');
    return (count / ms) * 1000;
  } finally {
    errors.dispose();
    await closeWriter(writer);
    await nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// consume

const CHANNEL = 'bench';

/** A fresh topic with its channel, holding `count` messages in memory (published with our MPUB). */
async function prefill(ctx: Context, client: Client, count: number): Promise<string> {
  const { nsqd, batch, args } = ctx;
  const topic = freshTopic(ctx, 'consume', client);
  await nsqd.createTopic(topic);
  await nsqd.createChannel(topic, CHANNEL);
  const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
  try {
    await producer.connect();
    await withTimeout(
      slidingWindow(count / args.batch, 20, (onDone) => {
        producer.publishMany(topic, batch).then(() => onDone(), onDone);
      }),
      'prefill',
    );
  } finally {
    await producer.close();
  }
  // The topic's pump moves the messages to the channel asynchronously: wait until all are there.
  const deadline = Date.now() + 30_000;
  while (true) {
    const stats = await nsqd.topicStats(topic);
    const channel = stats.channels.find((c) => c.channel_name === CHANNEL);
    if (channel && channel.depth === count) {
      if (channel.backend_depth > 0) warn(`prefill: ${channel.backend_depth} messages spilled to disk on ${topic}`);
      return topic;
    }
    if (Date.now() > deadline) {
      throw new Error(`prefill: channel ${topic}/${CHANNEL} has depth ${channel?.depth ?? 'none'}, expected ${count}`);
    }
    await sleep(20);
  }
}

/** After consuming: nothing left, nothing in flight, nothing requeued or timed out. */
async function verifyConsumed(ctx: Context, topic: string, who: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const stats = await ctx.nsqd.topicStats(topic);
    const c = stats.channels.find((ch) => ch.channel_name === CHANNEL);
    if (!c) throw new Error(`${who}: channel ${topic}/${CHANNEL} is gone`);
    if (c.requeue_count > 0 || c.timeout_count > 0) {
      throw new Error(`${who}: nsqd reports ${c.requeue_count} requeued / ${c.timeout_count} timed-out messages on ${topic}/${CHANNEL}`);
    }
    // FINs written before the timer stopped may still be in nsqd's read buffer for a moment.
    if (c.depth === 0 && c.in_flight_count === 0 && c.deferred_count === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`${who}: channel ${topic}/${CHANNEL} still has depth ${c.depth}, in flight ${c.in_flight_count}, deferred ${c.deferred_count}`);
    }
    await sleep(20);
  }
}

async function consumeOurs(ctx: Context, count: number): Promise<number> {
  const topic = await prefill(ctx, 'ours', count);
  let received = 0;
  let signalDone: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (signalDone = resolve));
  const consumer = new Consumer({
    topic,
    channel: CHANNEL,
    nsqdTCPAddresses: [ctx.nsqd.tcpAddress],
    maxInFlight: ctx.args.maxInFlight,
    ...(ctx.args.outputBufferTimeout === undefined ? {} : { outputBufferTimeout: ctx.args.outputBufferTimeout }),
    logger: silentLogger,
    handler: () => {
      // resolve → FIN
      if (++received === count) setImmediate(signalDone);
    },
  });
  const errors = errorsOf(consumer, 'ours consume');
  try {
    const t0 = performance.now();
    await consumer.start();
    await withTimeout(Promise.race([allDone, errors.promise]), `ours consume (received ${received})`);
    const ms = performance.now() - t0;
    const stats = consumer.stats();
    if (stats.finished !== count || stats.requeued !== 0) {
      throw new Error(`ours consume: finished ${stats.finished}, requeued ${stats.requeued}, expected ${count} finished`);
    }
    await verifyConsumed(ctx, topic, 'ours consume');
    if (received !== count) throw new Error(`ours consume: received ${received} messages, expected ${count}`);
    return (count / ms) * 1000;
  } finally {
    errors.dispose();
    await consumer.close();
    await ctx.nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

async function consumeNsqjs(ctx: Context, count: number): Promise<number> {
  const topic = await prefill(ctx, 'nsqjs', count);
  let received = 0;
  let signalDone: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (signalDone = resolve));
  const reader = new nsq.Reader(topic, CHANNEL, {
    nsqdTCPAddresses: [ctx.nsqd.tcpAddress],
    maxInFlight: ctx.args.maxInFlight,
    ...(ctx.args.outputBufferTimeout === undefined ? {} : { outputBufferTimeout: ctx.args.outputBufferTimeout }),
  });
  reader.on('message', (msg: NsqjsMessage) => {
    msg.finish();
    if (++received === count) setImmediate(signalDone);
  });
  const errors = errorsOf(reader, 'nsqjs consume');
  let connected = false;
  reader.once('nsqd_connected', () => (connected = true));
  try {
    const t0 = performance.now();
    reader.connect();
    await withTimeout(Promise.race([allDone, errors.promise]), `nsqjs consume (received ${received})`);
    const ms = performance.now() - t0;
    await verifyConsumed(ctx, topic, 'nsqjs consume');
    if (received !== count) throw new Error(`nsqjs consume: received ${received} messages, expected ${count}`);
    return (count / ms) * 1000;
  } finally {
    errors.dispose();
    reader.on('error', () => undefined);
    const closed = connected ? once(reader, 'nsqd_closed', 'nsqjs Reader close', 5000).catch(() => undefined) : Promise.resolve();
    reader.close();
    await closed;
    await ctx.nsqd.deleteTopic(topic).catch(() => undefined);
  }
}

const RUNNERS: Record<Workload, Record<Client, (ctx: Context, count: number) => Promise<number>>> = {
  pub: { ours: pubOurs, nsqjs: pubNsqjs },
  'pub-single': { ours: (ctx, count) => pubOurs(ctx, count, false), nsqjs: pubNsqjs },
  mpub: { ours: mpubOurs, nsqjs: mpubNsqjs },
  consume: { ours: consumeOurs, nsqjs: consumeNsqjs },
};

// ---------------------------------------------------------------------------------------------
// the official Go benchmarks (optional, for scale)

const goChildren = new Set<ChildProcess>();

function runGo(name: 'bench_writer' | 'bench_reader', argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(nsqBinary(name), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    goChildren.add(child);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.once('error', (error) => {
      goChildren.delete(child);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      goChildren.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${name} exited with ${code ?? signal}: ${out.trim()}`));
    });
  });
}

async function goBench(ctx: Context): Promise<string[]> {
  const { nsqd, args } = ctx;
  const topic = freshTopic(ctx, 'pub', 'go');
  const common = [`--nsqd-tcp-address=${nsqd.tcpAddress}`, `--topic=${topic}`, `--size=${args.size}`, `--runfor=${args.goRunfor}`];
  const lines: string[] = [];
  const pick = (text: string): string =>
    text
      .split('\n')
      .filter((l) => l.includes('ops/s'))
      .map((l) => l.replace(/^\[\w+\] \S+ \S+ /, ''))
      .join(' | ') || text.trim();
  try {
    progress(`go: bench_writer ${common.slice(2).join(' ')} --batch-size=${args.batch}`);
    lines.push(`bench_writer (batch ${args.batch}): ${pick(await runGo('bench_writer', [...common, `--batch-size=${args.batch}`]))}`);
    progress(`go: bench_reader ${common.slice(2).join(' ')} --rdy=${args.maxInFlight}`);
    lines.push(
      `bench_reader (rdy ${args.maxInFlight}): ${pick(await runGo('bench_reader', [...common, '--channel=ch', `--rdy=${args.maxInFlight}`]))}`,
    );
  } finally {
    await nsqd.deleteTopic(topic).catch(() => undefined);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// main

interface Figure {
  name: Workload;
  ours: number;
  peer: 'nsqjs';
  peerValue: number;
  ratio: number;
}

function summarize(values: readonly number[], stat: 'best' | 'median'): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (stat === 'best') return sorted[sorted.length - 1]!;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function fmtRate(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r, ri) => {
      const line = r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const proc = await startNsqd({ args: ['--mem-queue-size=1000000'] });
  const nsqd = new Nsqd(proc);
  const body = Buffer.alloc(args.size);
  for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
  const ctx: Context = { args, nsqd, body, batch: new Array<Buffer>(args.batch).fill(body), seq: 0 };
  progress(
    `nsqd ${proc.tcpAddress} (pid ${proc.pid}); ${args.messages} messages of ${args.size} B, ${args.runs} run(s), ` +
      `warm-up ${args.warmup}, node ${process.version}`,
  );

  const figures: Figure[] = [];
  const samples: Record<string, { ours: number[]; nsqjs: number[] }> = {};
  for (const workload of args.only) {
    const runner = RUNNERS[workload];
    if (args.warmup > 0) {
      for (const client of ['ours', 'nsqjs'] as const) {
        const rate = await runner[client](ctx, args.warmup);
        progress(`${workload} warm-up ${client}: ${fmtRate(rate)} msgs/s`);
      }
    }
    const s = (samples[workload] = { ours: [] as number[], nsqjs: [] as number[] });
    for (let run = 0; run < args.runs; run++) {
      const order: readonly Client[] = run % 2 === 0 ? ['ours', 'nsqjs'] : ['nsqjs', 'ours'];
      for (const client of order) {
        const rate = await runner[client](ctx, args.messages);
        s[client].push(rate);
        progress(`${workload} run ${run + 1}/${args.runs} ${client}: ${fmtRate(rate)} msgs/s`);
      }
    }
    const ours = summarize(s.ours, args.stat);
    const peerValue = summarize(s.nsqjs, args.stat);
    figures.push({ name: workload, ours, peer: 'nsqjs', peerValue, ratio: ours / peerValue });
  }

  const goLines = args.go ? await goBench(ctx) : [];
  const missed = figures.filter((f) => f.ratio < TARGETS[f.name]);

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ figures })}\n`);
  } else {
    const label = (w: Workload): string =>
      LABELS[w]
        .replace('{window}', args.window.toLocaleString('en-US'))
        .replace('{batch}', String(args.batch))
        .replace('{batches}', String(args.batches))
        .replace('{maxInFlight}', String(args.maxInFlight));
    const rows = [
      ['workload', `ours msgs/s (${args.stat})`, `nsqjs msgs/s (${args.stat})`, 'ours/nsqjs', 'target', '', 'ours runs', 'nsqjs runs'],
      ...figures.map((f) => [
        label(f.name),
        fmtRate(f.ours),
        fmtRate(f.peerValue),
        `${f.ratio.toFixed(2)}x`,
        TARGETS[f.name] > 0 ? `>= ${TARGETS[f.name]}x` : '-',
        TARGETS[f.name] > 0 ? (f.ratio >= TARGETS[f.name] ? 'PASS' : 'FAIL') : '',
        samples[f.name]!.ours.map((v) => (v / 1000).toFixed(0) + 'k').join(' '),
        samples[f.name]!.nsqjs.map((v) => (v / 1000).toFixed(0) + 'k').join(' '),
      ]),
    ];
    process.stdout.write(
      `\nNSQ client benchmark: ${args.messages.toLocaleString('en-US')} messages of ${args.size} B, nsqd 127.0.0.1 (mem queue), ` +
        `${args.stat} of ${args.runs} run(s), node ${process.version}\n\n${table(rows)}\n`,
    );
    if (goLines.length > 0) process.stdout.write(`\nofficial Go benchmarks (for scale):\n${goLines.map((l) => `  ${l}`).join('\n')}\n`);
    process.stdout.write(
      missed.length === 0 ? '\nall targets met\n' : `\ntargets missed: ${missed.map((f) => f.name).join(', ')}\n`,
    );
  }
  return args.strict && missed.length > 0 ? 1 : 0;
}

let cleaningUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const child of goChildren) {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    await stopAll();
  })();
  return cleaningUp;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping nsqd\n`);
    void cleanup().finally(() => process.exit(130));
  });
}

main().then(
  async (code) => {
    await cleanup();
    process.exitCode = code;
    // Everything is closed by now, so the process exits by itself. If a handle leaked, say which.
    setTimeout(() => {
      process.stderr.write(`error: the benchmark did not exit; open handles: ${process.getActiveResourcesInfo().join(', ')}\n`);
      process.exit(1);
    }, 5000).unref();
  },
  async (error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await cleanup().catch(() => undefined);
    process.exit(1);
  },
);
