/**
 * A node's part of a room for another owner spreads over its workers (in-node placement and
 * pipes, as on one node). When one of those workers dies, the owner resets only the participants
 * whose transports were on it. Real Redis, two node processes, raw signaling clients.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { roomClients } from './fixture.js';
import { api, startNode, startRedis, type TestNode, type TestRedis } from './helpers.js';

let redis: TestRedis;
let a: TestNode;
let c: TestNode;
const room = roomClients('edge');

beforeAll(async () => {
  redis = await startRedis();
  // C: two workers, one consumer per router: its second viewer's transport goes to an edge router
  [a, c] = await Promise.all([
    startNode(redis.url, 'a'),
    startNode(redis.url, 'c', { numWorkers: 2, maxConsumersPerRouter: 1 }),
  ]);
});

afterAll(async () => {
  room.close();
  await Promise.all([a?.stop(), c?.stop()]);
  await redis?.stop();
});

interface Part {
  participants: Record<string, { send?: string; recv?: string }>;
  routers: { id: string; role: string; workerPid: number }[];
}

const partOn = async (url: string, roomId: string) =>
  (await api<{ rooms: (Part & { roomId: string })[] }>(url, 'GET', '/api/node/media')).json.rooms.find(
    (p) => p.roomId === roomId,
  );

it("an edge worker of a node's part of a room dies: only the participants whose transports were on it are reset", async () => {
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'edge', mode: 'OPEN' })).status).toBe(201);
  const { join, speak, consume } = room;
  const { client: spk, producerId } = await speak(a.url, 'spk', 'audio', 5000);
  const [v1, v2] = [await join(c.url, 'v1', 'viewer'), await join(c.url, 'v2', 'viewer')];
  for (const viewer of [v1, v2]) expect((await consume(viewer, producerId)).ok).toBe(true);
  const part = await partOn(c.url, 'edge');
  const [origin, edge] = part!.routers;
  expect([origin?.role, edge?.role]).toEqual(['origin', 'edge']);
  expect(part!.participants).toEqual({ v1: { recv: origin!.id }, v2: { recv: edge!.id } });
  expect(edge!.workerPid).not.toBe(origin!.workerPid);
  // C's /metrics counts the part's routers on its workers, though the room is A's
  const metrics = await (await fetch(`${c.url}/metrics`)).text();
  expect(metrics).toMatch(/^stagegate_rooms 0$/m);
  expect(metrics).toContain(`stagegate_worker_routers{pid="${origin!.workerPid}",role="origin"} 1`);
  expect(metrics).toContain(`stagegate_worker_routers{pid="${edge!.workerPid}",role="edge"} 1`);

  const reset = v2.next('mediaReset');
  process.kill(edge!.workerPid, 'SIGKILL');
  expect(await reset).toEqual({ reason: 'worker-died' });
  // set up again at once: on the part's live router
  expect((await v2.ack('createTransport', { direction: 'recv' })).ok).toBe(true);
  expect((await v2.ack('consume', { producerId })).ok).toBe(true);
  const after = await partOn(c.url, 'edge');
  expect(after!.participants.v2?.recv).toBeDefined();
  expect(after!.routers.map((r) => r.workerPid)).not.toContain(edge!.workerPid);
  // the viewer on the live router and the speaker were not reset; v1 still consumes
  for (const other of [v1, spk]) expect(other.received.map((r) => r.name)).not.toContain('mediaReset');
  expect(after!.participants.v1).toEqual({ recv: origin!.id });
  expect((await v1.ack('consume', { producerId })).ok).toBe(false); // already consuming it
});
