import { isEphemeral } from '../protocol/names.js';
import type { DiskQueue } from './diskqueue.js';
import type { ChannelConsumer, NsqdContext } from './context.js';
import { openDiskQueue } from './context.js';
import { NsqdMessage } from './message.js';
import { PriorityQueue } from './pqueue.js';
import { MessageFifo } from './fifo.js';

/** Why FIN / REQ / TOUCH failed (nsqd's texts, sent as E_FIN_FAILED etc.). */
export class ChannelStateError extends Error {}

/**
 * One channel of a topic (nsqd's channel.go): a memory queue bounded by memQueueSize spilling to a
 * disk queue, the in-flight and deferred priority queues, and the consumers that compete for its
 * messages. Delivery is push-based: whenever a message arrives or a consumer gets ready, `pump()`
 * hands messages round-robin to ready consumers.
 */
export class Channel {
  readonly ephemeral: boolean;
  private readonly memory = new MessageFifo();
  private readonly backend: DiskQueue | undefined;
  private readonly inFlight = new Map<string, NsqdMessage>();
  private readonly inFlightPQ = new PriorityQueue<NsqdMessage>();
  private readonly deferredPQ = new PriorityQueue<NsqdMessage>();
  private consumers: ChannelConsumer[] = [];
  private nextConsumer = 0;
  private pumping = false;
  private pumpAgain = false;
  private preferDisk = false;
  paused = false;
  exiting = false;
  messageCount = 0;
  requeueCount = 0;
  timeoutCount = 0;

  constructor(
    readonly topicName: string,
    readonly name: string,
    private readonly ctx: NsqdContext,
  ) {
    this.ephemeral = isEphemeral(name);
    this.backend = this.ephemeral ? undefined : openDiskQueue(ctx, `${topicName}:${name}`);
  }

  get depth(): number {
    return this.memory.length + (this.backend?.depth ?? 0);
  }
  get backendDepth(): number {
    return this.backend?.depth ?? 0;
  }
  get inFlightCount(): number {
    return this.inFlight.size;
  }
  get deferredCount(): number {
    return this.deferredPQ.size;
  }
  get clients(): readonly ChannelConsumer[] {
    return this.consumers;
  }

  addClient(consumer: ChannelConsumer): void {
    const max = this.ctx.options.maxChannelConsumers;
    if (max > 0 && this.consumers.length >= max) {
      throw new ChannelStateError(`consumers for ${this.topicName}:${this.name} exceeds limit of ${max}`);
    }
    if (this.consumers.includes(consumer)) return;
    this.consumers = [...this.consumers, consumer];
  }

  /**
   * Removes a consumer. Unlike nsqd (which lets them time out), its in-flight messages go back to
   * the queue at once: a crashed consumer should not delay its messages by msg_timeout.
   * Returns true when an ephemeral channel lost its last consumer (the caller deletes it).
   */
  removeClient(consumer: ChannelConsumer): boolean {
    const before = this.consumers.length;
    this.consumers = this.consumers.filter((c) => c !== consumer);
    if (this.consumers.length === before) return false;
    if (this.inFlight.size > 0) {
      for (const msg of [...this.inFlight.values()]) {
        if (msg.clientId !== consumer.id) continue;
        this.removeFromInFlight(msg);
        this.emitRequeued(msg, consumer.name, 0);
        this.putBack(msg);
      }
      this.pump();
    }
    return this.ephemeral && this.consumers.length === 0;
  }

  /** Queues a message (memory if there is room, else disk); throws if the disk write fails. */
  put(msg: NsqdMessage): void {
    if (this.exiting) throw new ChannelStateError('exiting');
    this.messageCount++;
    this.enqueue(msg);
    if (!this.paused) this.pump();
  }

  /** A DPUB'd message: held until `until` (ms since epoch), then queued. */
  putDeferred(msg: NsqdMessage, until: number): void {
    if (this.exiting) throw new ChannelStateError('exiting');
    this.messageCount++;
    msg.deferredUntil = until;
    msg.pri = until;
    this.deferredPQ.push(msg);
    if (this.ctx.events.active) {
      this.ctx.events.emit({ type: 'deferred', at: Date.now(), topic: this.topicName, channel: this.name, id: msg.id, until });
    }
  }

  private enqueue(msg: NsqdMessage): void {
    if (this.memory.length < this.ctx.options.memQueueSize || (this.ephemeral && this.ctx.options.memQueueSize === 0 && this.memory.length < 1)) {
      this.memory.push(msg);
      return;
    }
    if (this.backend === undefined) {
      // ephemeral overflow is dropped, as in nsqd (dummy backend queue) — but visibly
      this.ctx.logger.debug(`TOPIC(${this.topicName}):CHANNEL(${this.name}) ephemeral overflow, message ${msg.id} dropped`);
      if (this.ctx.events.active) {
        this.ctx.events.emit({ type: 'dropped', at: Date.now(), topic: this.topicName, channel: this.name, id: msg.id, reason: 'ephemeral channel full' });
      }
      return;
    }
    this.writeToBackend(msg);
  }

  private writeToBackend(msg: NsqdMessage): void {
    const backend = this.backend!;
    try {
      backend.put(msg.encode());
      this.ctx.setHealth(undefined);
    } catch (err) {
      this.ctx.setHealth(err as Error);
      throw err;
    }
    // the new record now carries the message; the old one (if any) can go
    if (msg.ticket >= 0) {
      backend.ack(msg.ticket);
      msg.ticket = -1;
    }
  }

  /** Delivers queued messages to ready consumers, round-robin. */
  pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (this.paused || this.consumers.length === 0) return;
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (true) {
          const consumer = this.nextReady();
          if (consumer === undefined) break;
          const msg = this.take();
          if (msg === undefined) break;
          if (consumer.sampleRate > 0 && Math.floor(Math.random() * 100) > consumer.sampleRate) {
            // nsqd's sampling consumes the message for this channel without delivering it
            this.finishRecord(msg);
            if (this.ctx.events.active) {
              this.ctx.events.emit({ type: 'dropped', at: Date.now(), topic: this.topicName, channel: this.name, id: msg.id, reason: 'sampled out' });
            }
            continue;
          }
          this.startInFlight(msg, consumer);
          consumer.send(msg);
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private nextReady(): ChannelConsumer | undefined {
    const list = this.consumers;
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.nextConsumer + i) % n;
      const c = list[idx]!;
      if (c.isReady()) {
        this.nextConsumer = (idx + 1) % n;
        return c;
      }
    }
    return undefined;
  }

  private take(): NsqdMessage | undefined {
    const backend = this.backend;
    const useDisk = backend !== undefined && backend.depth > 0 && (this.memory.length === 0 || this.preferDisk);
    this.preferDisk = !this.preferDisk;
    if (!useDisk) return this.memory.shift();
    const rec = backend.readNext();
    if (rec === undefined) return this.memory.shift();
    const msg = NsqdMessage.decode(rec.data);
    msg.ticket = rec.ticket;
    return msg;
  }

  private startInFlight(msg: NsqdMessage, consumer: ChannelConsumer): void {
    const now = Date.now();
    msg.attempts++;
    msg.clientId = consumer.id;
    msg.deliveredAt = now;
    msg.pri = now + consumer.msgTimeout;
    this.inFlight.set(msg.id, msg);
    this.inFlightPQ.push(msg);
    if (this.ctx.events.active) {
      this.ctx.events.emit({ type: 'delivered', at: now, topic: this.topicName, channel: this.name, id: msg.id, client: consumer.name, attempt: msg.attempts });
    }
  }

  private ownedInFlight(clientId: number, id: string): NsqdMessage {
    const msg = this.inFlight.get(id);
    if (msg === undefined) throw new ChannelStateError('ID not in flight');
    if (msg.clientId !== clientId) throw new ChannelStateError('client does not own message');
    return msg;
  }

  private removeFromInFlight(msg: NsqdMessage): void {
    this.inFlight.delete(msg.id);
    this.inFlightPQ.remove(msg);
  }

  private finishRecord(msg: NsqdMessage): void {
    if (msg.ticket >= 0) {
      this.backend?.ack(msg.ticket);
      msg.ticket = -1;
    }
  }

  /** FIN: throws ChannelStateError (E_FIN_FAILED) if the id is not in flight for this client. */
  finish(consumer: ChannelConsumer, id: string): void {
    const msg = this.ownedInFlight(consumer.id, id);
    this.removeFromInFlight(msg);
    this.finishRecord(msg);
    if (this.ctx.events.active) {
      this.ctx.events.emit({ type: 'finished', at: Date.now(), topic: this.topicName, channel: this.name, id, client: consumer.name, attempt: msg.attempts });
    }
  }

  /** REQ: back to the queue now (delay 0) or after `delayMs`. */
  requeue(consumer: ChannelConsumer, id: string, delayMs: number): void {
    const msg = this.ownedInFlight(consumer.id, id);
    this.removeFromInFlight(msg);
    this.requeueCount++;
    this.emitRequeued(msg, consumer.name, delayMs);
    if (delayMs > 0) {
      msg.deferredUntil = Date.now() + delayMs;
      msg.pri = msg.deferredUntil;
      this.deferredPQ.push(msg);
      return;
    }
    this.putBack(msg);
  }

  private emitRequeued(msg: NsqdMessage, client: string, delayMs: number): void {
    if (this.ctx.events.active) {
      this.ctx.events.emit({ type: 'requeued', at: Date.now(), topic: this.topicName, channel: this.name, id: msg.id, client, attempt: msg.attempts, delayMs });
    }
  }

  /** Requeued / timed out / due: to the tail of the queue. Disk errors are logged, the message kept in memory. */
  private putBack(msg: NsqdMessage): void {
    msg.deferredUntil = 0;
    try {
      this.enqueue(msg);
    } catch (err) {
      this.ctx.logger.error(`TOPIC(${this.topicName}):CHANNEL(${this.name}) failed to requeue ${msg.id} to disk: ${(err as Error).message}; kept in memory`);
      this.memory.push(msg);
    }
  }

  /** TOUCH: a new deadline of now + msgTimeout, bounded by delivery + maxMsgTimeout. */
  touch(consumer: ChannelConsumer, id: string, msgTimeout: number): void {
    const msg = this.ownedInFlight(consumer.id, id);
    const now = Date.now();
    msg.pri = Math.min(now + msgTimeout, msg.deliveredAt + this.ctx.options.maxMsgTimeout);
    this.inFlightPQ.update(msg);
  }

  /** Times out expired in-flight messages and queues due deferred ones. Returns true if any. */
  processTimers(now: number): boolean {
    let dirty = false;
    for (let msg = this.inFlightPQ.popIfDue(now); msg !== undefined; msg = this.inFlightPQ.popIfDue(now)) {
      dirty = true;
      this.inFlight.delete(msg.id);
      this.timeoutCount++;
      const consumer = this.ctx.consumer(msg.clientId);
      consumer?.settled();
      if (this.ctx.events.active) {
        this.ctx.events.emit({ type: 'timed_out', at: now, topic: this.topicName, channel: this.name, id: msg.id, client: consumer?.name ?? '', attempt: msg.attempts });
      }
      this.putBack(msg);
    }
    for (let msg = this.deferredPQ.popIfDue(now); msg !== undefined; msg = this.deferredPQ.popIfDue(now)) {
      dirty = true;
      this.putBack(msg);
    }
    if (dirty) this.pump();
    return dirty;
  }

  pause(): void {
    this.paused = true;
  }

  unpause(): void {
    this.paused = false;
    this.pump();
  }

  /** Drops every queued, in-flight and deferred message (nsqd /channel/empty). */
  empty(): void {
    for (const msg of this.inFlightPQ.drain()) this.finishRecord(msg);
    this.inFlight.clear();
    for (const msg of this.deferredPQ.drain()) this.finishRecord(msg);
    for (const msg of this.memory.drain()) this.finishRecord(msg);
    this.backend?.empty();
    for (const c of this.consumers) c.emptied();
  }

  /** Deletes the channel: closes its consumers, removes its files. */
  delete(): void {
    this.exiting = true;
    for (const c of this.consumers) c.close();
    this.consumers = [];
    this.inFlightPQ.drain();
    this.inFlight.clear();
    this.deferredPQ.drain();
    this.memory.drain();
    this.backend?.delete();
  }

  /**
   * Shutdown: memory, in-flight and deferred messages are written to the disk queue (attempts kept;
   * the defer is lost, as in nsqd) so that a restarted broker resumes them; then the queue syncs.
   */
  close(): void {
    this.exiting = true;
    this.consumers = [];
    const backend = this.backend;
    if (backend === undefined) return;
    const pending = [...this.inFlightPQ.drain(), ...this.deferredPQ.drain(), ...this.memory.drain()];
    this.inFlight.clear();
    for (const msg of pending) {
      try {
        this.writeToBackend(msg);
      } catch (err) {
        this.ctx.logger.error(`TOPIC(${this.topicName}):CHANNEL(${this.name}) failed to flush ${msg.id} to disk: ${(err as Error).message}`);
      }
    }
    backend.close();
  }
}
