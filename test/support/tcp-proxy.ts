/**
 * A TCP proxy to stand between a client and a server (MariaDB) and simulate outages:
 * - stop() closes the listener and cuts every connection (new ones are refused); start() listens
 *   again on the same port;
 * - hold() keeps connections open but forwards nothing (a server that hangs); resume() cuts the
 *   held connections and forwards again.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private held = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<number> {
    if (this.server !== undefined) return this.port;
    const server = createServer((client) => {
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.on('data', (chunk) => {
        if (!this.held) upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        if (!this.held) client.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
    return this.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.cut();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  hold(): void {
    this.held = true;
  }

  resume(): void {
    this.cut();
    this.held = false;
  }

  private cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
