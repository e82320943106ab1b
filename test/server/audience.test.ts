/**
 * The audience contract (STAGE.md Part 2, "Audience: who sees whom") over raw sockets: every
 * frame a socket receives is captured as it arrives (plain events and whole `batch` frames,
 * before any client-side filtering), and every ack, and searched for identities that must not be
 * there. A real server on port 0, a real mediasoup worker, real socket.io.
 */
import { describe, expect, it } from 'vitest';
import { connectRaw, joinRaw, rtpParameters, DTLS, until, type RawClient } from '../helpers/server.js';
import { server, room, clients, freshRoom, useRawRooms, adoptRoom } from '../helpers/rawRooms.js';

useRawRooms({ reconnectGraceMs: 200 }, { prefix: 'aud' });

/** A raw client that records every frame it receives, unfiltered, and every ack, as JSON. */
interface Spy extends RawClient {
  id: string;
  name: string;
  /** Each frame as received: `[event, data]` JSON, `batch` frames whole. */
  frames: string[];
  /** The joinRoom answer. */
  snapshot: Awaited<ReturnType<typeof joinRaw>>;
}

async function spy(userId: string, preset: 'host' | 'speaker' | 'viewer', name = `Name of ${userId}`): Promise<Spy> {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id, name) });
  clients.push(c);
  const frames: string[] = [];
  c.socket.onAny((event: string, data: unknown) => frames.push(JSON.stringify([event, data])));
  const snapshot = await joinRaw(c);
  frames.push(JSON.stringify(['joinRoom-ack', snapshot]));
  return Object.assign(c, { id: userId, name, frames, snapshot });
}

/** Waits until the outbox has flushed what the last actions queued (one socket.io round trip). */
async function settle(...cs: RawClient[]) {
  await Promise.all(cs.map((c) => c.ack('stage.getAccessRequests')));
  await new Promise((r) => setTimeout(r, 30));
}

/** Identities (ids and names) of `others` that appear in what `c` received. */
function leaked(c: Spy, others: Spy[]): string[] {
  const text = c.frames.join('\n');
  return others.flatMap((o) => [o.id, o.name]).filter((s) => text.includes(s));
}

describe('hidden audience (the default)', () => {
  it('a room is hidden unless created visible; the snapshot carries settings and the count', async () => {
    await freshRoom();
    expect(room.settings).toMatchObject({ audience: 'hidden' });
    const host = await spy('host-1', 'host');
    await until(() => host.received.some((e) => e.name === 'audienceCount'), 3000, 'the first count');
    const v = await spy('viewer-1', 'viewer');
    expect(v.snapshot.settings).toMatchObject({ audience: 'hidden' });
    // the count everyone was told last; the viewer's own arrival follows within a second
    expect(host.snapshot.audienceCount).toBe(0);
    expect(v.snapshot.audienceCount).toBe(0);
    const counted = () => v.received.filter((e) => e.name === 'audienceCount').map((e) => e.data);
    await until(() => counted().length > 0, 3000, 'the viewer counted');
    expect(counted()).toEqual([{ count: 1 }]);
  });

  it('no viewer ever receives another audience member’s identity, request or status (plain or in batches)', async () => {
    await freshRoom();
    const host = await spy('host-zq', 'host', 'Hostess Quinn');
    const speaker = await spy('spk-zq', 'speaker', 'Speaker Sam');
    // three who stay in the audience the whole time, with ids and names found nowhere else
    const a = await spy('aud-alpha-91', 'viewer', 'Alpha Audienceperson');
    const b = await spy('aud-bravo-92', 'viewer', 'Bravo Audienceperson');
    const c = await spy('aud-charlie-93', 'viewer', 'Charlie Audienceperson');
    // one who is invited on stage, joins, is kicked back into the audience
    const d = await spy('aud-delta-94', 'viewer', 'Delta Promoted');
    const hidden = [a, b, c];

    // requests, cancels, denies, grants, mode switches while in the audience
    await a.request('stage.requestAccess');
    await b.request('stage.requestAccess');
    await b.request('stage.cancelRequestAccess');
    await c.request('stage.requestAccess');
    await host.request('stage.denyAccess', { userIds: ['aud-alpha-91'] });
    await a.request('stage.requestAccess');
    await host.request('stage.setMode', { mode: 'INVITE' }); // rejects a's and c's requests
    await host.request('stage.setMode', { mode: 'REQUEST' });
    await b.request('stage.requestAccess');
    // d: invited, joins, publishes, is kicked (back to the audience)
    await host.request('stage.grantAccess', { userIds: ['aud-delta-94'] });
    await d.request('stage.join');
    const t = await d.request('createTransport', { direction: 'send' });
    await d.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    await d.request('produce', { transportId: t.id, kind: 'audio', rtpParameters: rtpParameters('audio') });
    await host.request('stage.kick', { userIds: ['aud-delta-94'] });
    await d.request('stage.requestAccess');
    // a late viewer joins while requests are pending, an audience member leaves, one drops
    const late = await spy('aud-echo-95', 'viewer', 'Echo Latecomer');
    await b.request('leaveRoom');
    c.close(); // dropped: leaves after the grace period
    await until(() => !room.participants.has('aud-charlie-93'), 3000, 'c gone');
    await settle(host, a, d, late, speaker);

    // every viewer: nothing about the other hidden ones (their own identity is theirs to see)
    for (const viewer of [a, b, c, d, late]) {
      expect(
        leaked(
          viewer,
          hidden.filter((o) => o !== viewer),
        ),
      ).toEqual([]);
    }
    expect(leaked(late, [d])).toEqual([]); // d was back in the audience before late came
    expect(leaked(speaker, hidden)).toEqual([]);
    // nor the hosts' lists and events
    for (const viewer of [a, b, c, d, late, speaker]) {
      const text = viewer.frames.join('\n');
      for (const hostOnly of ['stageAccessRequestUpdate', 'newStageRequest', 'stageRequestApproved']) {
        expect(text).not.toContain(hostOnly);
      }
    }
    // the host saw everyone: arrivals, requests, departures
    for (const o of [...hidden, d, late]) expect(host.frames.join('\n')).toContain(o.id);
    expect(host.received.filter((e) => e.name === 'participantLeft').map((e) => e.data)).toEqual(
      expect.arrayContaining([{ userId: 'aud-bravo-92' }, { userId: 'aud-charlie-93' }]),
    );
  });

  it('a viewer’s snapshot lists only stage people; a host’s lists everyone', async () => {
    await freshRoom();
    await spy('host-s', 'host');
    await spy('spk-s', 'speaker');
    const v1 = await spy('viewer-s1', 'viewer');
    await v1.request('stage.requestAccess');
    const v2 = await spy('viewer-s2', 'viewer');
    expect(v2.snapshot.participants.map((p) => p.id).sort()).toEqual(['host-s', 'spk-s']);
    await until(
      () => v2.received.some((e) => e.name === 'audienceCount' && (e.data as { count: number }).count === 2),
      3000,
    );
    const host2 = await spy('host-s2', 'host');
    expect(host2.snapshot.participants.map((p) => p.id).sort()).toEqual(['host-s', 'spk-s', 'viewer-s1', 'viewer-s2']);
    expect(host2.snapshot.requests.map((r) => r.userId)).toEqual(['viewer-s1']);
  });

  it('an audience member’s actions reach the hosts and that member only', async () => {
    await freshRoom();
    const host = await spy('host-c', 'host');
    const speaker = await spy('spk-c', 'speaker');
    const idle = await spy('viewer-idle', 'viewer');
    const actor = await spy('viewer-actor', 'viewer');
    await settle(host, idle, speaker);
    await new Promise((r) => setTimeout(r, 1100)); // past any audienceCount from the joins
    const [idleBefore, speakerBefore, hostBefore] = [idle.frames.length, speaker.frames.length, host.frames.length];
    await actor.request('stage.requestAccess');
    await actor.request('stage.cancelRequestAccess');
    await actor.request('stage.requestAccess');
    await host.request('stage.denyAccess', { userIds: ['viewer-actor'] });
    await settle(host, idle, speaker, actor);
    expect(idle.frames.slice(idleBefore)).toEqual([]);
    expect(speaker.frames.slice(speakerBefore)).toEqual([]);
    expect(host.frames.length).toBeGreaterThan(hostBefore);
    const hostSaw = host.received.filter((e) => e.name === 'peerStageStatusUpdate').map((e) => e.data);
    expect(hostSaw).toContainEqual({ userId: 'viewer-actor', old: 'OFF_STAGE', new: 'REQUESTED_TO_JOIN_STAGE' });
    expect(actor.received.filter((e) => e.name === 'stageStatusUpdate')).toHaveLength(4);
  });

  it('a viewer promoted to the stage appears to all, and disappears when back in the audience', async () => {
    await freshRoom();
    const host = await spy('host-p', 'host');
    const other = await spy('viewer-other', 'viewer');
    const v = await spy('viewer-prom', 'viewer', 'Promoted Pat');
    await v.request('stage.requestAccess');
    const appeared = other.next('participantJoined');
    await host.request('stage.grantAccess', { userIds: ['viewer-prom'] });
    expect((await appeared).participant).toMatchObject({
      id: 'viewer-prom',
      name: 'Promoted Pat',
      stageStatus: 'ACCEPTED_TO_JOIN_STAGE',
    });
    const onStage = other.next('peerStageStatusUpdate');
    await v.request('stage.join');
    expect(await onStage).toEqual({ userId: 'viewer-prom', old: 'ACCEPTED_TO_JOIN_STAGE', new: 'ON_STAGE' });
    const gone = other.next('participantLeft');
    await v.request('stage.leave');
    expect(await gone).toEqual({ userId: 'viewer-prom' });
    const hostSaw = () => host.received.filter((e) => e.name === 'peerStageStatusUpdate').map((e) => e.data);
    await until(() => hostSaw().length === 4, 3000, 'the host told of all four changes');
    expect(hostSaw().at(-1)).toEqual({ userId: 'viewer-prom', old: 'ON_STAGE', new: 'OFF_STAGE' });
    // the host keeps seeing them (no participantLeft for the host)
    await settle(host, other);
    expect(host.received.some((e) => e.name === 'participantLeft')).toBe(false);
    // and a stage person leaving the room is a departure for everyone
    await host.request('stage.grantAccess', { userIds: ['viewer-prom'] });
    await settle(host, other);
    const left = other.next('participantLeft');
    await v.request('leaveRoom');
    expect(await left).toEqual({ userId: 'viewer-prom' });
  });

  it('audienceCount: to everyone, at most once a second, only when it changed', async () => {
    await freshRoom();
    const host = await spy('host-n', 'host');
    const w = await spy('viewer-watch', 'viewer');
    const times: { at: number; count: number }[] = [];
    const hostCounts: number[] = [];
    w.on('audienceCount', ({ count }) => times.push({ at: performance.now(), count }));
    host.on('audienceCount', ({ count }) => hostCounts.push(count));
    await new Promise((r) => setTimeout(r, 1100));
    times.length = 0;
    // a burst of joins spread over ~2.5 s: far more changes than seconds
    for (let i = 0; i < 25; i++) {
      await spy(`viewer-burst-${i}`, 'viewer');
      await new Promise((r) => setTimeout(r, 100));
    }
    await until(() => times.at(-1)?.count === 26, 3000, 'the final count');
    expect(times.length).toBeGreaterThanOrEqual(2);
    expect(times.length).toBeLessThanOrEqual(5);
    for (let i = 1; i < times.length; i++) {
      expect(times[i]!.at - times[i - 1]!.at).toBeGreaterThan(900); // 1 s on the server, margin for the network
      expect(times[i]!.count).not.toBe(times[i - 1]!.count);
    }
    expect(hostCounts.at(-1)).toBe(26);

    // a join and a leave inside one window: the count did not change, nothing is sent
    await new Promise((r) => setTimeout(r, 1100));
    const sent = w.next('audienceCount');
    await spy('viewer-trigger', 'viewer'); // after a quiet second: sent at once, opening a window
    expect(await sent).toEqual({ count: 27 });
    const before = times.length;
    const flicker = await spy('viewer-flicker', 'viewer');
    // told the count the room was last told (27), not the momentary 28 that nobody else ever hears of
    expect(flicker.snapshot.audienceCount).toBe(27);
    await flicker.request('leaveRoom');
    // requests do not change the audience either
    await w.request('stage.requestAccess');
    await w.request('stage.cancelRequestAccess');
    await new Promise((r) => setTimeout(r, 1500));
    expect(times.length).toBe(before);
  });

  it('changing the audience setting: hosts only, everyone told, rosters follow', async () => {
    await freshRoom();
    const host = await spy('host-x', 'host');
    const v1 = await spy('viewer-x1', 'viewer');
    const v2 = await spy('viewer-x2', 'viewer');
    expect(await v1.ack('stage.setSettings', { audience: 'visible' })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(await host.ack('stage.setSettings', { audience: 'public' })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_REQUEST' },
    });
    expect(await host.ack('stage.setSettings', { audience: 'visible', extra: 1 })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_REQUEST' },
    });
    expect(room.settings.audience).toBe('hidden');

    const told = v1.next('roomSettingsUpdate');
    const appeared = v1.next('participantJoined');
    expect(await host.request('stage.setSettings', { audience: 'visible' })).toMatchObject({
      settings: { audience: 'visible' },
    });
    expect(await told).toMatchObject({ settings: { audience: 'visible' }, by: 'host-x' });
    expect((await appeared).participant.id).toBe('viewer-x2');
    // visible: a request is seen by everyone
    const seen = v1.next('peerStageStatusUpdate');
    await v2.request('stage.requestAccess');
    expect((await seen).userId).toBe('viewer-x2');

    // back to hidden, by the backend: the audience disappears from viewers' rosters
    const gone = v1.next('participantLeft');
    const res = await fetch(`${server.url}/api/rooms/${room.id}/settings`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${server.sg.apiSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ audience: 'hidden' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ settings: { audience: 'hidden' } });
    expect(await gone).toEqual({ userId: 'viewer-x2' });
    // the same setting again changes nothing and tells nobody
    await settle(host, v1);
    const n = v1.frames.length;
    await host.request('stage.setSettings', { audience: 'hidden' });
    await settle(host, v1);
    expect(v1.frames.length).toBe(n);
  });

  it('the HTTP API: rooms created hidden or visible, details list everyone, settings route guarded', async () => {
    const api = (method: string, path: string, body?: unknown, secret = server.sg.apiSecret) =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const created = await api('POST', '/api/rooms', { id: 'api-vis', settings: { audience: 'visible' } });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ id: 'api-vis', settings: { audience: 'visible' }, audienceCount: 0 });
    adoptRoom(server.sg.rooms.get('api-vis')!);
    expect((await api('POST', '/api/rooms', { settings: { audience: 'nope' } })).status).toBe(400);
    expect(
      (await api('PATCH', '/api/rooms/api-vis/settings', { audience: 'hidden' }, 'wrong-secret-xxxxxx')).status,
    ).toBe(401);
    expect((await api('PATCH', '/api/rooms/api-vis/settings', { audience: 1 })).status).toBe(400);
    expect((await api('PATCH', '/api/rooms/nope/settings', { audience: 'hidden' })).status).toBe(404);
    expect(room.settings.audience).toBe('visible');

    const hiddenRoom = await api('POST', '/api/rooms', { id: 'api-hid' });
    expect(await hiddenRoom.json()).toMatchObject({ settings: { audience: 'hidden' } });
    room.close();
    adoptRoom(server.sg.rooms.get('api-hid')!);
    await spy('host-api', 'host');
    await spy('viewer-api', 'viewer');
    const details = (await (await api('GET', '/api/rooms/api-hid')).json()) as {
      participants: { id: string }[];
      audienceCount: number;
    };
    expect(details.participants.map((p) => p.id).sort()).toEqual(['host-api', 'viewer-api']);
    expect(details.audienceCount).toBe(1);
  });
});

describe('visible audience', () => {
  it('behaves as Part 1: everyone sees everyone join, request and leave', async () => {
    await freshRoom('REQUEST', { audience: 'visible' });
    await spy('host-v', 'host');
    const v1 = await spy('viewer-v1', 'viewer');
    const joined = v1.next('participantJoined');
    const v2 = await spy('viewer-v2', 'viewer');
    expect((await joined).participant.id).toBe('viewer-v2');
    expect(v2.snapshot.participants.map((p) => p.id).sort()).toEqual(['host-v', 'viewer-v1']);
    const requested = v1.next('peerStageStatusUpdate');
    await v2.request('stage.requestAccess');
    expect(await requested).toEqual({ userId: 'viewer-v2', old: 'OFF_STAGE', new: 'REQUESTED_TO_JOIN_STAGE' });
    const left = v1.next('participantLeft');
    await v2.request('leaveRoom');
    expect(await left).toEqual({ userId: 'viewer-v2' });
  });
});
