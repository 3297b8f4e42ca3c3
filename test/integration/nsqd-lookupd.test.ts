/**
 * nsqd ↔ nsqlookupd behaviour that both nsqd's must share: when nsqd creates a new topic it asks
 * every lookupd for the topic's channels and creates them, so messages published before the first
 * local consumer arrives are kept for channels that exist elsewhere in the cluster.
 */
import { afterAll, expect, it } from '@jest/globals';
import { NsqdHttpClient } from '../../libs/nsq/src/client/http.js';
import { describeEachImpl } from '../support/nsq-bin.js';
import { startNsqd, startNsqlookupd, stopAll } from '../support/processes.js';
import { uniqueName } from '../support/client.js';
import { waitFor } from '../support/wait.js';

describeEachImpl('nsqd with nsqlookupd', (impl) => {
  afterAll(stopAll);

  it('creates a new topic with the channels lookupd knows, and registers topics and channels', async () => {
    const lookupd = await startNsqlookupd({ impl });
    const lookupdTcpAddresses = [lookupd.tcpAddress];
    const [a, b] = await Promise.all([startNsqd({ impl, lookupdTcpAddresses }), startNsqd({ impl, lookupdTcpAddresses })]);
    const topic = uniqueName('adopt');
    const apiA = new NsqdHttpClient(a.httpAddress);
    await apiA.createTopic(topic);
    await apiA.createChannel(topic, 'archive');
    await apiA.createChannel(topic, 'live#ephemeral');
    const channelsUrl = `${lookupd.httpAddress}/channels?topic=${topic}`;
    await waitFor(async () => {
      const res = (await (await fetch(channelsUrl)).json()) as { channels: string[] };
      return res.channels.includes('archive');
    }, 10_000, 'lookupd knows the channel of nsqd A');

    // the first publish on B creates the topic there: B adopts 'archive' (not the ephemeral one)
    const apiB = new NsqdHttpClient(b.httpAddress);
    await apiB.publish(topic, 'kept for archive');
    const stats = await waitFor(async () => {
      const s = await apiB.stats({ topic });
      const t = s.topics.find((x) => x.topic_name === topic);
      return t && t.channels.length > 0 && t.channels[0]!.depth === 1 ? t : undefined;
    }, 10_000, 'the message in B\'s adopted channel');
    expect(stats.channels.map((c) => c.channel_name)).toEqual(['archive']);

    const lookup = (await (await fetch(`${lookupd.httpAddress}/lookup?topic=${topic}`)).json()) as {
      producers: Array<{ tcp_port: number }>;
    };
    expect(lookup.producers.map((p) => p.tcp_port).sort()).toEqual([a.tcpPort, b.tcpPort].sort());
  }, 30_000);
});
