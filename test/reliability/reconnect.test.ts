/**
 * Dropped connections, second connections and dead workers, over raw sockets against a real
 * server and a real mediasoup worker (killed with SIGKILL for the worker test).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Room } from '../../server/room/Room.js';
import {
  connectRaw,
  DTLS,
  joinRaw,
  rtpParameters,
  startServer,
  until,
  type RawClient,
  type TestServer,
} from '../helpers/server.js';

const GRACE_MS = 1500;
let server: TestServer;
let room: Room;
const clients: RawClient[] = [];

beforeAll(async () => {
  server = await startServer({ config: { reconnectGraceMs: GRACE_MS } });
});
afterAll(() => server.close());
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  if (room && !room.closed) room.close();
});

async function connect(userId: string, preset: 'host' | 'speaker' | 'viewer') {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
  clients.push(c);
  const snapshot = await joinRaw(c);
  return { c, snapshot };
}

async function produceAudio(c: RawClient) {
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  return c.request('produce', { transportId: t.id, kind: 'audio', rtpParameters: rtpParameters('audio') });
}

async function workerProducers() {
  return (await room.router.dump()).mapProducerIdConsumerIds.length;
}

describe('reconnect within the grace period', () => {
  it('keeps stage status and queue position; producers close at once', async () => {
    room = await server.sg.rooms.create('r-reconnect');
    const { c: host } = await connect('host', 'host');
    const { c: a } = await connect('a', 'viewer');
    await connect('b', 'viewer').then(({ c }) => c.request('stage.requestAccess'));
    await a.request('stage.requestAccess'); // a is second in the queue
    const { c: s } = await connect('s', 'speaker');
    await s.request('stage.join');
    await produceAudio(s);
    expect(await workerProducers()).toBe(1);

    // both drop
    const closed = host.next('producerClosed');
    a.close();
    s.close();
    expect(await closed).toMatchObject({ userId: 's', reason: 'disconnected' });
    expect(await workerProducers()).toBe(0);

    // both come back with a new connection within the grace period
    const { snapshot: sa } = await connect('a', 'viewer');
    const { c: s2, snapshot: ss } = await connect('s', 'speaker');
    expect(sa.self.stageStatus).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(room.stage.getAccessRequests('host').map((r) => r.userId)).toEqual(['b', 'a']);
    expect(ss.self.stageStatus).toBe('ON_STAGE');
    // others never saw them leave
    expect(host.received.some((n) => n.name === 'participantLeft')).toBe(false);
    // the speaker publishes again on the new connection
    await produceAudio(s2);
    expect(await workerProducers()).toBe(1);
  });

  it('forgets the participant after the grace period', async () => {
    room = await server.sg.rooms.create('r-grace');
    const { c: host } = await connect('host', 'host');
    const { c: v } = await connect('v', 'viewer');
    await v.request('stage.requestAccess');
    v.close();
    expect(await host.next('participantLeft', GRACE_MS + 2000)).toEqual({ userId: 'v' });
    expect(room.stage.getAccessRequests('host')).toEqual([]);
  });

  it('a drop in the middle of stage.join leaves a consistent state and the speaker can publish after reconnecting', async () => {
    room = await server.sg.rooms.create('r-midjoin');
    await connect('host', 'host');
    const { c: s } = await connect('s', 'speaker');
    s.socket.emit('stage.join', {}, () => undefined);
    s.close();
    const { c: s2, snapshot } = await connect('s', 'speaker');
    expect(['ON_STAGE', 'ACCEPTED_TO_JOIN_STAGE']).toContain(snapshot.self.stageStatus);
    expect(await workerProducers()).toBe(0);
    if (snapshot.self.stageStatus !== 'ON_STAGE') await s2.request('stage.join');
    await produceAudio(s2);
    expect(await workerProducers()).toBe(1);
  });
});

describe('a second connection of the same user', () => {
  it('replaces the first, which is told why; stage status is kept', async () => {
    room = await server.sg.rooms.create('r-replace');
    const { c: first } = await connect('s', 'speaker');
    await first.request('stage.join');
    await produceAudio(first);
    const bye = first.next('goodbye');
    const gone = new Promise((resolve) => first.socket.once('disconnect', resolve));
    const { c: second, snapshot } = await connect('s', 'speaker');
    expect(await bye).toEqual({ reason: 'replaced' });
    await gone;
    expect(snapshot.self.stageStatus).toBe('ON_STAGE');
    expect(await workerProducers()).toBe(0); // the first connection's media went with it
    // the old connection's disconnect did not take the new one down
    await new Promise((r) => setTimeout(r, 100));
    expect(room.participants.get('s')?.connected).toBe(true);
    expect((await second.request('stage.leave')).status).toBe('ACCEPTED_TO_JOIN_STAGE');
  });
});

describe('worker death', () => {
  it('moves the room to a live worker, keeps the stage, tells clients to set media up again', async () => {
    room = await server.sg.rooms.create('r-worker');
    const { c: host } = await connect('host', 'host');
    const { c: s } = await connect('s', 'speaker');
    const { c: v } = await connect('v', 'viewer');
    await v.request('stage.requestAccess');
    await s.request('stage.join');
    await produceAudio(s);
    const deadPid = room.worker.pid;
    const before = room.stage.members().map((m) => ({ ...m }));

    const resets = [host, s, v].map((c) => c.next('mediaReset', 10_000));
    process.kill(deadPid, 'SIGKILL');
    for (const r of resets) expect(await r).toEqual({ reason: 'worker-died' });

    expect(room.worker.pid).not.toBe(deadPid);
    expect(room.closed).toBe(false);
    expect(room.stage.members()).toEqual(before);
    expect(room.participants.get('s')!.producers.size).toBe(0);
    // media works again on the new router: publish and consume
    const { id: producerId } = await produceAudio(s);
    await v.request('createTransport', { direction: 'recv' });
    const consumer = await v.request('consume', { producerId });
    expect(consumer.producerId).toBe(producerId);
    await until(async () => (await workerProducers()) === 1, 2000, 'producer on the new worker');
    const health = await (await fetch(`${server.url}/healthz`)).json();
    expect(health).toMatchObject({ status: 'ok', workers: 1 });
  });
});
