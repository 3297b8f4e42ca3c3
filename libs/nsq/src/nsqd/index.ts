export { NSQD, type NsqdMetadata } from './nsqd.js';
export { NSQD_OPTIONS, resolveNsqdOptions, defaultNodeId, SERVER_VERSION, type NsqdInput, type NsqdOptions } from './options.js';
export { MessageEvents, type MessageEvent, type MessageEventListener, type MessageEventType } from './events.js';
export { nsqdStats, formatStatsText, type NsqdStatsFilter, type NsqdStatsSnapshot } from './stats.js';
export { DiskQueue, DiskQueueError, type DiskQueueOptions } from './diskqueue.js';
export { LookupPeers, type LookupPeersOptions, type LookupRegistration } from './lookup-peer.js';
export { Topic } from './topic.js';
export { Channel } from './channel.js';
export { ClientV2, ClientState } from './client-v2.js';
