import { isEphemeral } from '../protocol/names.js';
import { Channel } from './channel.js';
import type { NsqdContext } from './context.js';
import { openDiskQueue } from './context.js';
import type { DiskQueue } from './diskqueue.js';
import { GuidFactory, NsqdMessage, nowNanos } from './message.js';
import { MessageFifo } from './fifo.js';

export class TopicExitingError extends Error {
  constructor() {
    super('exiting');
  }
}

/** Messages moved from the topic queue to its channels per event-loop turn while draining a backlog. */
const DRAIN_BATCH = 2048;

/**
 * A topic (nsqd's topic.go): it holds messages until its first channel exists (or while paused) in
 * a memory queue spilling to disk, and fans every message out to all its channels (the first
 * channel gets the message, the others copies with the same id and timestamp).
 */
export class Topic {
  readonly ephemeral: boolean;
  readonly channels = new Map<string, Channel>();
  private readonly memory = new MessageFifo();
  private readonly backend: DiskQueue | undefined;
  private readonly guid: GuidFactory;
  private draining: NodeJS.Immediate | undefined;
  private held = false;
  paused = false;
  exiting = false;
  messageCount = 0;
  messageBytes = 0;

  constructor(
    readonly name: string,
    private readonly ctx: NsqdContext,
  ) {
    this.ephemeral = isEphemeral(name);
    this.backend = this.ephemeral ? undefined : openDiskQueue(ctx, name);
    this.guid = new GuidFactory(ctx.options.nodeId);
  }

  get depth(): number {
    return this.memory.length + (this.backend?.depth ?? 0);
  }
  get backendDepth(): number {
    return this.backend?.depth ?? 0;
  }

  newMessage(body: Buffer, timestamp: number): NsqdMessage {
    return new NsqdMessage(this.guid.next(), body, timestamp);
  }

  getChannel(name: string): { channel: Channel; created: boolean } {
    const existing = this.channels.get(name);
    if (existing) return { channel: existing, created: false };
    const channel = new Channel(this.name, name, this.ctx);
    this.channels.set(name, channel);
    this.ctx.notify({ topic: this.name, channel: name, created: true, ephemeral: channel.ephemeral });
    this.scheduleDrain();
    return { channel, created: true };
  }

  deleteChannel(name: string): boolean {
    const channel = this.channels.get(name);
    if (!channel) return false;
    this.channels.delete(name);
    channel.delete();
    this.ctx.notify({ topic: this.name, channel: name, created: false, ephemeral: channel.ephemeral });
    return true;
  }

  /**
   * A publish from a client (TCP or HTTP): new messages for the bodies, the 'published' events
   * (before any delivery event of the same messages), then put. If the put fails the messages are
   * reported as dropped and the error is rethrown for the client's error answer.
   */
  publish(bodies: readonly Buffer[], deferMs: number, producer: string): NsqdMessage[] {
    const ts = nowNanos();
    const messages = bodies.map((b) => this.newMessage(b, ts));
    const events = this.ctx.events;
    if (events.active) {
      const at = Date.now();
      for (const m of messages) {
        events.emit(
          deferMs > 0
            ? { type: 'published', at, topic: this.name, id: m.id, producer, body: m.body, deferMs }
            : { type: 'published', at, topic: this.name, id: m.id, producer, body: m.body },
        );
      }
    }
    try {
      this.put(messages, deferMs);
    } catch (err) {
      if (events.active) {
        const at = Date.now();
        const reason = `publish failed: ${(err as Error).message}`;
        for (const m of messages) events.emit({ type: 'dropped', at, topic: this.name, id: m.id, reason });
      }
      throw err;
    }
    return messages;
  }

  /**
   * Publishes messages (already validated). With channels and no backlog they go straight to the
   * channels; otherwise to the topic queue. Throws if the topic is exiting or a disk write fails.
   */
  put(messages: readonly NsqdMessage[], deferMs = 0): void {
    if (this.exiting) throw new TopicExitingError();
    const now = deferMs > 0 ? Date.now() : 0;
    for (const msg of messages) {
      this.messageCount++;
      this.messageBytes += msg.body.length;
      if (deferMs > 0) msg.deferredUntil = now + deferMs;
    }
    if (this.canFanOut() && this.depth === 0) {
      for (const msg of messages) this.fanOut(msg);
      return;
    }
    this.enqueue(messages);
    this.scheduleDrain();
  }

  private canFanOut(): boolean {
    return !this.paused && !this.held && this.channels.size > 0 && !this.exiting;
  }

  /** While held (a new topic waiting for lookupd's channel list) messages stay in the topic. */
  hold(on: boolean): void {
    this.held = on;
    if (!on) this.scheduleDrain();
  }

  private enqueue(messages: readonly NsqdMessage[]): void {
    const memSize = this.ctx.options.memQueueSize;
    let i = 0;
    // deferred messages stay in memory even over the limit: a disk record cannot carry the defer
    while (i < messages.length && (this.memory.length < memSize || messages[i]!.deferredUntil > 0)) {
      this.memory.push(messages[i]!);
      i++;
    }
    if (i === messages.length) return;
    if (this.backend === undefined) {
      for (; i < messages.length; i++) {
        const msg = messages[i]!;
        this.ctx.logger.debug(`TOPIC(${this.name}) ephemeral overflow, message ${msg.id} dropped`);
        if (this.ctx.events.active) this.ctx.events.emit({ type: 'dropped', at: Date.now(), topic: this.name, id: msg.id, reason: 'ephemeral topic full' });
      }
      return;
    }
    const records = messages.slice(i).map((m) => m.encode());
    try {
      if (records.length === 1) this.backend.put(records[0]!);
      else this.backend.putMany(records);
      this.ctx.setHealth(undefined);
    } catch (err) {
      this.ctx.setHealth(err as Error);
      throw err;
    }
  }

  private fanOut(msg: NsqdMessage): void {
    let first = true;
    for (const channel of this.channels.values()) {
      const copy = first ? msg : msg.copy();
      first = false;
      try {
        if (msg.deferredUntil > 0) channel.putDeferred(copy, msg.deferredUntil);
        else channel.put(copy);
      } catch (err) {
        this.ctx.logger.error(`TOPIC(${this.name}) failed to put message ${msg.id} to channel ${channel.name}: ${(err as Error).message}`);
      }
    }
  }

  /** Moves the topic's backlog to its channels, a batch per event-loop turn. */
  private scheduleDrain(): void {
    if (this.draining !== undefined || !this.canFanOut() || this.depth === 0) return;
    this.draining = setImmediate(() => {
      this.draining = undefined;
      this.drain(DRAIN_BATCH);
      this.scheduleDrain();
    });
  }

  private drain(max: number): void {
    for (let n = 0; n < max && this.canFanOut(); n++) {
      const useDisk = this.backend !== undefined && this.backend.depth > 0 && (this.memory.length === 0 || n % 2 === 1);
      if (useDisk) {
        const rec = this.backend!.readNext();
        if (rec === undefined) continue;
        const msg = NsqdMessage.decode(rec.data);
        this.fanOut(msg);
        this.backend!.ack(rec.ticket);
        continue;
      }
      const msg = this.memory.shift();
      if (msg === undefined) return;
      this.fanOut(msg);
    }
  }

  pause(): void {
    this.paused = true;
  }

  unpause(): void {
    this.paused = false;
    this.scheduleDrain();
  }

  /** Drops the topic's own backlog (nsqd /topic/empty); channels keep theirs. */
  empty(): void {
    this.memory.drain();
    this.backend?.empty();
  }

  /** Deletes the topic with its channels and files. */
  delete(): void {
    this.exiting = true;
    if (this.draining) clearImmediate(this.draining);
    for (const name of [...this.channels.keys()]) this.deleteChannel(name);
    this.memory.drain();
    this.backend?.delete();
  }

  /** Shutdown: channels flush to disk, then the topic's memory backlog, then the queues sync. */
  close(): void {
    this.exiting = true;
    if (this.draining) clearImmediate(this.draining);
    for (const channel of this.channels.values()) channel.close();
    if (this.backend === undefined) return;
    const pending = this.memory.drain();
    if (pending.length > 0) {
      try {
        this.backend.putMany(pending.map((m) => m.encode()));
      } catch (err) {
        this.ctx.logger.error(`TOPIC(${this.name}) failed to flush ${pending.length} messages to disk: ${(err as Error).message}`);
      }
    }
    this.backend.close();
  }
}
