/**
 * Helpers for the end-to-end suites of the Nest transport (libs/nest-nsq): Nest microservices over
 * a real nsqd, clients, a Nest logger that keeps lines instead of printing them, and a libs/nsq
 * consumer that reads a dead-letter topic back into envelopes.
 */
import type { INestMicroservice, LoggerService, Type } from '@nestjs/common';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { Consumer } from '../../libs/nsq/src/client/consumer.js';
import { silentLogger } from '../../libs/nsq/src/client/logger.js';
import { NsqClient } from '../../libs/nest-nsq/src/client/nsq.client.js';
import type { NsqClientOptions, NsqServerOptions } from '../../libs/nest-nsq/src/interfaces.js';
import { NsqServer } from '../../libs/nest-nsq/src/server/nsq.server.js';
import { type NsqHeaders, decodeEnvelope } from '../../libs/nest-nsq/src/wire/envelope.js';
import type { Cleanup } from './client.js';

/** A Nest LoggerService that keeps every line (set NEST_NSQ_TEST_LOGS=1 to print them too). */
export class CapturedNestLogs implements LoggerService {
  readonly lines: string[] = [];
  private readonly echo = process.env.NEST_NSQ_TEST_LOGS === '1';

  private add(level: string, message: unknown, rest: unknown[]): void {
    const text = `${level} ${message instanceof Error ? (message.stack ?? message.message) : String(message)}${rest.length ? ` ${rest.map(String).join(' ')}` : ''}`;
    this.lines.push(text);
    if (this.echo) console.log(text);
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.add('verbose', message, rest);
  }

  matching(pattern: RegExp): string[] {
    return this.lines.filter((l) => pattern.test(l));
  }
}

/** Shared by every app of a test file: Nest's Logger is process-global (Logger.overrideLogger). */
export const nestLogs = new CapturedNestLogs();

/** Server options for tests: the nsqd and channel 'svc', with the transport's own defaults otherwise. */
export function serverOptions(nsqd: { tcpAddress: string }, options: Partial<NsqServerOptions> = {}): NsqServerOptions {
  return {
    nsqdTCPAddresses: [nsqd.tcpAddress],
    channel: 'svc',
    ...options,
  };
}

/** Compiles a testing module with `controllers` and starts it as an NsqServer microservice (closed by cleanup). */
export async function startMicroservice(
  cleanup: Cleanup,
  controllers: Array<Type<unknown>>,
  options: NsqServerOptions,
): Promise<{ app: INestMicroservice; server: NsqServer }> {
  const ref = await Test.createTestingModule({ controllers }).setLogger(nestLogs).compile();
  const server = new NsqServer(options);
  const app = ref.createNestMicroservice<MicroserviceOptions>({ strategy: server, logger: nestLogs });
  cleanup.add(() => app.close());
  await app.listen();
  return { app, server };
}

/** An NsqClient on `nsqd` (closed by cleanup). */
export function makeClient(cleanup: Cleanup, nsqd: { tcpAddress: string }, options: Partial<NsqClientOptions> = {}): NsqClient {
  const client = new NsqClient({ nsqdTCPAddresses: [nsqd.tcpAddress], ...options });
  cleanup.add(() => client.close());
  return client;
}

/** emit() as a promise: resolves when nsqd acknowledged the message. */
export function emit(client: NsqClient, pattern: string, data: unknown): Promise<void> {
  return firstValueFrom(client.emit(pattern, data), { defaultValue: undefined });
}

export interface DeadLetter {
  headers: NsqHeaders;
  payload: Buffer;
  attempts: number;
}

/** Subscribes (channel 'inspect') to a dead-letter topic and decodes what arrives. */
export async function readDeadLetters(cleanup: Cleanup, nsqd: { tcpAddress: string }, topic: string): Promise<DeadLetter[]> {
  const got: DeadLetter[] = [];
  const consumer = new Consumer({
    topic,
    channel: 'inspect',
    nsqdTCPAddresses: [nsqd.tcpAddress],
    logger: silentLogger,
    outputBufferSize: -1,
    handler: (message) => {
      const { headers, payload } = decodeEnvelope(message.body);
      got.push({ headers: { ...headers }, payload: Buffer.from(payload), attempts: message.attempts });
    },
  });
  cleanup.track(consumer);
  await consumer.start();
  return got;
}
