/**
 * The media controls' client side (issue 12 item 3): mute / camera off pause the producer on the
 * server and here, a device switch keeps the producer, a screenshare is a second video producer
 * the preset must allow. Real server and mediasoup worker; FakeHandler and fake tracks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { fakeTrack, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reconnectGraceMs: 30_000 });
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

const serverProducer = (room: string, userId: string, source: string) =>
  [...(h.sg.rooms.get(room)?.participants.get(userId)?.producers.values() ?? [])].find((p) => p.source === source)
    ?.producer;

describe('meeting.stage media controls', () => {
  test('pauseSource pauses the producer on the server and here; resumeSource resumes both', async () => {
    const room = await h.room();
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    expect(speaker.stage.isPaused('audio')).toBe(false);
    await speaker.stage.pauseSource('audio');
    expect(serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(true);
    expect(serverProducer(room.id, 'speaker', 'video')?.paused).toBe(false);
    expect(speaker.stage.isPaused('audio')).toBe(true);
    expect(speaker.localTracks.audio?.enabled).toBe(false);
    await speaker.stage.resumeSource('audio');
    expect(serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(false);
    expect(speaker.stage.isPaused('audio')).toBe(false);
    expect(speaker.localTracks.audio?.enabled).toBe(true);
    // not published: NOT_FOUND, nothing changed
    await expect(speaker.stage.pauseSource('screenshare')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('a held source is paused here too; resume refused while held, allowed → the owner resumes', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    const told = waitFor(speaker.stage, 'mutedByHost');
    await host.stage.mute(['speaker'], ['audio']);
    await told;
    // held: paused here too (the page shows it muted), nothing sent
    expect(speaker.stage.isPaused('audio')).toBe(true);
    expect(speaker.localTracks.audio?.enabled).toBe(false);
    await expect(speaker.stage.resumeSource('audio')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(speaker.stage.isPaused('audio')).toBe(true);
    expect(serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(true);
    // allowed: still paused until the owner resumes
    const allowed = waitFor(speaker.stage, 'unmuteAllowed');
    await host.stage.allowUnmute(['speaker'], ['audio']);
    await allowed;
    expect(speaker.stage.isPaused('audio')).toBe(true);
    await speaker.stage.resumeSource('audio');
    expect(speaker.stage.isPaused('audio')).toBe(false);
    expect(serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(false);
  });

  test('replaceTrack keeps the producer and sends the new track; a wrong kind is refused', async () => {
    const room = await h.room();
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    const before = serverProducer(room.id, 'speaker', 'video')!.id;
    const cam2 = fakeTrack('video');
    await speaker.stage.replaceTrack('video', cam2);
    expect(speaker.localTracks.video).toBe(cam2);
    expect(serverProducer(room.id, 'speaker', 'video')!.id).toBe(before);
    await expect(speaker.stage.replaceTrack('video', fakeTrack('audio'))).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
    expect(speaker.localTracks.video).toBe(cam2);
    await expect(speaker.stage.replaceTrack('screenshare', cam2)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('shareScreen: a second video producer for a host, FORBIDDEN for a speaker; stop closes it', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'speaker', 'speaker');
    await host.stage.join();
    await speaker.stage.join();
    const camera = host.localTracks.video;
    const screen = fakeTrack('video');
    const seen = waitFor(speaker, 'trackAdded', (e) => e.source === 'screenshare');
    await host.stage.shareScreen(screen);
    expect(serverProducer(room.id, 'host', 'screenshare')?.kind).toBe('video');
    expect((await seen).participantId).toBe('host');
    expect(host.localTracks.video).toBe(camera); // the camera is still "the" video
    expect([...host.producers.values()].map((p) => p.source).sort()).toEqual(['audio', 'screenshare', 'video']);

    await expect(speaker.stage.shareScreen(fakeTrack('video'))).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(serverProducer(room.id, 'speaker', 'screenshare')).toBeUndefined();

    const gone = waitFor(speaker, 'trackRemoved', (e) => e.source === 'screenshare');
    await host.stage.stopScreenShare();
    await gone;
    expect(serverProducer(room.id, 'host', 'screenshare')).toBeUndefined();
    expect(serverProducer(room.id, 'host', 'video')).toBeDefined();
    expect(screen.readyState).toBe('live'); // the caller's track: not stopped by the client
  });

  test('a muted microphone stays muted across a reconnect (the new producer is paused at once)', async () => {
    const room = await h.room();
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    const before = serverProducer(room.id, 'speaker', 'audio')!.id;
    await speaker.stage.pauseSource('audio');
    const reconnected = waitFor(speaker, 'reconnected');
    speaker.__dropConnectionForTests!();
    await reconnected;
    await speaker.ready();
    await expect.poll(() => serverProducer(room.id, 'speaker', 'audio')?.id).not.toBe(before);
    await expect.poll(() => serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(true);
    expect(serverProducer(room.id, 'speaker', 'video')?.paused).toBe(false);
    expect(speaker.stage.isPaused('audio')).toBe(true);
    // a new turn on stage starts unmuted
    await speaker.stage.leave();
    await speaker.stage.requestAccess();
    await speaker.stage.join();
    expect(serverProducer(room.id, 'speaker', 'audio')?.paused).toBe(false);
    expect(speaker.stage.isPaused('audio')).toBe(false);
  });
});
