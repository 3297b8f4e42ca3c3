import type { NsqHeaders } from './wire/envelope.js';

export interface NsqRecordOptions {
  /** DPUB: deliver after this many ms (0 .. nsqd --max-req-timeout, 1 h by default). */
  delayMs?: number;
  /** Headers for the envelope (the message is sent in an envelope when there are any). */
  headers?: NsqHeaders;
  /** `data` is an array whose items go out as separate messages in one MPUB (atomic: all or none). */
  batch?: boolean;
}

/**
 * Data plus per-message publish options, for `emit()`/`send()`, which take only (pattern, data):
 * `client.emit('order.created', new NsqRecord(order, { delayMs: 5000 }))`.
 */
export class NsqRecord<T = unknown> {
  constructor(
    readonly data: T,
    readonly options: NsqRecordOptions = {},
  ) {}
}

/** Builds an NsqRecord step by step, like Nest's RmqRecordBuilder. */
export class NsqRecordBuilder<T = unknown> {
  private options: NsqRecordOptions = {};

  constructor(private data?: T) {}

  setData(data: T): this {
    this.data = data;
    return this;
  }

  setDelay(delayMs: number): this {
    this.options = { ...this.options, delayMs };
    return this;
  }

  setHeaders(headers: NsqHeaders): this {
    this.options = { ...this.options, headers: { ...this.options.headers, ...headers } };
    return this;
  }

  setHeader(name: string, value: string): this {
    return this.setHeaders({ [name]: value });
  }

  /** Publish the items of the (array) data as one MPUB. */
  asBatch(): this {
    this.options = { ...this.options, batch: true };
    return this;
  }

  build(): NsqRecord<T> {
    return new NsqRecord(this.data as T, this.options);
  }
}
