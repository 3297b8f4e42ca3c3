/**
 * Starts nsqd / nsqlookupd for integration tests: the official binaries (`impl: 'go'`, the default)
 * or our TypeScript broker (`impl: 'ts'`: node dist/apps/broker/src/main.js --role nsqd|lookupd with
 * the same Go-style flags), bound to 127.0.0.1 on OS-picked ports, nsqd with a fresh temp data dir. Every process is tracked; call `stopAll()` in
 * `afterAll` to kill whatever is still running. As a second line of defence each process gets a
 * tiny detached `sh` watchdog that SIGKILLs it (by PID) if the process that started it (the Jest
 * worker) dies without cleaning up, so no nsqd outlives the Jest run.
 *
 * Readiness = the `TCP: listening on` and `HTTP: listening on` log lines (which also give the
 * ports), then `GET /ping` answering `OK`.
 *
 * No runtime dependency on Jest: benchmarks can use this module too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerMain, type Impl, nsqBinary } from './nsq-bin.js';
import { sleep } from './wait.js';

const HOST = '127.0.0.1';
const DEFAULT_START_TIMEOUT_MS = 10_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/** How long `restart()` keeps retrying while the old ports are still reported in use. */
const RESTART_RETRY_MS = 10_000;
/** The log kept in memory per process (older text is dropped, offsets stay absolute). */
const MAX_LOG_CHARS = 4 * 1024 * 1024;
const TERMINATING = new Set<NodeJS.Signals>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT']);

export interface NsqdOptions {
  /** 'go' (default): the official nsqd; 'ts': our broker with --role nsqd. */
  impl?: Impl;
  /** nsqlookupd TCP addresses ('127.0.0.1:port') to register with (`--lookupd-tcp-address`). */
  lookupdTcpAddresses?: string[];
  /** Extra command-line flags, e.g. ['--mem-queue-size=0', '--msg-timeout=2s']. */
  args?: string[];
  /** Data dir; default a fresh temp dir that `stopAll()` deletes. */
  dataPath?: string;
  /** Fixed ports; default 0 = OS-picked. */
  tcpPort?: number;
  httpPort?: number;
  /** Bound for the start (log lines + /ping); default 10 s. */
  startTimeoutMs?: number;
}

export interface NsqlookupdOptions {
  /** 'go' (default): the official nsqlookupd; 'ts': our broker with --role lookupd. */
  impl?: Impl;
  args?: string[];
  tcpPort?: number;
  httpPort?: number;
  startTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

type Kind = 'nsqd' | 'nsqlookupd';

const instances = new Set<NsqProcess>();
const ownedTempDirs = new Set<string>();

/** A running (or stopped) nsqd / nsqlookupd. Ports stay the same across `restart()`. */
export class NsqProcess {
  readonly kind: Kind;
  readonly impl: Impl;
  private readonly extraArgs: readonly string[];
  private readonly startTimeoutMs: number;
  private ports: { tcp: number; http: number; https: number | undefined };
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  private exitStatus: ExitStatus | undefined;
  private paused = false;
  private logText = '';
  private logDropped = 0;

  protected constructor(
    kind: Kind,
    impl: Impl,
    extraArgs: readonly string[],
    ports: { tcp?: number; http?: number },
    startTimeoutMs?: number,
  ) {
    this.kind = kind;
    this.impl = impl;
    this.extraArgs = extraArgs;
    this.ports = { tcp: ports.tcp ?? 0, http: ports.http ?? 0, https: undefined };
    this.startTimeoutMs = startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    instances.add(this);
  }

  get tcpPort(): number {
    return this.ports.tcp;
  }
  get httpPort(): number {
    return this.ports.http;
  }
  /** Only set when started with `--https-address=...` (nsqd). */
  get httpsPort(): number | undefined {
    return this.ports.https;
  }
  /** '127.0.0.1:port' */
  get tcpAddress(): string {
    return `${HOST}:${this.ports.tcp}`;
  }
  /** 'http://127.0.0.1:port' */
  get httpAddress(): string {
    return `http://${HOST}:${this.ports.http}`;
  }
  /** 'https://127.0.0.1:port' when an HTTPS listener was requested. */
  get httpsAddress(): string | undefined {
    return this.ports.https === undefined ? undefined : `https://${HOST}:${this.ports.https}`;
  }
  /** PID of the current (or last) process. */
  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error(`${this.kind} has no pid (never spawned)`);
    return pid;
  }
  get running(): boolean {
    return this.child !== undefined && this.exitStatus === undefined;
  }
  /** Exit status of the last process, undefined while running. */
  get exit(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Everything the process (all its starts) wrote to stdout/stderr, from the absolute offset `since`. */
  log(since = 0): string {
    return this.logText.slice(Math.max(0, since - this.logDropped));
  }
  /** Absolute length of the log so far: pass it to `log()` / `waitForLog()` as `since`. */
  get logLength(): number {
    return this.logDropped + this.logText.length;
  }

  /** Waits for `pattern` to appear in the log (after `since`); resolves with the match. */
  async waitForLog(pattern: RegExp | string, opts: { since?: number; timeoutMs?: number } = {}): Promise<string> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    while (true) {
      const text = this.log(opts.since ?? 0);
      const match = typeof pattern === 'string' ? (text.includes(pattern) ? pattern : undefined) : pattern.exec(text)?.[0];
      if (match !== undefined) return match;
      if (Date.now() >= deadline) {
        throw new Error(`${this.kind}: timed out waiting for log ${String(pattern)}; log:\n${excerpt(this.log())}`);
      }
      await sleep(20);
    }
  }

  /**
   * Sends `signal` (default SIGKILL) to the process by PID. For terminating signals (KILL, TERM,
   * INT, QUIT) resolves once the process has exited (throws if it has not within 5 s); for others
   * (SIGSTOP, SIGCONT, ...) resolves right after sending. No-op when the process is not running.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.signal(signal);
    if (signal === 'SIGSTOP') this.paused = true;
    if (signal === 'SIGCONT') this.paused = false;
    if (!TERMINATING.has(signal)) return;
    // A stopped process only acts on SIGTERM/SIGINT once continued.
    if (this.paused && signal !== 'SIGKILL') this.resumeQuietly();
    await this.waitForExit(DEFAULT_STOP_TIMEOUT_MS);
  }

  /** Freezes the process (SIGSTOP): its sockets stay open but it answers nothing. */
  pause(): Promise<void> {
    return this.kill('SIGSTOP');
  }
  /** Undoes `pause()` (SIGCONT). */
  resume(): Promise<void> {
    return this.kill('SIGCONT');
  }

  /** Graceful stop: SIGTERM, wait up to `timeoutMs` (default 5 s), then SIGKILL. */
  async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<ExitStatus | undefined> {
    if (!this.running) return this.exitStatus;
    this.signal('SIGTERM');
    if (this.paused) this.resumeQuietly();
    try {
      return await this.waitForExit(timeoutMs);
    } catch {
      console.warn(`${this.kind} (pid ${this.pid}) ignored SIGTERM for ${timeoutMs} ms; sending SIGKILL`);
      this.signal('SIGKILL');
      return await this.waitForExit(DEFAULT_STOP_TIMEOUT_MS);
    }
  }

  /** Resolves with the exit status once the current process has exited; throws after `timeoutMs`. */
  async waitForExit(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<ExitStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.kind} (pid ${this.child?.pid}) did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exitPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the process if it is running (gracefully, see `stop()`), then starts it again on the same
   * TCP/HTTP(S) ports (and, for nsqd, the same data dir), retrying for a while if a port is still
   * reported in use. Resolves when the new process is ready.
   */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    const deadline = Date.now() + RESTART_RETRY_MS;
    while (true) {
      try {
        await this.launch();
        return;
      } catch (err) {
        if (!(err instanceof AddressInUseError) || Date.now() >= deadline) throw err;
        await sleep(100);
      }
    }
  }

  protected fixedArgs(): string[] {
    return [];
  }

  protected async launch(): Promise<void> {
    if (this.running) throw new Error(`${this.kind} (pid ${this.pid}) is already running`);
    const { command, prefix, env } = this.command();
    const args = [
      ...prefix,
      `--tcp-address=${HOST}:${this.ports.tcp}`,
      `--http-address=${HOST}:${this.ports.http}`,
      ...this.fixedArgs(),
      ...this.extraArgs.map((arg) =>
        // keep an OS-picked HTTPS port across restarts
        this.ports.https !== undefined && /^--https-address[= ]/.test(arg) ? `--https-address=${HOST}:${this.ports.https}` : arg,
      ),
    ];
    const wantsHttps = args.some((arg) => arg.startsWith('--https-address'));
    const since = this.logLength;
    this.exitStatus = undefined;
    this.paused = false;

    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    this.exitPromise = new Promise<ExitStatus>((resolve) => {
      const done = (status: ExitStatus): void => {
        if (this.child === child && this.exitStatus === undefined) this.exitStatus = status;
        resolve(status);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (err) => {
        this.appendLog(`[spawn error] ${err.message}\n`);
        done({ code: null, signal: null });
      });
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.appendLog(chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.appendLog(chunk));
    if (child.pid !== undefined) startWatchdog(child.pid);

    try {
      const deadline = Date.now() + this.startTimeoutMs;
      // 1. the listening lines (they carry the OS-picked ports)
      while (true) {
        const text = this.log(since);
        const tcp = /TCP: listening on [^\s]*:(\d+)/.exec(text);
        const http = /HTTP: listening on [^\s]*:(\d+)/.exec(text);
        const https = /HTTPS: listening on [^\s]*:(\d+)/.exec(text);
        if (tcp?.[1] && http?.[1] && (!wantsHttps || https?.[1])) {
          this.ports = { tcp: Number(tcp[1]), http: Number(http[1]), https: https?.[1] ? Number(https[1]) : undefined };
          break;
        }
        this.checkStartProgress(since, deadline);
        await sleep(10);
      }
      // 2. /ping answers OK (403 TLS_REQUIRED also proves the HTTP server is serving)
      while (true) {
        if (await pingOk(this.httpAddress)) return;
        this.checkStartProgress(since, deadline);
        await sleep(20);
      }
    } catch (err) {
      if (this.running) {
        child.kill('SIGKILL');
        await this.waitForExit().catch(() => undefined);
      }
      throw err;
    }
  }

  /** What to spawn for this impl. */
  private command(): { command: string; prefix: string[]; env: NodeJS.ProcessEnv } {
    if (this.impl === 'go') return { command: nsqBinary(this.kind), prefix: [], env: process.env };
    // The broker reads NSQD_* / NSQLOOKUPD_* / BROKER_* from its environment, the Go binaries do
    // not: leave them out so both impls run with exactly the flags the test gave.
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NSQD|NSQLOOKUPD|BROKER)_/.test(k)));
    // An nsqd to test the protocol against, like the Go one: no history, no admin listener on a
    // fixed port. A test's own --history-db / --admin-address flags win over these.
    env.HISTORY_DB_URL = 'off';
    env.BROKER_ADMIN_ADDRESS = 'off';
    return { command: process.execPath, prefix: [brokerMain(), `--role=${this.kind === 'nsqd' ? 'nsqd' : 'lookupd'}`], env };
  }

  /** 'nsqd' or e.g. 'nsqd (ts broker)', for messages. */
  get label(): string {
    return this.impl === 'go' ? this.kind : `${this.kind} (ts broker)`;
  }

  private checkStartProgress(since: number, deadline: number): void {
    if (this.exitStatus !== undefined) {
      const text = this.log(since);
      const message =
        `${this.label} exited during start (code ${this.exitStatus.code}, signal ${this.exitStatus.signal}); log:\n` +
        excerpt(text);
      if (/address already in use/i.test(text)) throw new AddressInUseError(message);
      throw new Error(message);
    }
    if (Date.now() >= deadline) {
      throw new Error(`${this.label} not ready within ${this.startTimeoutMs} ms; log:\n${excerpt(this.log(since))}`);
    }
  }

  private resumeQuietly(): void {
    this.paused = false;
    this.signal('SIGCONT');
  }

  /** process.kill by PID, ignoring ESRCH (exited, exit event not processed yet). */
  private signal(signal: NodeJS.Signals): void {
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ESRCH') throw err;
    }
  }

  private appendLog(chunk: string): void {
    this.logText += chunk;
    if (this.logText.length > MAX_LOG_CHARS) {
      const drop = this.logText.length - MAX_LOG_CHARS / 2;
      this.logText = this.logText.slice(drop);
      this.logDropped += drop;
    }
  }
}

class AddressInUseError extends Error {}

/** The start and the end of a long log (a Go flag error is at the start, followed by the whole usage). */
function excerpt(text: string): string {
  return text.length <= 6000 ? text : `${text.slice(0, 2000)}\n[…]\n${text.slice(-4000)}`;
}

export class NsqdProcess extends NsqProcess {
  readonly dataPath: string;
  readonly lookupdTcpAddresses: readonly string[];

  /** Use `startNsqd()`. */
  constructor(opts: NsqdOptions = {}) {
    super('nsqd', opts.impl ?? 'go', opts.args ?? [], { tcp: opts.tcpPort, http: opts.httpPort }, opts.startTimeoutMs);
    if (opts.dataPath) {
      this.dataPath = opts.dataPath;
    } else {
      this.dataPath = mkdtempSync(join(tmpdir(), 'nsqd-data-'));
      ownedTempDirs.add(this.dataPath);
    }
    this.lookupdTcpAddresses = [...(opts.lookupdTcpAddresses ?? [])];
  }

  protected override fixedArgs(): string[] {
    return [
      `--broadcast-address=${HOST}`,
      `--data-path=${this.dataPath}`,
      ...this.lookupdTcpAddresses.map((address) => `--lookupd-tcp-address=${address}`),
    ];
  }

  /** @internal */
  start(): Promise<void> {
    return this.launch();
  }
}

export class NsqlookupdProcess extends NsqProcess {
  /** Use `startNsqlookupd()`. */
  constructor(opts: NsqlookupdOptions = {}) {
    super('nsqlookupd', opts.impl ?? 'go', opts.args ?? [], { tcp: opts.tcpPort, http: opts.httpPort }, opts.startTimeoutMs);
  }

  protected override fixedArgs(): string[] {
    // nsqd asks every lookupd's broadcast_address:http_port for /channels when it creates a topic;
    // the default (the hostname) may not resolve.
    return [`--broadcast-address=${HOST}`];
  }

  /** @internal */
  start(): Promise<void> {
    return this.launch();
  }
}

/** Starts nsqd (`impl`, default 'go') on 127.0.0.1 (OS-picked ports unless given) with `--broadcast-address=127.0.0.1`. */
export async function startNsqd(opts: NsqdOptions = {}): Promise<NsqdProcess> {
  const nsqd = new NsqdProcess(opts);
  await nsqd.start();
  return nsqd;
}

/** Starts nsqlookupd (`impl`, default 'go') on 127.0.0.1 (OS-picked ports unless given) with `--broadcast-address=127.0.0.1`. */
export async function startNsqlookupd(opts: NsqlookupdOptions = {}): Promise<NsqlookupdProcess> {
  const lookupd = new NsqlookupdProcess(opts);
  await lookupd.start();
  return lookupd;
}

/**
 * SIGKILLs every process started through this module that is still running (by PID), waits for
 * them to exit, and deletes the temp data dirs it created. For `afterAll(stopAll)`.
 */
export async function stopAll(): Promise<void> {
  const list = [...instances];
  instances.clear();
  await Promise.all(list.map((p) => p.kill('SIGKILL').catch((err: unknown) => console.warn(String(err)))));
  for (const dir of ownedTempDirs) rmSync(dir, { recursive: true, force: true });
  ownedTempDirs.clear();
}

async function pingOk(httpAddress: string): Promise<boolean> {
  try {
    const res = await fetch(`${httpAddress}/ping`, { signal: AbortSignal.timeout(1000) });
    const body = await res.text();
    return (res.status === 200 && body.trim() === 'OK') || (res.status === 403 && body.includes('TLS_REQUIRED'));
  } catch {
    return false;
  }
}

/**
 * A detached `sh` loop that SIGKILLs `childPid` if this Node process disappears first (crashed or
 * killed Jest worker). It exits by itself as soon as the child is gone.
 */
export function startWatchdog(childPid: number): void {
  const script =
    'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; ' +
    'if ! kill -0 "$1" 2>/dev/null; then kill -9 "$2" 2>/dev/null; fi';
  try {
    const watchdog = spawn('sh', ['-c', script, 'nsq-watchdog', String(process.pid), String(childPid)], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.on('error', () => undefined);
    watchdog.unref();
  } catch {
    // best effort: stopAll() remains the primary cleanup
  }
}
