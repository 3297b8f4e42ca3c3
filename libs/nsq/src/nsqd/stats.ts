/**
 * Snapshot of an nsqd's topics, channels and clients in the exact shape of nsqd 1.3.0's
 * `GET /stats?format=json` (`nsqd/stats.go`, `client_v2.go ClientV2Stats`), which nsqadmin and our
 * own NsqdHttpClient read. Kept apart from the HTTP server so the broker's admin page can take the
 * same snapshot without a request.
 *
 * Objects are built with their keys in Go's struct order, so the JSON text reads like nsqd's.
 */
import type {
  E2eProcessingLatency,
  NsqdChannelStats,
  NsqdClientStats,
  NsqdMemoryStats,
  NsqdStats,
  NsqdTopicStats,
  PubCount,
} from '../client/http.js';
import type { Channel } from './channel.js';
import { ClientV2 } from './client-v2.js';
import type { ChannelConsumer } from './context.js';
import type { NSQD } from './nsqd.js';
import { SERVER_VERSION } from './options.js';
import type { Topic } from './topic.js';

export interface NsqdStatsFilter {
  /** Only this topic; '' or undefined = all. An unknown topic gives `topics: null` (as nsqd does). */
  topic?: string;
  /** Only this channel, in every selected topic; topics without it are left out. */
  channel?: string;
  /** Consumers per channel and the producers list (default true); false ⇒ both null. */
  includeClients?: boolean;
  /** The `memory` block (default true). */
  includeMem?: boolean;
}

/**
 * The /stats document. `topics` is null only when the `topic` filter names an unknown topic: nsqd
 * returns before building its (nil) topic list there, and skips the producers too.
 */
export interface NsqdStatsSnapshot extends Omit<NsqdStats, 'topics'> {
  topics: NsqdTopicStats[] | null;
}

/** nsqd never sends a null latency object: nsqadmin dereferences it (internal/clusterinfo). */
function noLatency(): E2eProcessingLatency {
  return { count: 0, percentiles: null };
}

export function nsqdStats(nsqd: NSQD, filter: NsqdStatsFilter = {}): NsqdStatsSnapshot {
  const topicName = filter.topic ?? '';
  const channelName = filter.channel ?? '';
  const includeClients = filter.includeClients ?? true;
  const includeMem = filter.includeMem ?? true;

  let topics: NsqdTopicStats[] | null = null;
  let producers: NsqdClientStats[] | null = null;
  let selected: Topic[] | undefined;
  if (topicName === '') {
    selected = [...nsqd.topics.values()];
  } else {
    const topic = nsqd.getExistingTopic(topicName);
    if (topic !== undefined) selected = [topic];
  }
  if (selected !== undefined) {
    topics = [];
    for (const topic of selected.sort((a, b) => compare(a.name, b.name))) {
      let channels: Channel[];
      if (channelName === '') {
        channels = [...topic.channels.values()];
      } else {
        const channel = topic.channels.get(channelName);
        if (channel === undefined) continue;
        channels = [channel];
      }
      const channelStats = channels.sort((a, b) => compare(a.name, b.name)).map((c) => channelSnapshot(nsqd, c, topicName, includeClients));
      topics.push(topicSnapshot(topic, channelStats));
    }
    if (includeClients) {
      const list: NsqdClientStats[] = [];
      for (const client of nsqd.clients.values()) {
        if (client.pubCounts.size > 0) list.push(clientStats(client, topicName));
      }
      // Go marshals its nil slice as null when no client has published
      producers = list.length > 0 ? list : null;
    }
  }

  return {
    version: SERVER_VERSION,
    health: nsqd.health,
    start_time: nsqd.startTime,
    topics,
    ...(includeMem ? { memory: memoryStats() } : {}),
    producers,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function topicSnapshot(topic: Topic, channels: NsqdChannelStats[]): NsqdTopicStats {
  return {
    topic_name: topic.name,
    channels,
    depth: topic.depth,
    backend_depth: topic.backendDepth,
    message_count: topic.messageCount,
    message_bytes: topic.messageBytes,
    paused: topic.paused,
    e2e_processing_latency: noLatency(),
  };
}

function channelSnapshot(nsqd: NSQD, channel: Channel, topicFilter: string, includeClients: boolean): NsqdChannelStats {
  const consumers = channel.clients;
  return {
    channel_name: channel.name,
    depth: channel.depth,
    backend_depth: channel.backendDepth,
    in_flight_count: channel.inFlightCount,
    deferred_count: channel.deferredCount,
    message_count: channel.messageCount,
    requeue_count: channel.requeueCount,
    timeout_count: channel.timeoutCount,
    client_count: consumers.length,
    clients: includeClients ? consumers.map((c) => consumerStats(nsqd, c, topicFilter)) : null,
    paused: channel.paused,
    e2e_processing_latency: noLatency(),
  };
}

function consumerStats(nsqd: NSQD, consumer: ChannelConsumer, topicFilter: string): NsqdClientStats {
  const client = consumer instanceof ClientV2 ? consumer : nsqd.clients.get(consumer.id);
  if (client !== undefined) return clientStats(client, topicFilter);
  // a consumer that is not a TCP connection: report what the channel knows of it
  return {
    client_id: consumer.name,
    hostname: consumer.name,
    version: 'V2',
    remote_address: consumer.name,
    state: 3,
    ready_count: 0,
    in_flight_count: 0,
    message_count: 0,
    finish_count: 0,
    requeue_count: 0,
    connect_ts: 0,
    sample_rate: consumer.sampleRate,
    deflate: false,
    snappy: false,
    user_agent: '',
    tls: false,
    tls_cipher_suite: '',
    tls_version: '',
    tls_negotiated_protocol: '',
    tls_negotiated_protocol_is_mutual: false,
  };
}

/**
 * ClientV2Stats. `pub_counts`: with a topic filter only that topic's count (as nsqd); without one,
 * every topic sorted by name — nsqd 1.3.0 stops after the first map entry there (a bug that drops
 * counts at random), which we do not copy.
 */
export function clientStats(client: ClientV2, topicFilter = ''): NsqdClientStats {
  const pubCounts: PubCount[] = [];
  for (const [topic, count] of client.pubCounts) {
    if (topicFilter !== '' && topic !== topicFilter) continue;
    pubCounts.push({ topic, count });
  }
  pubCounts.sort((a, b) => compare(a.topic, b.topic));
  const auth = client.authState;
  const identity = auth?.identity ?? '';
  const identityUrl = auth?.identityUrl ?? '';
  return {
    client_id: client.clientId,
    hostname: client.hostname,
    version: 'V2',
    remote_address: client.remoteAddress,
    state: client.state,
    ready_count: client.readyCount,
    in_flight_count: client.inFlightCount,
    message_count: client.messageCount,
    finish_count: client.finishCount,
    requeue_count: client.requeueCount,
    connect_ts: client.connectTs,
    sample_rate: client.sampleRate,
    deflate: client.deflate,
    snappy: false,
    user_agent: client.userAgent,
    // omitempty in Go
    ...(auth !== undefined && auth.authorizations.length > 0 ? { authed: true } : {}),
    ...(identity !== '' ? { auth_identity: identity } : {}),
    ...(identityUrl !== '' ? { auth_identity_url: identityUrl } : {}),
    ...(pubCounts.length > 0 ? { pub_counts: pubCounts } : {}),
    tls: client.tls,
    tls_cipher_suite: client.tls ? client.tlsCipher : '',
    tls_version: client.tls ? client.tlsVersion : '',
    tls_negotiated_protocol: '',
    tls_negotiated_protocol_is_mutual: false,
  };
}

/**
 * Go's runtime.MemStats has no exact counterpart in V8: the heap figures come from
 * process.memoryUsage(); object counts and GC pauses are not tracked (0).
 */
function memoryStats(): NsqdMemoryStats {
  const mem = process.memoryUsage();
  return {
    heap_objects: 0,
    heap_idle_bytes: Math.max(0, mem.heapTotal - mem.heapUsed),
    heap_in_use_bytes: mem.heapUsed,
    heap_released_bytes: 0,
    gc_pause_usec_100: 0,
    gc_pause_usec_99: 0,
    gc_pause_usec_95: 0,
    next_gc_bytes: 0,
    gc_total_runs: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// text format (nsqd's printStats)

/** `GET /stats` without format=json: the human-readable report of nsqd's printStats. */
export function formatStatsText(stats: NsqdStatsSnapshot, now = Date.now()): string {
  const startMs = stats.start_time * 1000;
  const lines: string[] = [];
  lines.push(`nsqd v${stats.version} (built w/node ${process.version})`);
  lines.push(`start_time ${rfc3339(startMs)}`);
  lines.push(`uptime ${goDuration(Math.max(0, now - startMs))}`);
  lines.push('', `Health: ${stats.health}`);
  if (stats.memory) {
    lines.push('', 'Memory:');
    for (const [key, value] of Object.entries(stats.memory)) lines.push(`   ${key.padEnd(25)}\t${value}`);
  }
  const topics = stats.topics ?? [];
  let out = `${lines.join('\n')}\n`;
  out += topics.length === 0 ? '\nTopics: None\n' : '\nTopics:';
  for (const t of topics) {
    out +=
      `\n${t.paused ? '*P ' : '   '}[${t.topic_name.padEnd(15)}] depth: ${pad(t.depth, 5)} be-depth: ${pad(t.backend_depth, 5)} ` +
      `msgs: ${pad(t.message_count, 8)} e2e%: ${latencyText(t.e2e_processing_latency)}\n`;
    for (const c of t.channels) {
      out +=
        `${c.paused ? '   *P ' : '      '}[${c.channel_name.padEnd(25)}] depth: ${pad(c.depth, 5)} be-depth: ${pad(c.backend_depth, 5)} ` +
        `inflt: ${pad(c.in_flight_count, 4)} def: ${pad(c.deferred_count, 4)} re-q: ${pad(c.requeue_count, 5)} ` +
        `timeout: ${pad(c.timeout_count, 5)} msgs: ${pad(c.message_count, 8)} e2e%: ${latencyText(c.e2e_processing_latency)}\n`;
      for (const client of c.clients ?? []) out += `        ${clientText(client, now)}\n`;
    }
  }
  const producers = stats.producers ?? [];
  if (producers.length === 0) {
    out += '\nProducers: None\n';
  } else {
    out += '\nProducers:\n';
    for (const p of producers) out += `   ${clientText(p, now)}\n`;
  }
  return out;
}

/** ClientV2Stats.String() */
function clientText(s: NsqdClientStats, now: number): string {
  const connected = goDuration(Math.max(0, Math.floor(now / 1000) - s.connect_ts) * 1000);
  const port = s.remote_address.slice(s.remote_address.lastIndexOf(':') + 1);
  const id = `${s.hostname}:${port} ${s.user_agent}`;
  const pubCounts = s.pub_counts ?? [];
  if (pubCounts.length > 0) {
    const total = pubCounts.reduce((sum, p) => sum + p.count, 0);
    const topics = pubCounts.map((p) => `${p.topic}=${p.count}`).join(',');
    return `[${s.version} ${id.padEnd(21)}] msgs: ${pad(total, 8)} topics: ${topics} connected: ${connected}`;
  }
  return (
    `[${s.version} ${id.padEnd(21)}] state: ${s.state} inflt: ${pad(s.in_flight_count, 4)} rdy: ${pad(s.ready_count, 4)} ` +
    `fin: ${pad(s.finish_count, 8)} re-q: ${pad(s.requeue_count, 8)} msgs: ${pad(s.message_count, 8)} connected: ${connected}`
  );
}

function pad(n: number, width: number): string {
  return String(n).padEnd(width);
}

function latencyText(latency: E2eProcessingLatency): string {
  return (latency.percentiles ?? []).map((p) => goDuration(p.value / 1e6)).join(', ');
}

/** Go's time.Time.Format(time.RFC3339) in the local zone. */
function rfc3339(ms: number): string {
  const d = new Date(ms);
  const offsetMin = -d.getTimezoneOffset();
  const two = (n: number): string => String(n).padStart(2, '0');
  const zone = offsetMin === 0 ? 'Z' : `${offsetMin > 0 ? '+' : '-'}${two(Math.floor(Math.abs(offsetMin) / 60))}:${two(Math.abs(offsetMin) % 60)}`;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}${zone}`;
}

/** Go's time.Duration.String() for a duration in milliseconds (e.g. "1h2m3.5s", "250ms"). */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${trimFraction(rest)}ms`;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = `${trimFraction(rest / 1000)}s`;
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}`;
  return `${sign}${seconds}`;
}

function trimFraction(n: number): string {
  return n.toFixed(6).replace(/\.?0+$/, '');
}
