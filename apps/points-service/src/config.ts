import { join } from 'node:path';
import {
  addressListFromEnv,
  clientHistoryFromEnv,
  databaseFromEnv,
  listenAddressFromEnv,
  type ClientHistoryConfig,
  type DatabaseConnectionOptions,
  type Env,
  type ListenAddress,
} from '../../shared/src/index.js';

export const SERVICE_NAME = 'points-service';

export interface PointsServiceConfig {
  /** POINTS_SERVICE_ADDRESS, default 127.0.0.1:3001 (port 0: the OS picks). */
  address: ListenAddress;
  /** POINTS_DB_URL, default the sql.js file .data/points-service.sqlite. */
  db: DatabaseConnectionOptions;
  /**
   * Where to consume: NSQ_LOOKUPD_HTTP_ADDRESSES (discovery) and/or NSQ_NSQD_TCP_ADDRESSES
   * (direct); when neither is set, lookupd at 127.0.0.1:4161.
   */
  lookupdHTTPAddresses: string[] | undefined;
  nsqdTCPAddresses: string[] | undefined;
  /** HISTORY_DB_URL (+ HISTORY_SPOOL_PATH): client-side message history; undefined = off. */
  history: ClientHistoryConfig | undefined;
}

export function pointsServiceConfigFromEnv(env: Env): PointsServiceConfig {
  const lookupd = addressListFromEnv(env, 'NSQ_LOOKUPD_HTTP_ADDRESSES', { allowHttp: true });
  const nsqd = addressListFromEnv(env, 'NSQ_NSQD_TCP_ADDRESSES');
  return {
    address: listenAddressFromEnv(env, 'POINTS_SERVICE_ADDRESS', '127.0.0.1:3001'),
    db: databaseFromEnv(env, 'POINTS_DB_URL', join('.data', 'points-service.sqlite')),
    lookupdHTTPAddresses: lookupd ?? (nsqd ? undefined : ['127.0.0.1:4161']),
    nsqdTCPAddresses: nsqd,
    history: clientHistoryFromEnv(env, SERVICE_NAME),
  };
}
