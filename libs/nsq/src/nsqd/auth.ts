/**
 * nsqd's AUTH contract (internal/auth): ask an authd over HTTP which topics and channels a secret
 * may publish to or subscribe on, cache the answer for its TTL.
 */
export interface Authorization {
  topic: string;
  channels: string[];
  permissions: Array<'subscribe' | 'publish'>;
}

export class AuthState {
  private readonly compiled: Array<{ topic: RegExp; channels: RegExp[]; subscribe: boolean; publish: boolean }>;

  constructor(
    readonly identity: string,
    readonly identityUrl: string,
    readonly authorizations: readonly Authorization[],
    readonly expiresAt: number,
  ) {
    this.compiled = authorizations.map((a) => ({
      topic: new RegExp(a.topic),
      channels: a.channels.map((c) => new RegExp(c)),
      subscribe: a.permissions.includes('subscribe'),
      publish: a.permissions.includes('publish'),
    }));
  }

  get expired(): boolean {
    return this.expiresAt < Date.now();
  }

  /** Publishing is channel ''; a channel regex must match '' then (e.g. ".*"), as in nsqd. */
  isAllowed(topic: string, channel: string): boolean {
    return this.compiled.some(
      (a) => (channel !== '' ? a.subscribe : a.publish) && a.topic.test(topic) && a.channels.some((c) => c.test(channel)),
    );
  }
}

export interface AuthQuery {
  remoteIp: string;
  tls: boolean;
  commonName: string;
  secret: string;
}

/** Tries the authd addresses starting at a random one; throws with every failure if all fail. */
export async function queryAnyAuthd(addresses: readonly string[], query: AuthQuery, timeoutMs: number): Promise<AuthState> {
  const start = Math.floor(Math.random() * addresses.length);
  const failures: string[] = [];
  for (let i = 0; i < addresses.length; i++) {
    const address = addresses[(start + i) % addresses.length]!;
    try {
      return await queryAuthd(address, query, timeoutMs);
    } catch (err) {
      failures.push(`failed to auth against ${address} - ${(err as Error).message}`);
    }
  }
  throw new Error(failures.join('; '));
}

async function queryAuthd(address: string, query: AuthQuery, timeoutMs: number): Promise<AuthState> {
  const params = new URLSearchParams({
    common_name: query.commonName,
    remote_ip: query.remoteIp,
    secret: query.secret,
    tls: String(query.tls),
  });
  const url = address.includes('://') ? `${address}?${params}` : `http://${address}/auth?${params}`;
  const res = await fetch(url, {
    headers: { Accept: 'application/vnd.nsq; version=1.0' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`got response ${res.status} ${JSON.stringify(text.slice(0, 200))}`);
  let data: { ttl?: unknown; identity?: unknown; identity_url?: unknown; authorizations?: unknown };
  try {
    data = JSON.parse(text) as typeof data;
  } catch {
    throw new Error('invalid JSON from authd');
  }
  const authorizations: Authorization[] = [];
  for (const raw of Array.isArray(data.authorizations) ? (data.authorizations as unknown[]) : []) {
    const a = raw as { topic?: unknown; channels?: unknown; permissions?: unknown };
    const permissions = Array.isArray(a.permissions) ? a.permissions.map(String) : [];
    for (const p of permissions) if (p !== 'subscribe' && p !== 'publish') throw new Error(`unknown permission ${p}`);
    const topic = typeof a.topic === 'string' ? a.topic : '';
    const channels = Array.isArray(a.channels) ? a.channels.map(String) : [];
    for (const re of [topic, ...channels]) {
      try {
        new RegExp(re);
      } catch {
        throw new Error(`unable to compile ${JSON.stringify(re)}`);
      }
    }
    authorizations.push({ topic, channels, permissions: permissions as Authorization['permissions'] });
  }
  const ttl = typeof data.ttl === 'number' ? data.ttl : 0;
  if (ttl <= 0) throw new Error(`invalid TTL ${ttl} (must be >0)`);
  return new AuthState(String(data.identity ?? ''), String(data.identity_url ?? ''), authorizations, Date.now() + ttl * 1000);
}
