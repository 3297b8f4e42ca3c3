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
import type { OutboxRelayOptions } from './outbox.relay.js';

export const SERVICE_NAME = 'order-service';

export interface OrderServiceConfig {
  /** ORDER_SERVICE_ADDRESS, default 127.0.0.1:3000 (port 0: the OS picks). */
  address: ListenAddress;
  /** ORDER_DB_URL, default the sql.js file .data/order-service.sqlite. */
  db: DatabaseConnectionOptions;
  /** NSQ_NSQD_TCP_ADDRESSES, default 127.0.0.1:4150: where events are published (several: failover). */
  nsqdTCPAddresses: string[];
  /** HISTORY_DB_URL (+ HISTORY_SPOOL_PATH): client-side message history; undefined = off. */
  history: ClientHistoryConfig | undefined;
  relay?: Partial<OutboxRelayOptions>;
}

export function orderServiceConfigFromEnv(env: Env): OrderServiceConfig {
  return {
    address: listenAddressFromEnv(env, 'ORDER_SERVICE_ADDRESS', '127.0.0.1:3000'),
    db: databaseFromEnv(env, 'ORDER_DB_URL', join('.data', 'order-service.sqlite')),
    nsqdTCPAddresses: addressListFromEnv(env, 'NSQ_NSQD_TCP_ADDRESSES') ?? ['127.0.0.1:4150'],
    history: clientHistoryFromEnv(env, SERVICE_NAME),
  };
}
