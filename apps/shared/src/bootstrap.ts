import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { ConsoleLogger, type INestApplication } from '@nestjs/common';
import type { ListenAddress } from './env.js';
import { SampleConfigError } from './env.js';

const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
/** A shutdown that takes longer than this (a handler or a database that hangs) ends with exit code 1. */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 20_000;

/** Nest's console logger, coloured only on a terminal (escape codes garble piped and shipped logs). */
export function createServiceLogger(): ConsoleLogger {
  return new ConsoleLogger({ colors: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR });
}

export interface ServiceStart {
  app: INestApplication;
  address: ListenAddress;
  /** Runs after the app is created and before HTTP listens (e.g. start a hybrid app's microservices). */
  beforeListen?: () => Promise<void>;
}

/**
 * Runs an HTTP service: `start` reads the environment and builds the Nest app; then the app
 * listens and a line `<name>: listening on http://<host>:<port>` is printed (the port the OS
 * picked when the address says 0; launchers and tests read it). SIGTERM / SIGINT close the app
 * gracefully (bounded; a second signal exits at once). Exit codes: 2 for a bad environment
 * variable, 1 when the service cannot start or stop cleanly, 0 after a clean stop.
 */
export function runHttpService(
  name: string,
  start: (logger: ConsoleLogger) => Promise<ServiceStart>,
  shutdownTimeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS,
): void {
  const logger = createServiceLogger();
  let signals = 0;
  let app: INestApplication | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn(`second ${signal} while stopping: exiting now`, name);
      process.exit(EXIT_FAILURE);
    }
    if (!app) return; // still starting: acted on once started
    logger.log(`${signal}: stopping`, name);
    setTimeout(() => {
      logger.error(`not stopped within ${shutdownTimeoutMs} ms: exiting`, undefined, name);
      process.exit(EXIT_FAILURE);
    }, shutdownTimeoutMs).unref();
    stopping ??= app.close().then(
      () => {
        logger.log('stopped', name);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error(`did not stop cleanly: ${err instanceof Error ? err.message : String(err)}`, undefined, name);
        process.exit(EXIT_FAILURE);
      },
    );
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, stop);

  (async () => {
    let started: ServiceStart;
    try {
      started = await start(logger);
    } catch (err) {
      if (err instanceof SampleConfigError) {
        process.stderr.write(`${name}: ${err.message}\n`);
        process.exit(EXIT_USAGE);
      }
      throw err;
    }
    app = started.app;
    await started.beforeListen?.();
    await app.listen(started.address.port, started.address.host);
    const bound = (app.getHttpServer() as { address(): AddressInfo | string | null }).address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : started.address.port;
    const host = started.address.host.includes(':') ? `[${started.address.host}]` : started.address.host;
    process.stdout.write(`${name}: listening on http://${host}:${port}\n`);
    if (signals > 0) {
      signals = 0;
      stop('SIGTERM');
    }
  })().catch((err: unknown) => {
    logger.error(`failed to start: ${err instanceof Error ? err.message : String(err)}`, err instanceof Error ? err.stack : undefined, name);
    process.exit(EXIT_FAILURE);
  });
}
