/**
 * What transport.bench.ts (the orchestrator) and transport-roles.ts (the handler and publisher
 * processes) tell each other over the child_process IPC channel, and the event they put through
 * the transport under test.
 */

export const TRANSPORTS = ['nats', 'nest-nsq-transport', 'ours'] as const;
export type TransportKind = (typeof TRANSPORTS)[number];

/**
 * How nsqd buffers deliveries to the consumer (IDENTIFY output_buffer_size/timeout):
 * 'off' = output_buffer_size -1, every message written at once;
 * 'default' = nothing sent, nsqd's 16 KiB / 250 ms.
 */
export type Buffering = 'off' | 'default';

/** Command line of a role process (everything after the role). */
export interface RoleConfig {
  transport: TransportKind;
  /** nsqd TCP address (NSQ transports). */
  nsqd: string;
  /** NATS server URL (nats). */
  nats: string;
  /** NSQ topic or NATS subject. */
  topic: string;
  /** NSQ channel (the handler's subscription). */
  channel: string;
  buffering: Buffering;
  maxInFlight: number;
}

export function roleArgv(config: RoleConfig): string[] {
  return [
    `--transport=${config.transport}`,
    `--nsqd=${config.nsqd}`,
    `--nats=${config.nats}`,
    `--topic=${config.topic}`,
    `--channel=${config.channel}`,
    `--buffering=${config.buffering}`,
    `--max-in-flight=${config.maxInFlight}`,
  ];
}

/**
 * The event. `sentAt` is `performance.timeOrigin + performance.now()` at emit time: a wall-clock
 * time with sub-ms resolution that another process on this machine can compare with its own.
 */
export interface BenchEvent {
  /** Phase id: the handler counts and times each phase apart. */
  p: number;
  seq: number;
  sentAt: number;
  pad: string;
}

export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

// orchestrator → child
export type ToHandler =
  | { type: 'expect'; phase: number; count: number }
  | { type: 'status'; phase: number }
  | { type: 'close' };

export type ToPublisher =
  /** `count` emits as fast as possible, at most `outstanding` not yet completed. */
  | { type: 'burst'; phase: number; count: number; outstanding: number; size: number }
  /** `count` emits at `rate` per second. */
  | { type: 'paced'; phase: number; count: number; rate: number; size: number }
  | { type: 'close' };

// child → orchestrator
export type FromChild =
  | { type: 'ready'; pid: number }
  | { type: 'expecting'; phase: number }
  | { type: 'status'; phase: number; received: number }
  /** Handler: every event of the phase arrived (once each). Times are wall-clock ms. */
  | {
      type: 'received';
      phase: number;
      count: number;
      firstAt: number;
      lastAt: number;
      latency: LatencySummary;
      /** Over the process's life so far: events seen again, and events of no expected phase. */
      duplicates: number;
      strays: number;
    }
  /** Publisher: every emit of the phase completed. */
  | { type: 'sent'; phase: number; count: number; firstAt: number; lastAt: number; eventBytes: number }
  | { type: 'failed'; phase?: number; error: string };
