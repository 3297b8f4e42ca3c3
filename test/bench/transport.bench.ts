/**
 * Transport benchmark: Nest microservice transports side by side, each with the broker, the
 * handler app and the publisher app in separate processes.
 *
 *   npm run bench:transport                      # table on stdout, progress on stderr
 *   npm run -s bench:transport -- --json         # only {"figures":[...],"ratios":{...},"targets":[...]} on stdout
 *
 * Rows:
 *   nats                Nest's built-in NATS transport (Transport.NATS server, ClientNats) against
 *                       the NATS server at --nats (127.0.0.1:4222, not started or stopped here)
 *   nest-nsq-transport  the npm package (NSQStrategy + NSQClient over nsqjs, JSON (de)serializer,
 *                       maxInFlight --max-in-flight) over the official nsqd
 *   ours-go             NsqServer + NsqClient (maxInFlight --max-in-flight) over the official nsqd
 *   ours-ts             the same over our TypeScript broker (apps/broker --role nsqd)
 * Each NSQ row runs once per --buffering setting: 'off' (the consumer's IDENTIFY has
 * output_buffer_size -1: nsqd writes each message at once) and 'default' (nsqd's 16 KiB / 250 ms:
 * a lightly loaded consumer waits up to 250 ms per delivery).
 *
 * Per row: a fresh nsqd (NSQ rows; 127.0.0.1, OS-picked ports, --mem-queue-size=1000000) and a
 * fresh topic; the handler process (transport-roles.js handler: a Nest microservice whose
 * @EventPattern handler counts events and takes receive time - sentAt) and the publisher process
 * (transport-roles.js publisher: a Nest application context with the ClientProxy), forked with an
 * IPC channel. Then:
 *   warm-up     --warmup events (10,000) as in throughput, not reported
 *   latency     1 s at --rate (1,000/s) as warm-up, then --latency-seconds (3) at --rate; each
 *               event carries its send time (performance.timeOrigin + performance.now()), the
 *               handler takes its receive time minus that: p50 / p99 / max in ms. It runs before
 *               the bursts, so the bursts' garbage is not collected during it
 *   throughput  --events events (100,000) of ~--size bytes of JSON (200), at most --outstanding
 *               (1,000) emits not yet completed; events/s from the first emit to the last event
 *               the handler received (wall clock of both processes); best of --runs
 * The handler checks every event arrives exactly once per phase (a duplicate or a lost event is
 * reported; a phase whose handler makes no progress for 10 s fails the row). NSQ rows then check
 * nsqd's channel: empty, nothing requeued or timed out.
 *
 * "emit completed" means what each ClientProxy's emit() Observable means: NATS: handed to the
 * client's socket buffer (no acknowledgement exists); nest-nsq-transport and ours: nsqd answered OK.
 *
 * Flags: --events N (100000) --outstanding N (1000) --rate N (1000) --latency-seconds S (3)
 *        --runs N (1; best of N for throughput) --warmup N (10000) --size N (200)
 *        --max-in-flight N (1000, both NSQ transports) --buffering off,default (both)
 *        --only nats,nest-nsq-transport,ours-go,ours-ts --nats URL (nats://127.0.0.1:4222)
 *        --cpu-prof DIR (run handler and publisher with node --cpu-prof, profiles into DIR)
 *        --child-node-arg ARG (repeatable: a node option for handler and publisher, e.g. --trace-gc)
 *        --json --strict (exit 1 when a target is missed)
 *
 * Targets (from the issue), checked on the ours rows: throughput >= 1x NATS's; p99 at --rate <= 2 ms.
 *
 * Every process is started here and killed by PID at the end, on failure and on SIGINT/SIGTERM
 * (and the role processes exit by themselves when this process goes away).
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NsqdProcess, startNsqd } from '../support/processes.js';
import { sleep } from '../support/wait.js';
import { fmtRate, forEachFlag, Nsqd, progress, RoleProcess, runMain, summarize, table, verifyConsumed } from './bench-util.js';
import { type Buffering, type FromChild, type LatencySummary, type RoleConfig, roleArgv, type TransportKind } from './transport-protocol.js';

const ROWS = ['nats', 'nest-nsq-transport', 'ours-go', 'ours-ts'] as const;
type RowName = (typeof ROWS)[number];
const BUFFERINGS: readonly Buffering[] = ['off', 'default'];

const GUARANTEES: Record<TransportKind, string> = {
  nats: 'at-most-once, no persistence, no ack (emit completes once written to the client socket)',
  'nest-nsq-transport': 'at-least-once, FIN after the handler (REQ on error), emit resolves on a single nsqd publish OK',
  ours: 'at-least-once, FIN after the handler (REQ with backoff on error), emit resolves on nsqd OK, dead letters after maxAttempts',
};

const TARGET_RATIO = 1;
const TARGET_P99_MS = 2;
/** A phase fails when the handler's count stands still this long after the publisher finished. */
const STALL_MS = 10_000;

interface Args {
  events: number;
  outstanding: number;
  rate: number;
  latencySeconds: number;
  runs: number;
  warmup: number;
  size: number;
  maxInFlight: number;
  buffering: Buffering[];
  only: RowName[];
  nats: string;
  cpuProf: string | undefined;
  childNodeArgs: string[];
  json: boolean;
  strict: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    events: 100_000,
    outstanding: 1000,
    rate: 1000,
    latencySeconds: 3,
    runs: 1,
    warmup: 10_000,
    size: 200,
    maxInFlight: 1000,
    buffering: [...BUFFERINGS],
    only: [...ROWS],
    nats: 'nats://127.0.0.1:4222',
    cpuProf: undefined,
    childNodeArgs: [],
    json: false,
    strict: false,
  };
  const numbers: Record<string, { key: keyof Args; min: number; integer: boolean }> = {
    '--events': { key: 'events', min: 1, integer: true },
    '--outstanding': { key: 'outstanding', min: 1, integer: true },
    '--rate': { key: 'rate', min: 1, integer: true },
    '--latency-seconds': { key: 'latencySeconds', min: 0.1, integer: false },
    '--runs': { key: 'runs', min: 1, integer: true },
    '--warmup': { key: 'warmup', min: 0, integer: true },
    '--size': { key: 'size', min: 1, integer: true },
    '--max-in-flight': { key: 'maxInFlight', min: 1, integer: true },
  };
  const list = <T extends string>(flag: string, text: string, allowed: readonly T[]): T[] => {
    const items = text.split(',').map((s) => s.trim()).filter(Boolean);
    for (const item of items) {
      if (!allowed.includes(item as T)) throw new Error(`${flag}: unknown ${JSON.stringify(item)} (${allowed.join(', ')})`);
    }
    if (items.length === 0) throw new Error(`${flag} needs at least one of ${allowed.join(', ')}`);
    return allowed.filter((a) => items.includes(a));
  };
  forEachFlag(argv, (flag, value) => {
    const spec = numbers[flag];
    if (spec) {
      const text = value();
      const n = Number(text);
      if (!Number.isFinite(n) || n < spec.min || (spec.integer && !Number.isInteger(n))) {
        throw new Error(`${flag} must be ${spec.integer ? 'an integer' : 'a number'} >= ${spec.min}, got ${JSON.stringify(text)}`);
      }
      (args as unknown as Record<string, number>)[spec.key] = n;
      return;
    }
    switch (flag) {
      case '--only':
        args.only = list(flag, value(), ROWS);
        break;
      case '--buffering':
        args.buffering = list(flag, value(), BUFFERINGS);
        break;
      case '--nats':
        args.nats = value();
        break;
      case '--cpu-prof':
        args.cpuProf = value();
        break;
      case '--child-node-arg':
        args.childNodeArgs.push(value());
        break;
      case '--json':
        args.json = true;
        break;
      case '--strict':
        args.strict = true;
        break;
      case '--help':
      case '-h':
        process.stderr.write(`usage: node dist/test/bench/transport.bench.js [--events N] [--outstanding N] [--rate N] [--latency-seconds S]
  [--runs N] [--warmup N] [--size N] [--max-in-flight N] [--buffering off,default] [--only ${ROWS.join(',')}]
  [--nats URL] [--cpu-prof DIR] [--child-node-arg ARG]... [--json] [--strict]\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${JSON.stringify(flag)} (try --help)`);
    }
  });
  return args;
}

// ---------------------------------------------------------------------------------------------
// role processes

const ROLES_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'transport-roles.js');

/** A role process of this benchmark (handler or publisher), profiled with --cpu-prof when asked. */
function startRole(role: 'handler' | 'publisher', label: string, config: RoleConfig, args: Args): RoleProcess<FromChild> {
  const { cpuProf } = args;
  const profile = cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`, `--cpu-prof-name=${label.replace(/[^\w.-]+/g, '_')}-${role}.cpuprofile`] : [];
  const execArgv = [...profile, ...args.childNodeArgs];
  const child = fork(ROLES_MAIN, [role, ...roleArgv(config)], { silent: true, execArgv });
  return new RoleProcess<FromChild>(`${label} ${role}`, child, 15_000);
}

// ---------------------------------------------------------------------------------------------
// one row

interface RowSpec {
  name: RowName;
  transport: TransportKind;
  impl: 'go' | 'ts' | undefined;
  buffering: Buffering | undefined;
}

interface Figure {
  name: string;
  row: RowName;
  transport: TransportKind;
  broker: string;
  /** nsqd output buffering of the handler's connection; null for NATS. */
  buffering: Buffering | null;
  maxInFlight: number | null;
  /** Best of the throughput runs: events / (last event received - first emit). */
  eventsPerSec: number;
  runs: number[];
  /** Events / (last emit completed - first emit), of the best run. */
  publishPerSec: number;
  ratioToNats: number | null;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  latencyEvents: number;
  rate: number;
  eventBytes: number;
  duplicates: number;
  strays: number;
  guarantees: string;
  notes: string[];
  error?: string;
}

function rowLabel(spec: RowSpec): string {
  return spec.buffering === undefined || spec.buffering === 'off' ? spec.name : `${spec.name} (nsqd buffering)`;
}

function brokerLabel(spec: RowSpec): string {
  if (spec.transport === 'nats') return 'nats-server';
  return spec.impl === 'ts' ? 'ts broker' : 'nsqd 1.3.0';
}

interface Row {
  handler: RoleProcess<FromChild>;
  publisher: RoleProcess<FromChild>;
  phase: number;
}

/** Announces the phase to the handler, has the publisher run it, waits for both; fails on a stall. */
async function runPhase(
  row: Row,
  command: { type: 'burst'; count: number; outstanding: number; size: number } | { type: 'paced'; count: number; rate: number; size: number },
  what: string,
): Promise<{ sent: Extract<FromChild, { type: 'sent' }>; received: Extract<FromChild, { type: 'received' }> }> {
  const phase = ++row.phase;
  const expecting = row.handler.waitFor('expecting', phase, `${what}: expect`);
  row.handler.send({ type: 'expect', phase, count: command.count });
  await expecting;
  const received = row.handler.waitFor('received', phase, what, 24 * 3600_000);
  const sent = row.publisher.waitFor('sent', phase, `${what}: publish`);
  row.publisher.send({ ...command, phase });
  const s = await sent;
  let last = -1;
  let stillSince = Date.now();
  while (true) {
    const r = await Promise.race([received, sleep(1000).then(() => undefined)]);
    if (r) {
      if (r.count !== command.count) throw new Error(`${what}: handler reports ${r.count} events, expected ${command.count}`);
      return { sent: s, received: r };
    }
    const status = row.handler.waitFor('status', phase, `${what}: status`, 10_000);
    row.handler.send({ type: 'status', phase });
    const { received: count } = await status;
    if (count !== last) {
      last = count;
      stillSince = Date.now();
    } else if (Date.now() - stillSince > STALL_MS) {
      throw new Error(`${what}: the handler received ${count} of ${command.count} events and nothing more for ${STALL_MS / 1000} s (${command.count - count} lost)`);
    }
  }
}

async function measureRow(spec: RowSpec, args: Args, index: number): Promise<Figure> {
  const label = rowLabel(spec);
  const figure: Figure = {
    name: label,
    row: spec.name,
    transport: spec.transport,
    broker: brokerLabel(spec),
    buffering: spec.buffering ?? null,
    maxInFlight: spec.transport === 'nats' ? null : args.maxInFlight,
    eventsPerSec: NaN,
    runs: [],
    publishPerSec: NaN,
    ratioToNats: null,
    p50Ms: NaN,
    p99Ms: NaN,
    maxMs: NaN,
    meanMs: NaN,
    latencyEvents: Math.round(args.rate * args.latencySeconds),
    rate: args.rate,
    eventBytes: 0,
    duplicates: 0,
    strays: 0,
    guarantees: GUARANTEES[spec.transport],
    notes: [],
  };
  let proc: NsqdProcess | undefined;
  let handler: RoleProcess<FromChild> | undefined;
  let publisher: RoleProcess<FromChild> | undefined;
  const topic = spec.transport === 'nats' ? `bench.transport.${process.pid}.${index}` : `bench_transport_${process.pid}_${index}`;
  const channel = 'bench';
  try {
    if (spec.impl) {
      proc = await startNsqd({ impl: spec.impl, args: ['--mem-queue-size=1000000'] });
      progress(`${label}: ${figure.broker} ${proc.tcpAddress} (pid ${proc.pid})`);
    }
    const config: RoleConfig = {
      transport: spec.transport,
      nsqd: proc?.tcpAddress ?? '',
      nats: args.nats,
      topic,
      channel,
      buffering: spec.buffering ?? 'default',
      maxInFlight: args.maxInFlight,
    };
    // The handler subscribes first, so the NSQ channel exists before the first publish.
    handler = startRole('handler', label, config, args);
    await handler.waitFor('ready', undefined, 'start', 60_000);
    publisher = startRole('publisher', label, config, args);
    await publisher.waitFor('ready', undefined, 'start', 60_000);
    progress(`${label}: handler pid ${handler.pid}, publisher pid ${publisher.pid}, topic ${topic}`);
    const row: Row = { handler, publisher, phase: 0 };

    if (args.warmup > 0) {
      const { sent, received } = await runPhase(row, { type: 'burst', count: args.warmup, outstanding: args.outstanding, size: args.size }, `${label} warm-up`);
      progress(`${label}: warm-up ${fmtRate((args.warmup / (received.lastAt - sent.firstAt)) * 1000)} events/s`);
    }
    // Light load before the bursts: its tail should show the transport at light load, not the
    // garbage a 100,000-event burst left in the handler's and publisher's heaps.
    await runPhase(row, { type: 'paced', count: args.rate, rate: args.rate, size: args.size }, `${label} latency warm-up`);
    const { received } = await runPhase(row, { type: 'paced', count: figure.latencyEvents, rate: args.rate, size: args.size }, `${label} latency`);
    setLatency(figure, received.latency);
    let bestPublish = 0;
    for (let run = 1; run <= args.runs; run++) {
      const { sent, received } = await runPhase(row, { type: 'burst', count: args.events, outstanding: args.outstanding, size: args.size }, `${label} throughput`);
      const rate = (args.events / (received.lastAt - sent.firstAt)) * 1000;
      const publishRate = (args.events / (sent.lastAt - sent.firstAt)) * 1000;
      figure.runs.push(rate);
      if (rate >= summarize(figure.runs, 'best')) bestPublish = publishRate;
      figure.eventBytes = sent.eventBytes;
      progress(`${label}: throughput run ${run}/${args.runs}: ${fmtRate(rate)} events/s (emits completed at ${fmtRate(publishRate)}/s)`);
    }
    figure.eventsPerSec = summarize(figure.runs, 'best');
    figure.publishPerSec = bestPublish;

    figure.duplicates = received.duplicates;
    figure.strays = received.strays;
    progress(`${label}: latency at ${args.rate}/s: p50 ${fmtMs(figure.p50Ms)} ms, p99 ${fmtMs(figure.p99Ms)} ms, max ${fmtMs(figure.maxMs)} ms`);
    if (received.duplicates > 0 || received.strays > 0) {
      figure.notes.push(`${received.duplicates} duplicate and ${received.strays} stray deliveries`);
    }
    if (proc) {
      try {
        await verifyConsumed(new Nsqd(proc), topic, channel, label);
      } catch (error) {
        figure.notes.push(error instanceof Error ? error.message : String(error));
      }
    }
  } catch (error) {
    figure.error = error instanceof Error ? error.message : String(error);
    progress(`${label}: FAILED: ${figure.error}`);
  } finally {
    await Promise.all([publisher?.close(), handler?.close()]);
    await proc?.stop();
  }
  return figure;
}

function setLatency(figure: Figure, latency: LatencySummary): void {
  figure.p50Ms = latency.p50Ms;
  figure.p99Ms = latency.p99Ms;
  figure.maxMs = latency.maxMs;
  figure.meanMs = latency.meanMs;
}

// ---------------------------------------------------------------------------------------------
// main

function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

interface TargetCheck {
  row: string;
  target: string;
  value: number;
  met: boolean;
}

function rowSpecs(args: Args): RowSpec[] {
  const specs: RowSpec[] = [];
  for (const name of args.only) {
    if (name === 'nats') {
      specs.push({ name, transport: 'nats', impl: undefined, buffering: undefined });
      continue;
    }
    const transport: TransportKind = name === 'nest-nsq-transport' ? 'nest-nsq-transport' : 'ours';
    const impl = name === 'ours-ts' ? 'ts' : 'go';
    for (const buffering of args.buffering) specs.push({ name, transport, impl, buffering });
  }
  return specs;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const specs = rowSpecs(args);
  progress(
    `${specs.length} rows; ${args.events} events of ~${args.size} B, ${args.outstanding} outstanding, best of ${args.runs}; ` +
      `latency ${args.latencySeconds} s at ${args.rate}/s; node ${process.version}`,
  );
  const figures: Figure[] = [];
  for (const [i, spec] of specs.entries()) figures.push(await measureRow(spec, args, i));

  const nats = figures.find((f) => f.transport === 'nats' && f.error === undefined);
  const ratios: Record<string, number> = {};
  for (const f of figures) {
    if (nats && f.error === undefined) {
      f.ratioToNats = f.eventsPerSec / nats.eventsPerSec;
      ratios[f.name] = f.ratioToNats;
    }
  }
  const targets: TargetCheck[] = [];
  for (const f of figures.filter((x) => x.transport === 'ours')) {
    if (f.ratioToNats !== null) targets.push({ row: f.name, target: `throughput >= ${TARGET_RATIO}x NATS`, value: f.ratioToNats, met: f.ratioToNats >= TARGET_RATIO });
    if (f.error === undefined) targets.push({ row: f.name, target: `p99 at ${args.rate}/s <= ${TARGET_P99_MS} ms`, value: f.p99Ms, met: f.p99Ms <= TARGET_P99_MS });
  }
  const failed = figures.filter((f) => f.error !== undefined);

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ figures, ratios, targets })}\n`);
  } else {
    const bufferingText = (f: Figure): string => (f.buffering === null ? 'n/a' : f.buffering === 'off' ? 'off (-1)' : '16 KiB/250 ms');
    const rows = [
      ['transport', 'broker', 'nsqd out buffer', `events/s (best of ${args.runs})`, 'vs NATS', `p50 ms`, `p99 ms`, 'max ms', 'runs'],
      ...figures.map((f) =>
        f.error !== undefined
          ? [f.name, f.broker, bufferingText(f), 'FAILED', '-', '-', '-', '-', '']
          : [
              f.name,
              f.broker,
              bufferingText(f),
              fmtRate(f.eventsPerSec),
              f.ratioToNats === null ? '-' : `${f.ratioToNats.toFixed(2)}x`,
              fmtMs(f.p50Ms),
              fmtMs(f.p99Ms),
              fmtMs(f.maxMs),
              f.runs.map((v) => `${(v / 1000).toFixed(1)}k`).join(' '),
            ],
      ),
    ];
    const out: string[] = [
      '',
      `Nest transport benchmark: ${args.events.toLocaleString('en-US')} events of ~${args.size} B JSON, at most ${args.outstanding.toLocaleString('en-US')} emits outstanding ` +
        `(throughput: first emit to last event handled); latency: ${args.latencySeconds} s at ${args.rate.toLocaleString('en-US')} events/s ` +
        `(handler receive - send time); broker, handler and publisher in separate processes; NSQ maxInFlight ${args.maxInFlight}; node ${process.version}`,
      '',
      table(rows),
      '',
      'guarantees:',
      ...[...new Set(figures.map((f) => f.transport))].map((t) => `  ${t === 'nats' ? 'nats' : t === 'ours' ? 'ours' : t}: ${GUARANTEES[t]}`),
      '  "nsqd out buffer" is the handler connection\'s IDENTIFY output_buffer_size/timeout: off = -1 (every message written at once), 16 KiB/250 ms = nsqd\'s default',
    ];
    for (const f of figures) {
      for (const note of f.notes) out.push(`note: ${f.name}: ${note}`);
      if (f.error !== undefined) out.push(`error: ${f.name}: ${f.error}`);
    }
    out.push('', 'targets (issue):');
    if (targets.length === 0) out.push('  (no ours row measured next to NATS)');
    for (const t of targets) {
      const value = t.target.startsWith('throughput') ? `${t.value.toFixed(2)}x` : `${fmtMs(t.value)} ms`;
      out.push(`  ${t.row}: ${t.target}: ${value} ${t.met ? 'MET' : 'NOT MET'}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }
  if (failed.length > 0) return 1;
  return args.strict && targets.some((t) => !t.met) ? 1 : 0;
}

runMain(main);
