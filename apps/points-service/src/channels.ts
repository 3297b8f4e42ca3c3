import type { LoggerService } from '@nestjs/common';
import { LookupdHttpClient, NsqdHttpClient } from '../../../libs/nsq/src/index.js';

const HTTP_TIMEOUT_MS = 3000;

/**
 * Makes sure every channel of a topic exists before the first message arrives. nsqd copies a
 * message to the channels the topic has at that moment: if `points` were created by its SUB a
 * moment before `notifications`, the messages waiting in between would reach `points` only. So,
 * through each nsqlookupd: the channels are registered there (nsqd creates them when it creates
 * the topic, as NSQ does) and created on every nsqd that already exists. Best effort: a failure
 * is logged and the service starts anyway. With direct nsqd addresses (no lookupd) the channels
 * are created by the subscriptions.
 */
export async function provisionChannels(lookupdHTTPAddresses: readonly string[], topic: string, channels: readonly string[], logger: LoggerService): Promise<void> {
  const nsqds = new Set<string>();
  for (const address of lookupdHTTPAddresses) {
    const lookupd = new LookupdHttpClient(address, { timeoutMs: HTTP_TIMEOUT_MS });
    try {
      for (const channel of channels) await lookupd.createChannel(topic, channel);
      for (const node of await lookupd.nodes()) nsqds.add(`http://${node.broadcast_address}:${node.http_port}`);
    } catch (err) {
      logger.warn(`cannot register channels ${channels.join(', ')} of ${topic} at nsqlookupd ${address}: ${(err as Error).message}`);
    }
  }
  for (const address of nsqds) {
    const nsqd = new NsqdHttpClient(address, { timeoutMs: HTTP_TIMEOUT_MS });
    try {
      await nsqd.createTopic(topic);
      for (const channel of channels) await nsqd.createChannel(topic, channel);
    } catch (err) {
      logger.warn(`cannot create channels ${channels.join(', ')} of ${topic} on nsqd ${address}: ${(err as Error).message}`);
    }
  }
}
