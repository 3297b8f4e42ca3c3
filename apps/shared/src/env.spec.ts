import { describe, expect, it } from '@jest/globals';
import { addressListFromEnv, databaseFromEnv, listenAddressFromEnv, SampleConfigError } from './env.js';

describe('sample env parsing', () => {
  it('reads listen addresses, with the default and port 0', () => {
    expect(listenAddressFromEnv({}, 'X_ADDRESS', '127.0.0.1:3000')).toEqual({ host: '127.0.0.1', port: 3000 });
    expect(listenAddressFromEnv({ X_ADDRESS: '0.0.0.0:0' }, 'X_ADDRESS', '127.0.0.1:3000')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(listenAddressFromEnv({ X_ADDRESS: '[::1]:8080' }, 'X_ADDRESS', '127.0.0.1:3000')).toEqual({ host: '::1', port: 8080 });
  });

  it.each(['3000', 'host:', 'host:70000', 'host:x'])('rejects the listen address %s naming the variable', (value) => {
    expect(() => listenAddressFromEnv({ X_ADDRESS: value }, 'X_ADDRESS', '127.0.0.1:3000')).toThrow(SampleConfigError);
    expect(() => listenAddressFromEnv({ X_ADDRESS: value }, 'X_ADDRESS', '127.0.0.1:3000')).toThrow(/^X_ADDRESS: /);
  });

  it('reads comma lists of addresses', () => {
    expect(addressListFromEnv({}, 'L')).toBeUndefined();
    expect(addressListFromEnv({ L: 'a:4150, b:4150' }, 'L')).toEqual(['a:4150', 'b:4150']);
    expect(addressListFromEnv({ L: 'http://a:4161' }, 'L', { allowHttp: true })).toEqual(['http://a:4161']);
    expect(() => addressListFromEnv({ L: 'a:4150,,b:1' }, 'L')).toThrow(/empty entry/);
    expect(() => addressListFromEnv({ L: 'a:0' }, 'L')).toThrow(/port 0/);
    expect(() => addressListFromEnv({ L: 'http://a:4161' }, 'L')).toThrow(/^L: /);
  });

  it('reads database URLs like HISTORY_DB_URL', () => {
    expect(databaseFromEnv({}, 'DB', '.data/x.sqlite')).toEqual({ type: 'sqljs', location: '.data/x.sqlite' });
    expect(databaseFromEnv({ DB: 'sqljs:/tmp/y.sqlite' }, 'DB', '.data/x.sqlite')).toEqual({ type: 'sqljs', location: '/tmp/y.sqlite' });
    expect(databaseFromEnv({ DB: 'mysql://app:s%40cret@db:3307/orders' }, 'DB', '.data/x.sqlite')).toEqual({
      type: 'mysql',
      host: 'db',
      port: 3307,
      username: 'app',
      password: 's@cret',
      database: 'orders',
    });
    expect(() => databaseFromEnv({ DB: 'postgres://db/x' }, 'DB', '.data/x.sqlite')).toThrow(/^DB: unsupported scheme postgres/);
    expect(() => databaseFromEnv({ DB: 'mysql://db:3306/' }, 'DB', '.data/x.sqlite')).toThrow(/^DB: the URL names no database/);
  });
});
