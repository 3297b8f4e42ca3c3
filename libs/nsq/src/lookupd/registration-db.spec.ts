import { describe, expect, it } from '@jest/globals';
import {
  CLIENT_REGISTRATION,
  type RegisteredPeer,
  RegistrationDB,
  filterByActive,
  isTombstoned,
  listNodes,
  registration,
  tombstone,
} from './registration-db.js';

function peer(id: string, overrides: Partial<RegisteredPeer> = {}): RegisteredPeer {
  return {
    id,
    remoteAddress: id,
    hostname: `host-${id}`,
    broadcastAddress: '127.0.0.1',
    tcpPort: 4150,
    httpPort: 4151,
    version: '1.3.0',
    lastUpdate: Date.now(),
    ...overrides,
  };
}

const keys = (rs: { key: string }[]): string[] => rs.map((r) => r.key).sort();
const subKeys = (rs: { subKey: string }[]): string[] => rs.map((r) => r.subKey).sort();

describe('RegistrationDB', () => {
  it('adds a producer once per registration and reports whether it was new', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1');
    expect(db.addProducer(registration('topic', 't'), a)).toBe(true);
    expect(db.addProducer(registration('topic', 't'), a)).toBe(false);
    expect(db.findProducers('topic', 't', '')).toHaveLength(1);
  });

  it('keeps a registration with no producers (HTTP-created or emptied)', () => {
    const db = new RegistrationDB();
    db.addRegistration(registration('topic', 'created'));
    const a = peer('127.0.0.1:1');
    db.addProducer(registration('topic', 'emptied'), a);
    expect(db.removeProducer(registration('topic', 'emptied'), a.id)).toEqual({ removed: true, left: 0 });
    expect(keys(db.findRegistrations('topic', '*', ''))).toEqual(['created', 'emptied']);
    expect(db.findProducers('topic', 'emptied', '')).toEqual([]);
    expect(db.removeProducer(registration('topic', 'missing'), a.id)).toEqual({ removed: false, left: 0 });
  });

  it('matches * for key and subkey, never across categories', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1');
    db.addProducer(CLIENT_REGISTRATION, a);
    db.addProducer(registration('topic', 't1'), a);
    db.addProducer(registration('topic', 't2'), a);
    db.addProducer(registration('channel', 't1', 'c1'), a);
    db.addProducer(registration('channel', 't1', 'c2'), a);
    db.addProducer(registration('channel', 't2', 'c3'), a);

    expect(keys(db.findRegistrations('topic', '*', ''))).toEqual(['t1', 't2']);
    expect(subKeys(db.findRegistrations('channel', 't1', '*'))).toEqual(['c1', 'c2']);
    expect(subKeys(db.findRegistrations('channel', '*', '*'))).toEqual(['c1', 'c2', 'c3']);
    expect(db.findRegistrations('channel', 't1', 'c1')).toEqual([{ category: 'channel', key: 't1', subKey: 'c1' }]);
    expect(db.findRegistrations('channel', 't1', 'nope')).toEqual([]);
    // a topic registration has subkey "", so a specific subkey never matches it
    expect(db.findRegistrations('topic', '*', 'c1')).toEqual([]);
    expect(db.findRegistrations('client', '', '')).toHaveLength(1);
  });

  it('returns each producer once from a wildcard producer lookup', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1');
    const b = peer('127.0.0.1:2');
    db.addProducer(registration('channel', 't', 'c1'), a);
    db.addProducer(registration('channel', 't', 'c2'), a);
    db.addProducer(registration('channel', 't', 'c2'), b);
    expect(db.findProducers('channel', 't', '*').map((p) => p.peer.id).sort()).toEqual([a.id, b.id]);
  });

  it('lists the registrations of a producer and forgets removed ones', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1');
    const b = peer('127.0.0.1:2');
    db.addProducer(CLIENT_REGISTRATION, a);
    db.addProducer(registration('topic', 't'), a);
    db.addProducer(registration('channel', 't', 'c'), a);
    db.addProducer(registration('topic', 't'), b);
    expect(db.lookupRegistrations(a.id).map((r) => r.category).sort()).toEqual(['channel', 'client', 'topic']);

    db.removeRegistration(registration('channel', 't', 'c'));
    expect(db.lookupRegistrations(a.id).map((r) => r.category).sort()).toEqual(['client', 'topic']);
    db.removeProducer(registration('topic', 't'), a.id);
    db.removeProducer(CLIENT_REGISTRATION, a.id);
    expect(db.lookupRegistrations(a.id)).toEqual([]);
    expect(db.lookupRegistrations(b.id)).toEqual([{ category: 'topic', key: 't', subKey: '' }]);
  });

  it('does not confuse keys that contain separators', () => {
    const db = new RegistrationDB();
    db.addRegistration(registration('channel', 'a:b', 'c'));
    expect(db.findRegistrations('channel', 'a', 'b:c')).toEqual([]);
    expect(db.findRegistrations('channel', 'a:b', 'c')).toHaveLength(1);
  });
});

describe('filterByActive', () => {
  const now = 1_000_000;

  it('drops producers not heard from within the inactive timeout', () => {
    const db = new RegistrationDB();
    const fresh = peer('127.0.0.1:1', { lastUpdate: now - 300_000 });
    const stale = peer('127.0.0.1:2', { lastUpdate: now - 300_001 });
    db.addProducer(registration('topic', 't'), fresh);
    db.addProducer(registration('topic', 't'), stale);
    const active = filterByActive(db.findProducers('topic', 't', ''), 300_000, 45_000, now);
    expect(active.map((p) => p.peer.id)).toEqual([fresh.id]);
  });

  it('hides a tombstoned producer for the tombstone lifetime only', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1', { lastUpdate: now });
    db.addProducer(registration('topic', 't'), a);
    const [p] = db.findProducers('topic', 't', '');
    tombstone(p!, now - 1000);
    expect(isTombstoned(p!, 45_000, now)).toBe(true);
    expect(filterByActive([p!], 300_000, 45_000, now)).toEqual([]);
    expect(filterByActive([p!], 300_000, 1000, now)).toHaveLength(1);
    // lifetime 0 keeps tombstoned producers (what /nodes does)
    expect(filterByActive([p!], 300_000, 0, now)).toHaveLength(1);
  });

  it('keeps the tombstone per registration: the same peer stays visible for other topics', () => {
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1', { lastUpdate: now });
    db.addProducer(registration('topic', 't1'), a);
    db.addProducer(registration('topic', 't2'), a);
    tombstone(db.findProducers('topic', 't1', '')[0]!, now);
    expect(filterByActive(db.findProducers('topic', 't1', ''), 300_000, 45_000, now)).toEqual([]);
    expect(filterByActive(db.findProducers('topic', 't2', ''), 300_000, 45_000, now)).toHaveLength(1);
    // re-registering does not clear it (the entry already exists)
    expect(db.addProducer(registration('topic', 't1'), a)).toBe(false);
    expect(filterByActive(db.findProducers('topic', 't1', ''), 300_000, 45_000, now)).toEqual([]);
  });
});

describe('listNodes', () => {
  it('lists active identified nodes with tombstones parallel to topics', () => {
    const now = Date.now();
    const db = new RegistrationDB();
    const a = peer('127.0.0.1:1', { lastUpdate: now, httpPort: 5001 });
    const gone = peer('127.0.0.1:2', { lastUpdate: now - 400_000 });
    for (const p of [a, gone]) db.addProducer(CLIENT_REGISTRATION, p);
    db.addProducer(registration('topic', 't1'), a);
    db.addProducer(registration('topic', 't2'), a);
    db.addProducer(registration('channel', 't1', 'c'), a);
    tombstone(db.findProducers('topic', 't2', '')[0]!, now);

    const nodes = listNodes(db, 300_000, 45_000, now);
    expect(nodes).toHaveLength(1);
    const [node] = nodes;
    expect(Object.keys(node!)).toEqual([
      'remote_address', 'hostname', 'broadcast_address', 'tcp_port', 'http_port', 'version', 'tombstones', 'topics',
    ]);
    expect(node!.topics).toHaveLength(node!.tombstones.length);
    const byTopic = Object.fromEntries(node!.topics.map((t, i) => [t, node!.tombstones[i]]));
    expect(byTopic).toEqual({ t1: false, t2: true });
    expect(node!.http_port).toBe(5001);
  });

  it('gives an empty list, not null, without nodes', () => {
    expect(listNodes(new RegistrationDB(), 300_000, 45_000)).toEqual([]);
  });
});
