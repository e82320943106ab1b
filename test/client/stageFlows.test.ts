/**
 * The seed flows of STAGE.md end to end through the client API: real server, real socket.io,
 * real mediasoup worker; FakeHandler and fake tracks on the client side.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { collect, serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

describe('request → grant → join → leave', () => {
  test('a viewer requests, the host grants, the viewer publishes, then leaves', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const joined = waitFor(host, 'participantJoined');
    const viewer = await h.join(room, 'ada', 'viewer');
    expect((await joined).participant.id).toBe('ada');
    expect(host.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(host.participants.get('ada')).toMatchObject({ name: 'ada', presetName: 'viewer', stageStatus: 'OFF_STAGE' });

    // request
    const newRequest = waitFor(host.stage, 'newStageRequest');
    const listUpdate = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 1);
    const ownUpdate = waitFor(viewer.stage, 'stageStatusUpdate');
    await expect(viewer.stage.requestAccess()).resolves.toBe('REQUESTED_TO_JOIN_STAGE');
    expect(viewer.stage.status).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(await ownUpdate).toEqual({ old: 'OFF_STAGE', new: 'REQUESTED_TO_JOIN_STAGE' });
    expect((await newRequest).request).toMatchObject({ userId: 'ada', name: 'ada' });
    expect((await listUpdate).requests.map((r) => r.userId)).toEqual(['ada']);
    const requests = await host.stage.getAccessRequests();
    expect(requests).toEqual([{ userId: 'ada', name: 'ada', requestedAt: expect.any(Number) }]);

    // grant
    const accepted = waitFor(viewer.stage, 'stageAccessRequestAccepted');
    const approved = waitFor(host.stage, 'stageRequestApproved');
    const peerUpdate = waitFor(host.stage, 'peerStageStatusUpdate', (e) => e.new === 'ACCEPTED_TO_JOIN_STAGE');
    const results = await host.stage.grantAccess(['ada']);
    expect(results).toEqual({ ada: { ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' } });
    expect(await accepted).toEqual({ by: 'host', invited: false });
    expect(await approved).toEqual({ userId: 'ada', by: 'host', invited: false });
    expect(await peerUpdate).toEqual({ userId: 'ada', old: 'REQUESTED_TO_JOIN_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE' });
    expect(viewer.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(host.participants.get('ada')?.stageStatus).toBe('ACCEPTED_TO_JOIN_STAGE');

    // join: the server holds the producers, the host receives them
    const tracksAdded = collect(host, 'trackAdded', 2, (e) => e.participantId === 'ada');
    await viewer.stage.join();
    expect(viewer.stage.status).toBe('ON_STAGE');
    expect(serverProducers(room, 'ada')).toBe(2);
    expect([...viewer.producers.values()].map((p) => p.source).sort()).toEqual(['audio', 'video']);
    expect(viewer.localTracks.audio?.kind).toBe('audio');
    const added = await tracksAdded;
    expect(added.map((e) => `${e.kind}/${e.source}`).sort()).toEqual(['audio/audio', 'video/video']);
    for (const e of added) expect(e.track.kind).toBe(e.kind);
    const ada = host.participants.get('ada')!;
    expect(ada.stageStatus).toBe('ON_STAGE');
    expect(ada.producers).toHaveLength(2);
    expect(ada.tracks.audio).toBe(added.find((e) => e.kind === 'audio')!.track);
    expect(ada.tracks.video).toBeDefined();

    // leave: producers gone on the server, the host is told
    const appTracks = { ...viewer.localTracks };
    const tracksRemoved = collect(host, 'trackRemoved', 2, (e) => e.participantId === 'ada');
    await viewer.stage.leave();
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(serverProducers(room, 'ada')).toBe(0);
    expect(room.participants.get('ada')?.sendTransportId).toBeUndefined();
    expect(viewer.producers.size).toBe(0);
    expect(viewer.localTracks).toEqual({});
    // Tracks the app passed in are the app's: never stopped by the client.
    expect(appTracks.audio?.readyState).toBe('live');
    expect(appTracks.video?.readyState).toBe('live');
    const removed = await tracksRemoved;
    expect(removed.map((e) => e.source).sort()).toEqual(['audio', 'video']);
    expect(host.participants.get('ada')?.tracks).toEqual({});
    expect(host.participants.get('ada')?.producers).toEqual([]);
  });

  test('the send transport is prepared while ACCEPTED, so join() only produces', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'ada', 'viewer');
    await viewer.stage.requestAccess();
    const sendTransport = new Promise<string>((resolve) => {
      const onTransport = (t: { id: string; appData: Record<string, unknown> }) => {
        if (t.appData.userId !== 'ada' || t.appData.direction !== 'send') return;
        room.router.observer.off('newtransport', onTransport);
        resolve(t.id);
      };
      room.router.observer.on('newtransport', onTransport);
    });
    await host.stage.grantAccess(['ada']);
    const prepared = await sendTransport; // created on ACCEPTED, before any join()
    const ada = room.participants.get('ada')!;
    await viewer.stage.join();
    expect(ada.sendTransportId).toBe(prepared);
    expect(serverProducers(room, 'ada')).toBe(2);
  });
});

describe('invite', () => {
  test('a host invites a viewer who did not request; the viewer declines with leave()', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'bob', 'viewer');

    const accepted = waitFor(viewer.stage, 'stageAccessRequestAccepted');
    const approved = waitFor(host.stage, 'stageRequestApproved');
    expect(await host.stage.grantAccess(['bob'])).toEqual({ bob: { ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' } });
    expect(await accepted).toEqual({ by: 'host', invited: true });
    expect(await approved).toEqual({ userId: 'bob', by: 'host', invited: true });
    expect(viewer.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');

    const declined = waitFor(host.stage, 'peerStageStatusUpdate', (e) => e.userId === 'bob');
    await viewer.stage.leave();
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(await declined).toEqual({ userId: 'bob', old: 'ACCEPTED_TO_JOIN_STAGE', new: 'OFF_STAGE' });
    expect(serverProducers(room, 'bob')).toBe(0);
    expect(room.participants.get('bob')?.sendTransportId).toBeUndefined();
  });

  test('an invited viewer joins and publishes', async () => {
    const room = await h.room('INVITE');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'bob', 'viewer');
    await host.stage.grantAccess(['bob']);
    const added = collect(host, 'trackAdded', 2);
    await viewer.stage.join();
    expect(serverProducers(room, 'bob')).toBe(2);
    expect((await added).every((e) => e.participantId === 'bob')).toBe(true);
  });
});

describe('host', () => {
  test("the host's own requestAccess() → ACCEPTED; join, leave back to ACCEPTED, join again", async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'ada', 'viewer');
    await expect(host.stage.requestAccess()).resolves.toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(host.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');

    let added = collect(viewer, 'trackAdded', 2, (e) => e.participantId === 'host');
    await host.stage.join();
    expect(serverProducers(room, 'host')).toBe(2);
    await added;

    const removed = collect(viewer, 'trackRemoved', 2, (e) => e.participantId === 'host');
    const closedByServer = collect(host, 'producerClosedByServer', 2);
    await host.stage.leave();
    // ALLOWED participants rest at ACCEPTED, and keep their send transport.
    expect(host.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(serverProducers(room, 'host')).toBe(0);
    expect(host.producers.size).toBe(0);
    expect((await closedByServer).map((e) => e.reason)).toEqual(['left-stage', 'left-stage']);
    await removed;
    expect(room.participants.get('host')?.sendTransportId).toBeDefined();

    added = collect(viewer, 'trackAdded', 2, (e) => e.participantId === 'host');
    await host.stage.join();
    expect(serverProducers(room, 'host')).toBe(2);
    expect(host.producers.size).toBe(2);
    await added;
  });
});

describe('deny', () => {
  test('a denied viewer is told, goes OFF_STAGE, and may request again', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'cy', 'viewer');
    await viewer.stage.requestAccess();

    const rejected = waitFor(viewer.stage, 'stageRequestRejected');
    const hostRejected = waitFor(host.stage, 'stageRequestRejected');
    const emptied = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 0);
    expect(await host.stage.denyAccess(['cy'])).toEqual({ cy: { ok: true, status: 'OFF_STAGE' } });
    expect(await rejected).toEqual({ userId: 'cy', by: 'host', reason: 'denied' });
    expect(await hostRejected).toEqual({ userId: 'cy', by: 'host', reason: 'denied' });
    await emptied;
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(await host.stage.getAccessRequests()).toEqual([]);

    const again = waitFor(host.stage, 'newStageRequest');
    await expect(viewer.stage.requestAccess()).resolves.toBe('REQUESTED_TO_JOIN_STAGE');
    expect((await again).request.userId).toBe('cy');
    expect((await host.stage.getAccessRequests()).map((r) => r.userId)).toEqual(['cy']);
  });

  test('batch results report per user', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const a = await h.join(room, 'a', 'viewer');
    await h.join(room, 'b', 'viewer');
    await a.stage.requestAccess();
    const results = await host.stage.denyAccess(['a', 'b', 'nobody']);
    expect(results.a).toEqual({ ok: true, status: 'OFF_STAGE' });
    expect(results.b).toMatchObject({ ok: false, code: 'INVALID_STATE' });
    expect(results.nobody).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });
});

describe('kick', () => {
  test('a kicked viewer is told by whom; its producers close on the server; receivers lose the tracks', async () => {
    // visible: `other` keeps seeing dee off stage (hidden: dee leaves its roster, test/client/audience.test.ts)
    const room = await h.room('REQUEST', { audience: 'visible' });
    const host = await h.join(room, 'host', 'host');
    const other = await h.join(room, 'other', 'viewer');
    const viewer = await h.join(room, 'dee', 'viewer');
    await viewer.stage.requestAccess();
    await host.stage.grantAccess(['dee']);
    const hostAdded = collect(host, 'trackAdded', 2, (e) => e.participantId === 'dee');
    const otherAdded = collect(other, 'trackAdded', 2, (e) => e.participantId === 'dee');
    await viewer.stage.join();
    await Promise.all([hostAdded, otherAdded]);

    const removedFromStage = waitFor(viewer.stage, 'removedFromStage');
    const statusUpdate = waitFor(viewer.stage, 'stageStatusUpdate');
    const closedByServer = collect(viewer, 'producerClosedByServer', 2);
    const hostRemoved = collect(host, 'trackRemoved', 2, (e) => e.participantId === 'dee');
    const otherRemoved = collect(other, 'trackRemoved', 2, (e) => e.participantId === 'dee');
    const otherSees = waitFor(other.stage, 'peerStageStatusUpdate', (e) => e.userId === 'dee');
    expect(await host.stage.kick(['dee'])).toEqual({ dee: { ok: true, status: 'OFF_STAGE' } });
    expect(serverProducers(room, 'dee')).toBe(0);

    expect(await removedFromStage).toEqual({ by: 'host' });
    expect(await statusUpdate).toEqual({ old: 'ON_STAGE', new: 'OFF_STAGE', by: 'host' });
    expect((await closedByServer).map((e) => e.reason)).toEqual(['kicked', 'kicked']);
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(viewer.producers.size).toBe(0);
    await Promise.all([hostRemoved, otherRemoved, otherSees]);
    expect(other.participants.get('dee')).toMatchObject({ stageStatus: 'OFF_STAGE', producers: [], tracks: {} });

    // Kicked is not banned: the viewer may request again.
    await expect(viewer.stage.requestAccess()).resolves.toBe('REQUESTED_TO_JOIN_STAGE');
  });
});

describe('stage modes', () => {
  test('switching to INVITE rejects pending requests (reason "mode") and disables requests', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'eve', 'viewer');
    await viewer.stage.requestAccess();

    const rejected = waitFor(viewer.stage, 'stageRequestRejected');
    const modeUpdate = waitFor(viewer.stage, 'stageModeUpdate');
    await expect(host.stage.setMode('INVITE')).resolves.toBe('INVITE');
    expect(await rejected).toEqual({ userId: 'eve', by: 'host', reason: 'mode' });
    expect(await modeUpdate).toEqual({ mode: 'INVITE', by: 'host' });
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(viewer.stage.mode).toBe('INVITE');
    expect(host.stage.mode).toBe('INVITE');
    await expect(viewer.stage.requestAccess()).rejects.toMatchObject({
      name: 'StagegateError',
      code: 'STAGE_DISABLED',
    });
  });

  test('OPEN: a viewer joins directly', async () => {
    const room = await h.room('OPEN');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'fay', 'viewer');
    expect(viewer.stage.mode).toBe('OPEN');
    expect(viewer.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    const added = collect(host, 'trackAdded', 2, (e) => e.participantId === 'fay');
    await viewer.stage.join();
    expect(serverProducers(room, 'fay')).toBe(2);
    await added;
  });

  test('switching to OPEN lets an OFF_STAGE viewer join; switching away never removes anyone on stage', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'gus', 'viewer');
    const opened = waitFor(viewer.stage, 'stageStatusUpdate');
    await host.stage.setMode('OPEN');
    expect(await opened).toEqual({ old: 'OFF_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE', by: 'host' });
    await viewer.stage.join();
    expect(serverProducers(room, 'gus')).toBe(2);

    await host.stage.setMode('INVITE');
    expect(viewer.stage.status).toBe('ON_STAGE');
    expect(serverProducers(room, 'gus')).toBe(2);
    expect(viewer.producers.size).toBe(2);
  });
});
