/**
 * Headless Chromium for browser tests: Debian's `chromium` (never a downloaded browser) driven by
 * playwright-core. `describeWithChromium` wraps `describe` like `describeWithNsq`: when the browser
 * is missing it fails under CI=true and skips with a console warning locally.
 */
import { accessSync, constants } from 'node:fs';
import type { describe as jestDescribe, it as jestIt } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';

/** `$CHROMIUM_PATH`, else Debian's /usr/bin/chromium. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** No network of its own (updates, sync, QUIC probes), no GPU, no sandbox (containers, root). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const INSTALL_HINT = 'install Debian\'s chromium (apt-get install chromium) or set CHROMIUM_PATH';

export function hasChromium(): boolean {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A headless Chromium with a fresh temporary profile (playwright creates and deletes it). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

/**
 * `describe(name, fn)` for a suite that drives Chromium. When it is missing: with CI=true the suite
 * gets a single failing test saying so; otherwise the suite is skipped with a console.warn.
 */
export function describeWithChromium(name: string, fn: () => void): void {
  // Jest's injected globals (injectGlobals is on by default); only the types come from @jest/globals.
  const { describe, it } = globalThis as unknown as { describe: typeof jestDescribe; it: typeof jestIt };
  if (hasChromium()) {
    describe(name, fn);
    return;
  }
  const message = `Chromium not found at ${CHROMIUM_PATH}: ${INSTALL_HINT}`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has Chromium', () => {
        throw new Error(message);
      });
    });
  } else {
    // Reason: the suite needs a browser this machine lacks; the warning says how to get one.
    // CI never takes this branch (it fails above instead).
    console.warn(`SKIPPING "${name}": ${message}`);
    describe.skip(`${name} (skipped: ${message})`, fn);
  }
}
