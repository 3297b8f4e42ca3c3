/**
 * Broker benchmark: our TypeScript nsqd (the broker app, --role nsqd) against the official nsqd
 * 1.3.0, the same workloads in one run.
 *
 *   npm run bench:broker                      # table on stdout, progress on stderr
 *   npm run -s bench:broker -- --json         # only {"figures":[...],"rss":[...]} on stdout
 *
 * Throughput workloads (every run starts a fresh nsqd per impl and workload group, with a temp
 * --data-path and --mem-queue-size from `--mem-queue-size`, default 10,000,000 as in nsq's
 * bench.py: the in-memory path; the impl that goes first alternates between runs; best of `--runs`):
 *   publish         the official bench_writer (one connection per core, one MPUB of 200 x 200 B
 *                   outstanding each) for `--runfor` (10s) on a topic whose channel exists first,
 *                   so the messages go on to the channel; its own ops/s
 *   consume         then the official bench_reader (RDY 2500 per connection, FIN per message) for
 *                   half of `--runfor` on that channel; its own ops/s. The backlog must outlast the
 *                   reader: if the channel ran dry, the backlog is topped up and the reader runs again
 *   client-publish  our Producer, MPUB 200 x 200 B, 5 batches outstanding, `--messages` (500,000)
 *   client-consume  our Consumer, maxInFlight 2500, output_buffer_timeout 25 ms, draining
 *                   `--messages` from a channel (the one client-publish filled)
 * (each client workload after a warm-up of 20,000 messages through the same nsqd).
 *
 * RSS (once per impl and depth): a fresh nsqd with --mem-queue-size=10000, a topic with one channel
 * and no consumer; our Producer MPUBs `--rss-depths` (100,000 and 1,000,000) messages of 200 B;
 * the nsqd process's VmRSS is sampled from /proc/<pid>/status every 50 ms while it runs and until
 * the channel holds every message, and its VmHWM read at the end; the peak is the higher of the
 * two. Target: ours must not grow with depth (peak at the largest depth <= 1.5x the peak at the
 * smallest).
 *
 * Flags: --runfor 10s (Go duration) --runs N (3) --messages N (500000)
 *        --only publish,consume,client-publish,client-consume,rss --json
 *        --strict (exit 1 when a target is missed)
 *        --impls go,ts (default: $NSQ_IMPLS or both; one impl prints its figures without ratios)
 *        --mem-queue-size N (10000000, the throughput workloads) --rss-depths 100000,1000000
 *
 * Exits non-zero on any error (a broker that loses or miscounts messages, a tool that fails, a
 * timeout). Every process is started here and killed by PID at the end, on failure and on
 * SIGINT/SIGTERM.
 */
import { readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { type Impl, IMPLS, selectedImpls } from '../support/nsq-bin.js';
import { type NsqdProcess, startNsqd } from '../support/processes.js';
import { sleep } from '../support/wait.js';
import {
  consumeWithOurs,
  fmtRate,
  type GoBenchResult,
  makeBody,
  mpubMany,
  mpubWithOurs,
  Nsqd,
  parseGoBench,
  parseGoDuration,
  prefillChannel,
  progress,
  runGo,
  runMain,
  summarize,
  table,
  waitForChannelDepth,
  warn,
  withTimeout,
  forEachFlag,
} from './bench-util.js';

type Workload = 'publish' | 'consume' | 'client-publish' | 'client-consume';
type Section = Workload | 'rss';
const WORKLOADS: readonly Workload[] = ['publish', 'consume', 'client-publish', 'client-consume'];
const SECTIONS: readonly Section[] = [...WORKLOADS, 'rss'];
/** ours / official, on the 2-core machine. */
const TARGETS: Record<Workload, number> = { publish: 0.5, consume: 0.5, 'client-publish': 0.5, 'client-consume': 0.5 };
/** Peak RSS at the largest depth over the peak at the smallest: bounded by mem-queue-size, not depth. */
const RSS_GROWTH_TARGET = 1.5;
const RSS_MEM_QUEUE_SIZE = 10_000;
const NAMES: Record<Impl, 'official' | 'ours'> = { go: 'official', ts: 'ours' };

const SIZE = 200;
const BATCH = 200;
const OUTSTANDING_BATCHES = 5;
const MAX_IN_FLIGHT = 2500;
/**
 * nsqd holds the last partial buffer of a drained channel until its flush tick: with the default
 * 250 ms that quantizes a one-second drain by up to 25 %; nsqd's minimum (25 ms) keeps it small.
 */
const CONSUMER_OUTPUT_BUFFER_TIMEOUT_MS = 25;
const WARMUP_MESSAGES = 20_000;
const CHANNEL = 'bench';
/** Top-ups of a channel bench_reader emptied before the figure is given up on. */
const MAX_TOP_UPS = 2;
const RSS_SAMPLE_MS = 50;
/** The Nest broker takes longer to start than the Go binary; a loaded machine slower still. */
const START_TIMEOUT_MS = 30_000;
/** The topic's pump moves a deep backlog through two disk queues after the last MPUB. */
const RSS_DRAIN_TIMEOUT_MS = 300_000;

interface Args {
  runfor: string;
  readerRunfor: string;
  runs: number;
  messages: number;
  only: Section[];
  json: boolean;
  strict: boolean;
  impls: Impl[];
  memQueueSize: number;
  rssDepths: number[];
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    runfor: '10s',
    readerRunfor: '5s',
    runs: 3,
    messages: 500_000,
    only: [...SECTIONS],
    json: false,
    strict: false,
    impls: selectedImpls(),
    memQueueSize: 10_000_000,
    rssDepths: [100_000, 1_000_000],
  };
  const positiveInt = (flag: string, text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be an integer >= 1, got ${JSON.stringify(text)}`);
    return n;
  };
  const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter(Boolean);
  forEachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--runfor': {
        const text = value();
        let seconds: number;
        try {
          seconds = parseGoDuration(text);
        } catch {
          throw new Error(`--runfor must be a Go duration such as 10s or 1m30s, got ${JSON.stringify(text)}`);
        }
        if (seconds < 0.2) throw new Error(`--runfor must be at least 200ms, got ${text}`);
        args.runfor = text;
        args.readerRunfor = `${Math.round(seconds * 500)}ms`;
        break;
      }
      case '--runs':
        args.runs = positiveInt(flag, value());
        break;
      case '--messages':
        args.messages = positiveInt(flag, value());
        break;
      case '--mem-queue-size':
        args.memQueueSize = positiveInt(flag, value());
        break;
      case '--rss-depths':
        args.rssDepths = [...new Set(list(value()).map((d) => positiveInt(flag, d)))].sort((a, b) => a - b);
        if (args.rssDepths.length === 0) throw new Error('--rss-depths needs at least one depth');
        break;
      case '--json':
        args.json = true;
        break;
      case '--strict':
        args.strict = true;
        break;
      case '--impls': {
        const names = list(value());
        for (const n of names) {
          if (!(IMPLS as readonly string[]).includes(n)) throw new Error(`--impls: unknown impl ${JSON.stringify(n)} (go, ts)`);
        }
        args.impls = IMPLS.filter((impl) => names.includes(impl));
        if (args.impls.length === 0) throw new Error('--impls needs go, ts or both');
        break;
      }
      case '--only': {
        const names = list(value());
        for (const n of names) {
          if (!SECTIONS.includes(n as Section)) throw new Error(`--only: unknown workload ${JSON.stringify(n)} (${SECTIONS.join(', ')})`);
        }
        args.only = SECTIONS.filter((s) => names.includes(s));
        break;
      }
      case '--help':
      case '-h':
        process.stderr.write(`usage: node dist/test/bench/broker.bench.js [--runfor 10s] [--runs N] [--messages N]
  [--only ${SECTIONS.join(',')}] [--json] [--strict] [--impls go,ts] [--mem-queue-size N] [--rss-depths 100000,1000000]\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${JSON.stringify(flag)} (try --help)`);
    }
  });
  for (const [flag, n] of [['--messages', args.messages], ...args.rssDepths.map((d) => ['--rss-depths', d] as const)] as const) {
    if (n % BATCH !== 0) throw new Error(`${flag} (${n}) must be a multiple of the batch size ${BATCH}`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------
// nsqd processes

let seq = 0;
function freshTopic(what: string, impl: Impl): string {
  return `bench_${what}_${impl}_${process.pid}_${seq++}`;
}

/**
 * Runs `fn` against a fresh nsqd (`impl`, `--mem-queue-size`). If it fails because the broker died
 * (out of memory, a crash), the error says so and quotes the end of the broker's log. The broker is
 * SIGKILLed afterwards, not stopped: a graceful nsqd writes its whole in-memory backlog to disk on
 * the way out, which is nothing the benchmark measures. Its data dir goes at once (it can hold GBs).
 */
async function withBroker<T>(impl: Impl, memQueueSize: number, fn: (nsqd: Nsqd, proc: NsqdProcess) => Promise<T>): Promise<T> {
  const proc = await startNsqd({ impl, args: [`--mem-queue-size=${memQueueSize}`], startTimeoutMs: START_TIMEOUT_MS });
  try {
    return await fn(new Nsqd(proc), proc);
  } catch (error) {
    // a client sees the connection drop before the harness sees the exit
    await sleep(200);
    if (proc.running) throw error;
    const exit = proc.exit;
    const log = proc.log();
    throw new Error(
      `${NAMES[impl]} nsqd (pid ${proc.pid}) died during the benchmark (code ${exit?.code}, signal ${exit?.signal}): ` +
        `${error instanceof Error ? error.message : String(error)}\nlast lines of its log:\n${log.slice(-3000)}`,
      { cause: error },
    );
  } finally {
    await proc.kill('SIGKILL');
    rmSync(proc.dataPath, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// publish + consume with the official tools

async function benchWriter(nsqd: Nsqd, topic: string, runfor: string): Promise<GoBenchResult> {
  const out = await withTimeout(
    runGo('bench_writer', [
      `--nsqd-tcp-address=${nsqd.tcpAddress}`,
      `--topic=${topic}`,
      `--size=${SIZE}`,
      `--batch-size=${BATCH}`,
      `--runfor=${runfor}`,
    ]),
    'bench_writer',
    parseGoDuration(runfor) * 1000 + 60_000,
  );
  return parseGoBench(out, 'bench_writer');
}

async function benchReader(nsqd: Nsqd, topic: string, runfor: string): Promise<GoBenchResult> {
  const out = await withTimeout(
    runGo('bench_reader', [
      `--nsqd-tcp-address=${nsqd.tcpAddress}`,
      `--topic=${topic}`,
      `--channel=${CHANNEL}`,
      `--size=${SIZE}`,
      `--rdy=${MAX_IN_FLIGHT}`,
      `--runfor=${runfor}`,
    ]),
    'bench_reader',
    parseGoDuration(runfor) * 1000 + 60_000,
  );
  return parseGoBench(out, 'bench_reader');
}

/**
 * bench_writer reports the messages it got an OK for: the broker must have counted exactly those,
 * and its pump must have put every one of them on the channel.
 */
async function checkWriter(nsqd: Nsqd, topic: string, writer: GoBenchResult, previous: number, who: string): Promise<number> {
  const stats = await nsqd.topicStats(topic);
  const added = stats.message_count - previous;
  const claimed = writer.opsPerSec * writer.seconds;
  // ops/s is printed with 3 decimals and the duration to the nanosecond: the product is exact to ~1
  if (Math.abs(added - claimed) > Math.max(2, claimed * 1e-6)) {
    throw new Error(`${who}: nsqd counted ${added} new messages on ${topic}, bench_writer had ${Math.round(claimed)} acknowledged`);
  }
  const deadline = Date.now() + 60_000;
  while (true) {
    const c = await nsqd.channelStats(topic, CHANNEL);
    if (c.message_count === stats.message_count) return stats.message_count;
    if (Date.now() > deadline) {
      throw new Error(`${who}: channel ${topic}/${CHANNEL} got ${c.message_count} of the topic's ${stats.message_count} messages`);
    }
    await sleep(20);
  }
}

async function toolsGroup(args: Args, impl: Impl): Promise<{ publish: number; consume: number | undefined }> {
  const who = `${NAMES[impl]} nsqd`;
  return withBroker(impl, args.memQueueSize, async (nsqd) => {
    const topic = freshTopic('tools', impl);
    await nsqd.createTopic(topic);
    await nsqd.createChannel(topic, CHANNEL);
    const writer = await benchWriter(nsqd, topic, args.runfor);
    let published = await checkWriter(nsqd, topic, writer, 0, `${who} bench_writer`);
    if (!args.only.includes('consume')) return { publish: writer.opsPerSec, consume: undefined };

    for (let topUp = 0; ; topUp++) {
      const before = await nsqd.channelStats(topic, CHANNEL);
      const reader = await benchReader(nsqd, topic, args.readerRunfor);
      const after = await nsqd.channelStats(topic, CHANNEL);
      // What is still waiting, not counting messages the broker may have requeued when the reader
      // hung up (the official nsqd leaves them in flight until they time out).
      const left = after.depth - (after.requeue_count - before.requeue_count);
      const delivered = reader.opsPerSec * reader.seconds;
      if (left > 0 && delivered < before.depth) return { publish: writer.opsPerSec, consume: reader.opsPerSec };
      const runfor = `${Math.round(parseGoDuration(args.runfor) * 1000 * 2 ** (topUp + 1))}ms`;
      if (topUp >= MAX_TOP_UPS) {
        throw new Error(
          `${who}: bench_reader emptied the channel (${before.depth} waiting, ${Math.round(delivered)} delivered) ` +
            `${topUp + 1} times: its ${fmtRate(reader.opsPerSec)} msgs/s would understate the consume rate. ` +
            `Use a longer --runfor.`,
        );
      }
      warn(
        `${who}: BENCH_READER RAN DRY (${before.depth} waiting, ${Math.round(delivered)} delivered, ${left} left): ` +
          `its figure is void; topping the backlog up with bench_writer --runfor=${runfor} and reading again`,
      );
      published = await checkWriter(nsqd, topic, await benchWriter(nsqd, topic, runfor), published, `${who} top-up`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// our client

async function clientGroup(args: Args, impl: Impl, batch: Buffer[]): Promise<{ publish?: number; consume?: number }> {
  const who = `${NAMES[impl]} nsqd`;
  const consumerOptions = { maxInFlight: MAX_IN_FLIGHT, outputBufferTimeout: CONSUMER_OUTPUT_BUFFER_TIMEOUT_MS };
  return withBroker(impl, args.memQueueSize, async (nsqd) => {
    // Both JITs (the client's and, for ours, the broker's) see the hot paths before the clock runs.
    const warm = freshTopic('warmup', impl);
    await prefillChannel(nsqd, warm, CHANNEL, batch, WARMUP_MESSAGES);
    await consumeWithOurs(nsqd, warm, CHANNEL, WARMUP_MESSAGES, consumerOptions, `${who} warm-up`);
    await nsqd.deleteTopic(warm);

    const result: { publish?: number; consume?: number } = {};
    const topic = freshTopic('client', impl);
    if (args.only.includes('client-publish')) {
      await nsqd.createTopic(topic);
      await nsqd.createChannel(topic, CHANNEL);
      result.publish = await mpubWithOurs(nsqd, topic, batch, args.messages, OUTSTANDING_BATCHES, `${who} client-publish`);
      // the published channel is the consume workload's backlog
      await waitForChannelDepth(nsqd, topic, CHANNEL, args.messages, `${who} client-publish`, { timeoutMs: 60_000 });
    } else {
      await prefillChannel(nsqd, topic, CHANNEL, batch, args.messages);
    }
    if (args.only.includes('client-consume')) {
      result.consume = await consumeWithOurs(nsqd, topic, CHANNEL, args.messages, consumerOptions, `${who} client-consume`);
    }
    return result;
  });
}

// ---------------------------------------------------------------------------------------------
// RSS

interface Memory {
  rssKiB: number;
  hwmKiB: number;
}

function readMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]);
  };
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

interface RssFigure {
  impl: 'official' | 'ours';
  depth: number;
  memQueueSize: number;
  /** After start, topic and channel created. */
  idleMiB: number;
  /** The higher of VmHWM at the end and the highest VmRSS sampled every 50 ms. */
  peakMiB: number;
  /** VmHWM at the end (the kernel updates it lazily, so it can miss a peak the sampling saw). */
  hwmMiB: number;
  /** VmRSS once the channel held every message. */
  endMiB: number;
  /** Of `depth`, how many the channel kept on disk. */
  onDisk: number;
  /** peakMiB over the same impl's peak at the smallest depth; null at the smallest. */
  growth: number | null;
  /** Only for ours beyond the smallest depth. */
  target: number | null;
  met: boolean | null;
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

async function rssOne(impl: Impl, depth: number, batch: Buffer[]): Promise<Omit<RssFigure, 'growth' | 'target' | 'met'>> {
  const who = `${NAMES[impl]} nsqd rss ${depth}`;
  return withBroker(impl, RSS_MEM_QUEUE_SIZE, async (nsqd, proc) => {
    const topic = freshTopic('rss', impl);
    await nsqd.createTopic(topic);
    await nsqd.createChannel(topic, CHANNEL);
    const idle = readMemory(proc.pid);
    let sampledPeak = idle.rssKiB;
    const sampler = setInterval(() => {
      try {
        sampledPeak = Math.max(sampledPeak, readMemory(proc.pid).rssKiB);
      } catch {
        // the process died: the publish fails and says so
      }
    }, RSS_SAMPLE_MS);
    let channel;
    let end: Memory;
    try {
      const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
      try {
        await producer.connect();
        await mpubMany(producer, topic, batch, depth / batch.length, OUTSTANDING_BATCHES, who);
      } finally {
        await producer.close();
      }
      channel = await waitForChannelDepth(nsqd, topic, CHANNEL, depth, who, { timeoutMs: RSS_DRAIN_TIMEOUT_MS, spillExpected: true });
      end = readMemory(proc.pid);
    } finally {
      clearInterval(sampler);
    }
    return {
      impl: NAMES[impl],
      depth,
      memQueueSize: RSS_MEM_QUEUE_SIZE,
      idleMiB: mib(idle.rssKiB),
      peakMiB: mib(Math.max(sampledPeak, end.hwmKiB, end.rssKiB)),
      hwmMiB: mib(end.hwmKiB),
      endMiB: mib(end.rssKiB),
      onDisk: channel.backend_depth,
    };
  });
}

async function rssAll(args: Args, batch: Buffer[]): Promise<RssFigure[]> {
  const measured: Array<Omit<RssFigure, 'growth' | 'target' | 'met'>> = [];
  for (const [i, depth] of args.rssDepths.entries()) {
    const order = i % 2 === 0 ? args.impls : [...args.impls].reverse();
    for (const impl of order) {
      const m = await rssOne(impl, depth, batch);
      progress(`rss ${NAMES[impl]} ${depth.toLocaleString('en-US')} queued: idle ${m.idleMiB} MiB, peak ${m.peakMiB} MiB, end ${m.endMiB} MiB, ${m.onDisk} on disk`);
      measured.push(m);
    }
  }
  const smallest = args.rssDepths[0]!;
  return IMPLS.flatMap((impl) =>
    measured
      .filter((m) => m.impl === NAMES[impl])
      .sort((a, b) => a.depth - b.depth)
      .map((m): RssFigure => {
        const base = measured.find((b) => b.impl === m.impl && b.depth === smallest)!;
        const growth = m.depth === smallest ? null : Math.round((m.peakMiB / base.peakMiB) * 100) / 100;
        const target = growth !== null && impl === 'ts' ? RSS_GROWTH_TARGET : null;
        return { ...m, growth, target, met: target === null || growth === null ? null : growth <= target };
      }),
  );
}

// ---------------------------------------------------------------------------------------------
// main

interface Figure {
  workload: Workload;
  /** msgs/s through the official nsqd (null when it was not run). */
  official: number | null;
  ours: number | null;
  /** ours / official */
  ratio: number | null;
  target: number;
  met: boolean | null;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const { batch } = makeBody(SIZE, BATCH);
  const tools = args.only.includes('publish') || args.only.includes('consume');
  const client = args.only.includes('client-publish') || args.only.includes('client-consume');
  progress(
    `nsqd impls: ${args.impls.map((i) => NAMES[i]).join(', ')}; ${args.runs} run(s); bench_writer ${args.runfor}, ` +
      `bench_reader ${args.readerRunfor}; client ${args.messages} messages; ${SIZE} B bodies; node ${process.version}, ` +
      `${availableParallelism()} cores`,
  );

  const samples: Record<Workload, Record<Impl, number[]>> = {
    publish: { go: [], ts: [] },
    consume: { go: [], ts: [] },
    'client-publish': { go: [], ts: [] },
    'client-consume': { go: [], ts: [] },
  };
  const record = (workload: Workload, impl: Impl, run: number, value: number | undefined): void => {
    if (value === undefined || !args.only.includes(workload)) return;
    samples[workload][impl].push(value);
    progress(`${workload} run ${run + 1}/${args.runs} ${NAMES[impl]}: ${fmtRate(value)} msgs/s`);
  };
  if (tools || client) {
    for (let run = 0; run < args.runs; run++) {
      const order = run % 2 === 0 ? args.impls : [...args.impls].reverse();
      for (const impl of order) {
        if (tools) {
          const r = await toolsGroup(args, impl);
          record('publish', impl, run, r.publish);
          record('consume', impl, run, r.consume);
        }
        if (client) {
          const r = await clientGroup(args, impl, batch);
          record('client-publish', impl, run, r.publish);
          record('client-consume', impl, run, r.consume);
        }
      }
    }
  }
  const rss = args.only.includes('rss') ? await rssAll(args, batch) : [];

  const figures: Figure[] = WORKLOADS.filter((w) => args.only.includes(w)).map((workload) => {
    const best = (impl: Impl): number | null =>
      samples[workload][impl].length > 0 ? Math.round(summarize(samples[workload][impl], 'best')) : null;
    const official = best('go');
    const ours = best('ts');
    const ratio = official !== null && ours !== null ? Math.round((ours / official) * 1000) / 1000 : null;
    return { workload, official, ours, ratio, target: TARGETS[workload], met: ratio === null ? null : ratio >= TARGETS[workload] };
  });
  const missed = [
    ...figures.filter((f) => f.met === false).map((f) => f.workload),
    ...rss.filter((r) => r.met === false).map((r) => `rss at ${r.depth.toLocaleString('en-US')} queued`),
  ];

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ figures, rss })}\n`);
  } else {
    const rate = (n: number | null): string => (n === null ? '-' : fmtRate(n));
    const runsOf = (w: Workload, impl: Impl): string => samples[w][impl].map((v) => (v / 1000).toFixed(0) + 'k').join(' ') || '-';
    const labels: Record<Workload, string> = {
      publish: `publish: bench_writer MPUB x${BATCH}, ${args.runfor}`,
      consume: `consume: bench_reader RDY ${MAX_IN_FLIGHT}, ${args.readerRunfor}`,
      'client-publish': `publish: our Producer MPUB x${BATCH}, ${OUTSTANDING_BATCHES} outstanding, ${args.messages.toLocaleString('en-US')}`,
      'client-consume': `consume: our Consumer maxInFlight ${MAX_IN_FLIGHT}, ${args.messages.toLocaleString('en-US')}`,
    };
    let out =
      `\nNSQ broker benchmark: official nsqd 1.3.0 vs ours (TypeScript), ${SIZE} B messages, ` +
      `--mem-queue-size=${args.memQueueSize}, best of ${args.runs} run(s), node ${process.version}, ${availableParallelism()} cores\n`;
    if (figures.length > 0) {
      const rows = [
        ['workload', 'official msgs/s', 'ours msgs/s', 'ours/official', 'target', '', 'official runs', 'ours runs'],
        ...figures.map((f) => [
          labels[f.workload],
          rate(f.official),
          rate(f.ours),
          f.ratio === null ? '-' : `${f.ratio.toFixed(2)}x`,
          `>= ${f.target}x`,
          f.met === null ? '' : f.met ? 'PASS' : 'FAIL',
          runsOf(f.workload, 'go'),
          runsOf(f.workload, 'ts'),
        ]),
      ];
      out += `\n${table(rows)}\n`;
    }
    if (rss.length > 0) {
      const rows = [
        ['nsqd', 'queued', 'mem-queue-size', 'idle MiB', 'peak MiB', 'VmHWM MiB', 'end MiB', 'on disk', 'peak vs smallest', 'target', ''],
        ...rss.map((r) => [
          r.impl,
          r.depth.toLocaleString('en-US'),
          r.memQueueSize.toLocaleString('en-US'),
          r.idleMiB.toFixed(1),
          r.peakMiB.toFixed(1),
          r.hwmMiB.toFixed(1),
          r.endMiB.toFixed(1),
          r.onDisk.toLocaleString('en-US'),
          r.growth === null ? '-' : `${r.growth.toFixed(2)}x`,
          r.target === null ? '-' : `<= ${r.target}x`,
          r.met === null ? '' : r.met ? 'PASS' : 'FAIL',
        ]),
      ];
      out += `\nbroker RSS with a backlog and no consumer (one channel):\n\n${table(rows)}\n`;
    }
    if (!args.impls.includes('ts') || !args.impls.includes('go')) {
      out += `\nonly ${args.impls.map((i) => NAMES[i]).join(', ')} measured: no ratios, no targets checked\n`;
    } else {
      out += missed.length === 0 ? '\nall targets met\n' : `\ntargets missed: ${missed.join(', ')}\n`;
    }
    process.stdout.write(out);
  }
  return args.strict && missed.length > 0 ? 1 : 0;
}

runMain(main);
