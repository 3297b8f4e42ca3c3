import { encodeFin, encodeReq, encodeTouch } from '../protocol/commands.js';
import { readAttempts, readBody, readId, readTimestamp } from '../protocol/message.js';

/** How a message answers nsqd; implemented by the consumer for the connection the message came on. */
export interface MessageResponder {
  finish(message: Message): void;
  requeue(message: Message, delayMs: number | undefined, backoff: boolean): void;
  touch(message: Message): void;
  /** Releases the message without answering nsqd (which redelivers it after its timeout). */
  abandon(message: Message): void;
  /** The msg_timeout (ms) nsqd applies to messages on this connection. */
  readonly msgTimeout: number;
}

/**
 * A delivered message. Fields are read on demand from the frame's bytes (no copy of the body).
 * Answer it once: finish() or requeue(); touch() extends its deadline meanwhile. Answers after the
 * first are ignored, so a handler that calls finish() itself is not FINed twice.
 */
export class Message {
  private responded = false;
  private cachedId: string | undefined;

  constructor(
    /** The message frame's payload: `[timestamp][attempts][id][body]`. */
    readonly raw: Buffer,
    readonly topic: string,
    readonly channel: string,
    private readonly responder: MessageResponder,
    /** The nsqd connection (host:port) that delivered the message. */
    readonly nsqdAddress: string,
  ) {}

  /** nsqd's 16-character message id. */
  get id(): string {
    return (this.cachedId ??= readId(this.raw).toString('latin1'));
  }

  /** The id as the 16 bytes sent back in FIN/REQ/TOUCH. */
  get idBytes(): Buffer {
    return readId(this.raw);
  }

  get body(): Buffer {
    return readBody(this.raw);
  }

  /** Delivery count, incremented by nsqd before each delivery (the first delivery is 1). */
  get attempts(): number {
    return readAttempts(this.raw);
  }

  /** Publish time in nanoseconds since the epoch, set by nsqd. */
  get timestamp(): bigint {
    return readTimestamp(this.raw);
  }

  get hasResponded(): boolean {
    return this.responded;
  }

  /** FIN: the message is done. */
  finish(): void {
    if (this.responded) return;
    this.responded = true;
    this.responder.finish(this);
  }

  /**
   * REQ: deliver the message again after `delayMs` (default: the consumer's requeue delay for its
   * attempts). `backoff` (default true) slows the consumer down as after a handler failure.
   */
  requeue(delayMs?: number, options?: { backoff?: boolean }): void {
    if (this.responded) return;
    this.responded = true;
    this.responder.requeue(this, delayMs, options?.backoff ?? true);
  }

  /** TOUCH: reset the message's timeout (up to nsqd's --max-msg-timeout). */
  touch(): void {
    if (this.responded) return;
    this.responder.touch(this);
  }

  /** ms nsqd waits for an answer (or a TOUCH) before it redelivers the message (IDENTIFY msg_timeout). */
  get msgTimeout(): number {
    return this.responder.msgTimeout;
  }

  /**
   * Gives the message up without answering: nsqd redelivers it once its timeout expires. For a
   * handler that cannot tell whether its work is done; the consumer stops counting it in flight.
   */
  abandon(): void {
    if (this.responded) return;
    this.responded = true;
    this.responder.abandon(this);
  }

  /** Builds FIN for this message. */
  encodeFin(): Buffer {
    return encodeFin(this.idBytes);
  }

  encodeReq(delayMs: number): Buffer {
    return encodeReq(this.idBytes, delayMs);
  }

  encodeTouch(): Buffer {
    return encodeTouch(this.idBytes);
  }
}
