/**
 * nsqlookupd's registration database (nsq 1.3.0 `nsqlookupd/registration_db.go`).
 *
 * A registration is `(category, key, subKey)`: `client` ("", "") holds every identified nsqd,
 * `topic` (topic, "") the nsqd producing a topic, `channel` (topic, channel) the nsqd having a
 * channel. Each registration maps producer ids (the nsqd connection's remote address) to a
 * Producer: the shared peer info plus a per-registration tombstone. Registrations may exist with
 * no producer (created over HTTP, or left behind when the last producer went away) — nsqlookupd
 * keeps them so `/topics` and `/channels` still list them.
 *
 * Nothing expires in the background: inactive or tombstoned producers are filtered out when a
 * query is answered (`filterByActive`).
 */

export type RegistrationCategory = 'client' | 'topic' | 'channel';

export interface Registration {
  readonly category: string;
  readonly key: string;
  readonly subKey: string;
}

/** An nsqd as it identified itself over the V1 protocol. One object per connection, shared by all its registrations. */
export interface RegisteredPeer {
  /** The producer id: the connection's remote address (`127.0.0.1:53412`). */
  readonly id: string;
  readonly remoteAddress: string;
  readonly hostname: string;
  readonly broadcastAddress: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly version: string;
  /** Date.now() of the IDENTIFY or the last PING. */
  lastUpdate: number;
}

export interface Producer {
  readonly peer: RegisteredPeer;
  tombstoned: boolean;
  /** Date.now() when tombstoned; 0 = never. */
  tombstonedAt: number;
}

/** An entry of `GET /nodes`, in nsqlookupd's JSON field order; `tombstones[i]` belongs to `topics[i]`. */
export interface NodeInfo {
  remote_address: string;
  hostname: string;
  broadcast_address: string;
  tcp_port: number;
  http_port: number;
  version: string;
  tombstones: boolean[];
  topics: string[];
}

/** A producer in `GET /lookup`, in nsqlookupd's JSON field order (Go's PeerInfo struct). */
export interface PeerInfoJson {
  remote_address: string;
  hostname: string;
  broadcast_address: string;
  tcp_port: number;
  http_port: number;
  version: string;
}

export const CLIENT_REGISTRATION: Registration = Object.freeze({ category: 'client', key: '', subKey: '' });

export function registration(category: RegistrationCategory, key: string, subKey = ''): Registration {
  return { category, key, subKey };
}

interface Entry {
  readonly registration: Registration;
  readonly producers: Map<string, Producer>;
}

// JSON keeps keys with any characters apart: HTTP lookups pass names that were never validated.
function mapKey(category: string, key: string, subKey: string): string {
  return JSON.stringify([category, key, subKey]);
}

function matches(r: Registration, category: string, key: string, subKey: string): boolean {
  return r.category === category && (key === '*' || r.key === key) && (subKey === '*' || r.subKey === subKey);
}

export class RegistrationDB {
  private readonly entries = new Map<string, Entry>();
  /** producer id -> map keys of the registrations it is in (makes disconnect cleanup O(own registrations)). */
  private readonly byProducer = new Map<string, Set<string>>();

  /** Creates the registration (with no producer) unless it exists. */
  addRegistration(r: Registration): void {
    this.entry(r);
  }

  /** Adds the peer to the registration (creating it); false when it was already there (its tombstone is kept). */
  addProducer(r: Registration, peer: RegisteredPeer): boolean {
    const entry = this.entry(r);
    if (entry.producers.has(peer.id)) return false;
    entry.producers.set(peer.id, { peer, tombstoned: false, tombstonedAt: 0 });
    let own = this.byProducer.get(peer.id);
    if (!own) this.byProducer.set(peer.id, (own = new Set()));
    own.add(mapKey(r.category, r.key, r.subKey));
    return true;
  }

  /** Removes the producer; the registration stays even when empty (as in nsqlookupd). */
  removeProducer(r: Registration, id: string): { removed: boolean; left: number } {
    const k = mapKey(r.category, r.key, r.subKey);
    const entry = this.entries.get(k);
    if (!entry) return { removed: false, left: 0 };
    const removed = entry.producers.delete(id);
    if (removed) this.forget(id, k);
    return { removed, left: entry.producers.size };
  }

  /** Deletes the registration and its producers. */
  removeRegistration(r: Registration): void {
    const k = mapKey(r.category, r.key, r.subKey);
    const entry = this.entries.get(k);
    if (!entry) return;
    for (const id of entry.producers.keys()) this.forget(id, k);
    this.entries.delete(k);
  }

  /** Registrations of `category` matching key and subKey, where `*` matches anything. */
  findRegistrations(category: string, key: string, subKey: string): Registration[] {
    if (key !== '*' && subKey !== '*') {
      const entry = this.entries.get(mapKey(category, key, subKey));
      return entry ? [entry.registration] : [];
    }
    const out: Registration[] = [];
    for (const entry of this.entries.values()) {
      if (matches(entry.registration, category, key, subKey)) out.push(entry.registration);
    }
    return out;
  }

  /** Producers of the matching registrations, each peer once. */
  findProducers(category: string, key: string, subKey: string): Producer[] {
    if (key !== '*' && subKey !== '*') {
      const entry = this.entries.get(mapKey(category, key, subKey));
      return entry ? [...entry.producers.values()] : [];
    }
    const seen = new Set<string>();
    const out: Producer[] = [];
    for (const entry of this.entries.values()) {
      if (!matches(entry.registration, category, key, subKey)) continue;
      for (const [id, producer] of entry.producers) {
        if (seen.has(id)) continue;
        seen.add(id);
        out.push(producer);
      }
    }
    return out;
  }

  /** Every registration the producer `id` is in. */
  lookupRegistrations(id: string): Registration[] {
    const own = this.byProducer.get(id);
    if (!own) return [];
    const out: Registration[] = [];
    for (const k of own) {
      const entry = this.entries.get(k);
      if (entry) out.push(entry.registration);
    }
    return out;
  }

  /** Every registration with its producers (for `GET /debug`). */
  *all(): IterableIterator<[Registration, Producer[]]> {
    for (const entry of this.entries.values()) yield [entry.registration, [...entry.producers.values()]];
  }

  private entry(r: Registration): Entry {
    const k = mapKey(r.category, r.key, r.subKey);
    let entry = this.entries.get(k);
    if (!entry) {
      entry = { registration: { category: r.category, key: r.key, subKey: r.subKey }, producers: new Map() };
      this.entries.set(k, entry);
    }
    return entry;
  }

  private forget(id: string, k: string): void {
    const own = this.byProducer.get(id);
    if (!own) return;
    own.delete(k);
    if (own.size === 0) this.byProducer.delete(id);
  }
}

export function isTombstoned(p: Producer, lifetimeMs: number, now = Date.now()): boolean {
  return p.tombstoned && now - p.tombstonedAt < lifetimeMs;
}

export function tombstone(p: Producer, now = Date.now()): void {
  p.tombstoned = true;
  p.tombstonedAt = now;
}

/**
 * Drops producers not heard from (IDENTIFY / PING) for longer than `inactiveTimeoutMs`, and those
 * tombstoned less than `tombstoneLifetimeMs` ago (0 keeps tombstoned ones, as `/nodes` does).
 */
export function filterByActive(producers: readonly Producer[], inactiveTimeoutMs: number, tombstoneLifetimeMs: number, now = Date.now()): Producer[] {
  return producers.filter((p) => now - p.peer.lastUpdate <= inactiveTimeoutMs && !isTombstoned(p, tombstoneLifetimeMs, now));
}

export function peerInfoJson(peer: RegisteredPeer): PeerInfoJson {
  return {
    remote_address: peer.remoteAddress,
    hostname: peer.hostname,
    broadcast_address: peer.broadcastAddress,
    tcp_port: peer.tcpPort,
    http_port: peer.httpPort,
    version: peer.version,
  };
}

/**
 * `GET /nodes`: every active identified nsqd (tombstoned or not) with its topics and, for each
 * topic, whether this nsqd's producer entry of that topic is tombstoned.
 */
export function listNodes(db: RegistrationDB, inactiveTimeoutMs: number, tombstoneLifetimeMs: number, now = Date.now()): NodeInfo[] {
  const producers = filterByActive(db.findProducers('client', '', ''), inactiveTimeoutMs, 0, now);
  return producers.map(({ peer }) => {
    const topics = db
      .lookupRegistrations(peer.id)
      .filter((r) => r.category === 'topic')
      .map((r) => r.key);
    const tombstones = topics.map((t) => {
      const own = db.findProducers('topic', t, '').find((p) => p.peer === peer);
      return own ? isTombstoned(own, tombstoneLifetimeMs, now) : false;
    });
    return { ...peerInfoJson(peer), tombstones, topics };
  });
}
