/**
 * The client's media following: snapshot consumption, track ownership (getUserMedia tracks are
 * the client's, app tracks are the app's), publish failures, leaving and server disconnects.
 */
import { until } from '../helpers/server.js';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import type { AllowedKinds, Preset } from '../../client/index.js';
import { collect, fakeTrack, serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  // No reconnect grace here: a participant who disconnects leaves the room at once.
  h = await startHarness({ reconnectGraceMs: 0 });
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

/** Installs a fake `navigator.mediaDevices.getUserMedia` for one test; returns its mock and the restore. */
function stubGetUserMedia() {
  const created: MediaStreamTrack[] = [];
  const getUserMedia = vi.fn(async (c: { audio: boolean; video: boolean }) => {
    const tracks = (['audio', 'video'] as const).filter((k) => c[k]).map((k) => fakeTrack(k));
    created.push(...tracks);
    return { getTracks: () => tracks } as unknown as MediaStream;
  });
  const previous = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  Object.defineProperty(globalThis, 'navigator', {
    value: { mediaDevices: { getUserMedia } },
    configurable: true,
    writable: true,
  });
  const restore = () => {
    if (previous) Object.defineProperty(globalThis, 'navigator', previous);
    else delete (globalThis as { navigator?: unknown }).navigator;
  };
  return { getUserMedia, created, restore };
}

describe('receiving', () => {
  test('a late joiner receives what is already on stage (from the snapshot)', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    await host.stage.join();
    const viewer = await h.join(room, 'late', 'viewer');
    // joinMeeting resolves once the snapshot's producers are consumed.
    const seen = viewer.participants.get('host')!;
    expect(seen.stageStatus).toBe('ON_STAGE');
    expect(seen.producers.map((p) => p.source).sort()).toEqual(['audio', 'video']);
    expect(seen.tracks.audio?.kind).toBe('audio');
    expect(seen.tracks.video?.kind).toBe('video');
    expect(room.participants.get('late')?.consumers.size).toBe(2);
  });

  test('a participant leaving the meeting: receivers lose the tracks, then the participant', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'spk', 'speaker');
    const added = collect(host, 'trackAdded', 2);
    await speaker.stage.join();
    await added;

    const removed = collect(host, 'trackRemoved', 2, (e) => e.participantId === 'spk');
    const left = waitFor(host, 'participantLeft');
    const disconnected = waitFor(speaker, 'disconnected');
    await speaker.leave();
    await speaker.leave(); // idempotent
    expect(await disconnected).toEqual({ reason: 'left' });
    expect(speaker.connected).toBe(false);
    expect((await left).userId).toBe('spk');
    await removed;
    expect(host.participants.has('spk')).toBe(false);
    // the worker reports the consumers' producerclose asynchronously
    await until(() => room.participants.get('host')?.consumers.size === 0, 2000, 'host consumers to close');
  });
});

describe('publishing', () => {
  test('default getUserMedia: only the kinds the preset allows; those tracks are stopped on leaving the stage', async () => {
    const gum = stubGetUserMedia();
    try {
      const room = await h.room('REQUEST');
      const audioOnly: Preset = {
        name: 'radio',
        stageAccess: 'ALLOWED',
        acceptStageRequests: false,
        kickParticipant: false,
        media: { audio: 'ALLOWED', video: 'NOT_ALLOWED', screenshare: 'NOT_ALLOWED' },
      };
      const radio = await h.join(room, 'radio', audioOnly, { tracks: undefined });
      expect(gum.getUserMedia).not.toHaveBeenCalled(); // lazily, on ON_STAGE
      await radio.stage.join();
      expect(gum.getUserMedia).toHaveBeenCalledExactlyOnceWith({ audio: true, video: false });
      expect(serverProducers(room, 'radio')).toBe(1);
      const [track] = gum.created;
      expect(radio.localTracks.audio).toBe(track);
      expect(track?.readyState).toBe('live');

      await radio.stage.leave();
      expect(track?.readyState).toBe('ended');
      expect(radio.localTracks).toEqual({});

      // Going on stage again asks for fresh tracks.
      await radio.stage.join();
      expect(gum.getUserMedia).toHaveBeenCalledTimes(2);
      expect(gum.created[1]?.readyState).toBe('live');
      await radio.leave();
      expect(gum.created[1]?.readyState).toBe('ended');
    } finally {
      gum.restore();
    }
  });

  test('a tracks function is called each time with the allowed kinds; its tracks stay the app’s', async () => {
    const room = await h.room('REQUEST');
    const given: MediaStreamTrack[] = [];
    const tracks = vi.fn(async (allowed: AllowedKinds) => {
      const t = {
        audio: allowed.audio ? fakeTrack('audio') : undefined,
        video: allowed.video ? fakeTrack('video') : undefined,
      };
      given.push(...[t.audio, t.video].filter((x): x is MediaStreamTrack => !!x));
      return t;
    });
    const speaker = await h.join(room, 'spk', 'speaker', { tracks });
    await speaker.stage.join();
    expect(tracks).toHaveBeenCalledExactlyOnceWith({ audio: true, video: true });
    expect(serverProducers(room, 'spk')).toBe(2);
    await speaker.stage.leave();
    expect(given.every((t) => t.readyState === 'live')).toBe(true);
    await speaker.stage.join();
    expect(tracks).toHaveBeenCalledTimes(2);
  });

  test('join() rejects when publishing fails, and mediaError reports it', async () => {
    const room = await h.room('REQUEST');
    const speaker = await h.join(room, 'spk', 'speaker', {
      tracks: async () => {
        throw new Error('camera unplugged');
      },
    });
    const mediaError = waitFor(speaker, 'mediaError');
    const err = await speaker.stage.join().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'StagegateError', code: 'INTERNAL' });
    expect((err as Error).message).toContain('camera unplugged');
    expect((await mediaError).during).toBe('publish');
    // The server put us on stage; nothing is published; stepping down works.
    expect(speaker.stage.status).toBe('ON_STAGE');
    expect(serverProducers(room, 'spk')).toBe(0);
    await speaker.stage.leave();
    expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
  });

  test('a wrong-kind track is refused locally with INVALID_REQUEST', async () => {
    const room = await h.room('REQUEST');
    const speaker = await h.join(room, 'spk', 'speaker', { tracks: { audio: fakeTrack('video') } });
    await expect(speaker.stage.join()).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(serverProducers(room, 'spk')).toBe(0);
  });
});

describe('disconnects', () => {
  test('the room closing: everyone gets disconnected { reason: "room-closed" }', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    const hostGone = waitFor(host, 'disconnected');
    const viewerGone = waitFor(viewer, 'disconnected');
    h.sg.rooms.close(room.id);
    expect(await hostGone).toEqual({ reason: 'room-closed' });
    expect(await viewerGone).toEqual({ reason: 'room-closed' });
    expect(host.connected).toBe(false);
  });

  test('a second connection of the same user replaces the first, keeps ON_STAGE and publishes again', async () => {
    const room = await h.room('REQUEST');
    const viewer = await h.join(room, 'v', 'viewer');
    const first = await h.join(room, 'host', 'host');
    await first.stage.join();
    const firstProducers = [...first.producers.keys()];
    const gone = waitFor(first, 'disconnected');
    const readded = collect(viewer, 'trackAdded', 2, (e) => !firstProducers.includes(e.producerId));
    const second = await h.join(room, 'host', 'host');
    expect(await gone).toEqual({ reason: 'replaced' });
    expect(first.producers.size).toBe(0);
    // The server keeps the stage status; joinMeeting resolves once the client published again.
    expect(second.stage.status).toBe('ON_STAGE');
    expect(second.producers.size).toBe(2);
    expect(serverProducers(room, 'host')).toBe(2);
    await readded;
  });

  test('mediaReset (the room moved to another worker): consumers and producers are rebuilt', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    const added = collect(viewer, 'trackAdded', 2);
    await host.stage.join();
    const before = (await added).map((e) => e.producerId);

    const removed = collect(viewer, 'trackRemoved', 2, (e) => before.includes(e.producerId));
    const readded = collect(viewer, 'trackAdded', 2, (e) => !before.includes(e.producerId));
    await room.moveTo(room.worker);
    await removed;
    const after = await readded;
    expect(after.map((e) => e.kind).sort()).toEqual(['audio', 'video']);
    expect(serverProducers(room, 'host')).toBe(2);
    expect(room.participants.get('v')?.consumers.size).toBe(2);
    expect(host.stage.status).toBe('ON_STAGE');
    expect([...host.producers.keys()].sort()).toEqual(after.map((e) => e.producerId).sort());
  });
});
