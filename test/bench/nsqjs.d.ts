/**
 * Minimal types for nsqjs 0.13 (CommonJS, no bundled types), covering only what the benchmark
 * uses: `import nsq from 'nsqjs'` then `nsq.Writer` / `nsq.Reader`.
 */
declare module 'nsqjs' {
  import type { EventEmitter } from 'node:events';

  type NsqjsBody = string | Buffer;

  interface NsqjsMessage {
    readonly id: string;
    readonly body: Buffer;
    readonly attempts: number;
    finish(): void;
    requeue(delayMs?: number, backoff?: boolean): void;
    touch(): void;
  }

  interface NsqjsReaderOptions {
    nsqdTCPAddresses?: string[];
    lookupdHTTPAddresses?: string[];
    maxInFlight?: number;
    maxAttempts?: number;
    [option: string]: unknown;
  }

  /** Events: 'ready', 'closed', 'error'. */
  class NsqjsWriter extends EventEmitter {
    constructor(nsqdHost: string, nsqdPort: number, options?: Record<string, unknown>);
    connect(): void;
    publish(topic: string, msgs: NsqjsBody | readonly NsqjsBody[], callback?: (err?: Error | null) => void): void;
    close(): void;
  }

  /** Events: 'message' (msg), 'ready', 'not_ready', 'error', 'discard', 'nsqd_connected', 'nsqd_closed'. */
  class NsqjsReader extends EventEmitter {
    constructor(topic: string, channel: string, options: NsqjsReaderOptions);
    connect(): void;
    close(): void;
  }

  const nsq: {
    Writer: typeof NsqjsWriter;
    Reader: typeof NsqjsReader;
  };
  export type { NsqjsBody, NsqjsMessage, NsqjsReaderOptions, NsqjsWriter, NsqjsReader };
  export default nsq;
}
