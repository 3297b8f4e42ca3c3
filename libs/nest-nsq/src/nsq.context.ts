import { BaseRpcContext } from '@nestjs/microservices';
import type { Message } from '../../nsq/src/index.js';
import { HEADER, type NsqHeaders } from './wire/envelope.js';

export type NsqContextArgs = [message: Message, headers: NsqHeaders];

/**
 * What a handler knows about the message it handles (`@Ctx() ctx: NsqContext`), and the manual
 * answers: finish(), requeue(delay), touch(). Answers are idempotent: after the first, the
 * transport's own FIN or REQ is skipped.
 */
export class NsqContext extends BaseRpcContext<NsqContextArgs> {
  /** The libs/nsq Message: raw bytes, id, attempts, timestamp and the answer methods. */
  getMessage(): Message {
    return this.args[0];
  }

  getTopic(): string {
    return this.args[0].topic;
  }

  getChannel(): string {
    return this.args[0].channel;
  }

  /** nsqd's 16-character message id (unique per nsqd). */
  getId(): string {
    return this.args[0].id;
  }

  /** Delivery count: 1 on the first delivery. */
  getAttempts(): number {
    return this.args[0].attempts;
  }

  /** When nsqd accepted the message. */
  getTimestamp(): Date {
    return new Date(Number(this.args[0].timestamp / 1_000_000n));
  }

  /** nsqd's timestamp in nanoseconds since the epoch. */
  getTimestampNanos(): bigint {
    return this.args[0].timestamp;
  }

  /** host:port of the nsqd that delivered the message. */
  getNsqdAddress(): string {
    return this.args[0].nsqdAddress;
  }

  /** The envelope's headers; {} for a plain body. */
  getHeaders(): NsqHeaders {
    return this.args[1];
  }

  /** Same as getHeaders(): Nest's name for per-message metadata. */
  getMetadata(): NsqHeaders {
    return this.args[1];
  }

  getHeader(name: string): string | undefined {
    return this.args[1][name];
  }

  /** The publisher's message key (envelope header `message-key`), if it sent one. */
  getMessageKey(): string | undefined {
    return this.args[1][HEADER.messageKey];
  }

  /** FIN now. */
  finish(): void {
    this.args[0].finish();
  }

  /** REQ now, redelivered after `delayMs` (default: the subscription's requeue delay); `backoff` (default false) slows the consumer. */
  requeue(delayMs?: number, options?: { backoff?: boolean }): void {
    this.args[0].requeue(delayMs, { backoff: options?.backoff ?? false });
  }

  /** TOUCH: restart the message's timeout. The transport touches running handlers by itself unless autoTouch is off. */
  touch(): void {
    this.args[0].touch();
  }

  /** Whether the message was finished or requeued already. */
  get isAnswered(): boolean {
    return this.args[0].hasResponded;
  }
}
