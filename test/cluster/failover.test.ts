/**
 * Failures in a three-node cluster: the owner node SIGKILLed (another node takes the room over
 * from Redis within the lease; statuses, requests and queue positions survive), an edge node
 * SIGKILLed (its participants come back through another node within the grace period), Redis
 * restarted empty (nodes report degraded service meanwhile, never crash, and write everything
 * back).
 */
import { describe, expect, it } from 'vitest';
import { until } from '../helpers/server.js';
import { api, mint, startNode } from './helpers.js';
import { clients, connectVia, nodes, nodeUrl, reconnectVia, redis, tokens, useThreeNodes } from './fixture.js';

const LEASE_MS = 1500;
const ROOM = 'fo';
useThreeNodes(LEASE_MS);

const url = nodeUrl;
const ownerOf = async (via: string) =>
  (await api<{ rooms: { id: string; node: string }[] }>(url(via), 'GET', '/api/rooms')).json.rooms.find(
    (r) => r.id === ROOM,
  )?.node;

const connect = connectVia;

const reconnect = (user: string, node: string) => reconnectVia(user, node, 50);

const dropped = (user: string) =>
  new Promise<string>((resolve) => {
    const s = clients.get(user)!.socket;
    if (!s.connected) resolve('already');
    else s.once('disconnect', resolve);
  });

describe('cluster failures', () => {
  let requestsBefore: unknown;

  it('sets up a room owned by A with people on every node', async () => {
    expect((await api(url('a'), 'POST', '/api/rooms', { id: ROOM })).status).toBe(201);
    const who = { host: 'host', v1: 'viewer', v2: 'viewer', v3: 'viewer', spk: 'speaker' };
    for (const [u, preset] of Object.entries(who)) tokens.set(u, await mint(url('c'), ROOM, u, preset));
    await connect('host', 'b');
    await connect('v1', 'c');
    await connect('v2', 'a');
    await connect('v3', 'c');
    await connect('spk', 'b');
    await clients.get('v1')!.request('stage.requestAccess');
    await clients.get('v2')!.request('stage.requestAccess');
    await clients.get('v3')!.request('stage.requestAccess');
    await clients.get('host')!.request('stage.grantAccess', { userIds: ['v3'] });
    await clients.get('spk')!.request('stage.join');
    requestsBefore = (await clients.get('host')!.request('stage.getAccessRequests')).requests;
    expect((requestsBefore as { userId: string }[]).map((r) => r.userId)).toEqual(['v1', 'v2']);
    expect(await ownerOf('b')).toBe('a');
  });

  it('SIGKILL of the owner: another node takes the room over within the lease, nothing is lost', async () => {
    const drops = ['host', 'v1', 'v3', 'spk'].map(dropped);
    const t0 = performance.now();
    await nodes.get('a')!.kill();
    nodes.delete('a');
    // the edges close the sockets they relayed to A: the clients reconnect
    await Promise.all(drops);
    const tDropped = performance.now() - t0;
    const [host, v1, v2, v3, spk] = await Promise.all([
      reconnect('host', 'b'),
      reconnect('v1', 'c'),
      reconnect('v2', 'c'), // was on A
      reconnect('v3', 'b'), // another node than before
      reconnect('spk', 'b'),
    ]);
    const tBack = performance.now() - t0;
    console.log(
      `[cluster] owner SIGKILL: relayed sockets dropped after ${tDropped.toFixed(0)} ms, ` +
        `everyone back with their status after ${tBack.toFixed(0)} ms (lease ${LEASE_MS} ms)`,
    );
    expect(tBack).toBeLessThan(LEASE_MS * 2 + 8000);
    expect(v1.self.stageStatus).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(v2.self.stageStatus).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(v3.self.stageStatus).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(spk.self.stageStatus).toBe('ON_STAGE');
    expect(host.self.stageStatus).toBe('ACCEPTED_TO_JOIN_STAGE');
    // the queue, with its timestamps and order, exactly as before
    expect(host.requests).toEqual(requestsBefore);
    const owner = await ownerOf('c');
    expect(['b', 'c']).toContain(owner);
    // and the stage goes on: the new owner takes actions
    const granted = await clients.get('host')!.request('stage.grantAccess', { userIds: ['v1'] });
    expect(granted.results.v1).toMatchObject({ ok: true });
    expect((await clients.get('host')!.request('stage.getAccessRequests')).requests).toEqual([
      (requestsBefore as unknown[])[1],
    ]);
  });

  it('SIGKILL of an edge node: its participants come back through another node with their status', async () => {
    const owner = (await ownerOf('b'))!;
    const edge = owner === 'b' ? 'c' : 'b';
    nodes.set('d', await startNode(redis.url, 'd', { clusterLeaseMs: LEASE_MS }));
    const onEdge = edge === 'c' ? ['v1', 'v2'] : ['host', 'v3', 'spk'];
    const statuses = Object.fromEntries(
      await Promise.all(
        onEdge.map(async (u) => [
          u,
          (await clients
            .get(u)!
            .request('stage.getAccessRequests')
            .catch(() => null)) && u,
        ]),
      ),
    );
    expect(Object.keys(statuses)).toEqual(onEdge);
    const before = Object.fromEntries(
      (
        await api<{ participants: { id: string; stageStatus: string }[] }>(url(owner), 'GET', `/api/rooms/${ROOM}`)
      ).json.participants.map((p) => [p.id, p.stageStatus]),
    );
    const others = [...clients.keys()].filter((u) => !onEdge.includes(u));
    const t0 = performance.now();
    await nodes.get(edge)!.kill();
    nodes.delete(edge);
    const back = await Promise.all(onEdge.map((u) => reconnect(u, 'd')));
    console.log(
      `[cluster] edge SIGKILL: its ${onEdge.length} participants back through another node with their status after ` +
        `${(performance.now() - t0).toFixed(0)} ms`,
    );
    for (const [i, u] of onEdge.entries()) expect(back[i]!.self.stageStatus).toBe(before[u]);
    // nobody saw them leave (within the grace period)
    await new Promise((r) => setTimeout(r, LEASE_MS));
    for (const u of others) expect(clients.get(u)!.received.map((r) => r.name)).not.toContain('participantLeft');
  });

  it('Redis restarted empty: nodes report degraded service, do not crash, and recover', async () => {
    const live = [...nodes.values()];
    const relayed = [...clients.entries()].filter(([u, c]) => u !== 'late' && c.socket.connected);
    let drops = 0;
    for (const [, c] of relayed) c.socket.on('disconnect', () => drops++);
    await redis.stop();
    const t0 = performance.now();
    await until(
      async () => {
        const all = await Promise.all(live.map((n) => fetch(`${n.url}/healthz`).then((r) => r.status)));
        return all.every((s) => s === 503);
      },
      10_000,
      'every node degraded',
    );
    const body = (await (await fetch(`${live[0]!.url}/healthz`)).json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'degraded', redis: 'down' });
    const tDegraded = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 500));
    await redis.start();
    const t1 = performance.now();
    await until(
      async () => {
        const all = await Promise.all(live.map((n) => fetch(`${n.url}/healthz`).then((r) => r.status)));
        return all.every((s) => s === 200);
      },
      15_000,
      'every node healthy again',
    );
    const tHealthy = performance.now() - t1;
    for (const n of live) expect(n.child.proc.exitCode).toBeNull();
    // the owner wrote the room back: it is listed, and someone new joins through any node
    await until(async () => (await ownerOf(live[0]!.nodeId)) !== undefined, 10_000, 'room state back in Redis');
    console.log(
      `[cluster] Redis stopped: every node degraded after ${tDegraded.toFixed(0)} ms; restarted empty: every node ` +
        `healthy after ${tHealthy.toFixed(0)} ms, the room back in Redis after ${(performance.now() - t1).toFixed(0)} ms`,
    );
    tokens.set('late', await mint(live[0]!.url, ROOM, 'late', 'viewer'));
    for (const n of live) {
      const snap = await reconnect('late', n.nodeId);
      expect(snap.participants.map((p) => p.id)).toContain('spk');
      clients.get('late')!.close();
    }
    // nobody was dropped for it (nodes are judged dead only a lease after Redis is back), and
    // relayed requests work again
    await new Promise((r) => setTimeout(r, LEASE_MS * 2));
    expect(drops).toBe(0);
    expect(relayed.length).toBeGreaterThan(3);
    for (const [, c] of relayed) expect((await c.ack('getRouterRtpCapabilities')).ok).toBe(true);
    // the statuses are still there
    const details = await api<{ participants: { id: string; stageStatus: string }[] }>(
      live[0]!.url,
      'GET',
      `/api/rooms/${ROOM}`,
    );
    const status = Object.fromEntries(details.json.participants.map((p) => [p.id, p.stageStatus]));
    expect(status).toMatchObject({ spk: 'ON_STAGE', v1: 'ACCEPTED_TO_JOIN_STAGE', v2: 'REQUESTED_TO_JOIN_STAGE' });
  });

  it('graceful shutdown of the owner hands the room over: no goodbye, everyone back with their status', async () => {
    const owner = (await ownerOf([...nodes.keys()][0]!))!;
    const other = [...nodes.keys()].find((id) => id !== owner)!;
    const before = Object.fromEntries(
      (
        await api<{ participants: { id: string; stageStatus: string }[] }>(url(other), 'GET', `/api/rooms/${ROOM}`)
      ).json.participants.map((p) => [p.id, p.stageStatus]),
    );
    const present = [...clients.entries()].filter(([u, c]) => u !== 'late' && c.socket.connected);
    const reasons = present.map(
      ([, c]) => new Promise<string>((r) => c.socket.once('disconnect', (reason) => r(String(reason)))),
    );
    await nodes.get(owner)!.stop(); // sg.close(), as on SIGTERM
    nodes.delete(owner);
    expect(new Set(await Promise.all(reasons))).toEqual(new Set(['transport close']));
    for (const [, c] of present) expect(c.received.map((r) => r.name)).not.toContain('goodbye');
    const back = await Promise.all(present.map(([u]) => reconnect(u, other)));
    for (const [i, [u]] of present.entries()) expect(back[i]!.self.stageStatus).toBe(before[u]);
    expect(await ownerOf(other)).toBe(other);
  });
});
