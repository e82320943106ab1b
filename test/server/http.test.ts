/**
 * The HTTP side as a browser, an attacker and a raw client see it: which origins may open sockets
 * and call the routes, JSON-only bodies, the pages' security headers, bodies too large and bad
 * percent-encodings on keep-alive connections (raw node:net sockets), and the API secret on every
 * /api route. Real server on port 0, real socket.io, real mediasoup worker.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Server as IoServer } from 'socket.io';
import { io as ioClient } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStagegate } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';

const EVIL = 'https://evil.example';
const FRIEND = 'https://app.example';

let server: TestServer; // demo mode, no configured origins
let friendly: TestServer; // allowedOrigins: [FRIEND]
let webRoot: string;
let host: string; // 127.0.0.1:<port>

beforeAll(async () => {
  webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-pages-'));
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>t</title>');
  server = await startServer({ demo: true, extra: { webRoot } });
  friendly = await startServer({ demo: true, config: { allowedOrigins: [FRIEND] } });
  host = new URL(server.url).host;
});
afterAll(async () => {
  await server?.close();
  await friendly?.close();
  fs.rmSync(webRoot, { recursive: true, force: true });
});

/** One request with full control of the headers (fetch would set Origin-related ones itself). */
function request(
  url: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${opts.path}`, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Writes `payload` on one raw TCP connection and collects what comes back until the server closes
 * it or `quietMs` pass without data. `closed` tells which.
 */
function raw(url: string, payload: string | Buffer, quietMs = 1500): Promise<{ text: string; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let text = '';
    let timer: NodeJS.Timeout;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), quietMs);
    };
    socket.on('data', (d) => {
      text += d.toString('latin1');
      arm();
    });
    socket.on('close', () => done(true));
    socket.on('error', () => undefined);
    socket.write(payload);
    arm();
  });
}

const statusLines = (text: string) => text.match(/^HTTP\/1\.1 \d{3}/gm) ?? [];

describe('browser origins', () => {
  it('socket.io never echoes a foreign Origin and refuses its handshake; same-origin and no Origin pass', async () => {
    const poll = '/socket.io/?EIO=4&transport=polling';
    const evil = await request(server.url, { path: poll, headers: { origin: EVIL } });
    expect(evil.status).toBe(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    const same = await request(server.url, { path: poll, headers: { origin: `http://${host}` } });
    expect(same.status).toBe(200);
    expect(same.headers['access-control-allow-origin']).toBeUndefined(); // same-origin needs none
    // behind a TLS proxy that forwards Host: the scheme differs, the host is ours
    expect(
      (
        await request(server.url, {
          path: poll,
          headers: { origin: 'https://webinar.example', host: 'webinar.example' },
        })
      ).status,
    ).toBe(200);
    expect((await request(server.url, { path: poll })).status).toBe(200);
    expect((await request(server.url, { path: poll, headers: { origin: 'null' } })).status).toBe(403);
    // the host name alone is not enough: another port is another origin
    const otherPort = await request(server.url, { path: poll, headers: { origin: 'http://127.0.0.1:1' } });
    expect(otherPort.status).toBe(403);

    // a configured origin gets CORS, and only that one
    const friend = await request(friendly.url, { path: poll, headers: { origin: FRIEND } });
    expect(friend.status).toBe(200);
    expect(friend.headers['access-control-allow-origin']).toBe(FRIEND);
    const notFriend = await request(friendly.url, { path: poll, headers: { origin: EVIL } });
    expect(notFriend.status).toBe(403);
    expect(notFriend.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a WebSocket from a foreign Origin is refused, with a valid token', async () => {
    const room = await server.sg.rooms.create('origin-ws');
    const token = await server.token('u', 'viewer', room.id);
    const connect = (origin?: string) =>
      new Promise<string>((resolve) => {
        const s = ioClient(server.url, {
          auth: { token },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
          ...(origin ? { extraHeaders: { origin } } : {}),
        });
        s.once('connect', () => (s.disconnect(), resolve('connected')));
        s.once('connect_error', () => (s.disconnect(), resolve('refused')));
      });
    expect(await connect(EVIL)).toBe('refused');
    expect(await connect(`http://${host}`)).toBe('connected');
    expect(await connect()).toBe('connected');
    room.close();
  });

  it('an app’s own socket.io server (any CORS) still refuses foreign origins on Stagegate’s namespace', async () => {
    const httpServer = http.createServer();
    const io = new IoServer(httpServer, { cors: { origin: true } }); // the app's choice
    const sg = await createStagegate({
      useEnv: false,
      httpServer,
      io,
      config: { numWorkers: 1, logLevel: 'silent', demo: false },
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
    try {
      const room = await sg.rooms.create('embedded-origin');
      const token = await sg.tokens.mint({ userId: 'u', name: 'U', roomId: room.id, preset: 'viewer' });
      const outcome = await new Promise<unknown>((resolve) => {
        const s = ioClient(url, {
          auth: { token },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
          extraHeaders: { origin: EVIL },
        });
        s.once('connect', () => (s.disconnect(), resolve('connected')));
        s.once('connect_error', (err: Error & { data?: unknown }) => (s.disconnect(), resolve(err.data)));
      });
      expect(outcome).toEqual({ code: 'FORBIDDEN', message: 'origin not allowed' });
    } finally {
      await sg.close();
      io.close();
      httpServer.closeAllConnections();
      await new Promise((r) => httpServer.close(r));
    }
  });

  it('a cross-site POST to /demo/rooms creates nothing: text/plain is 415, a foreign Origin is 403', async () => {
    const before = server.sg.rooms.list().length;
    // what a form or fetch(no-cors) on another site can send without a preflight
    const plain = await request(server.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { origin: EVIL, 'content-type': 'text/plain' },
      body: '{"mode":"OPEN"}',
    });
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.text)).toMatchObject({ error: { code: 'FORBIDDEN' } });
    // the same without Origin (an old browser, a proxy that strips it): still refused, 415
    const noOrigin = await request(server.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { 'content-type': 'text/plain' },
      body: '{"mode":"OPEN"}',
    });
    expect(noOrigin.status).toBe(415);
    expect(JSON.parse(noOrigin.text)).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
    const form = await request(server.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'mode=OPEN',
    });
    expect(form.status).toBe(415);
    const empty = await request(server.url, { method: 'POST', path: '/demo/rooms' });
    expect(empty.status).toBe(415);
    const tokenPlain = await request(server.url, {
      method: 'POST',
      path: '/demo/tokens',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(tokenPlain.status).toBe(415);
    // JSON from a foreign page (it would need a preflight, which is refused too)
    const json = await request(server.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { origin: EVIL, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(json.status).toBe(403);
    const preflight = await request(server.url, {
      method: 'OPTIONS',
      path: '/demo/rooms',
      headers: { origin: EVIL, 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(server.sg.rooms.list().length).toBe(before);

    // the demo page itself: same origin, JSON
    const ok = await request(server.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { origin: `http://${host}`, 'content-type': 'application/json; charset=utf-8' },
      body: '{}',
    });
    expect(ok.status).toBe(201);
    expect(server.sg.rooms.list().length).toBe(before + 1);
  });

  it('a configured origin gets its preflight answered and CORS on the answer', async () => {
    const preflight = await request(friendly.url, {
      method: 'OPTIONS',
      path: '/demo/rooms',
      headers: { origin: FRIEND, 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(FRIEND);
    expect(preflight.headers['access-control-allow-headers']).toContain('content-type');
    const created = await request(friendly.url, {
      method: 'POST',
      path: '/demo/rooms',
      headers: { origin: FRIEND, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(created.status).toBe(201);
    expect(created.headers['access-control-allow-origin']).toBe(FRIEND);
  });

  it('configuration: STAGEGATE_ALLOWED_ORIGINS is a comma-separated list of origins', async () => {
    const { loadConfig } = await import('../../server/config.js');
    expect(loadConfig({ STAGEGATE_ALLOWED_ORIGINS: `${FRIEND}, http://localhost:5173` }).allowedOrigins).toEqual([
      FRIEND,
      'http://localhost:5173',
    ]);
    expect(loadConfig({}).allowedOrigins).toEqual([]);
    expect(() => loadConfig({ STAGEGATE_ALLOWED_ORIGINS: 'https://app.example/' })).toThrow(/ALLOWED_ORIGINS/);
    expect(() => loadConfig({ STAGEGATE_ALLOWED_ORIGINS: '*' })).toThrow(/ALLOWED_ORIGINS/);
  });
});

describe('pages', () => {
  it('carry CSP (frame-ancestors none), nosniff, X-Frame-Options and Referrer-Policy', async () => {
    const page = await request(server.url, { path: '/index.html' });
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    const json = await request(server.url, { path: '/healthz' });
    expect(json.headers['x-content-type-options']).toBe('nosniff');
  });
});

describe('HTTP edge cases on keep-alive connections', () => {
  const auth = () => `Authorization: Bearer ${server.sg.apiSecret}\r\n`;

  it('a body too large is answered 413 and the connection closed, not left hanging', async () => {
    const big = 'x'.repeat(200_000);
    // declared length over the limit
    const declared = await raw(
      server.url,
      `POST /api/rooms HTTP/1.1\r\nHost: ${host}\r\n${auth()}Content-Type: application/json\r\n` +
        `Content-Length: ${big.length}\r\nConnection: keep-alive\r\n\r\n${big}` +
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    );
    expect(statusLines(declared.text)).toEqual(['HTTP/1.1 413']);
    expect(declared.text).toMatch(/connection: close/i);
    expect(declared.text).toContain('"code":"INVALID_REQUEST"');
    expect(declared.closed).toBe(true);

    // chunked: the size shows only while reading
    const chunk = 'y'.repeat(40_000);
    const chunked = await raw(
      server.url,
      `POST /demo/rooms HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n` +
        `${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(3) +
        `0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    );
    expect(statusLines(chunked.text)).toEqual(['HTTP/1.1 413']);
    expect(chunked.closed).toBe(true);

    // and through node:http's keep-alive agent: the next request gets a fresh connection and an answer
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          `${server.url}/api/rooms`,
          {
            agent,
            method: 'POST',
            headers: { authorization: `Bearer ${server.sg.apiSecret}`, 'content-type': 'application/json' },
          },
          (res) => (res.resume(), res.on('end', () => resolve(res.statusCode!))),
        );
        req.on('error', reject);
        req.end(big);
      });
      expect(first).toBe(413);
      const second = await new Promise<number>((resolve, reject) => {
        const req = http.get(`${server.url}/healthz`, { agent }, (res) => (res.resume(), resolve(res.statusCode!)));
        req.on('error', reject);
        req.setTimeout(3000, () => req.destroy(new Error('the next request hung')));
      });
      expect(second).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it('a refused small body keeps the connection usable: the next request on it is answered', async () => {
    const body = '{"mode":"OPEN"}';
    const r = await raw(
      server.url,
      `POST /demo/rooms HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    );
    expect(statusLines(r.text)).toEqual(['HTTP/1.1 415', 'HTTP/1.1 200']);
  });

  it('a malformed percent-encoding in a room path is a typed 400, and the connection lives on', async () => {
    const r = await raw(
      server.url,
      `GET /api/rooms/%E0%A4%A HTTP/1.1\r\nHost: ${host}\r\n${auth()}\r\n` +
        `DELETE /api/rooms/%ZZ HTTP/1.1\r\nHost: ${host}\r\n${auth()}\r\n` +
        `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    );
    expect(statusLines(r.text)).toEqual(['HTTP/1.1 400', 'HTTP/1.1 400', 'HTTP/1.1 200']);
    expect(r.text).toContain('"code":"INVALID_REQUEST"');
    expect(r.text).not.toContain('INTERNAL');
    expect(r.closed).toBe(false);
  });
});

describe('the API secret', () => {
  it('guards every /api route: without it or with a wrong one, 401 and nothing changes', async () => {
    const room = await server.sg.rooms.create('secret-room', 'REQUEST');
    const routes: [string, string, unknown?][] = [
      ['GET', '/api/rooms'],
      ['POST', '/api/rooms', { id: 'created-without-secret' }],
      ['GET', `/api/rooms/${room.id}`],
      ['DELETE', `/api/rooms/${room.id}`],
      ['POST', `/api/rooms/${room.id}/tokens`, { name: 'Mallory', preset: 'host' }],
      ['POST', `/api/rooms/${room.id}/stage/grant`, { userIds: ['x'] }],
      ['POST', `/api/rooms/${room.id}/stage/deny`, { userIds: ['x'] }],
      ['POST', `/api/rooms/${room.id}/stage/kick`, { userIds: ['x'] }],
      ['PUT', `/api/rooms/${room.id}/stage/mode`, { mode: 'OPEN' }],
      ['GET', '/api/rooms/nope'],
      ['GET', '/api/unknown'],
    ];
    for (const [method, p, body] of routes) {
      for (const authorization of [undefined, 'Bearer wrong-secret-wrong-secret', server.sg.apiSecret]) {
        const r = await request(server.url, {
          method,
          path: p,
          headers: {
            ...(authorization ? { authorization } : {}),
            ...(body ? { 'content-type': 'application/json' } : {}),
          },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        expect(r.status, `${method} ${p} with ${authorization ?? 'no secret'}`).toBe(401);
        expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      }
    }
    expect(server.sg.rooms.get(room.id)).toBe(room);
    expect(room.closed).toBe(false);
    expect(room.stage.mode).toBe('REQUEST');
    expect(server.sg.rooms.get('created-without-secret')).toBeUndefined();
    room.close();
  });
});
