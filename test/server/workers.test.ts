/**
 * One room across two mediasoup workers, over raw sockets: a real server with a pool of two real
 * workers, real socket.io. Producers are on the room's origin router; viewers placed on the other
 * worker (the edge) receive them through pipes. What each worker holds is read back with
 * `router.dump()` of both routers, never from Stagegate's own maps.
 *
 * `maxConsumersPerRouter: 0` makes placement spread from the first viewer: the first receive
 * transport of a room opens the edge, the next ones go to the least loaded router.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { types as ms } from 'mediasoup';
import type { MediaRouter } from '../../server/media/MediaRouter.js';
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

let server: TestServer | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.close();
  server = undefined;
});

async function twoWorkers(maxConsumersPerRouter = 0): Promise<{ s: TestServer; room: Room }> {
  const s = await startServer({ config: { numWorkers: 2, maxConsumersPerRouter, reconnectGraceMs: 0 } });
  server = s;
  const room = await s.sg.rooms.create('multi', 'REQUEST');
  return { s, room };
}

async function client(s: TestServer, room: Room, userId: string, preset: 'host' | 'speaker' | 'viewer') {
  const c = await connectRaw(s.url, { token: await s.token(userId, preset, room.id) });
  clients.push(c);
  await joinRaw(c);
  return c;
}

/** The router a user's transport of this direction is on (from the media plane's placement). */
function routerOf(room: Room, userId: string, direction: 'send' | 'recv'): MediaRouter {
  const id = room.media.placement().participants[userId]?.[direction];
  const r = room.media.routers().find((x) => !x.closed && x.router.id === id);
  if (!r) throw new Error(`no ${direction} router for ${userId}`);
  return r;
}

function edgeOf(room: Room): MediaRouter {
  const edge = room.media.routers().find((r) => r.role === 'edge' && !r.closed);
  if (!edge) throw new Error('no edge router');
  return edge;
}

/** What the worker holds for a router: producers, consumers, and every transport (pipes included). */
async function held(router: ms.Router) {
  const d = await router.dump();
  return {
    producers: d.mapProducerIdConsumerIds.map((e) => e.key).sort(),
    consumers: d.mapProducerIdConsumerIds.reduce((n, e) => n + e.values.length, 0),
    transports: d.transportIds.length,
    consumersOf: (producerId: string) =>
      d.mapProducerIdConsumerIds.find((e) => e.key === producerId)?.values.length ?? 0,
  };
}

const SSRC = { audio: 1111, video: 2222 };

/** A send transport and a producer per kind (the caller is ON_STAGE); returns the producer ids. */
async function publish(speaker: RawClient, kinds: ('audio' | 'video')[]) {
  const t = await speaker.request('createTransport', { direction: 'send' });
  await speaker.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const ids: string[] = [];
  for (const kind of kinds)
    ids.push(
      (await speaker.request('produce', { transportId: t.id, kind, rtpParameters: rtpParameters(kind, SSRC[kind]) }))
        .id,
    );
  return ids;
}

async function speakerOnStage(speaker: RawClient, kinds: ('audio' | 'video')[] = ['audio', 'video']) {
  await speaker.request('stage.join');
  return publish(speaker, kinds);
}

/** A viewer with a recv transport on the edge (the first recv transport of the room with max 0). */
async function edgeViewer(s: TestServer, room: Room, userId: string) {
  const c = await client(s, room, userId, 'viewer');
  await c.request('createTransport', { direction: 'recv' });
  return c;
}

/** Both routers hold only the participants' own transports: no pipe transport, producer or consumer. */
async function expectNoPipes(room: Room) {
  const edge = edgeOf(room);
  const origin = room.media.routers()[0]!;
  const own = (r: MediaRouter) => r.transports().filter((t) => !t.closed).length;
  await until(
    async () => {
      const [o, e] = await Promise.all([held(origin.router), held(edge.router)]);
      return (
        e.producers.length === 0 && e.transports === own(edge) && o.transports === own(origin) && o.consumers === 0
      );
    },
    3000,
    'pipes to close in both workers',
  );
  const e = await held(edge.router);
  expect(e).toMatchObject({ producers: [], consumers: 0, transports: own(edge) });
  expect((await held(origin.router)).consumers).toBe(0);
  expect(edge.counts()).toMatchObject({ pipeProducers: 0, pipeTransports: 0 });
  expect(origin.counts().pipeTransports).toBe(0);
}

describe('a room spans the workers', () => {
  it('a viewer placed on the other worker consumes the speaker through a pipe; pause, resume and placement show', async () => {
    const { s, room } = await twoWorkers();
    const speaker = await client(s, room, 'speaker', 'speaker');
    const viewer = await edgeViewer(s, room, 'viewer');
    const [audioId, videoId] = await speakerOnStage(speaker);

    const edge = routerOf(room, 'viewer', 'recv');
    expect(edge.role).toBe('edge');
    expect(edge.worker.pid).not.toBe(room.worker.pid);
    expect(routerOf(room, 'speaker', 'send').router).toBe(room.router);
    // nothing piped before anyone consumes there
    expect((await held(edge.router)).producers).toEqual([]);

    const consumers = [];
    for (const producerId of [audioId!, videoId!]) {
      const o = await viewer.request('consume', { producerId });
      expect(o).toMatchObject({ producerId, userId: 'speaker' });
      await viewer.request('resumeConsumer', { consumerId: o.id });
      consumers.push(o.id);
    }
    // the edge holds a pipe producer with the speaker's producer id and the viewer's consumers;
    // the origin holds one pipe consumer per producer
    const e = await held(edge.router);
    expect(e.producers).toEqual([audioId, videoId].sort());
    expect(e.consumersOf(audioId!)).toBe(1);
    expect(e.consumersOf(videoId!)).toBe(1);
    const o = await held(room.router);
    expect(o.consumersOf(audioId!)).toBe(1);
    expect(o.consumersOf(videoId!)).toBe(1);
    const viewerConsumers = [...room.participants.get('viewer')!.consumers.values()];
    expect(viewerConsumers.map((c) => c.id).sort()).toEqual([...consumers].sort());

    // pause and resume reach the edge through the pipe
    await speaker.request('pauseProducer', { producerId: videoId });
    const video = viewerConsumers.find((c) => c.producerId === videoId)!;
    await until(() => video.producerPaused, 2000, 'the edge consumer to see the pause');
    await speaker.request('resumeProducer', { producerId: videoId });
    await until(() => !video.producerPaused, 2000, 'the edge consumer to see the resume');

    // placement in the HTTP API
    const res = await fetch(`${s.url}/api/rooms/${room.id}`, {
      headers: { authorization: `Bearer ${s.sg.apiSecret}` },
    });
    const body = (await res.json()) as {
      media: { routers: Record<string, unknown>[]; participants: Record<string, { send?: string; recv?: string }> };
    };
    expect(body.media.routers).toEqual([
      expect.objectContaining({
        role: 'origin',
        workerPid: room.worker.pid,
        transports: 1,
        consumers: 2,
        producers: 2,
      }),
      expect.objectContaining({
        role: 'edge',
        workerPid: edge.worker.pid,
        transports: 1,
        consumers: 2,
        pipeProducers: 2,
      }),
    ]);
    expect(body.media.participants).toEqual({
      speaker: { send: room.router.id },
      viewer: { recv: edge.router.id },
    });

    // consumers per worker in /metrics: the viewer's two on the edge, two pipe consumers on the origin
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toContain(`stagegate_worker_consumers{pid="${edge.worker.pid}"} 2`);
    expect(metrics).toContain(`stagegate_worker_consumers{pid="${room.worker.pid}"} 2`);
    expect(metrics).toContain(`stagegate_worker_routers{pid="${edge.worker.pid}",role="edge"} 1`);
  });

  it('fills the origin first by default: no edge and no pipe below maxConsumersPerRouter', async () => {
    const { s, room } = await twoWorkers(200);
    const speaker = await client(s, room, 'speaker', 'speaker');
    const [audioId] = await speakerOnStage(speaker, ['audio']);
    for (const u of ['v1', 'v2', 'v3']) {
      const v = await client(s, room, u, 'viewer');
      await v.request('createTransport', { direction: 'recv' });
      await v.request('consume', { producerId: audioId });
      expect(routerOf(room, u, 'recv').role).toBe('origin');
    }
    expect(room.media.routers()).toHaveLength(1);
    expect((await held(room.router)).consumersOf(audioId!)).toBe(3);
  });

  it('opens the next worker once the origin carries maxConsumersPerRouter, then keeps the routers level', async () => {
    const { s, room } = await twoWorkers(2);
    const speaker = await client(s, room, 'speaker', 'speaker');
    const [audioId] = await speakerOnStage(speaker, ['audio']);
    const roles: string[] = [];
    for (const u of ['v1', 'v2', 'v3', 'v4', 'v5']) {
      const v = await client(s, room, u, 'viewer');
      await v.request('createTransport', { direction: 'recv' });
      await v.request('consume', { producerId: audioId });
      roles.push(routerOf(room, u, 'recv').role);
    }
    // v1, v2 fill the origin (2 consumers); v3 opens the edge (whose pipe consumer is the
    // origin's 3rd); then the least loaded: v4 on the edge (1 < 3), v5 on the edge (2 < 3)
    expect(roles).toEqual(['origin', 'origin', 'edge', 'edge', 'edge']);
    expect(room.media.routers().map((r) => r.consumers)).toEqual([3, 3]);
  });

  it('receive transports created at the same moment spread over the routers (placement counts those on the way)', async () => {
    const { s, room } = await twoWorkers();
    const ids = ['a', 'b', 'c', 'd'];
    for (const u of ids) await client(s, room, u, 'viewer');
    // one turn: none of them exists in a worker when the next is placed
    await Promise.all(ids.map((u) => room.createTransport(room.participants.get(u)!, 'recv')));
    const roles = ids.map((u) => routerOf(room, u, 'recv').role);
    expect(roles.filter((r) => r === 'origin')).toHaveLength(2);
    expect(roles.filter((r) => r === 'edge')).toHaveLength(2);
  });

  it('concurrent first consumes of a producer on one edge share a single pipe', async () => {
    const { s, room } = await twoWorkers();
    const speaker = await client(s, room, 'speaker', 'speaker');
    // every recv transport created before anyone consumes: they spread over both routers
    const viewers = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((u) => client(s, room, u, 'viewer')));
    for (const v of viewers) await v.request('createTransport', { direction: 'recv' });
    const [, videoId] = await speakerOnStage(speaker);
    const edge = edgeOf(room);
    const onEdge = viewers.filter((_, i) => routerOf(room, 'abcdef'[i]!, 'recv') === edge);
    expect(onEdge.length).toBeGreaterThanOrEqual(2);

    let pipes = 0;
    const count = (t: ms.Transport) => t.observer.on('newproducer', () => pipes++);
    edge.router.observer.on('newtransport', count);
    const acks = await Promise.all(onEdge.map((v) => v.request('consume', { producerId: videoId })));
    edge.router.observer.off('newtransport', count);
    expect(new Set(acks.map((a) => a.id)).size).toBe(onEdge.length);
    expect(pipes).toBe(1);
    expect((await held(edge.router)).consumersOf(videoId!)).toBe(onEdge.length);
    expect((await held(room.router)).consumersOf(videoId!)).toBe(1);
    expect(edge.counts()).toMatchObject({ pipeProducers: 1, pipeTransports: 1 });
  });
});

describe('every pipe closes with its producer', () => {
  async function pipedSetup() {
    const { s, room } = await twoWorkers();
    const host = await client(s, room, 'host', 'host');
    const speaker = await client(s, room, 'speaker', 'speaker');
    const viewer = await edgeViewer(s, room, 'viewer');
    expect(routerOf(room, 'viewer', 'recv').role).toBe('edge');
    const producerIds = await speakerOnStage(speaker);
    const consumerIds = [];
    for (const producerId of producerIds) consumerIds.push((await viewer.request('consume', { producerId })).id);
    expect((await held(edgeOf(room).router)).producers).toHaveLength(2);
    return { s, room, host, speaker, viewer, producerIds, consumerIds };
  }

  const ways: [string, (x: Awaited<ReturnType<typeof pipedSetup>>) => Promise<unknown>][] = [
    ['kick', (x) => x.host.request('stage.kick', { userIds: ['speaker'] })],
    ['stage.leave', (x) => x.speaker.request('stage.leave')],
    ['leaveRoom', (x) => x.speaker.request('leaveRoom')],
    ['disconnect', async (x) => x.speaker.close()],
    [
      'closeProducer',
      (x) => Promise.all(x.producerIds.map((producerId) => x.speaker.request('closeProducer', { producerId }))),
    ],
  ];
  for (const [way, act] of ways) {
    it(`${way}: the edge viewer is told, and no pipe producer, consumer or transport is left in either worker`, async () => {
      const x = await pipedSetup();
      const closed: unknown[] = [];
      x.viewer.on('consumerClosed', (d) => closed.push(d));
      await act(x);
      await until(() => closed.length === 2, 3000, 'consumerClosed for both');
      expect(closed).toEqual(
        expect.arrayContaining(x.producerIds.map((producerId, i) => ({ producerId, consumerId: x.consumerIds[i] }))),
      );
      await expectNoPipes(x.room);
      expect((await held(x.room.router)).producers).toEqual([]);
      expect(x.room.participants.get('viewer')!.consumers.size).toBe(0);
    });
  }

  it('the pipes close in the same turn as their producer, not when the worker reports it', async () => {
    const x = await pipedSetup();
    const edge = edgeOf(x.room);
    expect(edge.counts().pipeProducers).toBe(2);
    const speaker = x.room.participants.get('speaker')!;
    x.room.closeProducer(speaker, x.producerIds[0]!);
    expect(edge.counts().pipeProducers).toBe(1);
    x.room.stage.kick('host', ['speaker']);
    expect(edge.counts()).toMatchObject({ pipeProducers: 0, pipeTransports: 0 });
    await expectNoPipes(x.room);
  });

  it('a producer going on stage again is piped again, through a new pipe', async () => {
    const x = await pipedSetup();
    await x.speaker.request('stage.leave');
    await expectNoPipes(x.room);
    const [audioId] = await speakerOnStage(x.speaker, ['audio']);
    await x.viewer.request('consume', { producerId: audioId });
    expect((await held(edgeOf(x.room).router)).producers).toEqual([audioId]);
  });

  // The kick lands at each step of pipeToRouter: pipe transports, pipe consumer (origin), pipe
  // producer (edge). The consume fails or its consumer closes; no pipe survives.
  for (const step of ['pipe transport', 'pipe consumer', 'pipe producer'] as const) {
    it(`a kick while the pipe is being made (at the ${step}) leaves no pipe behind`, async () => {
      const { s, room } = await twoWorkers();
      await client(s, room, 'host', 'host'); // the one who kicks
      const speaker = await client(s, room, 'speaker', 'speaker');
      const viewer = await edgeViewer(s, room, 'viewer');
      const [videoId] = await speakerOnStage(speaker, ['video']);
      const edge = edgeOf(room);
      let kicked = false;
      const kick = () => {
        if (kicked) return;
        kicked = true;
        room.stage.kick('host', ['speaker']);
      };
      const watch = (router: ms.Router, what: 'transport' | 'consumer' | 'producer') =>
        router.observer.on('newtransport', (t) => {
          if (t.type !== 'pipe') return;
          if (what === 'transport') kick();
          if (what === 'consumer') t.observer.on('newconsumer', kick);
          if (what === 'producer') t.observer.on('newproducer', kick);
        });
      if (step === 'pipe transport') watch(room.router, 'transport');
      if (step === 'pipe consumer') watch(room.router, 'consumer');
      if (step === 'pipe producer') watch(edge.router, 'producer');

      const closed = viewer.next('consumerClosed', 3000).catch(() => undefined);
      const ack = await viewer.ack('consume', { producerId: videoId });
      expect(kicked).toBe(true);
      if (ack.ok) expect(await closed).toMatchObject({ consumerId: ack.data.id });
      else expect(ack.error.code).toBe('NOT_FOUND');
      await expectNoPipes(room);
      await until(() => room.participants.get('viewer')!.consumers.size === 0, 2000, 'the consumer to go');
    });
  }
});

describe('worker death', () => {
  async function spread() {
    const { s, room } = await twoWorkers();
    const speaker = await client(s, room, 'speaker', 'speaker');
    const onEdge = await edgeViewer(s, room, 'onEdge'); // first recv transport: the edge
    const onOrigin = await client(s, room, 'onOrigin', 'viewer');
    await onOrigin.request('createTransport', { direction: 'recv' }); // least loaded: the origin
    expect(routerOf(room, 'onEdge', 'recv').role).toBe('edge');
    expect(routerOf(room, 'onOrigin', 'recv').role).toBe('origin');
    const producerIds = await speakerOnStage(speaker);
    for (const v of [onEdge, onOrigin])
      for (const producerId of producerIds) await v.request('consume', { producerId });
    return { s, room, speaker, onEdge, onOrigin, producerIds };
  }

  const resets = (c: RawClient) => c.received.filter((n) => n.name === 'mediaReset').length;

  it('SIGKILL of the edge worker resets only the viewers on it; they receive again from a live router', async () => {
    const x = await spread();
    const edge = edgeOf(x.room);
    const originPid = x.room.worker.pid;
    const reset = x.onEdge.next('mediaReset');
    process.kill(edge.worker.pid, 'SIGKILL');
    expect(await reset).toEqual({ reason: 'worker-died' });
    // the pool replaces the dead worker; nobody else was reset meanwhile
    await until(() => x.s.sg.pool.workers.length === 2, 5000, 'the pool to replace the worker');
    await new Promise((r) => setTimeout(r, 300));
    expect(resets(x.onOrigin)).toBe(0);
    expect(resets(x.speaker)).toBe(0);
    expect(x.room.worker.pid).toBe(originPid);
    expect(x.room.participants.get('onEdge')!.consumers.size).toBe(0);
    expect(x.room.participants.get('onOrigin')!.consumers.size).toBe(2);
    // the speaker's producers live on; the origin lost the dead edge's pipe consumers
    const o = await held(x.room.router);
    expect(o.producers).toEqual([...x.producerIds].sort());
    for (const id of x.producerIds) expect(o.consumersOf(id)).toBe(1);
    expect(x.room.statusOf('speaker')).toBe('ON_STAGE');

    // the reset viewer sets up again: a new recv transport on a live router, consuming
    await x.onEdge.request('createTransport', { direction: 'recv' });
    const again = routerOf(x.room, 'onEdge', 'recv');
    expect(again.worker.died).toBe(false);
    for (const producerId of x.producerIds) await x.onEdge.request('consume', { producerId });
    expect(x.room.participants.get('onEdge')!.consumers.size).toBe(2);
  });

  it('SIGKILL of the origin worker moves the room and resets everyone, the stage unchanged', async () => {
    const x = await spread();
    const deadPid = x.room.worker.pid;
    const edgePid = edgeOf(x.room).worker.pid;
    const all = [x.speaker, x.onEdge, x.onOrigin];
    const waits = all.map((c) => c.next('mediaReset', 8000));
    process.kill(deadPid, 'SIGKILL');
    for (const w of waits) expect(await w).toEqual({ reason: 'worker-died' });
    expect(x.room.worker.pid).not.toBe(deadPid);
    expect(x.room.statusOf('speaker')).toBe('ON_STAGE');
    // the old edge router closed with the move: one router left, nothing in it
    expect(x.room.media.routers().filter((r) => !r.closed)).toHaveLength(1);
    expect(x.room.media.routers()[0]!.role).toBe('origin');
    expect(edgePid).toBeGreaterThan(0);
    for (const id of ['speaker', 'onEdge', 'onOrigin']) expect(x.room.participants.get(id)!.transports.size).toBe(0);
    expect((await held(x.room.router)).transports).toBe(0);

    // media works again: produce, consume (on whatever router placement picks)
    const [audioId] = await publish(x.speaker, ['audio']);
    for (const v of [x.onEdge, x.onOrigin]) {
      await v.request('createTransport', { direction: 'recv' });
      await v.request('consume', { producerId: audioId });
    }
    expect(x.room.participants.get('onEdge')!.consumers.size).toBe(1);
    expect(x.room.participants.get('onOrigin')!.consumers.size).toBe(1);
  });
});
