/**
 * Typed errors. Server errors (E_* frames) map to one class per family, each carrying nsqd's code
 * and whether nsqd closes the connection after sending it (the fatal / non-fatal split of
 * nsqd/protocol_v2.go: only E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED are non-fatal).
 * Client-side problems (bad input, lost connections, timeouts, malformed frames) have their own
 * classes with ERR_NSQ_* codes, so callers can branch on `instanceof` or on `code`.
 */

export class NsqError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An error frame sent by nsqd: `<CODE> <description>`. */
export class NsqServerError extends NsqError {
  /** nsqd closes the connection after a fatal error. */
  readonly fatal: boolean;
  /** The description nsqd sent after the code. */
  readonly description: string;

  constructor(code: string, description: string, fatal: boolean) {
    super(code, description ? `${code} ${description}` : code);
    this.fatal = fatal;
    this.description = description;
  }
}

/** E_INVALID, E_BAD_PROTOCOL: a command that is malformed or not allowed in the connection's state. */
export class NsqInvalidError extends NsqServerError {}
/** E_BAD_BODY, E_BAD_TOPIC, E_BAD_CHANNEL, E_BAD_MESSAGE: the command's arguments or body were rejected. */
export class NsqBadRequestError extends NsqServerError {}
/** E_PUB_FAILED, E_MPUB_FAILED, E_DPUB_FAILED: nsqd could not store the message (topic exiting, disk error). */
export class NsqPublishError extends NsqServerError {}
/** E_SUB_FAILED: the channel is exiting or has reached --max-channel-consumers. */
export class NsqSubscribeError extends NsqServerError {}
/** E_IDENTIFY_FAILED: feature negotiation or a TLS / compression upgrade failed. */
export class NsqIdentifyError extends NsqServerError {}
/** E_AUTH_FIRST, E_AUTH_DISABLED, E_AUTH_FAILED, E_UNAUTHORIZED, E_AUTH_ERROR. */
export class NsqAuthError extends NsqServerError {}
/** E_FIN_FAILED, E_REQ_FAILED, E_TOUCH_FAILED (non-fatal): the message is no longer in flight for this client. */
export class NsqMessageStateError extends NsqServerError {}

type ServerErrorClass = new (code: string, description: string, fatal: boolean) => NsqServerError;

/** Every error code nsqd 1.3.0 sends, with its family and whether it is fatal. */
export const SERVER_ERROR_CODES: Readonly<Record<string, { fatal: boolean; type: ServerErrorClass }>> = {
  E_INVALID: { fatal: true, type: NsqInvalidError },
  E_BAD_PROTOCOL: { fatal: true, type: NsqInvalidError },
  E_BAD_BODY: { fatal: true, type: NsqBadRequestError },
  E_BAD_TOPIC: { fatal: true, type: NsqBadRequestError },
  E_BAD_CHANNEL: { fatal: true, type: NsqBadRequestError },
  E_BAD_MESSAGE: { fatal: true, type: NsqBadRequestError },
  E_PUB_FAILED: { fatal: true, type: NsqPublishError },
  E_MPUB_FAILED: { fatal: true, type: NsqPublishError },
  E_DPUB_FAILED: { fatal: true, type: NsqPublishError },
  E_SUB_FAILED: { fatal: true, type: NsqSubscribeError },
  E_IDENTIFY_FAILED: { fatal: true, type: NsqIdentifyError },
  E_AUTH_FIRST: { fatal: true, type: NsqAuthError },
  E_AUTH_DISABLED: { fatal: true, type: NsqAuthError },
  E_AUTH_FAILED: { fatal: true, type: NsqAuthError },
  E_UNAUTHORIZED: { fatal: true, type: NsqAuthError },
  E_AUTH_ERROR: { fatal: true, type: NsqAuthError },
  E_FIN_FAILED: { fatal: false, type: NsqMessageStateError },
  E_REQ_FAILED: { fatal: false, type: NsqMessageStateError },
  E_TOUCH_FAILED: { fatal: false, type: NsqMessageStateError },
};

/** Whether nsqd closes the connection after sending `code`. Unknown codes are treated as fatal. */
export function isFatalErrorCode(code: string): boolean {
  return SERVER_ERROR_CODES[code]?.fatal ?? true;
}

/** Builds the typed error for the payload of an error frame (`"E_CODE description"`). */
export function serverErrorFromFrame(data: Buffer | string): NsqServerError {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  const space = text.indexOf(' ');
  const code = space === -1 ? text : text.slice(0, space);
  const description = space === -1 ? '' : text.slice(space + 1);
  const known = SERVER_ERROR_CODES[code];
  const Type = known?.type ?? NsqServerError;
  return new Type(code, description, known?.fatal ?? true);
}

/** Bad input caught before anything reaches the wire: names, bodies, options. */
export class NsqValidationError extends NsqError {
  /** The option, argument or field that was wrong. */
  readonly field: string;

  constructor(field: string, message: string) {
    super('ERR_NSQ_VALIDATION', message);
    this.field = field;
  }
}

/** The connection could not be made, was lost, or was closed while the operation was pending. */
export class NsqConnectionError extends NsqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NSQ_CONNECTION', message, options);
  }
}

/** The producer or consumer was closed; the operation was not attempted. */
export class NsqClosedError extends NsqError {
  constructor(message: string) {
    super('ERR_NSQ_CLOSED', message);
  }
}

/** An operation did not complete in time (dial, IDENTIFY, missed heartbeats, close). */
export class NsqTimeoutError extends NsqError {
  constructor(message: string) {
    super('ERR_NSQ_TIMEOUT', message);
  }
}

/** The peer sent bytes that are not a valid NSQ frame or message. */
export class NsqFrameError extends NsqError {
  constructor(message: string) {
    super('ERR_NSQ_FRAME', message);
  }
}

/** A producer's queue of unsent publishes is full: await earlier publishes before adding more. */
export class NsqBackpressureError extends NsqError {
  constructor(message: string) {
    super('ERR_NSQ_BACKPRESSURE', message);
  }
}
