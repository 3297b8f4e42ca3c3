/**
 * The two app processes of transport.bench.ts, forked by it with an IPC channel:
 *
 *   node dist/test/bench/transport-roles.js handler   --transport=ours --nsqd=127.0.0.1:4150 --topic=t --channel=c ...
 *   node dist/test/bench/transport-roles.js publisher --transport=ours --nsqd=127.0.0.1:4150 --topic=t ...
 *
 * handler:   a Nest microservice (NestFactory.createMicroservice) with one @EventPattern handler on
 *            the topic, through the transport under test. It counts the events of each phase the
 *            orchestrator announced, takes receive time minus the event's sentAt, and reports when
 *            every event of the phase arrived.
 * publisher: a Nest application context whose provider is the transport's ClientProxy; it emits
 *            bursts (a window of outstanding emits) or paced streams when told, and reports when
 *            every emit completed.
 *
 * Either exits when the orchestrator goes away (IPC disconnect), so no child outlives it.
 */
import 'reflect-metadata';
import { Controller, type INestApplicationContext, type LogLevel, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type ClientProxy, ClientProxyFactory, EventPattern, type MicroserviceOptions, Transport } from '@nestjs/microservices';
import { JSONDeserializer, JSONSerializer, NSQClient, NSQStrategy, type TopicChannelOptions } from 'nest-nsq-transport';
import { lastValueFrom } from 'rxjs';
import { NsqClient, NsqServer } from '../../libs/nest-nsq/src/index.js';
import { forEachFlag, slidingWindow } from './bench-util.js';
import {
  type BenchEvent,
  type Buffering,
  type FromChild,
  type LatencySummary,
  type RoleConfig,
  type ToHandler,
  type ToPublisher,
  TRANSPORTS,
  type TransportKind,
  wallClockMs,
} from './transport-protocol.js';

const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'fatal'];

function parseRole(argv: readonly string[]): { role: 'handler' | 'publisher'; config: RoleConfig } {
  const [role, ...rest] = argv;
  if (role !== 'handler' && role !== 'publisher') throw new Error(`first argument must be handler or publisher, got ${JSON.stringify(role)}`);
  const config: RoleConfig = {
    transport: 'ours',
    nsqd: '',
    nats: 'nats://127.0.0.1:4222',
    topic: '',
    channel: 'bench',
    buffering: 'off',
    maxInFlight: 1000,
  };
  forEachFlag(rest, (flag, value) => {
    switch (flag) {
      case '--transport': {
        const t = value();
        if (!TRANSPORTS.includes(t as TransportKind)) throw new Error(`--transport: unknown ${JSON.stringify(t)}`);
        config.transport = t as TransportKind;
        break;
      }
      case '--nsqd':
        config.nsqd = value();
        break;
      case '--nats':
        config.nats = value();
        break;
      case '--topic':
        config.topic = value();
        break;
      case '--channel':
        config.channel = value();
        break;
      case '--buffering': {
        const b = value();
        if (b !== 'off' && b !== 'default') throw new Error(`--buffering must be off or default, got ${JSON.stringify(b)}`);
        config.buffering = b as Buffering;
        break;
      }
      case '--max-in-flight':
        config.maxInFlight = Number(value());
        break;
      default:
        throw new Error(`unknown flag ${JSON.stringify(flag)}`);
    }
  });
  if (!config.topic) throw new Error('--topic is required');
  if (config.transport !== 'nats' && !config.nsqd) throw new Error('--nsqd is required for the NSQ transports');
  return { role, config };
}

// Decorators are evaluated when the classes below are defined, so the pattern must be known first.
const { role, config } = parseRole(process.argv.slice(2));

function send(message: FromChild): void {
  process.send?.(message);
}

function fail(error: unknown, phase?: number): void {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  send(phase === undefined ? { type: 'failed', error: text } : { type: 'failed', phase, error: text });
}

// ---------------------------------------------------------------------------------------------
// handler

/** nest-nsq-transport routes on 'topic/channel'; NATS and ours on the topic (subject) alone. */
const HANDLER_PATTERN = config.transport === 'nest-nsq-transport' ? `${config.topic}/${config.channel}` : config.topic;

interface PhaseState {
  count: number;
  received: number;
  seen: Uint8Array;
  latencies: Float64Array;
  firstAt: number;
  lastAt: number;
}

class Tally {
  private readonly phases = new Map<number, PhaseState>();
  private duplicates = 0;
  private strays = 0;

  expect(phase: number, count: number): void {
    this.phases.set(phase, { count, received: 0, seen: new Uint8Array(count), latencies: new Float64Array(count), firstAt: 0, lastAt: 0 });
  }

  received(phase: number): number {
    return this.phases.get(phase)?.received ?? 0;
  }

  record(event: BenchEvent): void {
    const now = wallClockMs();
    const state = this.phases.get(event.p);
    if (!state || !(event.seq >= 0 && event.seq < state.count)) {
      this.strays++;
      return;
    }
    if (state.seen[event.seq] === 1) {
      this.duplicates++;
      return;
    }
    state.seen[event.seq] = 1;
    state.latencies[event.seq] = now - event.sentAt;
    if (state.received === 0) state.firstAt = now;
    state.lastAt = now;
    if (++state.received === state.count) {
      this.phases.delete(event.p);
      send({
        type: 'received',
        phase: event.p,
        count: state.count,
        firstAt: state.firstAt,
        lastAt: state.lastAt,
        latency: summarizeLatencies(state.latencies),
        duplicates: this.duplicates,
        strays: this.strays,
      });
    }
  }
}

function summarizeLatencies(values: Float64Array): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted[sorted.length - 1]!, meanMs: sum / sorted.length };
}

const tally = new Tally();

@Controller()
class BenchController {
  @EventPattern<string>(HANDLER_PATTERN)
  onEvent(event: BenchEvent): void {
    tally.record(event);
  }
}

@Module({ controllers: [BenchController] })
class HandlerModule {}

function microserviceOptions(c: RoleConfig): MicroserviceOptions {
  switch (c.transport) {
    case 'nats':
      return { transport: Transport.NATS, options: { servers: [c.nats] } };
    case 'nest-nsq-transport':
      return {
        strategy: new NSQStrategy({
          deserializer: new JSONDeserializer(),
          // Passed to nsqjs's Reader, which sends output_buffer_size -1 in IDENTIFY as given. The
          // cast: its type extends nsqjs's, which test/bench/nsqjs.d.ts does not declare.
          defaultChannelOptions: {
            nsqdTCPAddresses: [c.nsqd],
            maxInFlight: c.maxInFlight,
            ...(c.buffering === 'off' ? { outputBufferSize: -1 } : {}),
          } as TopicChannelOptions,
        }),
      };
    case 'ours':
      return {
        strategy: new NsqServer({
          nsqdTCPAddresses: [c.nsqd],
          channel: c.channel,
          maxInFlight: c.maxInFlight,
          // The transport asks for unbuffered output by default; 'default' asks for nsqd's own defaults.
          connection: c.buffering === 'off' ? { outputBufferSize: -1 } : { outputBufferSize: 16_384, outputBufferTimeout: 250 },
        }),
      };
  }
}

async function runHandler(): Promise<void> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(HandlerModule, { ...microserviceOptions(config), logger: LOG_LEVELS });
  await app.listen();
  process.on('message', (message: ToHandler) => {
    switch (message.type) {
      case 'expect':
        tally.expect(message.phase, message.count);
        send({ type: 'expecting', phase: message.phase });
        break;
      case 'status':
        send({ type: 'status', phase: message.phase, received: tally.received(message.phase) });
        break;
      case 'close':
        void shutdown(app);
        break;
    }
  });
  send({ type: 'ready', pid: process.pid });
}

// ---------------------------------------------------------------------------------------------
// publisher

const BENCH_CLIENT = 'BENCH_CLIENT';

function createClient(c: RoleConfig): ClientProxy {
  switch (c.transport) {
    case 'nats':
      return ClientProxyFactory.create({ transport: Transport.NATS, options: { servers: [c.nats] } });
    case 'nest-nsq-transport':
      return new NSQClient({ nsqdURL: c.nsqd, serializer: new JSONSerializer() });
    case 'ours':
      return new NsqClient({ nsqdTCPAddresses: [c.nsqd] });
  }
}

@Module({})
class PublisherModule {
  static forClient(c: RoleConfig): DynamicModule {
    return { module: PublisherModule, providers: [{ provide: BENCH_CLIENT, useFactory: () => createClient(c) }], exports: [BENCH_CLIENT] };
  }
}

/** The padding that makes an event's JSON `size` bytes long (with a typical seq and timestamp). */
function padFor(size: number): string {
  const sample: BenchEvent = { p: 1, seq: 12345, sentAt: wallClockMs(), pad: '' };
  return 'x'.repeat(Math.max(0, size - JSON.stringify(sample).length));
}

function emitOne(client: ClientProxy, phase: number, seq: number, pad: string): Promise<void> {
  const event: BenchEvent = { p: phase, seq, sentAt: wallClockMs(), pad };
  return lastValueFrom(client.emit(config.topic, event), { defaultValue: undefined }) as Promise<void>;
}

async function burst(client: ClientProxy, m: Extract<ToPublisher, { type: 'burst' }>): Promise<void> {
  const pad = padFor(m.size);
  let seq = 0;
  const firstAt = wallClockMs();
  await slidingWindow(m.count, m.outstanding, (onDone) => {
    emitOne(client, m.phase, seq++, pad).then(() => onDone(), onDone);
  });
  send({ type: 'sent', phase: m.phase, count: m.count, firstAt, lastAt: wallClockMs(), eventBytes: JSON.stringify({ p: m.phase, seq, sentAt: firstAt, pad }).length });
}

/** Emits at `rate`/s: each timer tick sends the events that are due by then (timers fire ~every 1 ms at best). */
async function paced(client: ClientProxy, m: Extract<ToPublisher, { type: 'paced' }>): Promise<void> {
  const pad = padFor(m.size);
  const pending = new Set<Promise<void>>();
  let failure: unknown;
  let seq = 0;
  const start = performance.now();
  const firstAt = wallClockMs();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(m.count, Math.floor(((performance.now() - start) * m.rate) / 1000) + 1);
      while (seq < due) {
        const p = emitOne(client, m.phase, seq++, pad).catch((error: unknown) => {
          failure ??= error;
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      if (seq >= m.count || failure !== undefined) resolve();
      else setTimeout(tick, Math.max(0, ((seq * 1000) / m.rate) - (performance.now() - start)));
    };
    tick();
  });
  await Promise.all(pending);
  if (failure !== undefined) throw failure;
  send({ type: 'sent', phase: m.phase, count: m.count, firstAt, lastAt: wallClockMs(), eventBytes: JSON.stringify({ p: m.phase, seq, sentAt: firstAt, pad }).length });
}

async function runPublisher(): Promise<void> {
  const app = await NestFactory.createApplicationContext(PublisherModule.forClient(config), { logger: LOG_LEVELS });
  const client = app.get<ClientProxy>(BENCH_CLIENT);
  await client.connect();
  process.on('message', (message: ToPublisher) => {
    switch (message.type) {
      case 'burst':
        burst(client, message).catch((error: unknown) => fail(error, message.phase));
        break;
      case 'paced':
        paced(client, message).catch((error: unknown) => fail(error, message.phase));
        break;
      case 'close':
        void shutdown(app, () => client.close());
        break;
    }
  });
  send({ type: 'ready', pid: process.pid });
}

// ---------------------------------------------------------------------------------------------

/** Closes the app (and the client, which Nest does not own here), then exits: --cpu-prof writes its profile on exit. */
async function shutdown(app: INestApplicationContext, before?: () => unknown): Promise<void> {
  const force = setTimeout(() => process.exit(2), 10_000);
  try {
    await before?.();
    await app.close();
  } catch (error) {
    process.stderr.write(`${role}: close failed: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  clearTimeout(force);
  process.exit(0);
}

process.on('disconnect', () => process.exit(3));
(role === 'handler' ? runHandler() : runPublisher()).catch((error: unknown) => {
  fail(error);
  process.stderr.write(`${role}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
