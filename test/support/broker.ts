/**
 * The broker app (apps/broker, built into dist/) as a child process started directly, for what the
 * nsqd / nsqlookupd harness (processes.ts) does not do: role all, the admin listener, failures.
 * The test reads the OS-picked ports from the log (`port(pattern)`); `killBrokers()` in afterEach /
 * afterAll SIGKILLs (by PID) every one still running. Each child also gets the harness's watchdog,
 * so none outlives a crashed Jest worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { brokerMain } from './nsq-bin.js';
import { startWatchdog } from './processes.js';
import { sleep } from './wait.js';

/** Generous: a Nest app on a loaded 2-core machine; the point is "exits" / "starts", not "fast". */
export const BROKER_BOUND_MS = 15_000;

export interface BrokerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The broker reads NSQD_* / NSQLOOKUPD_* / BROKER_* / HISTORY_DB_URL: the tests pass flags only.
 * History and the admin listener (a fixed default port) are off unless a test's flags turn them
 * on (flags win over the environment).
 */
export function brokerEnv(): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NSQD|NSQLOOKUPD|BROKER)_|^HISTORY_DB_URL$/.test(k))),
    HISTORY_DB_URL: 'off',
    BROKER_ADMIN_ADDRESS: 'off',
  };
}

const running = new Set<BrokerProcess>();

export class BrokerProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<BrokerExit>;

  /** Spawns `node dist/apps/broker/src/main.js ...args`. */
  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [brokerMain(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: brokerEnv() });
    this.child.stdout?.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    this.child.stderr?.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        // 'exit' can precede the last 'data' events of the pipes; 'close' follows them
        this.child.once('close', () => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }));
      });
    });
    if (this.child.pid !== undefined) startWatchdog(this.child.pid);
    running.add(this);
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first capture group of `pattern` in the log, as a number (a port the broker logged). */
  async port(pattern: RegExp): Promise<number> {
    const deadline = Date.now() + BROKER_BOUND_MS;
    while (true) {
      const match = pattern.exec(this.output);
      if (match) return Number(match[1]);
      if (!this.running) {
        throw new Error(`broker exited (code ${this.child.exitCode}, signal ${this.child.signalCode}) before logging ${String(pattern)}; log:\n${this.output}`);
      }
      if (Date.now() >= deadline) throw new Error(`broker did not log ${String(pattern)} within ${BROKER_BOUND_MS} ms; log:\n${this.output}`);
      await sleep(20);
    }
  }

  /** Waits for the process to exit (within BROKER_BOUND_MS). */
  async exit(): Promise<BrokerExit> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`broker did not exit within ${BROKER_BOUND_MS} ms; log:\n${this.output}`)), BROKER_BOUND_MS);
    });
    try {
      return await Promise.race([this.exited, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL by PID (when still running), then waits for the exit. */
  async kill(): Promise<BrokerExit> {
    if (this.running) this.child.kill('SIGKILL');
    running.delete(this);
    return this.exited;
  }
}

/** SIGKILLs every BrokerProcess still running and waits for them to exit. */
export async function killBrokers(): Promise<void> {
  const list = [...running];
  running.clear();
  await Promise.all(list.map((p) => p.kill()));
}
