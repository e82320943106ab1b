/**
 * The Outbox over a real socket.io server: groups (all, hosts, others) keep one turn's order for
 * each recipient, and a whole-state notification queued again in the same turn supersedes the
 * earlier one.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostsKey, Outbox, roomKey, userKey } from '../../server/signaling/outbox.js';

let httpServer: http.Server;
let ioServer: Server;
let url: string;
const clients: ClientSocket[] = [];

beforeAll(async () => {
  httpServer = http.createServer();
  ioServer = new Server(httpServer);
  ioServer.on('connection', (socket) => {
    const { user, host } = socket.handshake.auth as { user: string; host: boolean };
    void socket.join([roomKey('r'), userKey('r', user), ...(host ? [hostsKey('r')] : [])]);
    socket.emit('ready');
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await new Promise<void>((resolve) => void ioServer.close(() => resolve()));
});

/** A client that records every frame as [event, data]. */
async function client(user: string, host: boolean) {
  const socket = connect(url, { auth: { user, host }, transports: ['websocket'], forceNew: true });
  clients.push(socket);
  const frames: [string, unknown][] = [];
  socket.onAny((event: string, data: unknown) => event !== 'ready' && frames.push([event, data]));
  await new Promise<void>((resolve) => socket.once('ready', () => resolve()));
  return frames;
}

const requests = (n: number) => ({
  requests: Array.from({ length: n }, (_, i) => ({ userId: `u${i}`, name: `U${i}`, requestedAt: i })),
});

describe('Outbox', () => {
  it('sends each group its items in order, and only the newest whole state of a turn', async () => {
    const host = await client('h', true);
    const viewer = await client('v', false);
    const outbox = new Outbox(ioServer);
    outbox.broadcastTo('r', 'hosts', 'stageAccessRequestUpdate', requests(1));
    outbox.broadcastTo('r', 'all', 'stageModeUpdate', { mode: 'OPEN', by: 'h' });
    outbox.broadcastTo('r', 'hosts', 'stageAccessRequestUpdate', requests(2));
    outbox.broadcastTo('r', 'others', 'participantLeft', { userId: 'x' }, 'v');
    outbox.broadcastTo('r', 'hosts', 'newStageRequest', { request: requests(3).requests[2]! });
    outbox.broadcastTo('r', 'hosts', 'stageAccessRequestUpdate', requests(3));
    outbox.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(host).toEqual([
      [
        'batch',
        {
          items: [
            ['stageModeUpdate', { mode: 'OPEN', by: 'h' }],
            ['newStageRequest', { request: requests(3).requests[2] }],
            ['stageAccessRequestUpdate', requests(3)],
          ],
        },
      ],
    ]);
    // the viewer: the room's item, and the others' item (a batch item marked as not for it)
    expect(viewer).toEqual([
      [
        'batch',
        {
          items: [
            ['stageModeUpdate', { mode: 'OPEN', by: 'h' }],
            ['participantLeft', { userId: 'x' }, 'v'],
          ],
        },
      ],
    ]);
  });
});
