import { describe, expect, it } from '@jest/globals';
import {
  BrokerFlagError,
  flagsFor,
  formatDuration,
  helpText,
  parseCommandLine,
  parseDuration,
  type BrokerConfig,
  type ParsedCommandLine,
} from './flags.js';
import { NSQD_OPTIONS, NSQLOOKUPD_OPTIONS } from '../../../libs/nsq/src/index.js';

function run(argv: string[], env: Record<string, string> = {}): BrokerConfig {
  const parsed: ParsedCommandLine = parseCommandLine(argv, env);
  if (parsed.action !== 'run') throw new Error(`expected run, got ${parsed.action}`);
  return parsed.config;
}

function flagError(argv: string[], env: Record<string, string> = {}): BrokerFlagError {
  try {
    parseCommandLine(argv, env);
  } catch (err) {
    if (err instanceof BrokerFlagError) return err;
    throw err;
  }
  throw new Error(`no error for ${argv.join(' ')}`);
}

describe('parseDuration', () => {
  it.each([
    ['60s', 60_000],
    ['250ms', 250],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['1.1s', 1100],
    ['0', 0],
    ['0s', 0],
    ['2000us', 2],
    ['100', 100],
  ] as const)('%s = %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 's', '10x', '1m30', 'abc', '1..5s', '1500us'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/duration/);
  });

  it.each([0, 1, 250, 1000, 60_000, 90_000, 3_600_000, 45_000, 900_000, 3_723_004])('formatDuration(%d) reads back', (ms) => {
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

describe('flag names derived from the option tables', () => {
  it('role nsqd: kebab-case of every nsqd option but the logger, lists in the singular', () => {
    const flags = flagsFor('nsqd');
    expect(flags.get('mem-queue-size')?.option).toBe('memQueueSize');
    expect(flags.get('lookupd-tcp-address')?.option).toBe('lookupdTcpAddresses');
    expect(flags.get('auth-http-address')?.option).toBe('authHttpAddresses');
    expect(flags.get('tls-root-ca-file')?.option).toBe('tlsRootCaFile');
    const options = Object.keys(NSQD_OPTIONS).filter((o) => o !== 'logger');
    expect([...flags.values()].map((f) => f.option).sort()).toEqual(options.sort());
  });

  it('role lookupd: nsqlookupd names; role all: nsqd names plus --nsqlookupd-*', () => {
    expect(flagsFor('lookupd').get('tcp-address')?.server).toBe('lookupd');
    const all = flagsFor('all');
    expect(all.get('tcp-address')?.server).toBe('nsqd');
    expect(all.get('nsqlookupd-tcp-address')?.server).toBe('lookupd');
    expect(all.get('nsqlookupd-tombstone-lifetime')?.env).toBe('NSQLOOKUPD_TOMBSTONE_LIFETIME');
    expect(all.size).toBe(Object.keys(NSQD_OPTIONS).length - 1 + Object.keys(NSQLOOKUPD_OPTIONS).length - 1);
  });

  it('options documented in ms are durations, counts stay integers', () => {
    const flags = flagsFor('all');
    for (const name of ['msg-timeout', 'sync-timeout', 'max-req-timeout', 'output-buffer-timeout', 'nsqlookupd-inactive-producer-timeout']) {
      expect([name, flags.get(name)?.kind]).toEqual([name, 'duration']);
    }
    for (const name of ['mem-queue-size', 'sync-every', 'max-rdy-count', 'max-msg-size']) {
      expect([name, flags.get(name)?.kind]).toEqual([name, 'int']);
    }
  });
});

describe('parseCommandLine', () => {
  it('defaults: role all, log level info, nothing but the derived broadcast addresses', () => {
    expect(run([])).toMatchObject({
      role: 'all',
      logLevel: 'info',
      nsqd: { broadcastAddress: '127.0.0.1' },
      lookupd: { broadcastAddress: '127.0.0.1' },
    });
    expect(run([]).nsqd).toEqual({ broadcastAddress: '127.0.0.1' });
  });

  it('takes the flags the test harness passes to the Go nsqd', () => {
    const config = run([
      '--role',
      'nsqd',
      '--tcp-address=127.0.0.1:0',
      '--http-address=127.0.0.1:0',
      '--broadcast-address=127.0.0.1',
      '--data-path=/tmp/x',
      '--lookupd-tcp-address=127.0.0.1:4160',
      '--lookupd-tcp-address',
      '127.0.0.1:4260',
      '--mem-queue-size=0',
      '--msg-timeout=2s',
      '--max-rdy-count=10',
      '--auth-http-address=127.0.0.1:4181',
      '--tls-cert=/c.pem',
      '--tls-key=/k.pem',
      '--tls-required=true',
      '--max-msg-size=100',
      '--sync-every=1',
      '--https-address=127.0.0.1:0',
    ]);
    expect(config.role).toBe('nsqd');
    expect(config.nsqd).toEqual({
      tcpAddress: '127.0.0.1:0',
      httpAddress: '127.0.0.1:0',
      broadcastAddress: '127.0.0.1',
      dataPath: '/tmp/x',
      lookupdTcpAddresses: ['127.0.0.1:4160', '127.0.0.1:4260'],
      memQueueSize: 0,
      msgTimeout: 2000,
      maxRdyCount: 10,
      authHttpAddresses: ['127.0.0.1:4181'],
      tlsCert: '/c.pem',
      tlsKey: '/k.pem',
      tlsRequired: 'true',
      maxMsgSize: 100,
      syncEvery: 1,
      httpsAddress: '127.0.0.1:0',
    });
    expect(config.lookupd).toEqual({});
  });

  it('single-dash flags and the space form, as Go accepts them', () => {
    expect(run(['-role=nsqd', '-mem-queue-size', '5', '-msg-timeout', '1m30s']).nsqd).toMatchObject({ memQueueSize: 5, msgTimeout: 90_000 });
  });

  it('booleans: bare means true, =false, and never swallow the next argument', () => {
    expect(run(['--role=nsqd', '--deflate=false']).nsqd.deflate).toBe(false);
    expect(run(['--role=nsqd', '--snappy', '--mem-queue-size=3']).nsqd).toMatchObject({ snappy: true, memQueueSize: 3 });
    expect(run(['--role=nsqd', '--deflate=0']).nsqd.deflate).toBe(false);
    expect(flagError(['--role=nsqd', '--deflate=maybe']).field).toBe('--deflate');
  });

  it('--tls-required works bare, with a Go bool and with tcp-https', () => {
    expect(run(['--role=nsqd', '--tls-required']).nsqd.tlsRequired).toBe('true');
    expect(run(['--role=nsqd', '--tls-required=tcp-https']).nsqd.tlsRequired).toBe('tcp-https');
    expect(run(['--role=nsqd', '--tls-required=0']).nsqd.tlsRequired).toBe('false');
    expect(flagError(['--role=nsqd', '--tls-required=https']).message).toMatch(/--tls-required/);
  });

  it('role all: lookupd flags take the nsqlookupd- prefix, nsqd keeps its names', () => {
    const config = run(['--tcp-address=127.0.0.1:5150', '--nsqlookupd-tcp-address=127.0.0.1:5160', '--nsqlookupd-tombstone-lifetime=10s']);
    expect(config.nsqd.tcpAddress).toBe('127.0.0.1:5150');
    expect(config.lookupd).toEqual({ tcpAddress: '127.0.0.1:5160', tombstoneLifetime: 10_000, broadcastAddress: '127.0.0.1' });
  });

  it('role lookupd: nsqlookupd names apply, nsqd flags are unknown', () => {
    const config = run(['--role=lookupd', '--tcp-address=127.0.0.1:0', '--inactive-producer-timeout=1m']);
    expect(config.lookupd).toEqual({ tcpAddress: '127.0.0.1:0', inactiveProducerTimeout: 60_000, broadcastAddress: '127.0.0.1' });
    expect(config.nsqd).toEqual({});
    expect(flagError(['--role=lookupd', '--mem-queue-size=1']).message).toMatch(/not defined: --mem-queue-size \(it exists in --role all\)/);
    expect(flagError(['--role=nsqd', '--nsqlookupd-tcp-address=x:1']).field).toBe('--nsqlookupd-tcp-address');
  });

  it('broadcast address: given wins; derived from the TCP host; wildcard leaves the OS hostname', () => {
    expect(run(['--role=nsqd', '--tcp-address=10.1.2.3:4150']).nsqd.broadcastAddress).toBe('10.1.2.3');
    expect(run(['--role=nsqd', '--tcp-address=0.0.0.0:4150']).nsqd.broadcastAddress).toBeUndefined();
    expect(run(['--role=nsqd', '--tcp-address=[::]:4150']).nsqd.broadcastAddress).toBeUndefined();
    expect(run(['--role=nsqd', '--tcp-address=0.0.0.0:4150', '--broadcast-address=nsq1']).nsqd.broadcastAddress).toBe('nsq1');
  });

  it('env: NSQD_* / NSQLOOKUPD_* / BROKER_*, flags win, lists comma-separated and replaced by flags', () => {
    const env = {
      BROKER_ROLE: 'all',
      BROKER_LOG_LEVEL: 'debug',
      NSQD_MEM_QUEUE_SIZE: '7',
      NSQD_MSG_TIMEOUT: '5s',
      NSQD_LOOKUPD_TCP_ADDRESS: '127.0.0.1:1, 127.0.0.1:2',
      NSQLOOKUPD_TCP_ADDRESS: '127.0.0.1:9160',
      NSQD_NOT_AN_OPTION: 'ignored',
    };
    const fromEnv = run([], env);
    expect(fromEnv.logLevel).toBe('debug');
    expect(fromEnv.nsqd).toMatchObject({ memQueueSize: 7, msgTimeout: 5000, lookupdTcpAddresses: ['127.0.0.1:1', '127.0.0.1:2'] });
    expect(fromEnv.lookupd.tcpAddress).toBe('127.0.0.1:9160');
    const flagsWin = run(['--mem-queue-size=8', '--lookupd-tcp-address=127.0.0.1:3', '--log-level=WARN'], env);
    expect(flagsWin.logLevel).toBe('warn');
    expect(flagsWin.nsqd).toMatchObject({ memQueueSize: 8, msgTimeout: 5000, lookupdTcpAddresses: ['127.0.0.1:3'] });
    expect(run([], { ...env, BROKER_ROLE: 'nsqd' }).lookupd).toEqual({});
  });

  it.each([
    [['--no-such-flag'], '--no-such-flag', /flag provided but not defined: --no-such-flag/],
    [['--mem-queue-size=abc'], '--mem-queue-size', /invalid value "abc" for --mem-queue-size=abc: expected an integer/],
    [['--mem-queue-size=-1'], '--mem-queue-size', /must be between 0 and/],
    [['--msg-timeout=2x'], '--msg-timeout', /invalid duration/],
    [['--msg-timeout=0s'], '--msg-timeout', /must be between 1ms/],
    [['--max-deflate-level=10'], '--max-deflate-level', /between 1 and 9/],
    [['--role=broker'], '--role', /expected one of all, nsqd, lookupd/],
    [['--log-level=loud'], '--log-level', /expected one of debug/],
    [['--tcp-address'], '--tcp-address', /flag needs an argument/],
    [['positional'], 'positional', /unexpected argument/],
    [['--tls-client-auth-policy=maybe'], 'nsqd', /tlsClientAuthPolicy/],
  ])('%j is a flag error naming %s', (argv, field, message) => {
    const err = flagError(argv);
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it('a bad env value names the variable', () => {
    const err = flagError([], { NSQD_SYNC_EVERY: 'often' });
    expect(err.field).toBe('NSQD_SYNC_EVERY');
    expect(err.message).toMatch(/NSQD_SYNC_EVERY: expected an integer/);
  });

  it('--help and --version win over other flags', () => {
    expect(parseCommandLine(['--mem-queue-size=1', '--help']).action).toBe('help');
    expect(parseCommandLine(['-h']).action).toBe('help');
    expect(parseCommandLine(['--version'])).toMatchObject({ action: 'version', text: expect.stringMatching(/1\.3\.0/) });
  });
});

describe('helpText', () => {
  it('lists every flag of the role with its doc and default', () => {
    const text = helpText('all');
    for (const f of flagsFor('all').values()) expect(text).toContain(`--${f.flag}`);
    expect(text).toContain(NSQD_OPTIONS.memQueueSize.doc);
    expect(text).toMatch(/--msg-timeout duration\n.*\(default 1m\)/);
    expect(text).toMatch(/--mem-queue-size int\n.*\(default 10000\)/);
    expect(text).toMatch(/--nsqlookupd-tcp-address string\n.*\(default "127\.0\.0\.1:4160"\)/);
    expect(text).toContain('[env NSQD_MEM_QUEUE_SIZE]');
  });

  it('role lookupd shows nsqlookupd names only', () => {
    const text = helpText('lookupd');
    expect(text).toMatch(/--tcp-address string\n.*\(default "127\.0\.0\.1:4160"\)/);
    expect(text).not.toContain('--mem-queue-size');
  });
});

describe('history and admin flags', () => {
  it('defaults to the embedded history in the data path and the admin page on 127.0.0.1:4170', () => {
    const config = run(['--data-path=/var/lib/broker']);
    expect(config.history).toEqual({
      db: { type: 'sqljs', location: '/var/lib/broker/history.sqlite' },
      spoolPath: '/var/lib/broker/history.spool',
      journal: true,
      storeBodies: true,
      maxBodySize: 65536,
      retention: 7 * 24 * 3600 * 1000,
    });
    expect(config.admin).toEqual({ address: '127.0.0.1:4170', token: undefined });
  });

  it('reads MySQL URLs, off, durations and booleans from flags and env; flags win', () => {
    const config = run(['--history-db=mysql://u:p@db:3307/hist', '--history-retention=24h', '--history-store-bodies=false', '--admin-token=s3cret'], {
      BROKER_HISTORY_MAX_BODY_SIZE: '1024',
      HISTORY_DB_URL: 'sqljs:/ignored',
      BROKER_ADMIN_ADDRESS: '127.0.0.1:0',
    });
    expect(config.history).toMatchObject({
      db: { type: 'mysql', host: 'db', port: 3307, username: 'u', password: 'p', database: 'hist' },
      retention: 86_400_000,
      storeBodies: false,
      maxBodySize: 1024,
    });
    expect(config.admin).toEqual({ address: '127.0.0.1:0', token: 's3cret' });
    expect(run(['--history-db=off', '--admin-address=off']).history?.db).toBeUndefined();
    expect(run([], { HISTORY_DB_URL: 'off', BROKER_ADMIN_ADDRESS: 'off' }).admin.address).toBeUndefined();
    expect(run(['--history-store-bodies']).history?.storeBodies).toBe(true);
    expect(run(['--history-journal=false']).history?.journal).toBe(false);
    expect(run([], { BROKER_HISTORY_JOURNAL: 'false' }).history?.journal).toBe(false);
  });

  it('rejects bad values naming the flag or env variable', () => {
    expect(flagError(['--history-db=postgres://x/y']).message).toMatch(/--history-db: unsupported scheme postgres/);
    expect(flagError([], { HISTORY_DB_URL: 'mysql://root@h/' }).message).toMatch(/HISTORY_DB_URL: the URL names no database/);
    expect(flagError(['--history-retention=soon']).message).toMatch(/invalid value "soon" for --history-retention=soon/);
    expect(flagError(['--history-max-body-size=-1']).message).toMatch(/--history-max-body-size/);
    expect(flagError(['--admin-address=localhost']).message).toMatch(/expected host:port/);
    expect(flagError(['--admin-address=127.0.0.1:70000']).message).toMatch(/expected host:port/);
  });

  it('belongs to the roles that run an nsqd', () => {
    const config = run(['--role=lookupd'], { HISTORY_DB_URL: 'mysql://root@h/db' });
    expect(config.history).toBeUndefined();
    expect(config.admin.address).toBeUndefined();
    expect(flagError(['--role=lookupd', '--admin-address=127.0.0.1:0']).message).toMatch(/not defined: --admin-address \(it exists in --role all\)/);
    expect(helpText('all')).toMatch(/--history-db string\n\s+Message history database/);
    expect(helpText('lookupd')).not.toMatch(/--history-db/);
  });
});
