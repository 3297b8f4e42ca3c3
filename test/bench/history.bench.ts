/**
 * History benchmark: what recording every message's lifecycle costs our broker, and how fast it
 * gets into MySQL, against a broker with no history and against a naive recorder.
 *
 *   npm run bench:history                      # table on stdout, progress on stderr
 *   npm run -s bench:history -- --json         # only {"modes":[...],"ratios":{...},"rowsMissing":N} on stdout
 *
 * Modes (each in a fresh broker process, and for the last two a fresh MariaDB database):
 *   off     our NSQD (libs/nsq) with nobody listening to its lifecycle events
 *   events  (diagnostic, only with --only) the same with a listener that only counts the events:
 *           the floor any history pays, nsqd building an event object per lifecycle step
 *   mysql   the same with HistoryRecorder (defaults) on MariaDB, fed by recordNsqdEvents
 *   naive   the same with NaiveRecorder (naive-recorder.ts): one autocommitted INSERT per event,
 *           each awaited before the next, as a patched nsqd would write them
 *
 * Per mode: the broker process (history-roles.js broker), a consumer process (history-roles.js
 * consumer: our Consumer, maxInFlight 2500, FIN per message) subscribed first, and our Producer in
 * this process (MPUB batches of 200 bodies of 200 B, 5 batches outstanding). A warm-up of
 * --warmup messages (default: as many as --messages; naive: at most 10,000, its rate is bound by
 * the commit fsync) goes through first and is recorded completely, so that every mode is measured
 * in its steady state: JIT-compiled, heap grown, and the memory a burst queues into faulted in
 * once (a fresh process's first burst pays a page fault per 4 KiB it queues; `--warmup 10000`
 * measures that cold case); then --messages (200,000; naive: --naive-messages):
 *   delivery msgs/s  messages / (first MPUB sent -> the consumer received the last one)
 *   recorded msgs/s  messages / (first MPUB sent -> the broker saw the last FIN and every event so
 *                    far is in the database: the recorder flushed, nothing queued or spooled)
 * Times are wall clock (performance.timeOrigin + now()) of this process, the consumer and the broker.
 *
 * Rows: the broker counts the events its nsqd emitted. mysql writes an event row for every event
 * and a message row per publish; naive a message row per publish and an event row for every other
 * event. The tables are counted after the warm-up, then emptied (the measured phase starts on empty
 * tables), and counted again after the measured phase; rowsMissing is the total over modes, phases
 * and tables of (expected - present) where positive (extra rows, reported as rowsExtra, never
 * offset missing ones).
 *
 * Targets (issue 5): history on MySQL costs <= 15 % of delivery throughput
 * (1 - delivery(mysql) / delivery(off)) and records >= 20x faster than the naive recorder
 * (recorded(mysql) / recorded(naive)); zero rows missing.
 *
 * Flags: --messages N (200000) --naive-messages N (default: --messages; a smaller count
 *        measures naive on fewer messages and says loudly that its rate is extrapolated)
 *        --warmup N (default: --messages) --runs N (3; best of N per mode, rounds interleaved; naive runs once:
 *        its rate is bound by the commit fsync) --only off,mysql,naive
 *        --max-in-flight N (2500) --cpu-prof DIR (profile the broker processes into DIR)
 *        --child-node-arg ARG (repeatable: a node option for the broker)
 *        --no-settle (do not wait for the database server to go idle before each measured phase)
 *        --json --strict
 *
 * Every process is started here and killed by PID at the end, on failure and on SIGINT/SIGTERM;
 * every database is dropped.
 */
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { NsqdHttpClient, Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { createTestDatabase, MARIADB, mariadbProbe } from '../support/mariadb.js';
import { fmtRate, forEachFlag, makeBody, MEASURE_TIMEOUT_MS, mpubMany, progress, RoleProcess, runMain, summarize, table, warn } from './bench-util.js';
import { DEFAULT_MODES, type EventCounts, type FromRole, HISTORY_MODES, type HistoryMode, type RecorderReport, wallClockMs } from './history-protocol.js';

const SIZE = 200;
const BATCH = 200;
const OUTSTANDING_BATCHES = 5;
const CHANNEL = 'bench';
const COST_TARGET = 0.15;
const SPEEDUP_TARGET = 20;
const SETTLE_TIMEOUT_MS = 20_000;
/** The slowest recording the benchmark waits for before it calls the run stalled. */
const MIN_RECORDED_RATE = 50;

interface Args {
  messages: number;
  naiveMessages: number | undefined;
  warmup: number;
  runs: number;
  only: HistoryMode[];
  maxInFlight: number;
  cpuProf: string | undefined;
  childNodeArgs: string[];
  /** Wait for the database server to go idle before each measured phase (when it is reachable). */
  settle: boolean;
  json: boolean;
  strict: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    messages: 200_000,
    naiveMessages: undefined,
    warmup: -1,
    runs: 3,
    only: [...DEFAULT_MODES],
    maxInFlight: 2500,
    cpuProf: undefined,
    childNodeArgs: [],
    settle: true,
    json: false,
    strict: false,
  };
  const int = (flag: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
    return n;
  };
  forEachFlag(argv, (flag, value) => {
    switch (flag) {
      case '--messages':
        args.messages = int(flag, value(), BATCH);
        break;
      case '--naive-messages':
        args.naiveMessages = int(flag, value(), BATCH);
        break;
      case '--warmup':
        args.warmup = int(flag, value(), 0);
        break;
      case '--runs':
        args.runs = int(flag, value(), 1);
        break;
      case '--max-in-flight':
        args.maxInFlight = int(flag, value(), 1);
        break;
      case '--only': {
        const names = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        for (const n of names) {
          if (!HISTORY_MODES.includes(n as HistoryMode)) throw new Error(`--only: unknown mode ${JSON.stringify(n)} (${HISTORY_MODES.join(', ')})`);
        }
        args.only = HISTORY_MODES.filter((m) => names.includes(m));
        if (args.only.length === 0) throw new Error(`--only needs at least one of ${HISTORY_MODES.join(', ')}`);
        break;
      }
      case '--cpu-prof':
        args.cpuProf = value();
        break;
      case '--child-node-arg':
        args.childNodeArgs.push(value());
        break;
      case '--no-settle':
        args.settle = false;
        break;
      case '--json':
        args.json = true;
        break;
      case '--strict':
        args.strict = true;
        break;
      case '--help':
      case '-h':
        process.stderr.write(`usage: node dist/test/bench/history.bench.js [--messages N] [--naive-messages N] [--warmup N] [--runs N]
  [--only ${HISTORY_MODES.join(',')}] [--max-in-flight N] [--cpu-prof DIR] [--child-node-arg ARG]... [--no-settle] [--json] [--strict]\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${JSON.stringify(flag)} (try --help)`);
    }
  });
  if (args.warmup < 0) args.warmup = args.messages;
  for (const [flag, n] of [
    ['--messages', args.messages],
    ['--naive-messages', args.naiveMessages ?? BATCH],
    ['--warmup', args.warmup],
  ] as const) {
    if (n % BATCH !== 0) throw new Error(`${flag} (${n}) must be a multiple of the batch size ${BATCH}`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------
// role processes

const ROLES_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'history-roles.js');

/** A role process of this benchmark (broker or consumer). */
function startRole(role: 'broker' | 'consumer', label: string, argv: string[], execArgv: string[]): RoleProcess<FromRole> {
  const child = fork(ROLES_MAIN, [role, ...argv], { silent: true, execArgv });
  return new RoleProcess<FromRole>(`${label} ${role}`, child, 40_000);
}

// ---------------------------------------------------------------------------------------------
// one mode

interface Rows {
  eventsExpected: number;
  eventsPresent: number;
  messagesExpected: number;
  messagesPresent: number;
  /** The warm-up's rows (counted before the tables were emptied for the measured phase). */
  warmup: { eventsExpected: number; eventsPresent: number; messagesExpected: number; messagesPresent: number };
  /** Expected - present, per table and phase where positive, summed. */
  missing: number;
  /** Present - expected, per table and phase where positive, summed. */
  extra: number;
}

interface Sample {
  mode: HistoryMode;
  messages: number;
  deliveryMsgsPerSec: number;
  /** null for off. */
  recordedMsgsPerSec: number | null;
  deliverySeconds: number;
  recordedSeconds: number | null;
  /** The broker process's CPU (user + system) per message while delivering (µs), where /proc tells. */
  brokerCpuUsPerMsg: number | null;
  /** The broker's main thread's share of brokerCpuUsPerMsg (the rest: garbage collector helpers, libuv's pool). */
  brokerMainThreadCpuUsPerMsg: number | null;
  /** The broker process's minor page faults per 1,000 messages while delivering, where /proc tells. */
  brokerFaultsPerKMsg: number | null;
  /** The database server's CPU per message while delivering (µs): what it took from the delivery. */
  databaseCpuUsPerMsg: number | null;
  /** CPU per message from the first publish until every event is in the database (µs): the broker's and the database server's. */
  recordingCpuUsPerMsg: { broker: number; database: number } | null;
  /** What nsqd emitted over the broker's life (warm-up included); null for off. */
  events: EventCounts | null;
  rows: Rows | null;
  recorder: RecorderReport | null;
}

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) a process has used and its minor page faults (first touches of
 * fresh memory, which cost a lot in a VM), from /proc (Linux); undefined elsewhere.
 */
function cpuUsage(pid: number | undefined): { seconds: number; mainSeconds: number; faults: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    // the fields after the command name, which is in parentheses and may contain spaces
    const stat = (path: string): string[] => readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
    const fields = stat(`/proc/${pid}/stat`);
    // the main thread alone (the rest: the garbage collector's helper threads, libuv's pool)
    const main = stat(`/proc/${pid}/task/${pid}/stat`);
    return {
      seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND,
      mainSeconds: (Number(main[11]) + Number(main[12])) / CLOCK_TICKS_PER_SECOND,
      faults: Number(fields[7]),
    };
  } catch {
    return undefined;
  }
}

/** The database server's process (mariadbd or mysqld) on this machine, when /proc shows one. */
function databaseServerPid(): number | undefined {
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
        if (comm === 'mariadbd' || comm === 'mysqld') return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return undefined;
}

async function countRows(database: string): Promise<{ events: number; messages: number }> {
  const conn = await mysql.createConnection({ ...MARIADB, database });
  try {
    const [[e], [m]] = (await Promise.all([
      conn.query('SELECT COUNT(*) AS n FROM nsq_message_event'),
      conn.query('SELECT COUNT(*) AS n FROM nsq_message'),
    ])) as unknown as [[Array<{ n: number | string }>], [Array<{ n: number | string }>]];
    return { events: Number(e[0]?.n ?? 0), messages: Number(m[0]?.n ?? 0) };
  } finally {
    await conn.end();
  }
}

/**
 * Empties the history tables (after the warm-up, its rows counted): the measured phase starts on
 * empty tables in every mode, as it would without a warm-up, instead of on a warm-up as large as
 * itself that no longer fits MariaDB's default 128 MiB buffer pool.
 */
async function emptyTables(database: string): Promise<void> {
  const conn = await mysql.createConnection({ ...MARIADB, database });
  try {
    for (const table of ['nsq_message_event', 'nsq_message_channel', 'nsq_message']) await conn.query(`TRUNCATE TABLE ${table}`);
  } finally {
    await conn.end();
  }
}

/**
 * Waits (at most SETTLE_TIMEOUT_MS) until the database server is done with what came before (the
 * previous mode, the warm-up): the undo purged and its dirty pages no longer being written out,
 * so that its background work does not compete with the measured phase for the machine's CPU.
 */
async function settleDatabase(): Promise<void> {
  const conn = await mysql.createConnection(MARIADB);
  try {
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    let previousDirty = -1;
    while (Date.now() < deadline) {
      const [rows] = (await conn.query(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_dirty', 'Innodb_history_list_length')",
      )) as unknown as [Array<{ Variable_name: string; Value: string }>];
      const v = Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
      const dirty = v.Innodb_buffer_pool_pages_dirty ?? 0;
      // the page cleaner may leave pages dirty for good once idle: what matters is that it stopped
      if ((v.Innodb_history_list_length ?? 0) < 100 && Math.abs(dirty - previousDirty) <= 8) return;
      previousDirty = dirty;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    warn(`the database server is still busy after ${SETTLE_TIMEOUT_MS} ms: the measurement may be disturbed`);
  } finally {
    await conn.end();
  }
}

/** Both recorders write a broker's publish as its message row only, and every other event as an event row. */
function expectedRows(events: EventCounts): { events: number; messages: number } {
  const total = Object.values(events).reduce((a, b) => a + b, 0);
  const published = events.published ?? 0;
  return { events: total - published, messages: published };
}

/** One phase (warm-up or measured) of a mode: its times, what the broker reported, and the CPU figures (null where /proc does not tell). */
interface PhaseResult {
  firstAt: number;
  receivedAt: number;
  recorded: Extract<FromRole, { type: 'recorded' }>;
  cpu: number | null;
  mainCpu: number | null;
  faults: number | null;
  dbCpu: number | null;
  recordingCpu: { broker: number; database: number } | null;
}

/** The naive recorder's warm-up is at most this many messages: at its fsync-bound rate a full one would take minutes. */
const NAIVE_MAX_WARMUP = 10_000;

async function runMode(args: Args, mode: HistoryMode, run: number, batch: readonly Buffer[]): Promise<Sample> {
  const messages = mode === 'naive' ? (args.naiveMessages ?? args.messages) : args.messages;
  const label = `${mode}#${run + 1}`;
  const db = mode === 'mysql' || mode === 'journal' || mode === 'naive' ? await createTestDatabase('history_bench') : undefined;
  const profile = args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${args.cpuProf}`, `--cpu-prof-name=${label.replace(/[^\w.-]+/g, '_')}-broker.cpuprofile`] : [];
  let broker: RoleProcess<FromRole> | undefined;
  let consumer: RoleProcess<FromRole> | undefined;
  let producer: Producer | undefined;
  try {
    broker = startRole('broker', label, [`--mode=${mode}`, ...(db ? [`--database=${db.name}`] : [])], [...profile, ...args.childNodeArgs]);
    const ready = await broker.waitFor('ready', undefined, 'start', 60_000);
    const tcpAddress = ready.tcpAddress!;
    const topic = `history_bench_${process.pid}_${run}_${mode}`;
    const http = new NsqdHttpClient(ready.httpAddress!, { timeoutMs: 10_000 });
    await http.createTopic(topic);
    await http.createChannel(topic, CHANNEL);
    consumer = startRole('consumer', label, [`--nsqd=${tcpAddress}`, `--topic=${topic}`, `--channel=${CHANNEL}`, `--max-in-flight=${args.maxInFlight}`], []);
    await consumer.waitFor('ready', undefined, 'start', 30_000);
    producer = new Producer(tcpAddress, { logger: silentLogger });
    await producer.connect();

    let phase = 0;
    const dbPid = db === undefined ? undefined : databaseServerPid();
    let finishedSoFar = 0;
    const runPhase = async (count: number, what: string): Promise<PhaseResult> => {
      const p = ++phase;
      finishedSoFar += count;
      const expecting = consumer!.waitFor('expecting', p, `${what}: expect`);
      consumer!.send({ type: 'expect', phase: p, count });
      await expecting;
      const received = consumer!.waitFor('received', p, what, Math.max(MEASURE_TIMEOUT_MS, (count / MIN_RECORDED_RATE) * 1000));
      const recorded = broker!.waitFor('recorded', p, `${what}: recorded`, Math.max(MEASURE_TIMEOUT_MS, (count / MIN_RECORDED_RATE) * 1000));
      broker!.send({ type: 'await-recorded', phase: p, finished: finishedSoFar });
      const cpu0 = cpuUsage(broker!.pid);
      const dbCpu0 = cpuUsage(dbPid);
      const firstAt = wallClockMs();
      await mpubMany(producer!, topic, batch, count / batch.length, OUTSTANDING_BATCHES, `${what}: publish`);
      const r = await received;
      const cpu1 = cpuUsage(broker!.pid);
      const dbCpu1 = cpuUsage(dbPid);
      if (r.count !== count) throw new Error(`${what}: the consumer reports ${r.count} messages, expected ${count}`);
      const cpu = cpu0 === undefined || cpu1 === undefined ? null : ((cpu1.seconds - cpu0.seconds) * 1e6) / count;
      const mainCpu = cpu0 === undefined || cpu1 === undefined ? null : ((cpu1.mainSeconds - cpu0.mainSeconds) * 1e6) / count;
      const faults = cpu0 === undefined || cpu1 === undefined ? null : ((cpu1.faults - cpu0.faults) * 1000) / count;
      const dbCpu = dbCpu0 === undefined || dbCpu1 === undefined ? null : ((dbCpu1.seconds - dbCpu0.seconds) * 1e6) / count;
      const done = await recorded;
      const cpu2 = cpuUsage(broker!.pid);
      const dbCpu2 = cpuUsage(dbPid);
      const recordingCpu =
        db === undefined || cpu0 === undefined || cpu2 === undefined || dbCpu0 === undefined || dbCpu2 === undefined
          ? null
          : { broker: ((cpu2.seconds - cpu0.seconds) * 1e6) / count, database: ((dbCpu2.seconds - dbCpu0.seconds) * 1e6) / count };
      return { firstAt, receivedAt: r.lastAt, recorded: done, cpu, mainCpu, faults, dbCpu, recordingCpu };
    };

    const warmup = mode === 'naive' ? Math.min(args.warmup, NAIVE_MAX_WARMUP) : args.warmup;
    // the warm-up's rows: counted, then emptied (see emptyTables)
    let warmRows = { expected: { events: 0, messages: 0 }, present: { events: 0, messages: 0 } };
    if (warmup > 0) {
      progress(`${label}: warm-up, ${warmup.toLocaleString('en-US')} messages`);
      const warm = await runPhase(warmup, `${label} warm-up`);
      if (db !== undefined) {
        warmRows = { expected: expectedRows(warm.recorded.events), present: await countRows(db.name) };
        await emptyTables(db.name);
      }
    }
    if (args.settle) await settleDatabase();
    progress(`${label}: ${messages.toLocaleString('en-US')} messages`);
    const { firstAt, receivedAt, recorded, cpu, mainCpu, faults, dbCpu, recordingCpu } = await runPhase(messages, label);
    const deliverySeconds = (receivedAt - firstAt) / 1000;
    const recordedSeconds = db === undefined ? null : (recorded.at - firstAt) / 1000;
    let rows: Rows | null = null;
    if (db !== undefined) {
      // this phase's events (nsqd's counts include the warm-up's), then the warm-up's rows counted with them
      const total = expectedRows(recorded.events);
      const expected = { events: total.events - warmRows.expected.events, messages: total.messages - warmRows.expected.messages };
      const present = await countRows(db.name);
      const diff = (e: number, p: number): [number, number] => [Math.max(0, e - p), Math.max(0, p - e)];
      const [me, xe] = diff(expected.events, present.events);
      const [mm, xm] = diff(expected.messages, present.messages);
      const [wme, wxe] = diff(warmRows.expected.events, warmRows.present.events);
      const [wmm, wxm] = diff(warmRows.expected.messages, warmRows.present.messages);
      rows = {
        eventsExpected: expected.events,
        eventsPresent: present.events,
        messagesExpected: expected.messages,
        messagesPresent: present.messages,
        warmup: {
          eventsExpected: warmRows.expected.events,
          eventsPresent: warmRows.present.events,
          messagesExpected: warmRows.expected.messages,
          messagesPresent: warmRows.present.messages,
        },
        missing: me + mm + wme + wmm,
        extra: xe + xm + wxe + wxm,
      };
    }
    const sample: Sample = {
      mode,
      messages,
      deliveryMsgsPerSec: messages / deliverySeconds,
      recordedMsgsPerSec: recordedSeconds === null ? null : messages / recordedSeconds,
      deliverySeconds,
      recordedSeconds,
      brokerCpuUsPerMsg: cpu === null ? null : Math.round(cpu * 100) / 100,
      brokerMainThreadCpuUsPerMsg: mainCpu === null ? null : Math.round(mainCpu * 100) / 100,
      brokerFaultsPerKMsg: faults === null ? null : Math.round(faults),
      databaseCpuUsPerMsg: dbCpu === null ? null : Math.round(dbCpu * 100) / 100,
      recordingCpuUsPerMsg: recordingCpu === null ? null : { broker: Math.round(recordingCpu.broker * 10) / 10, database: Math.round(recordingCpu.database * 10) / 10 },
      events: mode === 'off' ? null : recorded.events,
      rows,
      recorder: recorded.recorder,
    };
    progress(
      `${label}: delivery ${fmtRate(sample.deliveryMsgsPerSec)} msgs/s (${deliverySeconds.toFixed(2)} s` +
        (sample.brokerCpuUsPerMsg === null ? ')' : `, broker CPU ${sample.brokerCpuUsPerMsg.toFixed(2)} µs/msg (main thread ${sample.brokerMainThreadCpuUsPerMsg?.toFixed(2) ?? '?'}), ${sample.brokerFaultsPerKMsg ?? '?'} page faults per 1,000 msgs` +
              (sample.databaseCpuUsPerMsg === null ? ')' : `, database server CPU ${sample.databaseCpuUsPerMsg.toFixed(2)} µs/msg)`)) +
        (sample.recordedMsgsPerSec === null ? '' : `, recorded ${fmtRate(sample.recordedMsgsPerSec)} msgs/s (${recordedSeconds!.toFixed(2)} s)`) +
        (sample.recordingCpuUsPerMsg === null ? '' : ` (CPU until recorded: broker ${sample.recordingCpuUsPerMsg.broker} µs/msg, database server ${sample.recordingCpuUsPerMsg.database} µs/msg)`) +
        (rows === null ? '' : `, event rows ${rows.eventsPresent}/${rows.eventsExpected}, message rows ${rows.messagesPresent}/${rows.messagesExpected}` +
              ` (warm-up: ${rows.warmup.eventsPresent}/${rows.warmup.eventsExpected}, ${rows.warmup.messagesPresent}/${rows.warmup.messagesExpected})`) +
        (sample.recorder === null ? '' : `, recorder ${JSON.stringify(sample.recorder)}`),
    );
    return sample;
  } finally {
    await producer?.close().catch(() => undefined);
    await consumer?.close();
    await broker?.close();
    await db?.drop();
  }
}

// ---------------------------------------------------------------------------------------------
// main

interface ModeFigure {
  mode: HistoryMode;
  messages: number;
  /** Best of the runs. */
  deliveryMsgsPerSec: number;
  /** delivery / delivery(off); null without an off figure. */
  vsOff: number | null;
  recordedMsgsPerSec: number | null;
  /** True when this mode ran on fewer messages than --messages (naive): its rates are extrapolated. */
  extrapolated: boolean;
  runs: Sample[];
  rowsMissing: number;
  rowsExtra: number;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.only.some((m) => m === 'mysql' || m === 'journal' || m === 'naive')) {
    const missing = await mariadbProbe();
    if (missing !== undefined) throw new Error(missing);
  } else if (args.settle && (await mariadbProbe()) !== undefined) {
    // modes without a database still wait for a busy server, if there is one to ask
    args.settle = false;
  }
  const { batch } = makeBody(SIZE, BATCH);
  const naiveMessages = args.naiveMessages ?? args.messages;
  progress(
    `history bench: ${args.messages.toLocaleString('en-US')} messages of ${SIZE} B (naive: ${naiveMessages.toLocaleString('en-US')}), ` +
      `warm-up ${args.warmup.toLocaleString('en-US')} (naive: at most ${NAIVE_MAX_WARMUP.toLocaleString('en-US')}), ${args.runs} run(s), modes ${args.only.join(', ')}; node ${process.version}, ${availableParallelism()} cores`,
  );
  const samples = new Map<HistoryMode, Sample[]>(args.only.map((m) => [m, []]));
  for (let run = 0; run < args.runs; run++) {
    for (const mode of args.only) {
      // the naive recorder's rate is bound by the commit fsync, not by the machine's noise: one run
      if (mode === 'naive' && run > 0) continue;
      samples.get(mode)!.push(await runMode(args, mode, run, batch));
    }
  }

  const figures: ModeFigure[] = args.only.map((mode) => {
    const runs = samples.get(mode)!;
    const recorded = runs.map((s) => s.recordedMsgsPerSec).filter((v): v is number => v !== null);
    return {
      mode,
      messages: runs[0]!.messages,
      deliveryMsgsPerSec: Math.round(summarize(runs.map((s) => s.deliveryMsgsPerSec), 'best')),
      vsOff: null,
      recordedMsgsPerSec: recorded.length > 0 ? Math.round(summarize(recorded, 'best')) : null,
      extrapolated: runs[0]!.messages < args.messages,
      runs,
      rowsMissing: runs.reduce((a, s) => a + (s.rows?.missing ?? 0), 0),
      rowsExtra: runs.reduce((a, s) => a + (s.rows?.extra ?? 0), 0),
    };
  });
  const off = figures.find((f) => f.mode === 'off');
  for (const f of figures) f.vsOff = off === undefined ? null : Math.round((f.deliveryMsgsPerSec / off.deliveryMsgsPerSec) * 1000) / 1000;
  const mysqlFigure = figures.find((f) => f.mode === 'mysql');
  const naive = figures.find((f) => f.mode === 'naive');
  const cost = off !== undefined && mysqlFigure !== undefined ? Math.round((1 - mysqlFigure.deliveryMsgsPerSec / off.deliveryMsgsPerSec) * 1000) / 1000 : null;
  const speedup =
    mysqlFigure?.recordedMsgsPerSec != null && naive?.recordedMsgsPerSec != null ? Math.round((mysqlFigure.recordedMsgsPerSec / naive.recordedMsgsPerSec) * 10) / 10 : null;
  const rowsMissing = figures.reduce((a, f) => a + f.rowsMissing, 0);
  const rowsExtra = figures.reduce((a, f) => a + f.rowsExtra, 0);
  const ratios = {
    cost,
    costTarget: COST_TARGET,
    costMet: cost === null ? null : cost <= COST_TARGET,
    speedup,
    speedupTarget: SPEEDUP_TARGET,
    speedupMet: speedup === null ? null : speedup >= SPEEDUP_TARGET,
    /** The naive rate behind the speedup was measured on fewer messages and extrapolated. */
    speedupExtrapolated: naive?.extrapolated ?? false,
  };
  const missed = [
    ...(ratios.costMet === false ? ['cost'] : []),
    ...(ratios.speedupMet === false ? ['speedup'] : []),
    ...(rowsMissing > 0 ? ['rowsMissing'] : []),
  ];

  if (args.json) {
    process.stdout.write(`${JSON.stringify({ messages: args.messages, naiveMessages, warmup: args.warmup, bodyBytes: SIZE, modes: figures, ratios, rowsMissing, rowsExtra })}\n`);
  } else {
    const labels: Record<HistoryMode, string> = {
      off: 'off (no history)',
      events: 'events (nsqd events counted, nothing recorded)',
      mysql: 'mysql (HistoryRecorder on MariaDB)',
      journal: 'journal (the same + HistoryJournal)',
      naive: 'naive (1 INSERT per event, awaited)',
    };
    const rowsText = (f: ModeFigure, pick: (r: Rows) => [number, number]): string => {
      const withRows = f.runs.filter((s) => s.rows !== null);
      if (withRows.length === 0) return '-';
      const [e, p] = withRows.map((s) => pick(s.rows!)).reduce(([a, b], [c, d]) => [a + c, b + d], [0, 0]);
      return `${p.toLocaleString('en-US')}/${e.toLocaleString('en-US')}`;
    };
    const k = (v: number): string => `${(v / 1000).toFixed(1)}k`;
    const rows = [
      ['mode', 'messages', 'delivery msgs/s', 'vs off', 'recorded msgs/s', 'event rows present/expected', 'message rows present/expected', 'delivery runs', 'recorded runs'],
      ...figures.map((f) => [
        labels[f.mode] + (f.extrapolated ? ' [EXTRAPOLATED]' : ''),
        f.messages.toLocaleString('en-US'),
        fmtRate(f.deliveryMsgsPerSec),
        f.vsOff === null ? '-' : `${f.vsOff.toFixed(2)}x`,
        f.recordedMsgsPerSec === null ? '-' : fmtRate(f.recordedMsgsPerSec),
        rowsText(f, (r) => [r.eventsExpected, r.eventsPresent]),
        rowsText(f, (r) => [r.messagesExpected, r.messagesPresent]),
        f.runs.map((s) => k(s.deliveryMsgsPerSec)).join(' '),
        f.runs.map((s) => (s.recordedMsgsPerSec === null ? '-' : k(s.recordedMsgsPerSec))).join(' '),
      ]),
    ];
    const out: string[] = [
      '',
      `History benchmark: ${args.messages.toLocaleString('en-US')} messages of ${SIZE} B through our nsqd (broker process) to our Consumer ` +
        `(maxInFlight ${args.maxInFlight}, separate process), our Producer MPUB x${BATCH}, ${OUTSTANDING_BATCHES} outstanding; ` +
        `warm-up ${args.warmup.toLocaleString('en-US')} (naive: at most ${NAIVE_MAX_WARMUP.toLocaleString('en-US')}); best of ${args.runs}; node ${process.version}, ${availableParallelism()} cores`,
      'delivery = first publish -> last message received; recorded = first publish -> every event in the database',
      '',
      table(rows),
      '',
    ];
    if (naive?.extrapolated) {
      out.push(
        `!!! NAIVE WAS MEASURED ON ${naive.messages.toLocaleString('en-US')} MESSAGES, NOT ${args.messages.toLocaleString('en-US')}: ` +
          'ITS RATES (AND THE SPEEDUP) ARE EXTRAPOLATED, ASSUMING ITS PER-MESSAGE RATE STAYS CONSTANT !!!',
        '',
      );
    }
    out.push('targets (issue 5):');
    out.push(
      cost === null
        ? '  cost: needs off and mysql'
        : `  cost of history on MySQL = 1 - delivery(mysql)/delivery(off) = ${(cost * 100).toFixed(1)} % (target <= ${COST_TARGET * 100} %): ${ratios.costMet ? 'MET' : 'NOT MET'}`,
    );
    out.push(
      speedup === null
        ? '  speedup: needs mysql and naive'
        : `  speedup = recorded(mysql)/recorded(naive) = ${speedup.toFixed(1)}x (target >= ${SPEEDUP_TARGET}x): ${ratios.speedupMet ? 'MET' : 'NOT MET'}${ratios.speedupExtrapolated ? ' (EXTRAPOLATED naive rate)' : ''}`,
    );
    out.push(`  rows missing: ${rowsMissing} (target 0): ${rowsMissing === 0 ? 'MET' : 'NOT MET'}${rowsExtra > 0 ? `; ${rowsExtra} extra rows` : ''}`);
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return args.strict && missed.length > 0 ? 1 : 0;
}

runMain(main);
