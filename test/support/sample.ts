/**
 * The sample (apps/order-service, apps/points-service, apps/broker) as separate processes, spawned
 * the way `npm start` (scripts/demo.mjs) spawns them: `node dist/apps/<app>/src/main.js` with the
 * documented environment variables, every listener on 127.0.0.1 port 0 (the ports are read back
 * from the log lines), data in a temp dir. Each child gets the harness's watchdog; `stopSample()`
 * SIGKILLs (by PID) whatever is still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './nsq-bin.js';
import { startWatchdog } from './processes.js';
import { sleep } from './wait.js';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;
const MAX_LOG_CHARS = 8 * 1024 * 1024;

/** Variables the sample apps and the broker read: a child gets only those its test sets. */
const SAMPLE_ENV = /^(NSQD|NSQLOOKUPD|BROKER)_|^(NSQ_NSQD_TCP_ADDRESSES|NSQ_LOOKUPD_HTTP_ADDRESSES|HISTORY_DB_URL|HISTORY_SPOOL_PATH|ORDER_SERVICE_ADDRESS|ORDER_DB_URL|POINTS_SERVICE_ADDRESS|POINTS_DB_URL)$/;

export function appMain(app: 'broker' | 'order-service' | 'points-service'): string {
  return join(repoRoot(), 'dist', 'apps', app, 'src', 'main.js');
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const running = new Set<AppProcess>();

/** One app, restartable with the same arguments and environment; the log covers every start. */
export class AppProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  private exitStatus: ExitStatus | undefined;
  private text = '';
  private dropped = 0;

  constructor(
    readonly name: string,
    readonly script: string,
    public args: string[],
    readonly env: Record<string, string>,
    readonly cwd: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.exitStatus === undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get logLength(): number {
    return this.dropped + this.text.length;
  }

  log(since = 0): string {
    return this.text.slice(Math.max(0, since - this.dropped));
  }

  /** Spawns the process; resolves at once (use waitForLog for readiness). */
  spawn(): void {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !SAMPLE_ENV.test(k))), NO_COLOR: '1', ...this.env };
    const child = spawn(process.execPath, [this.script, ...this.args], { cwd: this.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exitStatus = undefined;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (this.child === child) this.exitStatus = { code, signal };
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        this.append(`[spawn error] ${err.message}\n`);
        if (this.child === child) this.exitStatus = { code: null, signal: null };
        resolve({ code: null, signal: null });
      });
    });
    child.stdout?.setEncoding('utf8').on('data', (c: string) => this.append(c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => this.append(c));
    if (child.pid !== undefined) startWatchdog(child.pid);
    running.add(this);
  }

  /** The first capture group of `pattern` in the log after `since`, once it appears. */
  async waitForLog(pattern: RegExp, since = 0, timeoutMs = START_TIMEOUT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const match = pattern.exec(this.log(since));
      if (match) return match[1] ?? match[0];
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exitStatus)}) before logging ${String(pattern)}; log:\n${tail(this.log())}`);
      if (Date.now() >= deadline) throw new Error(`${this.name} did not log ${String(pattern)} within ${timeoutMs} ms; log:\n${tail(this.log())}`);
      await sleep(20);
    }
  }

  /** Sends `signal` by PID and waits for the exit (SIGKILL after STOP_TIMEOUT_MS if it does not). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitStatus> {
    const child = this.child;
    if (!child || !this.running) return this.exitStatus ?? { code: null, signal: null };
    process.kill(child.pid!, signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS);
    });
    const outcome = await Promise.race([this.exitPromise, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      console.warn(`${this.name} (pid ${child.pid}) ignored ${signal} for ${STOP_TIMEOUT_MS} ms; sending SIGKILL`);
      process.kill(child.pid!, 'SIGKILL');
      return this.exitPromise;
    }
    return outcome;
  }

  private append(chunk: string): void {
    this.text += chunk;
    if (process.env.SAMPLE_TEST_LOGS === '1') process.stdout.write(chunk.replace(/^/gm, `[${this.name}] `));
    if (this.text.length > MAX_LOG_CHARS) {
      const drop = this.text.length - MAX_LOG_CHARS / 2;
      this.text = this.text.slice(drop);
      this.dropped += drop;
    }
  }
}

function tail(text: string): string {
  return text.length <= 8000 ? text : `[…]\n${text.slice(-8000)}`;
}

/** Ports of a running broker (role all). */
export interface BrokerPorts {
  nsqdTcp: number;
  nsqdHttp: number;
  lookupdTcp: number;
  lookupdHttp: number;
  admin: number;
}

/**
 * Our broker as `npm start` runs it (role all, every message on disk: --mem-queue-size=0, history
 * in sql.js in the data path, the admin listener), on OS-picked ports; `restart()` brings it back
 * on the same ports and data path.
 */
export class SampleBroker {
  readonly process: AppProcess;
  ports: BrokerPorts | undefined;

  constructor(
    readonly dataPath: string,
    cwd: string,
  ) {
    this.process = new AppProcess('broker', appMain('broker'), SampleBroker.args(dataPath, undefined), {}, cwd);
  }

  private static args(dataPath: string, p: BrokerPorts | undefined): string[] {
    return [
      `--data-path=${dataPath}`,
      '--mem-queue-size=0',
      `--tcp-address=127.0.0.1:${p?.nsqdTcp ?? 0}`,
      `--http-address=127.0.0.1:${p?.nsqdHttp ?? 0}`,
      `--nsqlookupd-tcp-address=127.0.0.1:${p?.lookupdTcp ?? 0}`,
      `--nsqlookupd-http-address=127.0.0.1:${p?.lookupdHttp ?? 0}`,
      `--admin-address=127.0.0.1:${p?.admin ?? 0}`,
    ];
  }

  async start(): Promise<BrokerPorts> {
    const since = this.process.logLength;
    this.process.spawn();
    const port = async (re: RegExp): Promise<number> => Number(await this.process.waitForLog(re, since));
    const ports: BrokerPorts = {
      nsqdTcp: await port(/\[nsqd\] TCP: listening on [^\s]*:(\d+)/),
      nsqdHttp: await port(/\[nsqd\] HTTP: listening on [^\s]*:(\d+)/),
      lookupdTcp: await port(/\[nsqlookupd\] TCP: listening on [^\s]*:(\d+)/),
      lookupdHttp: await port(/\[nsqlookupd\] HTTP: listening on [^\s]*:(\d+)/),
      admin: await port(/\[admin\] HTTP: listening on [^\s]*:(\d+)/),
    };
    await this.process.waitForLog(/\[broker\] (ready)/, since);
    if (!this.ports) {
      this.ports = ports;
      // from now on the same ports: clients reconnect to what they know
      this.process.args = SampleBroker.args(this.dataPath, ports);
    }
    return ports;
  }

  /** Starts it again on the same ports and data path, retrying while a port is still in use. */
  async restart(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (true) {
      const since = this.process.logLength;
      try {
        await this.start();
        return;
      } catch (err) {
        if (!/address already in use/i.test(this.process.log(since)) || Date.now() >= deadline) throw err;
        await sleep(200);
      }
    }
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.ports!.admin}`;
  }
}

/** An HTTP service of the sample: started, it has a URL (its port is read from `<name>: listening on`). */
export class SampleService {
  readonly process: AppProcess;
  url = '';

  constructor(name: 'order-service' | 'points-service', env: Record<string, string>, cwd: string) {
    this.process = new AppProcess(name, appMain(name), [], env, cwd);
  }

  async start(): Promise<string> {
    const since = this.process.logLength;
    this.process.spawn();
    const name = this.process.name.replace('-', '\\-');
    this.url = await this.process.waitForLog(new RegExp(`${name}: listening on (http://[^\\s]+)`), since);
    return this.url;
  }
}

/** SIGKILLs (by PID) every sample process still running. */
export async function stopSample(): Promise<void> {
  const list = [...running];
  running.clear();
  await Promise.all(list.map((p) => p.kill('SIGKILL').catch(() => undefined)));
}

/** Runs `fn` over `items` with at most `concurrency` at once; resolves with the results in order. */
export async function mapConcurrent<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** GET as JSON; throws with the status and body on anything but 200. */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}
