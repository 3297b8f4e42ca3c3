import { describe, expect, it } from '@jest/globals';
import { historyOptionsFromEnv } from './data-source.js';

describe('historyOptionsFromEnv', () => {
  it('defaults to the embedded database', () => {
    expect(historyOptionsFromEnv({})).toEqual({ type: 'sqljs', location: '.data/history.sqlite' });
    expect(historyOptionsFromEnv({ HISTORY_DB_URL: '  ' })).toEqual({ type: 'sqljs', location: '.data/history.sqlite' });
  });

  it('reads MySQL and MariaDB URLs', () => {
    expect(historyOptionsFromEnv({ HISTORY_DB_URL: 'mysql://root@127.0.0.1:3306/test' })).toEqual({
      type: 'mysql',
      host: '127.0.0.1',
      port: 3306,
      username: 'root',
      password: '',
      database: 'test',
    });
    expect(historyOptionsFromEnv({ HISTORY_DB_URL: 'mariadb://u%40x:p%2Fw@db.local/hist' })).toEqual({
      type: 'mariadb',
      host: 'db.local',
      port: 3306,
      username: 'u@x',
      password: 'p/w',
      database: 'hist',
    });
  });

  it('reads sql.js file paths', () => {
    expect(historyOptionsFromEnv({ HISTORY_DB_URL: 'sqljs:/var/lib/h.sqlite' })).toEqual({ type: 'sqljs', location: '/var/lib/h.sqlite' });
    expect(historyOptionsFromEnv({ HISTORY_DB_URL: './h.sqlite' })).toEqual({ type: 'sqljs', location: './h.sqlite' });
  });

  it('says what is wrong with a URL it cannot use', () => {
    expect(() => historyOptionsFromEnv({ HISTORY_DB_URL: 'postgres://x/y' })).toThrow(/unsupported scheme postgres/);
    expect(() => historyOptionsFromEnv({ HISTORY_DB_URL: 'mysql://root@127.0.0.1:3306/' })).toThrow(/names no database/);
  });
});
