import { EventEmitter } from 'node:events';
import { NsqClosedError, NsqConnectionError, type NsqLogger, Producer, type ProducerInput } from '../../nsq/src/index.js';

/**
 * How publishes pick an nsqd: `failover` stays on one nsqd while it works and moves to the next
 * when its connection fails; `round-robin` spreads publishes over every working nsqd.
 */
export type NsqPublishStrategy = 'failover' | 'round-robin';

export interface NsqPublisherOptions {
  nsqdTCPAddresses: string[];
  producer: ProducerInput;
  strategy: NsqPublishStrategy;
  logger: NsqLogger;
}

/** How long an nsqd whose connection failed is passed over while another one works. */
const DOWN_COOLDOWN_MS = 2000;

interface Node {
  address: string;
  producer: Producer;
  failedAt: number;
}

/**
 * Publishes through several nsqd, one pipelined Producer each. A publish that fails because its
 * connection was lost or refused is sent again to the next nsqd (at-least-once: if the first nsqd
 * stored it before the connection dropped, it exists twice); nsqd's own refusals (bad topic, too
 * big) are not retried. Events: 'connect' (address), 'disconnect' (address), 'error' (error).
 */
export class NsqPublisher extends EventEmitter {
  private readonly nodes: Node[] = [];
  /** Producers for nsqd outside the configured list (replies and dead letters go back to the nsqd a message came from). */
  private readonly extra = new Map<string, Node>();
  private cursor = 0;
  private closed = false;

  constructor(private readonly options: NsqPublisherOptions) {
    super();
    for (const address of options.nsqdTCPAddresses) this.nodes.push(this.createNode(address));
  }

  get addresses(): string[] {
    return this.nodes.map((n) => n.address);
  }

  get connectedAddresses(): string[] {
    return this.nodes.filter((n) => n.producer.isConnected).map((n) => n.address);
  }

  /** Connects to every configured nsqd; resolves once one is connected, rejects if none can be. */
  async connect(): Promise<void> {
    if (this.closed) throw new NsqClosedError('publisher is closed');
    if (this.nodes.length === 0) return;
    const results = await Promise.allSettled(this.nodes.map((n) => n.producer.connect()));
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${this.nodes[i]!.address}: ${(r.reason as Error).message}`] : []));
    for (const [i, r] of results.entries()) if (r.status === 'rejected') this.nodes[i]!.failedAt = Date.now();
    if (failures.length === this.nodes.length) {
      throw new NsqConnectionError(`cannot connect to any nsqd (${failures.join('; ')})`);
    }
    if (failures.length > 0) this.options.logger.warn(`publishing without ${failures.join('; ')}; will retry them`);
  }

  publish(topic: string, body: Buffer): Promise<void> {
    // The hot path of emit(): no async frame, no closure unless the connected nsqd fails.
    const node = this.connectedCurrent();
    if (node === undefined) return this.withFailover(undefined, (p) => p.publish(topic, body));
    return node.producer.publish(topic, body).catch((error: unknown) => this.afterFailure(node, error, (p) => p.publish(topic, body)));
  }

  publishMany(topic: string, bodies: Buffer[]): Promise<void> {
    return this.withFailover(undefined, (p) => p.publishMany(topic, bodies));
  }

  publishDeferred(topic: string, delayMs: number, body: Buffer): Promise<void> {
    return this.withFailover(undefined, (p) => p.publishDeferred(topic, delayMs, body));
  }

  /** Publishes to `address` first (adding a producer for it if needed), then fails over as usual. */
  publishVia(address: string | undefined, topic: string, body: Buffer): Promise<void> {
    return this.withFailover(address, (p) => p.publish(topic, body));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.nodes, ...this.extra.values()].map((n) => n.producer.close()));
  }

  private createNode(address: string): Node {
    const producer = new Producer(address, { ...this.options.producer, logger: this.options.logger });
    const node: Node = { address, producer, failedAt: 0 };
    producer.on('connect', () => {
      node.failedAt = 0;
      this.emit('connect', address);
    });
    producer.on('close', () => this.emit('disconnect', address));
    producer.on('error', (error: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', error);
    });
    return node;
  }

  private nodeFor(address: string): Node {
    const known = this.nodes.find((n) => n.address === address) ?? this.extra.get(address);
    if (known) return known;
    const node = this.createNode(address);
    this.extra.set(address, node);
    return node;
  }

  /** Candidates in order: the preferred nsqd, then working ones from the cursor, then those that failed lately. */
  private candidates(preferred: string | undefined): Node[] {
    const now = Date.now();
    const healthy: Node[] = [];
    const down: Node[] = [];
    const n = this.nodes.length;
    for (let i = 0; i < n; i++) {
      const node = this.nodes[(this.cursor + i) % n]!;
      if (node.producer.isConnected || now - node.failedAt > DOWN_COOLDOWN_MS) healthy.push(node);
      else down.push(node);
    }
    const list = [...healthy, ...down];
    if (preferred !== undefined) {
      const first = this.nodeFor(preferred);
      return [first, ...list.filter((node) => node !== first)];
    }
    return list;
  }

  /** The nsqd the next publish goes to, when it is connected (advancing the cursor for round-robin). */
  private connectedCurrent(): Node | undefined {
    if (this.closed || this.nodes.length === 0) return undefined;
    const index = this.cursor % this.nodes.length;
    const node = this.nodes[index]!;
    if (!node.producer.isConnected) return undefined;
    if (this.options.strategy === 'round-robin') this.cursor = (index + 1) % this.nodes.length;
    return node;
  }

  private afterFailure(node: Node, error: unknown, send: (p: Producer) => Promise<void>): Promise<void> {
    if (!isConnectionFailure(error) || this.nodes.length === 1 || this.closed) throw error;
    node.failedAt = Date.now();
    this.options.logger.warn(`publish to nsqd ${node.address} failed (${(error as Error).message}); trying the next nsqd`);
    return this.withFailover(undefined, send);
  }

  private async withFailover(preferred: string | undefined, send: (p: Producer) => Promise<void>): Promise<void> {
    if (this.closed) throw new NsqClosedError('publisher is closed');
    if (preferred === undefined) {
      const node = this.connectedCurrent();
      if (node !== undefined) {
        try {
          return await send(node.producer);
        } catch (error) {
          return this.afterFailure(node, error, send);
        }
      }
    }
    const candidates = this.candidates(preferred);
    if (candidates.length === 0) throw new NsqConnectionError('no nsqd address to publish to');
    let last: unknown;
    for (const node of candidates) {
      try {
        await send(node.producer);
        const index = this.nodes.indexOf(node);
        if (index >= 0) this.cursor = this.options.strategy === 'round-robin' ? (index + 1) % this.nodes.length : index;
        return;
      } catch (error) {
        if (!isConnectionFailure(error) || this.closed) throw error;
        node.failedAt = Date.now();
        last = error;
      }
    }
    throw last;
  }
}

function isConnectionFailure(error: unknown): boolean {
  return error instanceof NsqConnectionError;
}
