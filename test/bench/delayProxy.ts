/**
 * A TCP proxy that holds every chunk `oneWayMs` in each direction: the join benchmark's speaker
 * reaches a server's signaling through it, as over a network with a round trip of 2 × oneWayMs.
 * Only the signaling (socket.io's WebSocket) goes through it: the media takes the server's ICE
 * candidates directly. Chunks leave in order (Node runs timers of one duration first in, first out).
 */
import net from 'node:net';

export interface DelayProxy {
  url: string;
  close(): Promise<void>;
}

export async function startDelayProxy(targetUrl: string, oneWayMs: number): Promise<DelayProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) =>
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, oneWayMs),
      );
      from.on('end', () => setTimeout(() => to.end(), oneWayMs));
      from.on('error', () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
