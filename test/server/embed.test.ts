/**
 * Library use: Stagegate attached to an app's own HTTP server, socket.io instance and mediasoup
 * worker. The app keeps its routes; Stagegate's are mounted through `httpHandler`; closing
 * Stagegate leaves the app's server, socket.io and worker running.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as mediasoup from 'mediasoup';
import { Server as IoServer } from 'socket.io';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createStagegate, type Stagegate } from '../../server/index.js';
import { connectRaw, joinRaw } from '../helpers/server.js';

let app: http.Server;
let io: IoServer;
let worker: mediasoup.types.Worker;
let stagegate: Stagegate;
let url: string;

beforeAll(async () => {
  worker = await mediasoup.createWorker({ logLevel: 'warn' });
  app = http.createServer();
  io = new IoServer(app);
  stagegate = await createStagegate({
    httpServer: app,
    io,
    workers: [worker],
    useEnv: false,
    config: { logLevel: 'silent', demo: false, apiSecret: 'app-secret-0123456789' },
  });
  // the app's own routing: its route first, then Stagegate's, then its 404
  app.on('request', (req, res) => {
    if (req.url === '/app') return void res.end('app route');
    void stagegate.httpHandler(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end('app 404');
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => void io.close(() => resolve()));
  worker.close();
});

it('serves its API and signaling on the app’s server, next to the app’s routes', async () => {
  expect(await (await fetch(`${url}/app`)).text()).toBe('app route');
  expect((await fetch(`${url}/nothing`)).status).toBe(404);
  await expect(stagegate.listen()).rejects.toThrow(/your/);

  const created = await fetch(`${url}/api/rooms`, {
    method: 'POST',
    headers: { authorization: 'Bearer app-secret-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'embedded' }),
  });
  expect(created.status).toBe(201);
  const room = stagegate.rooms.get('embedded')!;
  expect(room.worker).toBe(worker);

  const host = await connectRaw(url, {
    token: await stagegate.tokens.mint({ userId: 'h', name: 'H', roomId: 'embedded', preset: 'host' }),
  });
  await joinRaw(host);
  expect((await host.request('stage.join')).status).toBe('ON_STAGE');
  host.close();
});

it('close() leaves the app’s HTTP server, socket.io and worker running', async () => {
  await stagegate.close();
  expect(app.listening).toBe(true);
  expect(worker.closed).toBe(false);
  expect(await (await fetch(`${url}/app`)).text()).toBe('app route');
  expect(stagegate.rooms.list()).toEqual([]);
});
