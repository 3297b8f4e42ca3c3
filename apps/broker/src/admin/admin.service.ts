import { Inject, Injectable, NotFoundException, Optional, ServiceUnavailableException } from '@nestjs/common';
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import {
  HistoryQueryError,
  type HistoryCounts,
  type HistoryMessageDetail,
  type HistoryRecorderStats,
  type HistorySearchParams,
  type HistorySearchResult,
} from '../../../../libs/message-history/src/index.js';
import { nsqdStats, type NsqdStatsSnapshot } from '../../../../libs/nsq/src/index.js';
import { BROKER_CONFIG } from '../broker.tokens.js';
import { NsqdHost, NsqlookupdHost } from '../broker.hosts.js';
import type { BrokerConfig } from '../flags.js';
import { HistoryHost } from '../history.host.js';

export interface AdminHealth {
  status: 'ok';
  role: BrokerConfig['role'];
  nsqd: { tcpAddress: string; httpAddress: string | undefined; identity: string } | null;
  lookupd: { tcpAddress: string; httpAddress: string } | null;
  history: { enabled: boolean; backend: 'mysql' | 'mariadb' | 'sqljs' | null; databaseConnected: boolean; stats: HistoryRecorderStats | null };
}

export interface AdminChannel {
  channel: string;
  depth: number;
  backendDepth: number;
  inFlight: number;
  deferred: number;
  messageCount: number;
  requeueCount: number;
  timeoutCount: number;
  clients: number;
  /** Messages per second through the channel over the last sample window; null until two samples. */
  rate: number | null;
  paused: boolean;
}

export interface AdminTopic {
  topic: string;
  depth: number;
  backendDepth: number;
  inFlight: number;
  deferred: number;
  messageCount: number;
  /** Messages per second published over the last sample window; null until two samples. */
  rate: number | null;
  paused: boolean;
  channels: AdminChannel[];
}

/** ms between the counter samples that rates are computed from. */
export const RATE_SAMPLE_INTERVAL_MS = 1000;
/** How long a history request waits for the database's first connection before answering 503. */
const READY_WAIT_MS = 5000;

interface Sample {
  at: number;
  counts: Map<string, number>;
}

/** What the admin API answers: the nsqd's topics and channels, the history queries. */
@Injectable()
export class AdminService implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private previous: Sample | undefined;
  private latest: Sample | undefined;

  constructor(
    @Inject(BROKER_CONFIG) private readonly config: BrokerConfig,
    @Optional() @Inject(NsqdHost) private readonly nsqdHost: NsqdHost | null,
    @Optional() @Inject(NsqlookupdHost) private readonly lookupdHost: NsqlookupdHost | null,
    @Optional() @Inject(HistoryHost) private readonly historyHost: HistoryHost | null,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.sample(), RATE_SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  health(): AdminHealth {
    const nsqd = this.nsqdHost?.started ? this.nsqdHost.nsqd : undefined;
    const lookupd = this.lookupdHost?.lookupd;
    const history = this.historyHost;
    return {
      status: 'ok',
      role: this.config.role,
      nsqd: nsqd ? { tcpAddress: nsqd.tcpAddress, httpAddress: nsqd.httpAddress, identity: nsqd.identity } : null,
      lookupd: lookupd ? { tcpAddress: lookupd.tcpAddress, httpAddress: lookupd.httpAddress } : null,
      history: {
        enabled: history !== null,
        backend: history?.backend ?? null,
        databaseConnected: history?.databaseReady ?? false,
        stats: history?.stats() ?? null,
      },
    };
  }

  topics(): { at: string; topics: AdminTopic[] } {
    const snapshot = this.snapshot();
    const rates = this.rates();
    const topics = (snapshot.topics ?? []).map((t): AdminTopic => {
      const channels = t.channels.map(
        (c): AdminChannel => ({
          channel: c.channel_name,
          depth: c.depth,
          backendDepth: c.backend_depth,
          inFlight: c.in_flight_count,
          deferred: c.deferred_count,
          messageCount: c.message_count,
          requeueCount: c.requeue_count,
          timeoutCount: c.timeout_count,
          clients: c.client_count,
          rate: rates?.get(`${t.topic_name}/${c.channel_name}`) ?? null,
          paused: c.paused,
        }),
      );
      return {
        topic: t.topic_name,
        depth: t.depth,
        backendDepth: t.backend_depth,
        inFlight: channels.reduce((n, c) => n + c.inFlight, 0),
        deferred: channels.reduce((n, c) => n + c.deferred, 0),
        messageCount: t.message_count,
        rate: rates?.get(t.topic_name) ?? null,
        paused: t.paused,
        channels,
      };
    });
    return { at: new Date().toISOString(), topics };
  }

  async message(id: string, nsqd: string | undefined): Promise<{ items: HistoryMessageDetail[] }> {
    const items = await this.history((h) => h.query.getMessage(id, nsqd));
    if (items.length === 0) throw new NotFoundException(`no history for message ${id}${nsqd ? ` on ${nsqd}` : ''}`);
    return { items };
  }

  search(params: HistorySearchParams): Promise<HistorySearchResult> {
    return this.history((h) => h.query.search(params));
  }

  counts(params: { from?: string; to?: string }): Promise<HistoryCounts> {
    return this.history((h) => h.query.counts(params));
  }

  private async history<T>(fn: (host: HistoryHost) => Promise<T>): Promise<T> {
    const host = this.historyHost;
    if (!host) throw new ServiceUnavailableException('message history is off (start the broker with --history-db)');
    // a request right after start waits for the first connection (sql.js: migrations) rather than a 503
    if (!(await host.waitReady(READY_WAIT_MS))) {
      const why = host.stats().lastError;
      throw new ServiceUnavailableException(`the history database is not reachable yet${why ? `: ${why}` : ''}`);
    }
    try {
      return await fn(host);
    } catch (err) {
      if (err instanceof HistoryQueryError) throw err;
      // a database that went away mid-query: say so rather than a bare 500
      if (!host.dataSource.isInitialized) throw new ServiceUnavailableException('the history database went away');
      throw err;
    }
  }

  private snapshot(): NsqdStatsSnapshot {
    if (!this.nsqdHost?.started) throw new ServiceUnavailableException('this broker runs no nsqd');
    return nsqdStats(this.nsqdHost.nsqd, { includeClients: false, includeMem: false });
  }

  private sample(): void {
    if (!this.nsqdHost?.started) return;
    const counts = new Map<string, number>();
    for (const t of this.snapshot().topics ?? []) {
      counts.set(t.topic_name, t.message_count);
      for (const c of t.channels) counts.set(`${t.topic_name}/${c.channel_name}`, c.message_count);
    }
    this.previous = this.latest;
    this.latest = { at: Date.now(), counts };
  }

  /** Per topic and topic/channel: messages per second between the last two samples. */
  private rates(): Map<string, number> | undefined {
    const { previous, latest } = this;
    if (!previous || !latest) return undefined;
    const seconds = (latest.at - previous.at) / 1000;
    if (seconds <= 0) return undefined;
    const out = new Map<string, number>();
    for (const [key, count] of latest.counts) {
      const before = previous.counts.get(key) ?? 0;
      // a counter that went down is a topic deleted and created again: count from zero
      out.set(key, Math.round(((count >= before ? count - before : count) / seconds) * 10) / 10);
    }
    return out;
  }
}
