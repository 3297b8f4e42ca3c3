/**
 * Locates the official NSQ 1.3.0 binaries used as reference peers in the integration suites:
 * `$NSQ_BIN_DIR` when set, else `<repo>/.cache/nsq/bin` (where `npm run nsq:install` builds them).
 *
 * `describeWithNsq` wraps `describe` for suites that need them: when a binary is missing it fails
 * in CI (CI=true) and skips with a console warning locally. No runtime import of @jest/globals here,
 * so this module (and processes.ts) can also be used outside Jest (benchmarks).
 *
 * The same suites can run against our TypeScript broker (apps/broker, built into dist/): an `Impl`
 * is 'go' (the official binaries) or 'ts' (node dist/apps/broker/src/main.js --role nsqd|lookupd),
 * and `describeEachImpl` runs a suite once per impl.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { describe as jestDescribe, it as jestIt } from '@jest/globals';

export type NsqBinaryName =
  | 'nsqd'
  | 'nsqlookupd'
  | 'nsqadmin'
  | 'to_nsq'
  | 'nsq_tail'
  | 'nsq_stat'
  | 'bench_writer'
  | 'bench_reader';

export const INSTALL_HINT = 'run `npm run nsq:install` (builds the NSQ 1.3.0 binaries into $NSQ_BIN_DIR, default .cache/nsq/bin)';

/** The repository root: the nearest ancestor of this file holding package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (true) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** `$NSQ_BIN_DIR` if set, else `<repo>/.cache/nsq/bin`. */
export function nsqBinDir(): string {
  const fromEnv = process.env.NSQ_BIN_DIR;
  return fromEnv ? resolve(fromEnv) : join(repoRoot(), '.cache', 'nsq', 'bin');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The binaries among `names` that are missing or not executable. */
export function missingNsqBinaries(names: readonly NsqBinaryName[] = ['nsqd', 'nsqlookupd']): NsqBinaryName[] {
  const dir = nsqBinDir();
  return names.filter((name) => !isExecutable(join(dir, name)));
}

export function hasNsqBinaries(names: readonly NsqBinaryName[] = ['nsqd', 'nsqlookupd']): boolean {
  return missingNsqBinaries(names).length === 0;
}

/** Absolute path of an NSQ binary; throws (with the install hint) when it is missing. */
export function nsqBinary(name: NsqBinaryName): string {
  const path = join(nsqBinDir(), name);
  if (!isExecutable(path)) throw new Error(`NSQ binary ${name} not found at ${path}: ${INSTALL_HINT}`);
  return path;
}

/**
 * `describe(name, fn)` for a suite that runs the official binaries `binaries` (default nsqd and
 * nsqlookupd). When one is missing: with CI=true the suite gets a single failing test whose
 * error says to run `npm run nsq:install`; otherwise the suite is skipped with a console.warn.
 */
export function describeWithNsq(
  name: string,
  fn: () => void,
  binaries: readonly NsqBinaryName[] = ['nsqd', 'nsqlookupd'],
): void {
  // Jest's injected globals (injectGlobals is on by default); only the types come from @jest/globals.
  const { describe, it } = globalThis as unknown as { describe: typeof jestDescribe; it: typeof jestIt };
  const missing = missingNsqBinaries(binaries);
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const message = `NSQ binaries missing from ${nsqBinDir()}: ${missing.join(', ')}; ${INSTALL_HINT}`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has the official NSQ binaries', () => {
        throw new Error(message);
      });
    });
  } else {
    // Reason: the suite needs the official NSQ binaries, which are not installed on this machine;
    // the warning says how to install them. CI never takes this branch (it fails above instead).
    console.warn(`SKIPPING "${name}": ${message}`);
    describe.skip(`${name} (skipped: official NSQ binaries not installed; npm run nsq:install)`, fn);
  }
}

/** Which nsqd / nsqlookupd a test runs: the official Go binaries or our TypeScript broker. */
export const IMPLS = ['go', 'ts'] as const;
export type Impl = (typeof IMPLS)[number];

export const BROKER_BUILD_HINT = 'run `npm run build` (`npm test` and `npm run test:integration` build first)';

/** Where the built broker entry point lives (it may not exist yet). */
export function brokerMainPath(): string {
  return join(repoRoot(), 'dist', 'apps', 'broker', 'src', 'main.js');
}

/** The built broker entry point; throws (with the build hint) when dist/ lacks it. */
export function brokerMain(): string {
  const path = brokerMainPath();
  if (!existsSync(path)) throw new Error(`TypeScript broker not built: ${path} is missing; ${BROKER_BUILD_HINT}`);
  return path;
}

/**
 * The impls to run: every one, or the comma-separated list in `$NSQ_IMPLS` (e.g. `NSQ_IMPLS=ts`
 * while working on the broker). Unknown names throw rather than silently run nothing.
 */
export function selectedImpls(): Impl[] {
  const fromEnv = process.env.NSQ_IMPLS;
  if (!fromEnv) return [...IMPLS];
  const names = fromEnv.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) {
    if (!(IMPLS as readonly string[]).includes(name)) throw new Error(`NSQ_IMPLS: unknown impl "${name}"; use ${IMPLS.join(', ')}`);
  }
  return names as Impl[];
}

/**
 * `describe.each` over the impls: `fn(impl)` declares the suite, which passes `impl` on to
 * `startNsqd({ impl })` / `startNsqlookupd({ impl })`. The 'go' suite has `describeWithNsq`'s
 * semantics for `binaries`; the 'ts' suite fails with the build hint when the broker is not built
 * (building is part of `npm test`, so a missing dist/ is an error, not a reason to skip).
 */
export function describeEachImpl(
  name: string,
  fn: (impl: Impl) => void,
  binaries: readonly NsqBinaryName[] = ['nsqd', 'nsqlookupd'],
): void {
  const { describe, it } = globalThis as unknown as { describe: typeof jestDescribe; it: typeof jestIt };
  for (const impl of selectedImpls()) {
    const title = `${name} [${impl}]`;
    if (impl === 'go') {
      describeWithNsq(title, () => fn('go'), binaries);
    } else if (existsSync(brokerMainPath())) {
      describe(title, () => fn('ts'));
    } else {
      describe(title, () => {
        it('has the TypeScript broker built', () => {
          brokerMain();
        });
      });
    }
  }
}
