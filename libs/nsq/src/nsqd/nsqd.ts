import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, fsyncSync, writeSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { NsqLogger } from '../client/logger.js';
import { boundAddress, listenerAddress, listenOn } from '../internal/listen.js';
import { MAGIC_V2, FrameType } from '../protocol/constants.js';
import { isEphemeral, isValidChannelName, isValidTopicName } from '../protocol/names.js';
import type { Channel } from './channel.js';
import { ChannelStateError } from './channel.js';
import { ClientV2, ProtocolError, type ClientHost } from './client-v2.js';
import type { NsqdContext } from './context.js';
import { MessageEvents } from './events.js';
import { NsqdHttpServer } from './http.js';
import { LookupPeers, type LookupRegistration } from './lookup-peer.js';
import { type NsqdInput, type NsqdOptions, resolveNsqdOptions, SERVER_VERSION } from './options.js';
import { Topic } from './topic.js';

/** How long a new topic waits for lookupd's list of its channels before it starts fanning out. */
const LOOKUPD_CHANNELS_TIMEOUT_MS = 2000;

export interface NsqdMetadata {
  topics: Array<{ name: string; paused: boolean; channels: Array<{ name: string; paused: boolean }> | null }> | null;
  version: string;
}

/**
 * nsqd in TypeScript, wire-compatible with nsqd 1.3.0: the TCP protocol V2 server, the HTTP API,
 * topics and channels with memory + disk queues, in-flight / deferred timers, metadata persistence
 * and registration with nsqlookupd. All state lives on the Node event loop, so no locks.
 *
 * `events` is the per-message lifecycle stream (published, delivered, finished, requeued, ...).
 */
export class NSQD extends EventEmitter {
  readonly options: NsqdOptions;
  readonly logger: NsqLogger;
  readonly events = new MessageEvents();
  readonly topics = new Map<string, Topic>();
  readonly clients = new Map<number, ClientV2>();
  readonly startTime = Math.floor(Date.now() / 1000);
  readonly tlsContext: SecureContext | undefined;
  private clientSeq = 0;
  private tcpServer: Server | undefined;
  private http: NsqdHttpServer | undefined;
  private https: NsqdHttpServer | undefined;
  private lookup: LookupPeers | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private loading = false;
  private exiting = false;
  private started = false;
  private closing: Promise<void> | undefined;
  private healthError: Error | undefined;
  private lockPath: string | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly context: NsqdContext;
  private readonly clientHost: ClientHost;

  constructor(input?: NsqdInput) {
    super();
    this.options = resolveNsqdOptions(input);
    this.logger = this.options.logger;
    this.tlsContext = this.makeTlsContext();
    this.context = {
      options: this.options,
      logger: this.logger,
      events: this.events,
      notify: (what) => this.onTopologyChange(what),
      setHealth: (err) => {
        this.healthError = err;
      },
      consumer: (id) => this.clients.get(id),
    };
    this.clientHost = {
      options: this.options,
      logger: this.logger,
      events: this.events,
      authEnabled: this.options.authHttpAddresses.length > 0,
      tlsContext: this.tlsContext,
      getTopic: (name) => this.getTopic(name),
      subscribe: (topic, channel, client) => this.subscribe(topic, channel, client),
      clientClosed: (client) => this.clientClosed(client),
    };
  }

  // ---- addresses -------------------------------------------------------------------------------

  get tcpAddress(): string {
    return listenerAddress(this.tcpServer);
  }
  get httpAddress(): string {
    return this.http?.address ?? '';
  }
  get httpsAddress(): string | undefined {
    return this.https?.address;
  }
  get tcpPort(): number {
    return boundAddress(this.tcpServer)?.port ?? 0;
  }
  get httpPort(): number {
    return this.http?.port ?? 0;
  }
  get broadcastTcpPort(): number {
    return this.options.broadcastTcpPort || this.tcpPort;
  }
  get broadcastHttpPort(): number {
    return this.options.broadcastHttpPort || this.httpPort;
  }
  /** `<broadcast address>:<tcp port>`: how history and nsqadmin tell nsqd nodes apart. */
  get identity(): string {
    return `${this.options.broadcastAddress}:${this.broadcastTcpPort}`;
  }
  get health(): string {
    return this.healthError ? `NOK - ${this.healthError.message}` : 'OK';
  }
  get isHealthy(): boolean {
    return this.healthError === undefined;
  }
  get isExiting(): boolean {
    return this.exiting;
  }
  get lookupdAddresses(): string[] {
    return this.lookup?.addresses ?? [...this.options.lookupdTcpAddresses];
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** Locks the data dir, loads nsqd.dat, listens on TCP and HTTP(S), registers with lookupd. */
  async start(): Promise<void> {
    if (this.started) throw new Error('NSQD already started');
    this.started = true;
    const dataPath = this.dataPath;
    mkdirSync(dataPath, { recursive: true });
    this.lockDataPath(dataPath);
    try {
      this.loadMetadata();
      this.persistMetadata();
      this.tcpServer = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
      await listenOn(this.tcpServer, this.options.tcpAddress);
      this.logger.info(`TCP: listening on ${this.tcpAddress}`);
      if (this.options.httpAddress) {
        this.http = new NsqdHttpServer(this, false);
        await this.http.listen(this.options.httpAddress);
        this.logger.info(`HTTP: listening on ${this.http.address}`);
      }
      if (this.options.httpsAddress) {
        if (!this.tlsContext) throw new Error('--https-address needs --tls-cert and --tls-key');
        this.https = new NsqdHttpServer(this, true);
        await this.https.listen(this.options.httpsAddress);
        this.logger.info(`HTTPS: listening on ${this.https.address}`);
      }
      this.lookup = new LookupPeers({
        addresses: this.options.lookupdTcpAddresses,
        identify: {
          broadcast_address: this.options.broadcastAddress,
          hostname: hostname(),
          tcp_port: this.broadcastTcpPort,
          http_port: this.broadcastHttpPort,
          version: SERVER_VERSION,
        },
        registrations: () => this.registrations(),
        logger: this.logger,
        httpTimeoutMs: this.options.httpClientRequestTimeout,
      });
      this.lookup.start();
      this.scanTimer = setInterval(() => this.scanQueues(), this.options.queueScanInterval);
    } catch (err) {
      await this.shutdown();
      throw err;
    }
  }

  /**
   * Graceful shutdown as nsqd's Exit: stop listening, close client connections, persist metadata,
   * write every topic's and channel's memory, in-flight and deferred messages to disk, sync.
   * Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.exiting = true;
    if (this.scanTimer) clearInterval(this.scanTimer);
    const tcpClosed = this.tcpServer ? new Promise<void>((resolve) => this.tcpServer!.close(() => resolve())) : Promise.resolve();
    for (const client of [...this.clients.values()]) client.destroy();
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([tcpClosed, this.http?.close(), this.https?.close()]);
    try {
      if (this.lockPath) this.persistMetadata();
    } catch (err) {
      this.logger.error(`failed to persist metadata - ${(err as Error).message}`);
    }
    for (const topic of this.topics.values()) {
      try {
        topic.close();
      } catch (err) {
        this.logger.error(`TOPIC(${topic.name}) close failed - ${(err as Error).message}`);
      }
    }
    await this.lookup?.close();
    this.unlockDataPath();
  }

  // ---- TCP -------------------------------------------------------------------------------------

  private onConnection(socket: Socket): void {
    if (this.exiting) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    const remote = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`.replace(/^::ffff:/, '');
    this.logger.info(`TCP: new client(${remote})`);
    let head: Buffer = Buffer.alloc(0);
    const onMagic = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < 4) return;
      socket.off('data', onMagic);
      this.sockets.delete(socket);
      const magic = head.subarray(0, 4);
      if (!magic.equals(MAGIC_V2)) {
        this.logger.error(`client(${remote}) bad protocol magic '${magic.toString('latin1')}'`);
        const frame = Buffer.allocUnsafe(8 + 14);
        frame.writeInt32BE(4 + 14, 0);
        frame.writeInt32BE(FrameType.Error, 4);
        frame.write('E_BAD_PROTOCOL', 8, 'latin1');
        socket.end(frame);
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      this.logger.info(`CLIENT(${remote}): desired protocol magic '  V2'`);
      const client = new ClientV2(++this.clientSeq, socket, this.clientHost);
      this.clients.set(client.id, client);
      client.feed(head.subarray(4));
    };
    socket.on('data', onMagic);
    // allowHalfOpen: a client that stops sending before a full magic is simply closed
    const onEnd = (): void => {
      if (this.sockets.has(socket)) socket.destroy();
    };
    socket.once('end', onEnd);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private subscribe(topicName: string, channelName: string, client: ClientV2): Channel {
    if (this.exiting) throw new ProtocolError('E_SUB_FAILED', 'SUB failed exiting');
    const topic = this.getTopic(topicName);
    const { channel } = topic.getChannel(channelName);
    try {
      channel.addClient(client);
    } catch (err) {
      if (err instanceof ChannelStateError) throw new ProtocolError('E_SUB_FAILED', `SUB failed ${err.message}`);
      throw err;
    }
    return channel;
  }

  private clientClosed(client: ClientV2): void {
    if (!this.clients.delete(client.id)) return;
    const channel = client.channel;
    if (channel === undefined) return;
    const emptyEphemeral = channel.removeClient(client);
    if (!emptyEphemeral) return;
    const topic = this.topics.get(channel.topicName);
    if (topic === undefined) return;
    topic.deleteChannel(channel.name);
    if (topic.ephemeral && topic.channels.size === 0) this.deleteTopic(topic.name);
  }

  // ---- topics ----------------------------------------------------------------------------------

  /** The topic, created if needed (nsqd GetTopic). Throws when nsqd is exiting. */
  getTopic(name: string): Topic {
    const existing = this.topics.get(name);
    if (existing) return existing;
    if (this.exiting) throw new Error('exiting');
    const topic = new Topic(name, this.context);
    this.topics.set(name, topic);
    this.logger.info(`TOPIC(${name}): created`);
    this.onTopologyChange({ topic: name, created: true, ephemeral: topic.ephemeral });
    if (!this.loading) this.adoptLookupdChannels(topic);
    return topic;
  }

  getExistingTopic(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  deleteTopic(name: string): boolean {
    const topic = this.topics.get(name);
    if (!topic) return false;
    this.topics.delete(name);
    topic.delete();
    this.logger.info(`TOPIC(${name}): deleted`);
    this.onTopologyChange({ topic: name, created: false, ephemeral: topic.ephemeral });
    return true;
  }

  /**
   * nsqd creates a new topic's channels that other nsqd's have (known to lookupd), so no message
   * published before the first consumer arrives misses a channel. Until lookupd answers (bounded)
   * the topic holds its messages.
   */
  private adoptLookupdChannels(topic: Topic): void {
    if (!this.lookup || this.lookup.addresses.length === 0) return;
    topic.hold(true);
    const timeout = new Promise<string[]>((resolve) => setTimeout(() => resolve([]), LOOKUPD_CHANNELS_TIMEOUT_MS).unref());
    Promise.race([this.lookup.channelsFor(topic.name), timeout])
      .then((channels) => {
        if (topic.exiting) return;
        for (const c of channels) if (isValidChannelName(c) && !isEphemeral(c)) topic.getChannel(c);
      })
      .catch((err: unknown) => this.logger.warn(`TOPIC(${topic.name}): lookupd channels query failed - ${(err as Error).message}`))
      .finally(() => topic.hold(false));
  }

  private onTopologyChange(what: { topic: string; channel?: string; created: boolean; ephemeral: boolean }): void {
    if (what.channel !== undefined) {
      this.logger.info(`TOPIC(${what.topic}): ${what.created ? 'new' : 'deleted'} channel(${what.channel})`);
    }
    if (this.loading) return;
    if (what.created) this.lookup?.register(what.topic, what.channel);
    else this.lookup?.unregister(what.topic, what.channel);
    const ephemeralTopic = isEphemeral(what.topic);
    if (!what.ephemeral && !ephemeralTopic) {
      try {
        this.persistMetadata();
      } catch (err) {
        this.logger.error(`failed to persist metadata - ${(err as Error).message}`);
      }
    }
  }

  private registrations(): LookupRegistration[] {
    const out: LookupRegistration[] = [];
    for (const topic of this.topics.values()) {
      if (topic.channels.size === 0) out.push({ topic: topic.name });
      for (const channel of topic.channels.keys()) out.push({ topic: topic.name, channel });
    }
    return out;
  }

  /** Sets the lookupd TCP addresses at runtime (PUT /config/nsqlookupd_tcp_addresses). */
  setLookupdAddresses(addresses: string[]): void {
    this.options.lookupdTcpAddresses = [...addresses];
    this.lookup?.setAddresses(addresses);
  }

  private scanQueues(): void {
    const now = Date.now();
    for (const topic of this.topics.values()) {
      for (const channel of topic.channels.values()) {
        try {
          channel.processTimers(now);
        } catch (err) {
          this.logger.error(`TOPIC(${topic.name}):CHANNEL(${channel.name}) queue scan failed - ${(err as Error).message}`);
        }
      }
    }
  }

  // ---- metadata --------------------------------------------------------------------------------

  get dataPath(): string {
    return this.options.dataPath || process.cwd();
  }

  private get metadataFile(): string {
    return join(this.dataPath, 'nsqd.dat');
  }

  metadata(): NsqdMetadata {
    const topics: NonNullable<NsqdMetadata['topics']> = [];
    for (const topic of this.topics.values()) {
      if (topic.ephemeral) continue;
      const channels = [...topic.channels.values()].filter((c) => !c.ephemeral).map((c) => ({ name: c.name, paused: c.paused }));
      topics.push({ name: topic.name, paused: topic.paused, channels });
    }
    return { topics, version: SERVER_VERSION };
  }

  /** Writes nsqd.dat (tmp file, fsync, rename), as nsqd does after every topology change. */
  persistMetadata(): void {
    const file = this.metadataFile;
    const tmp = `${file}.${Math.floor(Math.random() * 1e9)}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.metadata()));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }

  private loadMetadata(): void {
    const file = this.metadataFile;
    if (!existsSync(file)) return;
    let meta: NsqdMetadata;
    try {
      meta = JSON.parse(readFileSync(file, 'utf8')) as NsqdMetadata;
    } catch (err) {
      throw new Error(`failed to parse metadata ${file} - ${(err as Error).message}`);
    }
    this.loading = true;
    try {
      for (const t of meta.topics ?? []) {
        if (!isValidTopicName(t.name)) {
          this.logger.warn(`skipping creation of invalid topic ${t.name}`);
          continue;
        }
        const topic = this.getTopic(t.name);
        if (t.paused) topic.pause();
        for (const c of t.channels ?? []) {
          if (!isValidChannelName(c.name)) {
            this.logger.warn(`skipping creation of invalid channel ${c.name}`);
            continue;
          }
          const { channel } = topic.getChannel(c.name);
          if (c.paused) channel.pause();
        }
      }
    } finally {
      this.loading = false;
    }
  }

  /**
   * One nsqd per data dir (nsqd flocks it): a lock file holding our pid; a stale lock (its process
   * is gone) is taken over.
   */
  private lockDataPath(dataPath: string): void {
    const lock = join(dataPath, 'nsqd.lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(lock, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        this.lockPath = lock;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(readFileSync(lock, 'utf8').trim());
        if (pid > 0 && pid !== process.pid && processAlive(pid)) {
          throw new Error(`--data-path=${dataPath} in use (possibly by another instance of nsqd, pid ${pid})`);
        }
        unlinkSync(lock);
      }
    }
    throw new Error(`could not lock --data-path=${dataPath}`);
  }

  private unlockDataPath(): void {
    if (!this.lockPath) return;
    try {
      unlinkSync(this.lockPath);
    } catch {
      // already gone
    }
    this.lockPath = undefined;
  }

  private makeTlsContext(): SecureContext | undefined {
    const o = this.options;
    if (!o.tls && !(o.tlsCert && o.tlsKey)) return undefined;
    return createSecureContext({
      ...(o.tlsCert ? { cert: readFileSync(o.tlsCert) } : {}),
      ...(o.tlsKey ? { key: readFileSync(o.tlsKey) } : {}),
      ...(o.tlsRootCaFile ? { ca: readFileSync(o.tlsRootCaFile) } : {}),
      minVersion: o.tlsMinVersion === 'tls1.3' ? 'TLSv1.3' : 'TLSv1.2',
      ...o.tls,
    });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
