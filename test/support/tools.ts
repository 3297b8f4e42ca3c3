/**
 * Runs the official NSQ command-line tools (nsqadmin, to_nsq, nsq_tail, nsq_stat) as peers in
 * integration tests: output captured, stdin fed, exits awaited with a bound, and every process
 * tracked so `stopTools()` (for `afterAll`) SIGKILLs by PID whatever is still running. Like
 * processes.ts, each child gets a detached `sh` watchdog that kills it if the Jest worker dies
 * first, so no nsqadmin outlives the run.
 *
 * No runtime dependency on Jest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { nsqBinary, type NsqBinaryName } from './nsq-bin.js';
import { sleep } from './wait.js';

const DEFAULT_EXIT_TIMEOUT_MS = 15_000;

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ToolProcess>();

export class ToolProcess {
  readonly name: NsqBinaryName;
  readonly args: readonly string[];
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private result: ToolResult | undefined;
  private readonly exited: Promise<ToolResult>;

  constructor(name: NsqBinaryName, args: readonly string[], input?: string | Buffer) {
    this.name = name;
    this.args = args;
    this.child = spawn(nsqBinary(name), [...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    this.child.stderr?.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve) => {
      // 'close' (not 'exit') follows the last output of both pipes
      this.child.once('close', (code, signal) => {
        this.result = { code, signal, stdout: this.stdout, stderr: this.stderr };
        running.delete(this);
        resolve(this.result);
      });
      this.child.once('error', (err) => {
        this.stderr += `[spawn error] ${err.message}\n`;
        this.result = { code: null, signal: null, stdout: this.stdout, stderr: this.stderr };
        running.delete(this);
        resolve(this.result);
      });
    });
    if (input !== undefined) {
      this.child.stdin?.on('error', () => undefined);
      this.child.stdin?.end(input);
    }
    if (this.child.pid !== undefined) startWatchdog(this.child.pid);
    running.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.result === undefined;
  }

  /** stdout then stderr, for failure messages. */
  get output(): string {
    return `${this.name} ${this.args.join(' ')}\n--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  /** Waits until `pattern` matches stdout + stderr; fails early if the tool exits first. */
  async waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const match = pattern.exec(this.stdout + this.stderr);
      if (match) return match;
      if (!this.running) throw new Error(`${this.name} exited (${describe(this.result)}) before printing ${String(pattern)}:\n${this.output}`);
      if (Date.now() >= deadline) throw new Error(`${this.name} did not print ${String(pattern)} within ${timeoutMs} ms:\n${this.output}`);
      await sleep(20);
    }
  }

  /** Resolves with the exit status; after `timeoutMs` SIGKILLs the tool and throws with its output. */
  async waitForExit(timeoutMs = DEFAULT_EXIT_TIMEOUT_MS): Promise<ToolResult> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([this.exited, bound]);
      if (outcome !== 'timeout') return outcome;
    } finally {
      clearTimeout(timer);
    }
    await this.kill();
    throw new Error(`${this.name} did not exit within ${timeoutMs} ms (killed):\n${this.output}`);
  }

  /** Sends `signal` by PID (default SIGKILL) and waits for the exit. No-op once exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ToolResult> {
    if (this.running && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, signal);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'ESRCH') throw err;
      }
    }
    return this.exited;
  }
}

/** Starts `name` with `args`; `input` (if given) is written to its stdin, which is then closed. */
export function startTool(name: NsqBinaryName, args: readonly string[], input?: string | Buffer): ToolProcess {
  return new ToolProcess(name, args, input);
}

/** Runs `name` to completion (bounded by `timeoutMs`, then killed) and returns its status and output. */
export function runTool(
  name: NsqBinaryName,
  args: readonly string[],
  opts: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<ToolResult> {
  return startTool(name, args, opts.input).waitForExit(opts.timeoutMs);
}

/**
 * Starts nsqadmin on 127.0.0.1 with an OS-picked port (nsqadmin logs the bound address:
 * `HTTP: listening on 127.0.0.1:N`). Returns the process and its base URL.
 */
export async function startNsqadmin(args: readonly string[]): Promise<{ process: ToolProcess; url: string }> {
  const proc = startTool('nsqadmin', ['--http-address=127.0.0.1:0', ...args]);
  try {
    const match = await proc.waitForOutput(/HTTP: listening on 127\.0\.0\.1:(\d+)/);
    return { process: proc, url: `http://127.0.0.1:${match[1]}` };
  } catch (err) {
    await proc.kill();
    throw err;
  }
}

/** SIGKILLs (by PID) every tool started here that is still running. For `afterAll`. */
export async function stopTools(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}

function describe(result: ToolResult | undefined): string {
  return result === undefined ? 'running' : `code ${result.code}, signal ${result.signal}`;
}

/** Kills `childPid` if this Node process disappears first (see processes.ts). */
function startWatchdog(childPid: number): void {
  const script =
    'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; ' +
    'if ! kill -0 "$1" 2>/dev/null; then kill -9 "$2" 2>/dev/null; fi';
  try {
    const watchdog = spawn('sh', ['-c', script, 'nsq-tool-watchdog', String(process.pid), String(childPid)], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.on('error', () => undefined);
    watchdog.unref();
  } catch {
    // best effort: stopTools() remains the primary cleanup
  }
}
