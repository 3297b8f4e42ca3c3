import 'reflect-metadata';
import { ConsoleLogger, Logger } from '@nestjs/common';
import type { INestApplication, INestApplicationContext, LogLevel } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { NestFactory } from '@nestjs/core';
import { BrokerFlagError, parseCommandLine, type BrokerLogLevel } from './flags.js';
import { BrokerModule } from './broker.module.js';

/** nsqd's --log-level → the Nest levels printed. */
const NEST_LEVELS: Record<BrokerLogLevel, LogLevel[]> = {
  debug: ['debug', 'log', 'warn', 'error', 'fatal'],
  info: ['log', 'warn', 'error', 'fatal'],
  warn: ['warn', 'error', 'fatal'],
  error: ['error', 'fatal'],
  fatal: ['fatal'],
};
const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
/** Go's flag package exits with 2 on a usage error; so do we. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof BrokerFlagError)) throw err;
    process.stderr.write(`broker: ${err.message}\n`);
    process.exit(EXIT_USAGE);
  }
  if (parsed.action !== 'run') {
    process.stdout.write(`${parsed.text}\n`);
    process.exit(0);
  }
  const { config } = parsed;

  /** The servers plus the admin HTTP listener (API and page) on `address`. */
  const startWithAdmin = async (address: string): Promise<INestApplication> => {
    const http = await NestFactory.create(BrokerModule.forRoot(config), { logger, abortOnError: false });
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    try {
      // listen() runs the bootstrap hooks first: the servers are up before the page can be asked
      await http.listen(Number(address.slice(i + 1)), host);
    } catch (err) {
      await http.close().catch(() => undefined);
      throw err;
    }
    const bound = (http.getHttpServer() as { address(): AddressInfo | string | null }).address();
    const where = bound !== null && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : address;
    new Logger('admin').log(`HTTP: listening on ${where}`);
    return http;
  };

  const logger = new ConsoleLogger({
    logLevels: NEST_LEVELS[config.logLevel],
    // Nest colours even into pipes; escape codes would garble logs that are grepped or shipped
    colors: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR,
  });
  const log = new Logger('broker');

  // A signal that arrives while the servers start is acted on once they have started, so that
  // it too ends in a drained, clean exit rather than the default signal death.
  let earlySignal: NodeJS.Signals | undefined;
  const onEarlySignal = (signal: NodeJS.Signals): void => {
    earlySignal ??= signal;
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, onEarlySignal);

  let app: INestApplicationContext;
  try {
    app = config.admin.address === undefined ? await NestFactory.createApplicationContext(BrokerModule.forRoot(config), { logger, abortOnError: false }) : await startWithAdmin(config.admin.address);
  } catch (err) {
    // the error text is kept whole: supervisors and the test harness look for "address already in use"
    log.error(`failed to start (role ${config.role}): ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof Error && err.stack) log.debug(err.stack);
    process.exit(EXIT_FAILURE);
  }
  for (const s of SHUTDOWN_SIGNALS) process.off(s, onEarlySignal);

  app.enableShutdownHooks([...SHUTDOWN_SIGNALS], { useProcessExit: true });
  // Nest ignores a second signal while it drains; a second Ctrl-C should not have to wait.
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals < 2) return;
    log.warn(`second ${signal} while draining: exiting now`);
    process.exit(EXIT_FAILURE);
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, onSignal);

  if (earlySignal) {
    signals++;
    log.log(`${earlySignal} received during start`);
    await app.close();
    process.exit(0);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`broker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_FAILURE);
});
