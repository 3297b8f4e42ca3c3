/** The logging interface of libs/nsq; the Nest layer passes an adapter over Nest's Logger. */
export interface NsqLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const noop = (): void => undefined;

/** Warnings and errors to the console; debug and info are dropped. */
export const defaultLogger: NsqLogger = {
  debug: noop,
  info: noop,
  warn: (m) => console.warn(`[nsq] ${m}`),
  error: (m) => console.error(`[nsq] ${m}`),
};

export const silentLogger: NsqLogger = { debug: noop, info: noop, warn: noop, error: noop };
