/** Listening and naming listeners, for the TCP and HTTP servers of nsqd and nsqlookupd. */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';

/**
 * Listens on host:port (no host = all interfaces, port 0 = OS-picked) and resolves with the bound
 * address; a failure to listen rejects. `onLaterError` takes the server's errors once it listens.
 */
export function listen(server: Server | HttpServer, host: string | undefined, port: number, onLaterError?: (err: Error) => void): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      if (onLaterError) server.on('error', onLaterError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Listens on '<host>:<port>' ('' host = all interfaces, port 0 = OS-picked). */
export async function listenOn(server: Server | HttpServer, address: string): Promise<void> {
  const idx = address.lastIndexOf(':');
  const host = idx > 0 ? address.slice(0, idx).replace(/^\[|\]$/g, '') : '';
  const port = Number(address.slice(idx + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid listen address ${JSON.stringify(address)} (want <host>:<port>)`);
  }
  await listen(server, host || undefined, port);
}

/** `ip:port` as Go prints a net.Addr. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  const h = host ?? '';
  return `${h.includes(':') ? `[${h}]` : h}:${port ?? 0}`;
}

/** The address a server is bound to; undefined when it does not listen. */
export function boundAddress(server: Server | HttpServer | undefined): AddressInfo | undefined {
  const a = server?.address();
  return a !== null && typeof a === 'object' ? a : undefined;
}

/** '<host>:<port>' of a listener ('' when it does not listen). */
export function listenerAddress(server: Server | HttpServer | undefined): string {
  const a = server?.address();
  if (!a || typeof a === 'string') return a ?? '';
  return formatAddress(a.address, a.port);
}
