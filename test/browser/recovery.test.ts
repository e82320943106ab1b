/**
 * Recovery with real media: real Chromium pages (fake camera and microphone) driving the thin
 * client, a real server and a real mediasoup worker. What proves recovery is decoded video on the
 * viewer (`inbound-rtp` framesDecoded from getStats()), with no action by anyone.
 *
 * a) The speaker's connection drops (its WebSocket closes under socket.io, as a network failure
 *    would: `meeting.__dropConnectionForTests()`). The server keeps the speaker ON_STAGE for the
 *    grace period and closes their producers; the client reconnects by itself and publishes again;
 *    the viewer receives the new producers.
 * b) The room's mediasoup worker is killed (SIGKILL). The room moves to a new worker (new
 *    router), clients get `mediaReset`, rebuild their transports, publish and consume again; the
 *    stage is untouched.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Room } from '../../server/room/Room.js';
import { inboundStats } from '../helpers/browser.js';
import { framesDecoded, newRoom, openMeeting as openMeetingPage, useMeetingPages } from '../helpers/meetingPages.js';

useMeetingPages({ reconnectGraceMs: 30_000 });

/**
 * A page in the room with the thin client (default tracks: getUserMedia) that records the
 * connection events on `window.log` and counts the getUserMedia calls on `window.gumCalls`.
 */
const openMeeting = (userId: string, preset: 'speaker' | 'viewer', room: Room, onStage: boolean) =>
  openMeetingPage(userId, preset, room, {
    before: `window.gumCalls = 0;
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (c) => (window.gumCalls++, gum(c));`,
    events: ['reconnecting', 'reconnected', 'disconnected', 'mediaError'],
    onStage,
  });

async function decoding(viewer: Page, moreThan: number): Promise<void> {
  await expect.poll(() => framesDecoded(viewer), { timeout: 15_000, interval: 250 }).toBeGreaterThan(moreThan);
}

function producerIds(room: Room, userId: string): string[] {
  return [...(room.participants.get(userId)?.producers.keys() ?? [])];
}

it('a speaker whose connection drops is back on stage by itself; the viewer decodes the new producer', async () => {
  const room = await newRoom('recovery-reconnect');
  const speaker = await openMeeting('spk', 'speaker', room, true);
  const viewer = await openMeeting('v', 'viewer', room, false);
  await decoding(viewer, 20);
  const before = producerIds(room, 'spk');
  expect(before).toHaveLength(2);

  const atDrop = await framesDecoded(viewer);
  await speaker.evaluate('window.meeting.__dropConnectionForTests()');
  // The server saw the drop: producers closed at once, the place on stage kept.
  await expect.poll(() => producerIds(room, 'spk').filter((id) => before.includes(id)), { timeout: 5_000 }).toEqual([]);
  expect(room.stage.get('spk')?.status).toBe('ON_STAGE');

  // No action by anyone: the client reconnects and publishes again; the viewer decodes it.
  await decoding(viewer, atDrop + 20);
  const after = producerIds(room, 'spk');
  expect(after).toHaveLength(2);
  expect(after.some((id) => before.includes(id))).toBe(false);
  const consumed = [...room.participants.get('v')!.consumers.values()].map((c) => c.producerId);
  expect(consumed.sort()).toEqual([...after].sort());
  expect(room.stage.get('spk')?.status).toBe('ON_STAGE');
  expect(await speaker.evaluate('window.meeting.connectionState')).toBe('connected');
  expect(await speaker.evaluate('window.log')).toEqual(['reconnecting {"attempt":1}', 'reconnected {"attempt":1}']);
  expect(await viewer.evaluate('window.log')).toEqual([]);
  expect(await speaker.evaluate('window.gumCalls')).toBe(1); // the same camera and microphone, published again
  // simulcast: the new consumer starts on the 320x240 layer and moves up to 640x480
  await expect.poll(async () => (await inboundStats(viewer)).video.frameWidth, { timeout: 15_000 }).toBe(640);
  const video = await inboundStats(viewer);
  expect(video.video).toMatchObject({ frameWidth: 640, frameHeight: 480 });
});

it('the room survives its mediasoup worker dying: the viewer decodes again from the new router, the stage is unchanged', async () => {
  const room = await newRoom('recovery-worker');
  const speaker = await openMeeting('spk', 'speaker', room, true);
  const viewer = await openMeeting('v', 'viewer', room, false);
  await decoding(viewer, 20);
  const stageBefore = room.stage.members().map((m) => ({ ...m }));
  const deadPid = room.worker.pid;
  const oldRouter = room.router;

  const atKill = await framesDecoded(viewer);
  process.kill(deadPid, 'SIGKILL');
  await expect.poll(() => room.worker.pid, { timeout: 10_000 }).not.toBe(deadPid);
  expect(room.router).not.toBe(oldRouter);

  await decoding(viewer, atKill + 20);
  expect(room.stage.members()).toEqual(stageBefore);
  expect(producerIds(room, 'spk')).toHaveLength(2);
  expect(room.participants.get('v')!.consumers.size).toBe(2);
  const dump = (await room.router.dump()) as { mapProducerIdConsumerIds: unknown[] };
  expect(dump.mapProducerIdConsumerIds).toHaveLength(2);
  expect(await speaker.evaluate('window.meeting.stage.status')).toBe('ON_STAGE');
  // a worker death is not a connection drop
  expect(await speaker.evaluate('window.log')).toEqual([]);
  expect(await viewer.evaluate('window.log')).toEqual([]);
  expect(await speaker.evaluate('window.gumCalls')).toBe(1);
});
