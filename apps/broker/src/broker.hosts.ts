import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { NSQD, NSQLookupd } from '../../../libs/nsq/src/index.js';
import type { BrokerConfig } from './flags.js';
import { NestNsqLogger } from '../../../libs/nest-nsq/src/nest-logger.js';
import { BROKER_CONFIG } from './broker.tokens.js';
import { HistoryHost } from './history.host.js';

export { BROKER_CONFIG };

/** Log contexts; the test harness and operators tell the two servers of role all apart by them. */
export const NSQD_LOG_CONTEXT = 'nsqd';
export const NSQLOOKUPD_LOG_CONTEXT = 'nsqlookupd';

/** A listener bound to a wildcard is reached through loopback from inside this process. */
export function dialableAddress(address: string): string {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  const port = address.slice(i + 1);
  return host === '0.0.0.0' || host === '::' || host === '[::]' || host === '' ? `127.0.0.1:${port}` : address;
}

/** A server that emits 'error' would crash the process without a listener; log it instead. */
function logErrors(server: object, logger: NestNsqLogger): void {
  if (server instanceof EventEmitter) {
    server.on('error', (err: unknown) => logger.error(err instanceof Error ? err.message : String(err)));
  }
}

/** Owns the in-process NSQLookupd (roles all and lookupd). */
@Injectable()
export class NsqlookupdHost {
  readonly lookupd: NSQLookupd;

  constructor(@Inject(BROKER_CONFIG) config: BrokerConfig) {
    const logger = new NestNsqLogger(NSQLOOKUPD_LOG_CONTEXT);
    this.lookupd = new NSQLookupd({ ...config.lookupd, logger });
    logErrors(this.lookupd, logger);
  }

  start(): Promise<void> {
    return this.lookupd.start();
  }

  close(): Promise<void> {
    return this.lookupd.close();
  }
}

/**
 * Owns the in-process NSQD (roles all and nsqd). The NSQD is built at start, not in the
 * constructor: in role all it must register with the lookupd's actual TCP address, which exists
 * only once that lookupd listens (port 0 = OS-picked).
 */
@Injectable()
export class NsqdHost {
  private server: NSQD | undefined;

  constructor(@Inject(BROKER_CONFIG) private readonly config: BrokerConfig) {}

  get started(): boolean {
    return this.server !== undefined;
  }

  /** The running NSQD; throws before start() has succeeded. */
  get nsqd(): NSQD {
    if (!this.server) throw new Error('nsqd is not started yet');
    return this.server;
  }

  async start(extraLookupdTcpAddresses: readonly string[] = []): Promise<void> {
    const logger = new NestNsqLogger(NSQD_LOG_CONTEXT);
    const lookupdTcpAddresses = [...new Set([...(this.config.nsqd.lookupdTcpAddresses ?? []), ...extraLookupdTcpAddresses])];
    const server = new NSQD({ ...this.config.nsqd, lookupdTcpAddresses, logger });
    logErrors(server, logger);
    // a failed start has already released what it took; only a started nsqd is ours to close
    await server.start();
    this.server = server;
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}

/**
 * Start and stop order across the servers. Nest runs the lifecycle hooks of one module's
 * providers concurrently, so the order lives here: lookupd starts first (nsqd registers with it),
 * then nsqd, then the history subscribes to it; nsqd closes first (it unregisters and drains while
 * its lookupd can still answer, and the history still records the drain), then the history, then
 * lookupd.
 */
@Injectable()
export class BrokerLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('broker');

  constructor(
    @Inject(BROKER_CONFIG) private readonly config: BrokerConfig,
    @Optional() @Inject(NsqlookupdHost) private readonly lookupdHost: NsqlookupdHost | null,
    @Optional() @Inject(NsqdHost) private readonly nsqdHost: NsqdHost | null,
    @Optional() @Inject(HistoryHost) private readonly historyHost: HistoryHost | null,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    try {
      if (this.lookupdHost) await this.lookupdHost.start();
      if (this.nsqdHost) {
        await this.nsqdHost.start(this.lookupdHost ? [dialableAddress(this.lookupdHost.lookupd.tcpAddress)] : []);
        if (this.historyHost) await this.historyHost.start(this.nsqdHost.nsqd);
      }
    } catch (err) {
      // Nest has no app object to close when bootstrap fails; release what did start
      await this.closeAll();
      throw err;
    }
    const parts: string[] = [];
    if (this.nsqdHost) {
      const { tcpAddress, httpAddress, httpsAddress } = this.nsqdHost.nsqd;
      parts.push(`nsqd tcp ${tcpAddress}${httpAddress ? ` http ${httpAddress}` : ''}${httpsAddress ? ` https ${httpsAddress}` : ''}`);
    }
    if (this.lookupdHost) parts.push(`nsqlookupd tcp ${this.lookupdHost.lookupd.tcpAddress} http ${this.lookupdHost.lookupd.httpAddress}`);
    if (this.nsqdHost) parts.push(this.historyHost ? `history ${this.historyHost.describe()}` : 'history off');
    this.logger.log(`ready (role ${this.config.role}): ${parts.join('; ')}`);
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.logger.log(`shutting down${signal ? ` on ${signal}` : ''}: draining`);
    await this.closeAll();
    this.logger.log('shutdown complete');
  }

  private async closeAll(): Promise<void> {
    const { nsqdHost, lookupdHost, historyHost } = this;
    if (nsqdHost?.started) await this.closeOne('nsqd', () => nsqdHost.close());
    if (historyHost) await this.closeOne('history', () => historyHost.close());
    if (lookupdHost) await this.closeOne('nsqlookupd', () => lookupdHost.close());
  }

  private async closeOne(name: string, close: () => Promise<void>): Promise<void> {
    try {
      await close();
      this.logger.log(`${name} closed`);
    } catch (err) {
      this.logger.error(`${name} did not close cleanly: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
