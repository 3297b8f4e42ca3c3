/**
 * Plumbing shared by the benchmark scripts (client.bench.ts, broker.bench.ts): an nsqd wrapper over
 * its HTTP API, bounded waits, a sliding window of outstanding operations, prefilling a channel,
 * running the official Go bench tools, the table printer, and `runMain`, which owns the exit code
 * and the cleanup (every process started here or through test/support/processes.ts is killed by
 * PID at the end, on failure and on SIGINT/SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Consumer, NsqdHttpClient, type NsqdChannelStats, type NsqdTopicStats, Producer, silentLogger } from '../../libs/nsq/src/index.js';
import { type NsqBinaryName, nsqBinary } from '../support/nsq-bin.js';
import { type NsqdProcess, stopAll } from '../support/processes.js';
import { sleep } from '../support/wait.js';

/** Bound for one measurement; a stalled client fails the run instead of hanging it. */
export const MEASURE_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// nsqd helpers (HTTP API)

export class Nsqd {
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

  async channelStats(topic: string, channel: string): Promise<NsqdChannelStats> {
    const stats = await this.topicStats(topic);
    const found = stats.channels.find((c) => c.channel_name === channel);
    if (!found) throw new Error(`nsqd /stats has no channel ${topic}/${channel}`);
    return found;
  }
}

// ---------------------------------------------------------------------------------------------
// waiting and windows

export function withTimeout<T>(promise: Promise<T>, what: string, ms = MEASURE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function once(emitter: NodeJS.EventEmitter, event: string, what: string, ms = 10_000): Promise<unknown[]> {
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

/** Rejects as soon as the emitter reports an error, in parallel with the workload. */
export function errorsOf(emitter: NodeJS.EventEmitter, who: string): { promise: Promise<never>; dispose(): void } {
  let onError: (error: unknown) => void = () => undefined;
  const promise = new Promise<never>((_, reject) => {
    onError = (error: unknown) => reject(new Error(`${who}: ${error instanceof Error ? error.message : String(error)}`));
    emitter.on('error', onError);
  });
  promise.catch(() => undefined);
  return { promise, dispose: () => emitter.off('error', onError) };
}

/**
 * Runs `count` operations keeping `window` outstanding: `start(onDone)` begins one operation and
 * must call `onDone(error?)` exactly once when it completes.
 */
export function slidingWindow(count: number, window: number, start: (onDone: (error?: Error | null) => void) => void): Promise<void> {
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

/** `count` MPUBs of `batch` to `topic` through `producer`, `window` of them outstanding. */
export function mpubMany(producer: Producer, topic: string, batch: readonly Buffer[], batches: number, window: number, what: string): Promise<void> {
  return withTimeout(
    slidingWindow(batches, window, (onDone) => {
      producer.publishMany(topic, batch).then(() => onDone(), onDone);
    }),
    what,
  );
}

/** A body of `size` printable bytes and a batch of `batchSize` references to it. */
export function makeBody(size: number, batchSize: number): { body: Buffer; batch: Buffer[] } {
  const body = Buffer.alloc(size);
  for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
  return { body, batch: new Array<Buffer>(batchSize).fill(body) };
}

// ---------------------------------------------------------------------------------------------
// channels

/**
 * Creates `topic` and its `channel` and puts `count` messages (a multiple of `batch.length`) in it
 * with our MPUB; resolves once the topic's pump has moved all of them to the channel.
 */
export async function prefillChannel(nsqd: Nsqd, topic: string, channel: string, batch: readonly Buffer[], count: number): Promise<void> {
  await nsqd.createTopic(topic);
  await nsqd.createChannel(topic, channel);
  const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
  try {
    await producer.connect();
    await mpubMany(producer, topic, batch, count / batch.length, 20, 'prefill');
  } finally {
    await producer.close();
  }
  await waitForChannelDepth(nsqd, topic, channel, count, 'prefill');
}

/**
 * Waits until the channel holds `count` messages (the topic's pump moves them asynchronously).
 * Warns when some went to disk unless `spillExpected`.
 */
export async function waitForChannelDepth(
  nsqd: Nsqd,
  topic: string,
  channel: string,
  count: number,
  who: string,
  opts: { timeoutMs?: number; spillExpected?: boolean } = {},
): Promise<NsqdChannelStats> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const stats = await nsqd.topicStats(topic);
    const c = stats.channels.find((ch) => ch.channel_name === channel);
    if (c && c.depth === count) {
      if (c.backend_depth > 0 && !opts.spillExpected) warn(`${who}: ${c.backend_depth} messages spilled to disk on ${topic}/${channel}`);
      return c;
    }
    if (Date.now() > deadline) {
      throw new Error(`${who}: channel ${topic}/${channel} has depth ${c?.depth ?? 'none'} after ${timeoutMs} ms, expected ${count}`);
    }
    await sleep(20);
  }
}

/** After consuming: nothing left, nothing in flight, nothing requeued or timed out. */
export async function verifyConsumed(nsqd: Nsqd, topic: string, channel: string, who: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const c = await nsqd.channelStats(topic, channel);
    if (c.requeue_count > 0 || c.timeout_count > 0) {
      throw new Error(`${who}: nsqd reports ${c.requeue_count} requeued / ${c.timeout_count} timed-out messages on ${topic}/${channel}`);
    }
    // FINs written before the timer stopped may still be in nsqd's read buffer for a moment.
    if (c.depth === 0 && c.in_flight_count === 0 && c.deferred_count === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`${who}: channel ${topic}/${channel} still has depth ${c.depth}, in flight ${c.in_flight_count}, deferred ${c.deferred_count}`);
    }
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------------
// our client's workloads

/** After a publish workload: nsqd must hold exactly `expected` messages on the topic. */
export async function verifyPublished(nsqd: Nsqd, topic: string, expected: number, who: string): Promise<void> {
  const stats = await nsqd.topicStats(topic);
  if (stats.message_count !== expected) {
    throw new Error(`${who}: nsqd counted ${stats.message_count} messages on ${topic}, expected ${expected}`);
  }
  if (stats.backend_depth > 0) warn(`${who}: ${stats.backend_depth} messages spilled to disk on ${topic} (raise --mem-queue-size)`);
}

/**
 * Our Producer MPUBs `count` messages (a multiple of `batch.length`) to an existing `topic`,
 * `outstanding` batches at a time; checks nsqd stored them all; resolves with msgs/s.
 */
export async function mpubWithOurs(nsqd: Nsqd, topic: string, batch: readonly Buffer[], count: number, outstanding: number, who: string): Promise<number> {
  const producer = new Producer(nsqd.tcpAddress, { logger: silentLogger });
  try {
    await producer.connect();
    const t0 = performance.now();
    await mpubMany(producer, topic, batch, count / batch.length, outstanding, who);
    const ms = performance.now() - t0;
    await verifyPublished(nsqd, topic, count, who);
    return (count / ms) * 1000;
  } finally {
    await producer.close();
  }
}

/**
 * Our Consumer drains `count` messages from a prefilled channel (resolving the handler FINs each);
 * timed from start() to the last message. Checks every message was finished exactly once and the
 * channel is empty; resolves with msgs/s.
 */
export async function consumeWithOurs(
  nsqd: Nsqd,
  topic: string,
  channel: string,
  count: number,
  options: { maxInFlight: number; outputBufferTimeout?: number | undefined },
  who: string,
): Promise<number> {
  let received = 0;
  let signalDone: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (signalDone = resolve));
  const consumer = new Consumer({
    topic,
    channel,
    nsqdTCPAddresses: [nsqd.tcpAddress],
    maxInFlight: options.maxInFlight,
    ...(options.outputBufferTimeout === undefined ? {} : { outputBufferTimeout: options.outputBufferTimeout }),
    logger: silentLogger,
    handler: () => {
      // resolve → FIN
      if (++received === count) setImmediate(signalDone);
    },
  });
  const errors = errorsOf(consumer, who);
  try {
    const t0 = performance.now();
    await consumer.start();
    await withTimeout(Promise.race([allDone, errors.promise]), `${who} (received ${received})`);
    const ms = performance.now() - t0;
    const stats = consumer.stats();
    if (stats.finished !== count || stats.requeued !== 0) {
      throw new Error(`${who}: finished ${stats.finished}, requeued ${stats.requeued}, expected ${count} finished`);
    }
    await verifyConsumed(nsqd, topic, channel, who);
    if (received !== count) throw new Error(`${who}: received ${received} messages, expected ${count}`);
    return (count / ms) * 1000;
  } finally {
    errors.dispose();
    await consumer.close();
  }
}

// ---------------------------------------------------------------------------------------------
// the official Go bench tools

const children = new Set<ChildProcess>();

/** Has `cleanup()` kill `child` (by PID) if it is still running, like the Go tools started here. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** What a role process sends back: a 'failed' message rejects every waiter. */
export interface RoleMessage {
  type: string;
  phase?: number;
  error?: string;
}

interface RoleWaiter<M extends RoleMessage> {
  match(message: M): boolean;
  resolve(message: M): void;
  reject(error: Error): void;
}

/**
 * A forked role process of a multi-process benchmark: send commands, wait for its answers (`M`,
 * the messages it sends over IPC); any 'failed' message or exit rejects every waiter. Its output
 * is forwarded to stderr line by line, prefixed with its name.
 */
export class RoleProcess<M extends RoleMessage> {
  private readonly waiters = new Set<RoleWaiter<M>>();
  private readonly exited: Promise<void>;
  private failure: Error | undefined;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    /** How long close() waits for the process to exit before it SIGKILLs it. */
    private readonly closeTimeoutMs: number,
  ) {
    trackChild(child);
    const forward = (chunk: string): void => {
      for (const line of chunk.split('\n')) if (line.trim()) process.stderr.write(`[${name}] ${line}\n`);
    };
    child.stdout?.setEncoding('utf8').on('data', forward);
    child.stderr?.setEncoding('utf8').on('data', forward);
    child.on('message', (message: M) => {
      if (message.type === 'failed') {
        this.rejectAll(new Error(`${name} failed${message.phase === undefined ? '' : ` in phase ${message.phase}`}: ${message.error}`));
        return;
      }
      for (const w of this.waiters) {
        if (w.match(message)) {
          this.waiters.delete(w);
          w.resolve(message);
          return;
        }
      }
    });
    // e.g. EPIPE when a command races the child's exit; the exit handler reports the failure.
    child.on('error', (error) => this.rejectAll(new Error(`${name}: ${error.message}`)));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.rejectAll(new Error(`${name} (pid ${child.pid}) exited (${code ?? signal})`));
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(message: object): void {
    if (!this.child.connected) throw new Error(`${this.name}: IPC channel closed`);
    this.child.send(message, (error) => {
      if (error) this.rejectAll(new Error(`${this.name}: IPC send failed: ${error.message}`));
    });
  }

  /** Registers the wait at once (before the command that triggers the answer is sent). */
  waitFor<T extends M['type']>(type: T, phase: number | undefined, what: string, ms = MEASURE_TIMEOUT_MS): Promise<Extract<M, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    const answer = new Promise<M>((resolve, reject) => {
      this.waiters.add({
        match: (m) => m.type === type && (phase === undefined || !('phase' in m) || m.phase === phase),
        resolve,
        reject,
      });
    }) as Promise<Extract<M, { type: T }>>;
    const bounded = withTimeout(answer, `${this.name}: ${what}`, ms);
    bounded.catch(() => undefined);
    return bounded;
  }

  /** Asks the process to close and exit ({ type: 'close' }); SIGKILL (by PID) if it has not in time. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      this.send({ type: 'close' });
      await withTimeout(this.exited, `${this.name} close`, this.closeTimeoutMs);
    } catch {
      this.kill();
      await this.exited;
    }
  }

  kill(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  private rejectAll(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiters) w.reject(error);
    this.waiters.clear();
  }
}

/** Runs an official NSQ binary to completion; resolves with its stdout + stderr. */
export function runGo(name: NsqBinaryName, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(nsqBinary(name), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.once('error', (error) => {
      children.delete(child);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${name} exited with ${code ?? signal}: ${out.trim()}`));
    });
  });
}

export interface GoBenchResult {
  /** The tool's own figure (messages / its measured duration). */
  opsPerSec: number;
  seconds: number;
  line: string;
}

/** Parses bench_writer's / bench_reader's `duration: 10.0001s - 45.2mb/s - 237000.1ops/s - 4.2us/op`. */
export function parseGoBench(output: string, name: string): GoBenchResult {
  const match = /duration: (\S+) - [\d.]+mb\/s - ([\d.]+)ops\/s/.exec(output);
  if (!match) throw new Error(`${name}: no "duration: ... ops/s" line in its output: ${output.trim()}`);
  const line = output.slice(match.index).split('\n')[0]!;
  return { opsPerSec: Number(match[2]), seconds: parseGoDuration(match[1]!), line };
}

/** Go's time.Duration.String(): e.g. 1m2.5s, 10.0012s, 950.1ms, 12µs. */
/**
 * Walks command-line flags (`--flag=value` or `--flag value`); `value()` takes the flag's value and
 * throws when there is none.
 */
export function forEachFlag(argv: readonly string[], onFlag: (flag: string, value: () => string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    const eq = raw.indexOf('=');
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    onFlag(flag, () => {
      if (eq > 0) return raw.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    });
  }
}

export function parseGoDuration(text: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };
  let seconds = 0;
  let rest = text;
  while (rest.length > 0) {
    const part = /^([\d.]+)(h|ms|m|s|us|µs|ns)/.exec(rest);
    if (!part) throw new Error(`cannot parse Go duration ${JSON.stringify(text)}`);
    seconds += Number(part[1]) * units[part[2]!]!;
    rest = rest.slice(part[0].length);
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------------
// output

export function warn(text: string): void {
  process.stderr.write(`warning: ${text}\n`);
}

export function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

export function summarize(values: readonly number[], stat: 'best' | 'median'): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (stat === 'best') return sorted[sorted.length - 1]!;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function fmtRate(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A text table: the first row is the header; the first column left-aligned, the rest right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r, ri) => {
      const line = r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// lifecycle

let cleaningUp: Promise<void> | undefined;

/** Kills the Go tools and tracked children still running and every nsqd started through processes.ts (by PID). */
export function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const child of children) {
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

/**
 * Runs `main` (which resolves with the exit code), cleans up, and exits; errors print their stack
 * and exit 1. SIGINT/SIGTERM clean up and exit 130.
 */
export function runMain(main: () => Promise<number>): void {
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
}
