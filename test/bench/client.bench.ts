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
import { performance } from 'node:perf_hooks';
import nsq, { type NsqjsMessage } from 'nsqjs';
import { Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { startNsqd } from '../support/processes.js';
import {
  consumeWithOurs,
  errorsOf,
  fmtRate,
  mpubWithOurs,
  Nsqd,
  once,
  prefillChannel,
  progress,
  runGo,
  runMain,
  slidingWindow,
  summarize,
  table,
  verifyConsumed,
  verifyPublished,
  withTimeout,
  forEachFlag,
} from './bench-util.js';

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
  forEachFlag(argv, (flag, value) => {
    const intKey = ints[flag];
    if (intKey) {
      const text = value();
      const n = Number(text);
      const min = intKey === 'warmup' ? 0 : 1;
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
      (args as unknown as Record<string, number>)[intKey] = n;
      return;
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
        throw new Error(`unknown flag ${JSON.stringify(flag)} (try --help)`);
    }
  });
  if (args.messages % args.batch !== 0) {
    throw new Error(`--messages (${args.messages}) must be a multiple of --batch (${args.batch})`);
  }
  if (args.warmup % args.batch !== 0) args.warmup -= args.warmup % args.batch;
  return args;
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
    await verifyPublished(ctx.nsqd, topic, count, 'ours pub');
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
    await verifyPublished(ctx.nsqd, topic, count, 'nsqjs pub');
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
  try {
    return await mpubWithOurs(nsqd, topic, batch, count, args.batches, 'ours mpub');
  } finally {
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
    await verifyPublished(ctx.nsqd, topic, count, 'nsqjs mpub');
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
  const topic = freshTopic(ctx, 'consume', client);
  await prefillChannel(ctx.nsqd, topic, CHANNEL, ctx.batch, count);
  return topic;
}

async function consumeOurs(ctx: Context, count: number): Promise<number> {
  const topic = await prefill(ctx, 'ours', count);
  try {
    const { maxInFlight, outputBufferTimeout } = ctx.args;
    return await consumeWithOurs(ctx.nsqd, topic, CHANNEL, count, { maxInFlight, outputBufferTimeout }, 'ours consume');
  } finally {
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
    await verifyConsumed(ctx.nsqd, topic, CHANNEL, 'nsqjs consume');
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

runMain(main);
