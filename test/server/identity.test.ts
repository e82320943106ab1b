/**
 * Sessions follow their token (STAGE.md Part 2, "Identity and sessions"), over raw sockets on a
 * real server (port 0) with a real mediasoup worker: a new token's name and preset apply at once
 * on a second connection or a reconnect, tokens are bound to a room instance, a connected
 * session gets a fresh token before expiry, and the demo routes mint only for their own rooms.
 */
import { describe, expect, it } from 'vitest';
import type { Notifications } from '../../shared/protocol.js';
import type { Preset } from '../../shared/stage.js';
import { PRESETS } from '../../shared/stage.js';
import { connectRaw, DTLS, joinRaw, rtpParameters, until, type RawClient } from '../helpers/server.js';
import { server, room, clients, freshRoom as newRoom, useRawRooms } from '../helpers/rawRooms.js';

useRawRooms({ reconnectGraceMs: 5_000 }, { demo: true });

async function freshRoom(mode: 'OPEN' | 'REQUEST' | 'INVITE' = 'REQUEST', audience: 'hidden' | 'visible' = 'hidden') {
  return newRoom(mode, { audience });
}

async function connect(userId: string, preset: string | Preset, name = userId): Promise<RawClient> {
  const token = await server.sg.tokens.mint({
    userId,
    name,
    roomId: room.id,
    preset: preset as 'host',
    roomInstance: room.instanceId,
  });
  const c = await connectRaw(server.url, { token });
  clients.push(c);
  return c;
}

async function client(userId: string, preset: string | Preset, name = userId): Promise<RawClient> {
  const c = await connect(userId, preset, name);
  await joinRaw(c);
  return c;
}

/** The producer ids the worker holds for the room's router. */
async function workerProducerIds(): Promise<string[]> {
  const dump = await room.router.dump();
  return dump.mapProducerIdConsumerIds.map((e) => e.key);
}

/** Waits a little so that notifications that should not come would have come. */
const settle = () => new Promise((r) => setTimeout(r, 150));

const names = (c: RawClient) => c.received.map((r) => r.name);

describe('a new token for the same user applies at once', () => {
  it('a second connection with a viewer token loses the host rights: grant, mode, list FORBIDDEN; no host events', async () => {
    await freshRoom();
    const host = await client('h', 'host', 'Hana');
    const obs = await client('obs', 'host');
    const v1 = await client('v1', 'viewer');
    await v1.request('stage.requestAccess');

    const replaced = host.next('goodbye');
    const demoted = await connect('h', 'viewer', 'Hana (guest)');
    const updated = obs.next('participantUpdated');
    const gone = v1.next('participantLeft');
    const snapshot = await joinRaw(demoted);
    expect(await replaced).toEqual({ reason: 'replaced' });
    expect(snapshot.self).toMatchObject({ name: 'Hana (guest)', preset: { name: 'viewer' } });
    expect(snapshot.requests).toEqual([]); // a viewer's snapshot lists no requests
    expect(await updated).toEqual({ userId: 'h', name: 'Hana (guest)', presetName: 'viewer' });
    // hidden room: to a viewer the demoted host is audience now, gone from the roster, name unseen
    expect(await gone).toEqual({ userId: 'h' });

    // ACCEPTED only because the host preset allowed it: off stage, by @backend
    await until(() => room.statusOf('h') === 'OFF_STAGE', 2000, 'h off stage');
    await until(() => demoted.received.some((r) => r.name === 'removedFromStage'), 2000, 'removedFromStage');
    expect(demoted.received.find((r) => r.name === 'stageStatusUpdate')?.data).toEqual({
      old: 'ACCEPTED_TO_JOIN_STAGE',
      new: 'OFF_STAGE',
      by: '@backend',
    });

    const grant = await demoted.ack('stage.grantAccess', { userIds: ['v1'] });
    expect(grant).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await demoted.ack('stage.setMode', { mode: 'OPEN' })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(await demoted.ack('stage.getAccessRequests')).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await demoted.ack('stage.kick', { userIds: ['obs'] })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(room.statusOf('v1')).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(room.stage.mode).toBe('REQUEST');

    // a new request reaches the remaining host, not the demoted one
    const v2 = await client('v2', 'viewer');
    const toObs = obs.next('newStageRequest');
    await v2.request('stage.requestAccess');
    expect((await toObs).request.userId).toBe('v2');
    await settle();
    expect(names(demoted)).not.toContain('newStageRequest');
    expect(names(demoted)).not.toContain('stageAccessRequestUpdate');
    // the host still on the first token's rights was told the name change too
    expect(obs.received.find((r) => r.name === 'participantUpdated')?.data).toEqual({
      userId: 'h',
      name: 'Hana (guest)',
      presetName: 'viewer',
    });
  });

  it('the same preset again (a plain reconnect) changes nothing and tells no one', async () => {
    await freshRoom();
    const s = await client('s', 'speaker');
    const v = await client('v', 'viewer');
    await s.request('stage.join');
    s.close();
    await until(() => !room.participants.get('s')?.connected, 2000, 'the drop');
    const again = await client('s', { ...PRESETS.speaker });
    await settle();
    expect(room.statusOf('s')).toBe('ON_STAGE');
    expect(names(v)).not.toContain('participantUpdated');
    expect(names(again)).not.toContain('stageStatusUpdate');
  });

  it('a reconnect in the grace period with a speaker token without video: video refused, audio kept, ON_STAGE kept', async () => {
    await freshRoom();
    const noVideo: Preset = {
      ...PRESETS.speaker,
      name: 'audio-speaker',
      media: { ...PRESETS.speaker.media, video: 'NOT_ALLOWED' },
    };
    const s = await client('s', 'speaker');
    const watcher = await client('w', 'viewer');
    await s.request('stage.join');
    const t = await s.request('createTransport', { direction: 'send' });
    await s.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    const audio = await s.request('produce', {
      transportId: t.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio', 1),
    });
    const video = await s.request('produce', {
      transportId: t.id,
      kind: 'video',
      rtpParameters: rtpParameters('video', 2),
    });
    expect(await workerProducerIds()).toEqual(expect.arrayContaining([audio.id, video.id]));

    s.close(); // a drop: the place is kept for the grace period
    await until(() => !room.participants.get('s')?.connected, 2000, 'the drop');
    const back = await client('s', noVideo, 'Sam');
    expect(room.statusOf('s')).toBe('ON_STAGE');
    const t2 = await back.request('createTransport', { direction: 'send' });
    await back.request('connectTransport', { transportId: t2.id, dtlsParameters: DTLS });
    const v2 = await back.ack('produce', {
      transportId: t2.id,
      kind: 'video',
      rtpParameters: rtpParameters('video', 3),
    });
    expect(v2).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const a2 = await back.request('produce', {
      transportId: t2.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio', 4),
    });

    const held = await workerProducerIds();
    expect(held).toEqual([a2.id]); // no video producer in the worker, the new audio one only
    expect(room.statusOf('s')).toBe('ON_STAGE');
    expect(names(back)).not.toContain('removedFromStage');
    expect(watcher.received.find((r) => r.name === 'participantUpdated')?.data).toEqual({
      userId: 's',
      name: 'Sam',
      presetName: 'audio-speaker',
    });
  });

  it('a producer racing the new token: created for a source the new preset forbids, it is closed and refused', async () => {
    await freshRoom();
    const noVideo: Preset = {
      ...PRESETS.speaker,
      name: 'audio-speaker',
      media: { ...PRESETS.speaker.media, video: 'NOT_ALLOWED' },
    };
    const s = await client('s', 'speaker');
    await s.request('stage.join');
    const t = await s.request('createTransport', { direction: 'send' });
    await s.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    const p = room.participants.get('s')!;
    // the room's own produce, with the preset swapped while the worker creates the producer
    const producing = room.produce(p, {
      transportId: t.id,
      kind: 'video',
      rtpParameters: rtpParameters('video', 5) as never,
    });
    p.preset = noVideo;
    await expect(producing).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(await workerProducerIds()).toEqual([]);
  });

  it('a demotion to a preset that does not allow the stage moves them off stage, by @backend, producers closed', async () => {
    await freshRoom('REQUEST', 'visible');
    const s = await client('s', 'speaker');
    const w = await client('w', 'viewer');
    await s.request('stage.join');
    const t = await s.request('createTransport', { direction: 'send' });
    await s.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    await s.request('produce', { transportId: t.id, kind: 'audio', rtpParameters: rtpParameters('audio', 1) });

    s.close();
    await until(() => !room.participants.get('s')?.connected, 2000, 'the drop');
    const peer = w.next('peerStageStatusUpdate');
    const back = await connect('s', 'viewer');
    const removed = back.next('removedFromStage');
    const status = back.next('stageStatusUpdate');
    const snapshot = await joinRaw(back);
    // the snapshot shows the status as it was; the change follows as notifications
    expect(snapshot.self.stageStatus).toBe('ON_STAGE');
    expect(await removed).toEqual({ by: '@backend' });
    expect(await status).toEqual({ old: 'ON_STAGE', new: 'OFF_STAGE', by: '@backend' });
    expect(await peer).toEqual({ userId: 's', old: 'ON_STAGE', new: 'OFF_STAGE' });
    expect(room.statusOf('s')).toBe('OFF_STAGE');
    expect(await back.ack('createTransport', { direction: 'send' })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_STATE' },
    });
    expect(await workerProducerIds()).toEqual([]);
  });

  it('hidden room: an audience member renamed by a new token is told to the hosts only; promoted to host, appears to all', async () => {
    await freshRoom();
    const h = await client('h', 'host');
    const w = await client('w', 'viewer');
    const a = await client('a', 'viewer', 'Anon');
    a.close();
    await until(() => !room.participants.get('a')?.connected, 2000, 'the drop');
    const toHost = h.next('participantUpdated');
    await joinRaw(await connect('a', 'viewer', 'Secret Name'));
    expect(await toHost).toEqual({ userId: 'a', name: 'Secret Name', presetName: 'viewer' });
    await settle();
    expect(JSON.stringify(w.received)).not.toContain('Secret Name');
    expect(names(w)).not.toContain('participantUpdated');

    // promoted to a host: a stage person now, so the viewer's roster gets them, with the new name
    const appears = w.next('participantJoined');
    const updated = w.next('participantUpdated');
    await joinRaw(await connect('a', 'host', 'Co-host'));
    expect((await appears).participant).toMatchObject({ id: 'a', name: 'Co-host' });
    expect(await updated).toEqual({ userId: 'a', name: 'Co-host', presetName: 'host' });
    expect(JSON.stringify(w.received)).not.toContain('Secret Name');
  });

  it('a promoted viewer gets the new rights: OFF_STAGE → ACCEPTED, the pending list, host events', async () => {
    await freshRoom();
    await client('h', 'host');
    const v1 = await client('v1', 'viewer', 'Vera');
    const v2 = await client('v2', 'viewer');
    await v2.request('stage.requestAccess');
    const joined = await v1.request('stage.join').catch((e: { code: string }) => e);
    expect(joined).toMatchObject({ code: 'INVALID_STATE' }); // still a viewer

    const promoted = await connect('v1', 'host', 'Vera (co-host)');
    const status = promoted.next('stageStatusUpdate');
    const snapshot = await joinRaw(promoted);
    expect(snapshot.self.preset.name).toBe('host');
    expect(snapshot.requests.map((r) => r.userId)).toEqual(['v2']); // a new host gets the pending list
    expect(await status).toEqual({ old: 'OFF_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE', by: '@backend' });

    expect((await promoted.request('stage.getAccessRequests')).requests.map((r) => r.userId)).toEqual(['v2']);
    const v3 = await client('v3', 'viewer');
    const told = promoted.next('newStageRequest');
    await v3.request('stage.requestAccess');
    expect((await told).request.userId).toBe('v3');
    const grant = await promoted.request('stage.grantAccess', { userIds: ['v2'] });
    expect(grant.results.v2).toEqual({ ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' });
    expect(await promoted.request('stage.join')).toEqual({ status: 'ON_STAGE' });
  });
});

describe('tokens are bound to a room instance', () => {
  it('a room deleted and created again with the same id refuses the old tokens (UNAUTHORIZED)', async () => {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${server.sg.apiSecret}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, json: r.status === 204 ? undefined : await r.json() }));
    expect((await api('POST', '/api/rooms', { id: 'again' })).status).toBe(201);
    const old = (await api('POST', '/api/rooms/again/tokens', { userId: 'u', name: 'U', preset: 'host' })).json;
    const first = await connectRaw(server.url, { token: old.token });
    first.close();
    expect((await api('DELETE', '/api/rooms/again')).status).toBe(204);

    // deleted: the old token neither opens nor (demo auto-create) re-creates the room
    const gone = await connectRaw(server.url, { token: old.token }).catch((e: { code: string; message: string }) => e);
    expect(gone).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/deleted/) });
    expect(server.sg.rooms.get('again')).toBeUndefined();

    expect((await api('POST', '/api/rooms', { id: 'again' })).status).toBe(201);
    const refused = await connectRaw(server.url, { token: old.token }).catch((e: { code: string }) => e);
    expect(refused).toMatchObject({ code: 'UNAUTHORIZED' });
    const fresh = (await api('POST', '/api/rooms/again/tokens', { userId: 'u', name: 'U', preset: 'host' })).json;
    const ok = await connectRaw(server.url, { token: fresh.token });
    clients.push(ok);
    expect((await joinRaw(ok)).self.id).toBe('u');
    server.sg.rooms.close('again');
  });
});

describe('token refresh', () => {
  it('hands a connected session a fresh token before expiry, which opens the room after the old one expired', async () => {
    await freshRoom();
    const short = await server.sg.tokens.mint(
      { userId: 'v', name: 'V', roomId: room.id, preset: 'viewer', roomInstance: room.instanceId },
      3,
    );
    const v = await connectRaw(server.url, { token: short });
    clients.push(v);
    await joinRaw(v);
    const refreshed: Notifications['tokenRefreshed'] = await v.next('tokenRefreshed', 4_000);
    const claims = JSON.parse(Buffer.from(refreshed.token.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(claims).toMatchObject({ sub: 'v', name: 'V', room: room.id, preset: 'viewer', rin: room.instanceId });
    expect(claims.exp).toBe(refreshed.expiresAt);

    // past the original expiry: the old token is refused, the refreshed one opens
    await until(
      () => Date.now() / 1000 > JSON.parse(Buffer.from(short.split('.')[1]!, 'base64url').toString()).exp + 0.1,
      5000,
    );
    const expired = await connectRaw(server.url, { token: short }).catch((e: { code: string; message: string }) => e);
    expect(expired).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/expired/) });
    const again = await connectRaw(server.url, { token: refreshed.token });
    clients.push(again);
    expect((await joinRaw(again)).self.id).toBe('v');

    // on request too
    const asked = await again.request('refreshToken');
    expect(asked.expiresAt).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('demo routes', () => {
  const demo = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, json: await r.json() }));

  it('mint tokens only for rooms the demo routes created', async () => {
    await freshRoom(); // created by the backend, not the demo routes
    const refused = await demo('/demo/tokens', { roomId: room.id, name: 'Eve', role: 'viewer' });
    expect(refused).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND' } } });
    const created = await demo('/demo/rooms', {});
    expect(created.status).toBe(201);
    const ok = await demo('/demo/tokens', { roomId: created.json.roomId, name: 'Ann', role: 'viewer' });
    expect(ok.status).toBe(201);
    const noKey = await demo('/demo/tokens', { roomId: created.json.roomId, name: 'Eve', role: 'host' });
    expect(noKey).toMatchObject({ status: 403, json: { error: { code: 'FORBIDDEN' } } });
    server.sg.rooms.close(created.json.roomId);
  });

  it('an old host token does not re-create a deleted demo room', async () => {
    const created = await demo('/demo/rooms', {});
    const { roomId, hostKey } = created.json as { roomId: string; hostKey: string };
    const { token } = (await demo('/demo/tokens', { roomId, name: 'Hal', role: 'host', hostKey })).json as {
      token: string;
    };
    server.sg.rooms.close(roomId);
    const refused = await connectRaw(server.url, { token }).catch((e: { code: string }) => e);
    expect(refused).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(server.sg.rooms.get(roomId)).toBeUndefined();
    // and no token for it any more, even with its host key
    const after = await demo('/demo/tokens', { roomId, name: 'Hal', role: 'host', hostKey });
    expect(after.status).toBe(404);
  });
});
