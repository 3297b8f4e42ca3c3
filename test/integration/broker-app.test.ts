/**
 * The broker app (apps/broker, built into dist/) as a process: flags, exit codes, listeners,
 * graceful SIGTERM/SIGINT, and role all wiring the in-process nsqd to the in-process nsqlookupd.
 * Role nsqd and lookupd go through the shared harness (startNsqd / startNsqlookupd with impl 'ts'),
 * so the harness's ts path is exercised too.
 */
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LookupdHttpClient, NsqdHttpClient } from '../../libs/nsq/src/client/http.js';
import { BROKER_BOUND_MS as EXIT_BOUND_MS, BrokerProcess, brokerEnv, killBrokers, type BrokerExit } from '../support/broker.js';
import { brokerMain, describeWithNsq, nsqBinary } from '../support/nsq-bin.js';
import { startNsqd, startNsqlookupd, stopAll } from '../support/processes.js';
import { uniqueName } from '../support/client.js';
import { waitFor } from '../support/wait.js';
import { flagsFor } from '../../apps/broker/src/flags.js';

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'broker-app-'));
  tempDirs.push(dir);
  return dir;
}

/** Runs the broker to completion (flag handling exits before any server starts). */
function runToExit(args: string[]): BrokerExit {
  const r = spawnSync(process.execPath, [brokerMain(), ...args], { encoding: 'utf8', timeout: EXIT_BOUND_MS, env: brokerEnv() });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function listenOnFreePort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => listenOnFreePort()));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

afterEach(killBrokers);

afterAll(async () => {
  await stopAll();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('broker app: command line', () => {
  it('--help exits 0 and lists the flags of both servers with their defaults', () => {
    const r = runToExit(['--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--role', '--tcp-address', '--mem-queue-size', '--lookupd-tcp-address', '--nsqlookupd-tcp-address', '--nsqlookupd-tombstone-lifetime']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/--http-address string\n.*\(default "127\.0\.0\.1:4151"\)/);
    expect(r.stdout).toMatch(/--nsqlookupd-http-address string\n.*\(default "127\.0\.0\.1:4161"\)/);
  });

  it('--version exits 0', () => {
    const r = runToExit(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/1\.3\.0/);
  });

  it('an unknown flag exits 2 with a message naming it', () => {
    const r = runToExit(['--role=nsqd', '--no-such-flag=1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/flag provided but not defined: --no-such-flag/);
  });

  it('a bad value exits 2 with a message naming the flag', () => {
    const r = runToExit(['--msg-timeout=soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--msg-timeout=soon.*invalid duration/);
  });
});

describe('broker app: servers', () => {
  it('role lookupd listens on the flags\' ports and exits 0 on SIGTERM', async () => {
    const [tcpPort, httpPort] = await freePorts(2);
    const lookupd = await startNsqlookupd({ impl: 'ts', tcpPort, httpPort });
    expect([lookupd.tcpPort, lookupd.httpPort]).toEqual([tcpPort, httpPort]);
    expect(lookupd.log()).toMatch(/\[nsqlookupd\] TCP: listening on 127\.0\.0\.1:\d+/);
    expect(lookupd.log()).not.toMatch(/\[nsqd\]/);
    expect(await tcpConnects(lookupd.tcpPort)).toBe(true);
    expect(await new LookupdHttpClient(lookupd.httpAddress).topics()).toEqual([]);
    expect(await lookupd.stop(EXIT_BOUND_MS)).toEqual({ code: 0, signal: null });
    expect(lookupd.log()).toMatch(/shutting down on SIGTERM/);
  });

  it('role nsqd serves TCP and HTTP and exits 0 on SIGINT', async () => {
    const nsqd = await startNsqd({ impl: 'ts', args: ['--mem-queue-size=0', '--msg-timeout=2s', '--sync-every=1'] });
    expect(nsqd.log()).toMatch(/\[nsqd\] TCP: listening on 127\.0\.0\.1:\d+/);
    const http = new NsqdHttpClient(nsqd.httpAddress);
    const topic = uniqueName('broker-app');
    await http.publish(topic, 'hello');
    expect((await http.stats({ topic })).topics.map((t) => t.topic_name)).toEqual([topic]);
    expect(await tcpConnects(nsqd.tcpPort)).toBe(true);
    await nsqd.kill('SIGINT');
    expect(nsqd.exit).toEqual({ code: 0, signal: null });
  });

  it('role all: the in-process nsqd registers with the in-process lookupd; SIGTERM exits 0', async () => {
    const broker = new BrokerProcess([
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      '--nsqlookupd-tcp-address=127.0.0.1:0',
      '--nsqlookupd-http-address=127.0.0.1:0',
      `--data-path=${tempDir()}`,
    ]);
    const nsqdTcp = await broker.port(/\[nsqd\] TCP: listening on 127\.0\.0\.1:(\d+)/);
    const nsqdHttp = await broker.port(/\[nsqd\] HTTP: listening on 127\.0\.0\.1:(\d+)/);
    const lookupdHttp = await broker.port(/\[nsqlookupd\] HTTP: listening on 127\.0\.0\.1:(\d+)/);
    const lookupd = new LookupdHttpClient(`http://127.0.0.1:${lookupdHttp}`);

    const nodes = await waitFor(async () => {
      const list = await lookupd.nodes();
      return list.length > 0 ? list : undefined;
    }, EXIT_BOUND_MS, 'the nsqd in /nodes');
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({ broadcast_address: '127.0.0.1', tcp_port: nsqdTcp, http_port: nsqdHttp });

    const topic = uniqueName('broker-all');
    await new NsqdHttpClient(`http://127.0.0.1:${nsqdHttp}`).publish(topic, 'x');
    const found = await waitFor(async () => {
      const r = await lookupd.lookup(topic).catch(() => undefined);
      return r && r.producers.length > 0 ? r : undefined;
    }, EXIT_BOUND_MS, `topic ${topic} in /lookup`);
    expect(found.producers.map((p) => p.tcp_port)).toEqual([nsqdTcp]);

    broker.child.kill('SIGTERM');
    const done = await broker.exit();
    expect({ code: done.code, signal: done.signal }).toEqual({ code: 0, signal: null });
    // nsqd closes before its lookupd, so it can unregister while the lookupd still answers
    expect(done.stdout).toMatch(/shutting down on SIGTERM[\s\S]*\[broker\] nsqd closed[\s\S]*\[broker\] nsqlookupd closed/);
  });

  it('a port in use: exits 1 and says "address already in use"', async () => {
    const taken = await listenOnFreePort();
    try {
      const port = (taken.address() as AddressInfo).port;
      const broker = new BrokerProcess(['--role=lookupd', `--tcp-address=127.0.0.1:${port}`, '--http-address=127.0.0.1:0']);
      const done = await broker.exit();
      expect(done.code).toBe(1);
      expect(done.stdout + done.stderr).toMatch(/failed to start \(role lookupd\).*address already in use/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('role all: a data path nsqd cannot use exits 1 with the reason', async () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    const broker = new BrokerProcess([
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      '--nsqlookupd-tcp-address=127.0.0.1:0',
      '--nsqlookupd-http-address=127.0.0.1:0',
      `--data-path=${join(file, 'data')}`,
    ]);
    const done = await broker.exit();
    expect(done.code).toBe(1);
    expect(done.stdout + done.stderr).toMatch(/failed to start \(role all\): .*not a directory/);
  });
});

/**
 * Our flags against the official binaries' own flag lists (`nsqd -help`): same names for the
 * options both have, and the same kind of value, so a Go command line works unchanged.
 */
describeWithNsq('broker flags against the official nsqd / nsqlookupd', () => {
  function goFlags(binary: 'nsqd' | 'nsqlookupd'): Map<string, string> {
    const r = spawnSync(nsqBinary(binary), ['-help'], { encoding: 'utf8' });
    const out = new Map<string, string>();
    for (const m of (r.stdout + r.stderr).matchAll(/^ {2}-([a-z0-9-]+)(?: (\w+))?$/gm)) out.set(m[1] ?? '', m[2] ?? 'bool');
    return out;
  }
  /** Go's flag kinds for each of ours: `value` is Go's name for custom flag types (lists, enums). */
  const compatible: Record<string, string[]> = {
    string: ['string', 'value'],
    int: ['int'],
    number: ['int', 'float64'],
    duration: ['duration'],
    bool: ['bool'],
    list: ['value'],
  };

  it.each([
    ['nsqd', 'nsqd'],
    ['lookupd', 'nsqlookupd'],
  ] as const)('role %s: every flag the Go %s also has takes the same kind of value', (role, binary) => {
    const go = goFlags(binary);
    expect(go.size).toBeGreaterThan(5);
    const mismatches: string[] = [];
    const oursOnly: string[] = [];
    for (const f of flagsFor(role).values()) {
      const goKind = go.get(f.flag);
      if (goKind === undefined) oursOnly.push(f.flag);
      // Go's --tls-required is a bool flag that also takes "tcp-https"
      else if (!compatible[f.kind]?.includes(goKind) && !(f.flag === 'tls-required' && goKind === 'bool')) {
        mismatches.push(`--${f.flag}: ours ${f.kind}, Go ${goKind}`);
      }
    }
    expect(mismatches).toEqual([]);
    // options of ours that nsqd 1.3.0 has only in its config struct, not as flags
    expect(oursOnly).toEqual(role === 'nsqd' ? ['queue-scan-interval'] : []);
  });
});
