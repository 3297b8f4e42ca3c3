import { RpcException } from '@nestjs/microservices';

/** A body that the handler's decoder cannot read (bad JSON, bad UTF-8, a broken envelope). */
export class NsqDecodeError extends Error {
  readonly code = 'ERR_NSQ_DECODE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NsqDecodeError';
  }
}

/** A payload that cannot be put on the wire (e.g. a value JSON cannot represent, headers that are not strings). */
export class NsqEncodeError extends Error {
  readonly code = 'ERR_NSQ_ENCODE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NsqEncodeError';
  }
}

/** Options that cannot work (missing channel, invalid topic or channel names, a dead-letter topic name too long). */
export class NsqTransportConfigError extends Error {
  readonly code = 'ERR_NSQ_TRANSPORT_CONFIG';

  constructor(message: string) {
    super(message);
    this.name = 'NsqTransportConfigError';
  }
}

/** `send()` got no reply within requestTimeout. Its error object is `{ status: 'error', code, message }`. */
export class NsqRequestTimeoutError extends RpcException {
  constructor(pattern: string, timeoutMs: number) {
    super({
      status: 'error',
      code: 'ERR_NSQ_REQUEST_TIMEOUT',
      message: `no reply to "${pattern}" within ${timeoutMs} ms (is a @MessagePattern('${pattern}') handler running?)`,
    });
    this.name = 'NsqRequestTimeoutError';
  }
}
