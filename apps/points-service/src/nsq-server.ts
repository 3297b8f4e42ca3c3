import { NsqServer, type NsqTransportHooks } from '../../../libs/nest-nsq/src/index.js';
import type { PointsServiceConfig } from './config.js';
import { POINTS_CHANNEL } from './order-created.js';

/** How often a lookupd-configured subscription looks for nsqd (go-nsq's 60 s default is long for a demo). */
export const LOOKUPD_POLL_INTERVAL_MS = 5000;

/**
 * The NSQ side of the hybrid app. A failed handler (database down) is retried after 1 s × attempts
 * (at most 30 s) with consumer backoff; after 10 deliveries the message goes to
 * `order.created.dead`.
 */
export function createNsqServer(config: PointsServiceConfig, hooks: NsqTransportHooks | undefined): NsqServer {
  return new NsqServer({
    ...(config.lookupdHTTPAddresses ? { lookupdHTTPAddresses: config.lookupdHTTPAddresses } : {}),
    ...(config.nsqdTCPAddresses ? { nsqdTCPAddresses: config.nsqdTCPAddresses } : {}),
    channel: POINTS_CHANNEL,
    maxInFlight: 100,
    maxAttempts: 10,
    requeueDelay: (attempts) => Math.min(1000 * attempts, 30_000),
    consumer: { lookupdPollInterval: LOOKUPD_POLL_INTERVAL_MS },
    ...(hooks ? { hooks } : {}),
  });
}
