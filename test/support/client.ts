/**
 * Helpers for the integration suites of our client (Producer / Consumer) against the official
 * nsqd: message snapshots, nsqd /stats look-ups, a capturing logger and a cleanup list that closes
 * every producer and consumer a test made, even when the test failed half-way.
 */
import type { Message } from '../../libs/nsq/src/client/message.js';
import { type NsqLogger, silentLogger } from '../../libs/nsq/src/client/logger.js';
import { Producer, type ProducerInput } from '../../libs/nsq/src/client/producer.js';
import {
  NsqdHttpClient,
  type NsqdChannelStats,
  type NsqdClientStats,
  type NsqdStats,
  type NsqdTopicStats,
} from '../../libs/nsq/src/client/http.js';

let seq = 0;
/** A topic / channel name unique to this run (valid: [.a-zA-Z0-9_-], at most 64 chars). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now() % 1_000_000}-${++seq}`;
}

/** What a handler saw, copied out of the message (whose fields are views into the read buffer). */
export interface Delivery {
  id: string;
  body: Buffer;
  attempts: number;
  timestamp: bigint;
  /** Date.now() when the handler was called. */
  at: number;
  nsqdAddress: string;
  topic: string;
  channel: string;
}

export function snapshot(msg: Message): Delivery {
  return {
    id: msg.id,
    body: Buffer.from(msg.body),
    attempts: msg.attempts,
    timestamp: msg.timestamp,
    at: Date.now(),
    nsqdAddress: msg.nsqdAddress,
    topic: msg.topic,
    channel: msg.channel,
  };
}

/** Something with an nsqd HTTP address (an NsqdProcess). */
export interface HasHttp {
  httpAddress: string;
}

export async function nsqdStats(nsqd: HasHttp, topic?: string): Promise<NsqdStats> {
  return new NsqdHttpClient(nsqd.httpAddress).stats(topic === undefined ? {} : { topic });
}

export async function topicStats(nsqd: HasHttp, topic: string): Promise<NsqdTopicStats | undefined> {
  const stats = await nsqdStats(nsqd, topic);
  return stats.topics.find((t) => t.topic_name === topic);
}

export async function channelStats(nsqd: HasHttp, topic: string, channel: string): Promise<NsqdChannelStats | undefined> {
  return (await topicStats(nsqd, topic))?.channels.find((c) => c.channel_name === channel);
}

/** The channel's consumer clients as nsqd sees them. */
export async function channelClients(nsqd: HasHttp, topic: string, channel: string): Promise<NsqdClientStats[]> {
  return (await channelStats(nsqd, topic, channel))?.clients ?? [];
}

/** A logger that keeps every line (level-prefixed), to keep test output clean and assert on logs. */
export function captureLogger(): NsqLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

/** Closes what a test opened, last first, ignoring errors (use in afterEach). */
export class Cleanup {
  private readonly items: Array<() => unknown> = [];

  /** Registers `x` (anything with close()) and returns it. */
  track<T extends { close(): unknown }>(x: T): T {
    this.items.push(() => x.close());
    return x;
  }

  /** A silent Producer for `nsqd`, closed by run(). */
  producer(nsqd: { tcpAddress: string }, options: ProducerInput = {}): Producer {
    return this.track(new Producer(nsqd.tcpAddress, { logger: silentLogger, ...options }));
  }

  add(fn: () => unknown): void {
    this.items.push(fn);
  }

  async run(): Promise<void> {
    while (this.items.length > 0) {
      const fn = this.items.pop()!;
      try {
        await fn();
      } catch {
        // best effort
      }
    }
  }
}

/** Hex of each body, sorted: compares multisets of bodies independent of delivery order. */
export function sortedHex(bodies: Iterable<Buffer | string>): string[] {
  return [...bodies].map((b) => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b).toString('hex')).sort();
}

/** Settles a promise into a value/error record (never rejects). */
export async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Creates the channels and waits until nsqd's queue scanner covers them. nsqd 1.3.0 checks in-flight
 * timeouts and deferred messages only on the channels listed at its last scan-list refresh, which
 * happens every 5 s (QueueScanRefreshInterval, no flag): on a brand-new channel a deferred message or
 * a msg_timeout can go unnoticed for up to 5 s. A 1 ms deferred canary that reaches the queue proves
 * the scanner has the channel; the canaries are then emptied. Takes up to ~5 s, once for all channels.
 */
export async function warmChannels(nsqd: HasHttp, pairs: ReadonlyArray<readonly [topic: string, channel: string]>): Promise<void> {
  const api = new NsqdHttpClient(nsqd.httpAddress);
  for (const [topic, channel] of pairs) {
    await api.createTopic(topic);
    await api.createChannel(topic, channel);
    await api.publish(topic, 'canary', { deferMs: 1 });
  }
  const deadline = Date.now() + 10_000;
  for (const [topic, channel] of pairs) {
    while (true) {
      const ch = await channelStats(nsqd, topic, channel);
      if (ch && ch.deferred_count === 0 && ch.depth === 1) break;
      if (Date.now() > deadline) throw new Error(`warmChannels: nsqd never scanned ${topic}/${channel}: ${JSON.stringify(ch)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await api.emptyChannel(topic, channel);
  }
}
