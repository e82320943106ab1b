/**
 * Rules that had no test (each was broken on purpose once and the whole suite still passed):
 * who must not hear about stage requests, what a participant may not do with media that is not
 * theirs (or with their own, the wrong way round), one consumer per producer, a socket after
 * `leaveRoom`, what `leaveRoom` leaves in the worker, and acks arriving after the broadcasts they
 * caused. Raw sockets (no thin client), a real server and worker; the worker's own view comes
 * from router.dump() and the objects' dumps, not from Stagegate's maps.
 */
import { describe, expect, it } from 'vitest';
import { connectRaw, DTLS, joinRaw, rtpParameters, until, type RawClient } from '../helpers/server.js';
import { server, room, clients, freshRoom, useRawRooms } from '../helpers/rawRooms.js';

useRawRooms({ reconnectGraceMs: 30_000 }, { prefix: 'r' });

async function connect(userId: string, preset: 'host' | 'speaker' | 'viewer', join = true) {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
  clients.push(c);
  const snapshot = join ? await joinRaw(c) : undefined;
  return { c, snapshot };
}

/** ON_STAGE speaker with one audio producer; returns the ids. */
async function publishing(c: RawClient) {
  await c.request('stage.join');
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const p = await c.request('produce', { transportId: t.id, kind: 'audio', rtpParameters: rtpParameters('audio') });
  return { transportId: t.id, producerId: p.id };
}

async function worker() {
  const dump = await room.router.dump();
  return {
    transports: dump.transportIds.length,
    producers: dump.mapProducerIdConsumerIds.map((e) => e.key),
    consumers: dump.mapProducerIdConsumerIds.flatMap((e) => e.values),
  };
}

const flush = () => new Promise((r) => setTimeout(r, 100));

describe('stage requests are for hosts only', () => {
  it('viewers never receive newStageRequest or the pending list; hosts do', async () => {
    await freshRoom('REQUEST');
    const { c: host } = await connect('host', 'host');
    const { c: watcher } = await connect('watcher', 'viewer');
    const { c: asker } = await connect('asker', 'viewer');
    const hostGotRequest = host.next('newStageRequest');
    const hostGotList = host.next('stageAccessRequestUpdate');
    await asker.request('stage.requestAccess');
    expect((await hostGotRequest).request.userId).toBe('asker');
    expect((await hostGotList).requests.map((r) => r.userId)).toEqual(['asker']);
    await asker.request('stage.cancelRequestAccess');
    await host.next('stageAccessRequestUpdate');
    await flush();
    for (const viewer of [watcher, asker]) {
      const names = viewer.received.map((r) => r.name);
      expect(names).not.toContain('newStageRequest');
      expect(names).not.toContain('stageAccessRequestUpdate');
    }
  });

  it('a viewer’s joinRoom snapshot lists no pending requests; a host’s does', async () => {
    await freshRoom('REQUEST');
    const { c: asker } = await connect('asker', 'viewer');
    await asker.request('stage.requestAccess');
    const { snapshot: viewerSnap } = await connect('late-viewer', 'viewer');
    const { snapshot: hostSnap } = await connect('late-host', 'host');
    expect(hostSnap!.requests.map((r) => r.userId)).toEqual(['asker']);
    expect(viewerSnap!.requests).toEqual([]);
    // and asking for it directly is refused
    const late = clients.at(-2)!;
    expect(await late.ack('stage.getAccessRequests')).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });
});

describe('media that is not yours, or yours the wrong way round', () => {
  it('refuses consuming your own producer, and the worker holds no consumer', async () => {
    await freshRoom('OPEN');
    const { c: s } = await connect('s', 'speaker');
    const { producerId } = await publishing(s);
    await s.request('createTransport', { direction: 'recv' });
    expect(await s.ack('consume', { producerId })).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect((await worker()).consumers).toEqual([]);
    expect(room.participants.get('s')!.consumers.size).toBe(0);
  });

  it('refuses producing on your own receive transport, and the worker holds no producer', async () => {
    await freshRoom('OPEN');
    const { c: s } = await connect('s', 'speaker');
    await s.request('stage.join');
    const recv = await s.request('createTransport', { direction: 'recv' });
    await s.request('connectTransport', { transportId: recv.id, dtlsParameters: DTLS });
    const r = await s.ack('produce', { transportId: recv.id, kind: 'audio', rtpParameters: rtpParameters('audio') });
    expect(r).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect((await worker()).producers).toEqual([]);
    // with a send transport present too
    await s.request('createTransport', { direction: 'send' });
    const again = await s.ack('produce', {
      transportId: recv.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    expect(again).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect((await worker()).producers).toEqual([]);
  });

  it('refuses closing, pausing or resuming another participant’s producer; it stays open and unpaused', async () => {
    await freshRoom('OPEN');
    const { c: owner } = await connect('owner', 'speaker');
    const { c: other } = await connect('other', 'host'); // even a host: moderation is kick, not closeProducer
    const { producerId } = await publishing(owner);
    for (const method of ['closeProducer', 'pauseProducer', 'resumeProducer'] as const) {
      expect(await other.ack(method, { producerId }), method).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
    }
    await flush();
    const producer = room.participants.get('owner')!.producers.get(producerId)!.producer;
    expect(producer.closed).toBe(false);
    expect(producer.paused).toBe(false);
    expect((await producer.dump()).paused).toBe(false); // the worker's own view
    expect((await worker()).producers).toEqual([producerId]);
    expect(other.received.map((r) => r.name)).not.toContain('producerPaused');
    expect(other.received.map((r) => r.name)).not.toContain('producerClosed');
  });
});

describe('one consumer per (participant, producer)', () => {
  it('refuses a second consume of the same producer with INVALID_STATE, also when the calls race', async () => {
    await freshRoom('OPEN');
    const { c: s } = await connect('s', 'speaker');
    const { c: v } = await connect('v', 'viewer');
    const { producerId } = await publishing(s);
    await v.request('createTransport', { direction: 'recv' });
    const first = await v.ack('consume', { producerId });
    expect(first).toMatchObject({ ok: true });
    const again = await v.ack('consume', { producerId });
    expect(again).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    // five at once (what a looping client sends): all refused, still one consumer in the worker
    const burst = await Promise.all([1, 2, 3, 4, 5].map(() => v.ack('consume', { producerId })));
    expect(burst.filter((a) => a.ok)).toEqual([]);
    expect((await worker()).consumers).toHaveLength(1);
    expect(room.participants.get('v')!.consumers.size).toBe(1);

    // racing from a fresh receiver: exactly one wins
    const { c: w } = await connect('w', 'viewer');
    await w.request('createTransport', { direction: 'recv' });
    const race = await Promise.all([1, 2, 3, 4, 5].map(() => w.ack('consume', { producerId })));
    expect(race.filter((a) => a.ok)).toHaveLength(1);
    expect(race.filter((a) => !a.ok).map((a) => !a.ok && a.error.code)).toEqual(Array(4).fill('INVALID_STATE'));
    expect((await worker()).consumers).toHaveLength(2);

    // a new receive transport replaces the old one and its consumers: consuming again is fine
    await v.request('createTransport', { direction: 'recv' });
    expect(await v.ack('consume', { producerId })).toMatchObject({ ok: true });
    expect((await worker()).consumers).toHaveLength(2);
  });
});

describe('leaveRoom', () => {
  it('leaves no transport, producer or consumer of the participant in the worker', async () => {
    await freshRoom('OPEN');
    const { c: s } = await connect('s', 'speaker');
    const { c: v } = await connect('v', 'viewer');
    const { producerId } = await publishing(s);
    const recv = await v.request('createTransport', { direction: 'recv' });
    await v.request('consume', { producerId });
    // v also prepares a send transport it never uses (OPEN: it may)
    await v.request('createTransport', { direction: 'send' });
    expect(await worker()).toMatchObject({ transports: 3, producers: [producerId] });

    await v.request('leaveRoom');
    const after = await worker();
    expect(after.transports).toBe(1); // the speaker's send transport only
    expect(after.consumers).toEqual([]);
    expect((await room.router.dump()).transportIds).not.toContain(recv.id);

    await s.request('leaveRoom');
    expect(await worker()).toEqual({ transports: 0, producers: [], consumers: [] });
  });

  it('answers every request on that socket afterwards INVALID_STATE and changes nothing', async () => {
    await freshRoom('OPEN');
    const { c: host } = await connect('host', 'host');
    const { c: s } = await connect('s', 'speaker');
    await s.request('stage.join');
    await s.request('leaveRoom');
    expect(room.participants.has('s')).toBe(false);
    const after: [string, unknown][] = [
      ['stage.join', {}],
      ['stage.requestAccess', {}],
      ['stage.setMode', { mode: 'INVITE' }],
      ['createTransport', { direction: 'send' }],
      ['createTransport', { direction: 'recv' }],
      ['leaveRoom', {}],
    ];
    for (const [method, data] of after) {
      const a = await s.ack(method as 'stage.join', data);
      expect(a, method).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    }
    expect(room.participants.has('s')).toBe(false);
    expect(room.stage.get('s')).toBeUndefined();
    expect(room.stage.mode).toBe('OPEN');
    expect((await worker()).transports).toBe(0);
    void host;
  });
});

describe('acks and broadcasts', () => {
  it('a request’s ack arrives after the room broadcasts it caused', async () => {
    await freshRoom('REQUEST');
    const { c: host } = await connect('host', 'host');
    const { c: v } = await connect('v', 'viewer');
    const ackAfterBroadcast = async (
      method: 'stage.setMode' | 'stage.grantAccess' | 'stage.kick',
      data: unknown,
      broadcast: 'stageModeUpdate' | 'peerStageStatusUpdate',
    ) => {
      const order: string[] = [];
      const off = host.on(broadcast, () => order.push('broadcast'));
      // the ack callback itself (not a promise: a microtask could run after a later packet)
      await new Promise<void>((resolve) =>
        host.socket.timeout(5000).emit(method, data, () => {
          order.push('ack');
          resolve();
        }),
      );
      off();
      expect(order[0], `${method}: ${order.join(', ')}`).toBe('broadcast');
      expect(order).toContain('ack');
    };
    await ackAfterBroadcast('stage.setMode', { mode: 'INVITE' }, 'stageModeUpdate');
    await ackAfterBroadcast('stage.setMode', { mode: 'REQUEST' }, 'stageModeUpdate');
    await v.request('stage.requestAccess');
    await ackAfterBroadcast('stage.grantAccess', { userIds: ['v'] }, 'peerStageStatusUpdate');
    await v.request('stage.join');
    await ackAfterBroadcast('stage.kick', { userIds: ['v'] }, 'peerStageStatusUpdate');
    await until(() => room.stage.get('v')?.status === 'OFF_STAGE');
  });
});
