import { LookupdHttpClient } from './http.js';
import type { NsqLogger } from './logger.js';

export interface LookupdPollerOptions {
  topic: string;
  lookupdHTTPAddresses: readonly string[];
  pollInterval: number;
  pollJitter: number;
  pollTimeout: number;
  logger: NsqLogger;
  /** The nsqd TCP addresses (broadcast_address:tcp_port) producing the topic. */
  onProducers(addresses: Set<string>): void;
}

/**
 * Discovers the nsqd producing a topic: queries every nsqlookupd at once and takes the union of
 * their answers (go-nsq and nsqjs ask one lookupd per poll). A lookupd that fails is left out of
 * that round; when all fail, the consumer keeps what it has rather than dropping every nsqd.
 * Each wait is pollInterval plus a random fraction (pollJitter) of it.
 */
export class LookupdPoller {
  private readonly clients: LookupdHttpClient[];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private polling: Promise<void> | undefined;

  constructor(private readonly options: LookupdPollerOptions) {
    this.clients = options.lookupdHTTPAddresses.map((a) => new LookupdHttpClient(a, { timeoutMs: options.pollTimeout }));
  }

  /** Runs the first query; later ones follow on the timer. */
  async start(): Promise<void> {
    await this.poll();
    this.schedule();
  }

  /** Queries now (e.g. after a connection closed), unless a query is already running. */
  poll(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.polling ??= this.queryAll().finally(() => {
      this.polling = undefined;
    });
    return this.polling;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    const { pollInterval, pollJitter } = this.options;
    const wait = pollInterval + Math.round(Math.random() * pollJitter * pollInterval);
    this.timer = setTimeout(() => {
      this.poll().finally(() => this.schedule());
    }, wait);
    this.timer.unref();
  }

  private async queryAll(): Promise<void> {
    const { topic, logger } = this.options;
    const results = await Promise.allSettled(this.clients.map((c) => c.lookup(topic)));
    const found = new Set<string>();
    let answered = 0;
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        const reason = result.reason instanceof Error ? result.reason.message : String(result.reason);
        logger.warn(`lookupd ${this.options.lookupdHTTPAddresses[i]} query for topic ${topic} failed: ${reason}`);
        return;
      }
      answered++;
      for (const p of result.value.producers) {
        const host = p.broadcast_address || p.hostname;
        if (host && p.tcp_port) found.add(host.includes(':') ? `[${host}]:${p.tcp_port}` : `${host}:${p.tcp_port}`);
      }
    });
    if (answered > 0 && !this.stopped) this.options.onProducers(found);
  }
}
