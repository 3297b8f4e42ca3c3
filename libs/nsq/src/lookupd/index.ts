export { NSQLookupd, type LookupdRegistrationEvent, type NsqlookupdEvents } from './lookupd.js';
export { NSQLOOKUPD_OPTIONS, resolveNsqlookupdOptions, type NsqlookupdInput, type NsqlookupdOptions } from './options.js';
export {
  RegistrationDB,
  filterByActive,
  isTombstoned,
  listNodes,
  type NodeInfo,
  type PeerInfoJson,
  type Producer,
  type RegisteredPeer,
  type Registration,
  type RegistrationCategory,
} from './registration-db.js';
export { MAX_IDENTIFY_BODY, MAX_LINE_LENGTH } from './tcp.js';
