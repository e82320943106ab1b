/**
 * STAGE.md Part 2 wired to the room, over raw sockets: media holds (paused in the worker, resume
 * refused), seats (STAGE_FULL), cool-downs (COOLING_DOWN with retryAfterMs on the wire), stage
 * slots on the real clock (producers gone from router.dump()), removal and bans, queue positions.
 * A real server on port 0, a real mediasoup worker, real socket.io.
 */
import { describe, expect, it } from 'vitest';
import { connectRaw, joinRaw, rtpParameters, DTLS, until, type RawClient } from '../helpers/server.js';
import { server, room, clients, freshRoom, useRawRooms, connectTo } from '../helpers/rawRooms.js';

useRawRooms({ reconnectGraceMs: 5000 }, { prefix: 'mod' });

const client = (userId: string, preset: 'host' | 'speaker' | 'viewer') => connectTo(userId, preset);

/** ON_STAGE with a connected send transport and an audio producer; returns the producer id. */
async function onStageProducing(c: RawClient, kind: 'audio' | 'video' = 'audio'): Promise<string> {
  await c.request('stage.join');
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const { id } = await c.request('produce', { transportId: t.id, kind, rtpParameters: rtpParameters(kind) });
  return id;
}

/** Whether the worker itself has the producer paused (not Stagegate's own view). */
async function pausedInWorker(producerId: string): Promise<boolean> {
  for (const p of room.participants.values()) {
    const staged = p.producers.get(producerId);
    if (staged) return (await staged.producer.dump()).paused;
  }
  throw new Error(`no producer ${producerId}`);
}

async function workerProducerIds(): Promise<string[]> {
  const dump = await room.router.dump();
  return dump.mapProducerIdConsumerIds.map((e) => e.key);
}

function names(c: RawClient): string[] {
  return c.received.map((r) => r.name);
}

async function settle(...cs: RawClient[]) {
  await Promise.all(cs.map((c) => c.ack('stage.getAccessRequests')));
  await new Promise((r) => setTimeout(r, 50));
}

describe('media holds', () => {
  it('mute pauses in the worker at once; resume refused FORBIDDEN; ask → allow → resume works', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    const producerId = await onStageProducing(speaker);
    expect(await pausedInWorker(producerId)).toBe(false);

    const muted = speaker.next('mutedByHost');
    const paused = viewer.next('producerPaused');
    const res = await host.request('stage.mute', { userIds: ['speaker'], sources: ['audio'] });
    expect(res.results.speaker).toMatchObject({ ok: true });
    expect(await muted).toEqual({ userId: 'speaker', by: 'host', sources: ['audio'] });
    expect(await paused).toEqual({ producerId, userId: 'speaker' });
    expect(await pausedInWorker(producerId)).toBe(true);

    const refused = await speaker.ack('resumeProducer', { producerId });
    expect(refused).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await pausedInWorker(producerId)).toBe(true);
    // a viewer may not mute, and is not told about holds
    expect(await viewer.ack('stage.mute', { userIds: ['speaker'], sources: ['video'] })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });

    const asked = host.next('unmuteRequested');
    await speaker.request('stage.requestUnmute', { source: 'audio' });
    expect(await asked).toEqual({ userId: 'speaker', source: 'audio' });
    const allowed = speaker.next('unmuteAllowed');
    await host.request('stage.allowUnmute', { userIds: ['speaker'], sources: ['audio'] });
    expect(await allowed).toMatchObject({ userId: 'speaker', sources: ['audio'] });
    expect(await pausedInWorker(producerId)).toBe(true); // the owner decides to resume
    await speaker.request('resumeProducer', { producerId });
    expect(await pausedInWorker(producerId)).toBe(false);
    await settle(host, speaker, viewer);
    for (const n of ['mutedByHost', 'unmuteRequested', 'unmuteAllowed']) expect(names(viewer)).not.toContain(n);
  });

  it('a new producer of a held source starts paused, and is announced paused', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    await host.request('stage.mute', { userIds: ['speaker'], sources: ['audio'] });
    const announced = viewer.next('newProducer');
    const producerId = await onStageProducing(speaker);
    expect((await announced).producer).toMatchObject({ id: producerId, paused: true });
    expect(await pausedInWorker(producerId)).toBe(true);
    expect(await speaker.ack('resumeProducer', { producerId })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    // video is not held: it starts live
    const videoId = await (async () => {
      const t = [...room.participants.get('speaker')!.transports.keys()][0]!;
      return (
        await speaker.request('produce', { transportId: t, kind: 'video', rtpParameters: rtpParameters('video', 2) })
      ).id;
    })();
    expect(await pausedInWorker(videoId)).toBe(false);
  });
});

describe('seats, cool-downs and slots', () => {
  it('join when full → STAGE_FULL and nothing changes', async () => {
    await freshRoom('REQUEST', { stageCap: 1 });
    await client('host', 'host');
    const a = await client('a', 'speaker');
    const b = await client('b', 'speaker');
    await a.request('stage.join');
    const before = room.statusOf('b');
    const full = await b.ack('stage.join');
    expect(full).toMatchObject({ ok: false, error: { code: 'STAGE_FULL' } });
    expect(room.statusOf('b')).toBe(before);
    expect(room.statusOf('b')).not.toBe('ON_STAGE');
  });

  it('a request in the cool-down → COOLING_DOWN with retryAfterMs on the wire', async () => {
    await freshRoom('REQUEST', { requestCooldownSeconds: 60 });
    const host = await client('host', 'host');
    const v = await client('v', 'viewer');
    expect(await v.request('stage.requestAccess')).toEqual({
      status: 'REQUESTED_TO_JOIN_STAGE',
      position: 1,
      queueLength: 1,
    });
    await host.request('stage.denyAccess', { userIds: ['v'] });
    const again = await v.ack('stage.requestAccess');
    expect(again.ok).toBe(false);
    if (again.ok) return;
    expect(again.error.code).toBe('COOLING_DOWN');
    expect(again.error.retryAfterMs).toBeGreaterThan(50_000);
    expect(again.error.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(again.error.details?.retryAfterMs).toBe(again.error.retryAfterMs);
    expect(room.statusOf('v')).toBe('OFF_STAGE');
  });

  it('a 2 s slot ends on time: its producers are gone from router.dump(), closed as slot-ended', async () => {
    await freshRoom('REQUEST', { slotSeconds: 2 });
    await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    const slot = viewer.next('stageSlotUpdate');
    const started = Date.now();
    const producerId = await onStageProducing(speaker);
    const { endsAt } = await slot;
    expect(endsAt).toBeGreaterThanOrEqual(started + 1900);
    expect(endsAt).toBeLessThanOrEqual(Date.now() + 2100);
    // a newcomer sees the slot end on the participant info
    const late = await connectRaw(server.url, { token: await server.token('late', 'viewer', room.id) });
    clients.push(late);
    const snap = await joinRaw(late);
    expect(snap.participants.find((p) => p.id === 'speaker')?.slotEndsAt).toBe(endsAt);
    expect(await workerProducerIds()).toContain(producerId);
    const closed = speaker.next('producerClosedByServer', 5000);
    expect(await closed).toEqual({ producerId, reason: 'slot-ended' });
    expect(Date.now()).toBeGreaterThanOrEqual(endsAt!);
    expect(Date.now()).toBeLessThan(endsAt! + 1500);
    expect(await workerProducerIds()).not.toContain(producerId);
    expect(room.statusOf('speaker')).not.toBe('ON_STAGE');
  });
});

describe('removal and bans', () => {
  it('removal disconnects at once, closes media; a banned user is refused BANNED; unban lets them in', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    const producerId = await onStageProducing(speaker);
    const bye = speaker.next('goodbye');
    const gone = new Promise<void>((r) => speaker.socket.once('disconnect', () => r()));
    const left = viewer.next('participantLeft');
    const res = await host.request('stage.removeFromRoom', { userIds: ['speaker'], ban: true });
    expect(res.results.speaker).toMatchObject({ ok: true });
    expect(await bye).toEqual({ reason: 'removed-from-room' });
    await gone;
    expect(await left).toEqual({ userId: 'speaker' });
    expect(room.participants.has('speaker')).toBe(false);
    expect(room.stage.has('speaker')).toBe(false);
    expect(await workerProducerIds()).not.toContain(producerId);

    await expect(
      connectRaw(server.url, { token: await server.token('speaker', 'speaker', room.id) }),
    ).rejects.toMatchObject({ code: 'BANNED' });
    expect(room.participants.has('speaker')).toBe(false);

    // a viewer may not remove; a speaker cannot remove the host
    expect(await viewer.ack('stage.removeFromRoom', { userIds: ['host'] })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(room.participants.has('host')).toBe(true);

    room.stage.unban('@backend', 'speaker');
    const back = await client('speaker', 'speaker');
    expect(back.socket.connected).toBe(true);
  });

  it('a ban between connecting and joinRoom: joinRoom refused BANNED, nothing changes', async () => {
    await freshRoom();
    const c = await connectRaw(server.url, { token: await server.token('late', 'viewer', room.id) });
    clients.push(c);
    room.stage.ban('@backend', 'late');
    const { rtpCapabilities } = await c.request('getRouterRtpCapabilities');
    expect(await c.ack('joinRoom', { rtpCapabilities })).toMatchObject({ ok: false, error: { code: 'BANNED' } });
    expect(room.participants.has('late')).toBe(false);
    expect(room.stage.has('late')).toBe(false);
  });

  it('removal without ban forgets the place (no grace) and lets them back in', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const v = await client('v', 'viewer');
    await v.request('stage.requestAccess');
    await host.request('stage.removeFromRoom', { userIds: ['v'] });
    await until(() => !v.socket.connected);
    expect(room.stage.has('v')).toBe(false);
    expect(room.stage.getAccessRequests('@backend')).toEqual([]);
    const again = await client('v', 'viewer');
    expect(again.socket.connected).toBe(true);
    expect(room.statusOf('v')).toBe('OFF_STAGE');
  });
});

describe('queue positions', () => {
  it('reach each requester whose place changed, and no other viewer (hidden room)', async () => {
    await freshRoom();
    await client('host', 'host');
    const v1 = await client('v1', 'viewer');
    const v2 = await client('v2', 'viewer');
    const v3 = await client('v3', 'viewer');
    const other = await client('other', 'viewer');
    expect(await v1.request('stage.requestAccess')).toMatchObject({ position: 1, queueLength: 1 });
    expect(await v2.request('stage.requestAccess')).toMatchObject({ position: 2, queueLength: 2 });
    expect(await v3.request('stage.requestAccess')).toMatchObject({ position: 3, queueLength: 3 });
    const moved2 = v2.next('stageRequestPosition');
    const moved3 = v3.next('stageRequestPosition');
    await v1.request('stage.cancelRequestAccess');
    const v1Seen = v1.received.length; // while queued, v1 may have been told the length; not after
    expect(await moved2).toEqual({ position: 1, queueLength: 2 });
    expect(await moved3).toEqual({ position: 2, queueLength: 2 });
    await new Promise((r) => setTimeout(r, 1200)); // past the length-only interval
    await settle(v1, v2, v3, other);
    expect(names(other)).not.toContain('stageRequestPosition');
    expect(v1.received.slice(v1Seen).map((r) => r.name)).not.toContain('stageRequestPosition');
    const text = JSON.stringify(other.received);
    for (const id of ['v1', 'v2', 'v3']) expect(text).not.toContain(`"${id}"`);
  });

  it('a change of the length alone reaches the others, at most once a second', async () => {
    await freshRoom();
    await client('host', 'host');
    const v1 = await client('v1', 'viewer');
    await v1.request('stage.requestAccess');
    const ups: number[] = [];
    v1.on('stageRequestPosition', () => ups.push(Date.now()));
    for (const id of ['a', 'b', 'c']) await (await client(id, 'viewer')).request('stage.requestAccess');
    await until(() => ups.length > 0, 3000, 'a length notice');
    await new Promise((r) => setTimeout(r, 1300));
    const last = v1.received.filter((r) => r.name === 'stageRequestPosition').at(-1)?.data;
    expect(last).toEqual({ position: 1, queueLength: 4 });
    for (let i = 1; i < ups.length; i++) expect(ups[i]! - ups[i - 1]!).toBeGreaterThanOrEqual(900);
  });
});
