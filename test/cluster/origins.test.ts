/**
 * Browser origins in cluster mode: a node accepts sockets and API calls from its own origin, from
 * the configured `allowedOrigins` and from every live node's public URL (learnt from the
 * heartbeats, so a page served by one node may talk to another), and refuses any other Origin:
 * the socket.io handshake fails and an /api POST answers 403 FORBIDDEN without doing anything,
 * also when the route would be relayed to the room's owner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { api, freePort, mint, startNode, startRedis, API_SECRET, type TestNode, type TestRedis } from './helpers.js';

const ALLOWED = 'https://app.example';
let redis: TestRedis;
let a: TestNode;
let b: TestNode;
let tokenForA: string;

beforeAll(async () => {
  redis = await startRedis();
  [a, b] = (await Promise.all(
    ['a', 'b'].map((id) => startNode(redis.url, id, { clusterLeaseMs: 1500, allowedOrigins: [ALLOWED] })),
  )) as [TestNode, TestNode];
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'o' })).status).toBe(201);
  tokenForA = await mint(a.url, 'o', 'v', 'viewer');
  // each node lists the other (heartbeats every lease / 3), and has taken its origin at its next tick
  for (const n of [a, b]) {
    const deadline = Date.now() + 10_000;
    while ((await api<{ nodes: unknown[] }>(n.url, 'GET', '/api/nodes')).json.nodes.length < 2) {
      if (Date.now() > deadline) throw new Error(`${n.nodeId} never heard of the other node`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await new Promise((r) => setTimeout(r, 1200));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

/** A socket.io connection to `url` with `origin` as its Origin header: 'connected' or the refusal. */
function socketWithOrigin(url: string, origin: string, transport: 'websocket' | 'polling'): Promise<string> {
  const socket = io(url, {
    auth: { token: tokenForA },
    transports: [transport],
    reconnection: false,
    forceNew: true,
    extraHeaders: { origin },
  });
  return new Promise<string>((resolve) => {
    socket.once('connect', () => resolve('connected'));
    socket.once('connect_error', (err: Error) => resolve(`refused: ${err.message}`));
  }).finally(() => socket.disconnect());
}

/** An API POST with `origin` as its Origin header. */
async function postWithOrigin(url: string, route: string, body: unknown, origin: string) {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_SECRET}`, 'content-type': 'application/json', origin },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const roomIds = async () =>
  (await api<{ rooms: { id: string }[] }>(a.url, 'GET', '/api/rooms')).json.rooms.map((r) => r.id).sort();

describe('cluster: browser origins', () => {
  it('sockets: the node itself, the other node and a configured origin are accepted; others are refused', async () => {
    for (const transport of ['websocket', 'polling'] as const) {
      // b relays to a (the owner); a serves it itself
      for (const node of [a, b]) {
        expect(await socketWithOrigin(node.url, a.url, transport)).toBe('connected');
        expect(await socketWithOrigin(node.url, b.url, transport)).toBe('connected');
        expect(await socketWithOrigin(node.url, ALLOWED, transport)).toBe('connected');
        for (const foreign of ['http://evil.example', `http://127.0.0.1:${await freePort()}`, 'null'])
          expect(await socketWithOrigin(node.url, foreign, transport)).toMatch(/^refused/);
      }
    }
  });

  it('HTTP API: a POST from a foreign origin is refused 403 and changes nothing; a node origin is accepted', async () => {
    const before = await roomIds();
    for (const node of [a, b]) {
      const foreign = await postWithOrigin(node.url, '/api/rooms', { id: `x-${node.nodeId}` }, 'http://evil.example');
      expect(foreign).toMatchObject({ status: 403, json: { error: { code: 'FORBIDDEN' } } });
      // a route the non-owner would relay to the owner: refused before it is relayed
      const relayed = await postWithOrigin(
        node.url,
        '/api/rooms/o/bans/someone',
        {},
        `http://127.0.0.1:${await freePort()}`,
      );
      expect(relayed).toMatchObject({ status: 403, json: { error: { code: 'FORBIDDEN' } } });
    }
    expect(await roomIds()).toEqual(before);
    expect((await api(b.url, 'GET', '/api/rooms/o/bans')).json).toEqual({ bans: [] });
    // the other node's public URL (a page it served) and the node's own are accepted
    expect((await postWithOrigin(b.url, '/api/rooms', { id: 'from-a' }, a.url)).status).toBe(201);
    expect((await postWithOrigin(b.url, '/api/rooms/o/tokens', { name: 'w', preset: 'viewer' }, b.url)).status).toBe(
      201,
    );
    expect(await roomIds()).toEqual([...before, 'from-a'].sort());
  });
});
