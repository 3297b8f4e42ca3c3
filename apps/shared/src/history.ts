import { join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import {
  HistoryJournal,
  HistoryRecorder,
  buildHistoryDataSource,
  historyHooks,
  historyOptionsFromUrl,
  type HistoryDataSourceOptions,
} from '../../../libs/message-history/src/index.js';
import type { NsqTransportHooks } from '../../../libs/nest-nsq/src/index.js';
import { describeDatabase, type Env, SampleConfigError } from './env.js';

/** Client-side message history of one service (HISTORY_DB_URL). */
export interface ClientHistoryConfig {
  db: HistoryDataSourceOptions;
  spoolPath: string;
}

/**
 * `HISTORY_DB_URL` (same forms as the service's own database URL) and `HISTORY_SPOOL_PATH`
 * (default `.data/<service>.history.spool`). Undefined when HISTORY_DB_URL is unset: no history.
 */
export function clientHistoryFromEnv(env: Env, service: string): ClientHistoryConfig | undefined {
  const url = env.HISTORY_DB_URL?.trim();
  if (!url) return undefined;
  let db: HistoryDataSourceOptions;
  try {
    db = historyOptionsFromUrl(url, join('.data', `${service}.history.sqlite`));
  } catch (err) {
    throw new SampleConfigError('HISTORY_DB_URL', (err as Error).message);
  }
  return { db, spoolPath: env.HISTORY_SPOOL_PATH?.trim() || join('.data', `${service}.history.spool`) };
}

/** A running recorder and the transport hooks that feed it. */
export interface ClientHistory {
  hooks: NsqTransportHooks;
  recorder: HistoryRecorder;
  /** Flushes (bounded by the recorder's closeTimeout), then disconnects. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts client-side history: the transport's publish and delivery hooks feed a HistoryRecorder
 * (which spools to a file while the database is unreachable, so a service starts and runs even
 * when the history database is down) through a HistoryJournal (so a killed service loses none of
 * the events the recorder still held).
 */
export async function startClientHistory(config: ClientHistoryConfig, service: string, logger: LoggerService): Promise<ClientHistory> {
  const dataSource = buildHistoryDataSource(config.db);
  const source = `${service}/${process.pid}`;
  const recorder = new HistoryRecorder(dataSource, {
    spoolPath: config.spoolPath,
    source,
    logger: {
      debug: (m) => logger.debug?.(m, 'history'),
      info: (m) => logger.log(m, 'history'),
      warn: (m) => logger.warn(m, 'history'),
      error: (m) => logger.error(m, undefined, 'history'),
    },
  });
  // a SIGKILLed service must not lose the events its recorder held in memory
  const journal = new HistoryJournal(recorder, { path: `${config.spoolPath}.journal`, source });
  await journal.start();
  logger.log(`client-side message history into ${describeDatabase(config.db)} (spool ${config.spoolPath})`, 'history');
  let closing: Promise<void> | undefined;
  return {
    hooks: historyHooks(journal, { source }),
    recorder,
    close: () =>
      (closing ??= (async () => {
        await journal.close();
        if (dataSource.isInitialized) await dataSource.destroy();
      })()),
  };
}
