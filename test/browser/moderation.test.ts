/**
 * STAGE.md Part 2 with real media: real Chromium pages (fake camera and microphone) driving the
 * thin client (a test bundle, not the demo pages), a real server and mediasoup worker. What
 * proves a hold is the viewer's `inbound-rtp` audio bytes (getStats()): they stop when the host
 * mutes the speaker, and flow again after ask → allow → resume. Auto-fill: when a slot ends, the
 * next requester is granted by `@auto`, joins, and the watcher decodes their video.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Room } from '../../server/room/Room.js';
import { inboundStats } from '../helpers/browser.js';
import { newRoom, openMeeting as openMeetingPage, useMeetingPages } from '../helpers/meetingPages.js';

useMeetingPages();

/**
 * A page in the room with the thin client, its stage events on `window.log`;
 * `joinWhenAccepted`: goes on stage by itself when a request is accepted.
 */
const openMeeting = (
  userId: string,
  preset: 'host' | 'speaker' | 'viewer',
  room: Room,
  opts: { onStage?: boolean; joinWhenAccepted?: boolean } = {},
) =>
  openMeetingPage(userId, preset, room, {
    stageEvents: ['mutedByHost', 'unmuteRequested', 'unmuteAllowed', 'stageAccessRequestAccepted', 'stageSlotEnding'],
    after: opts.joinWhenAccepted ? `meeting.stage.on('stageAccessRequestAccepted', () => meeting.stage.join());` : '',
    onStage: opts.onStage ?? false,
  });

const audioBytes = async (page: Page) => (await inboundStats(page)).audio.bytesReceived;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function flowing(page: Page): Promise<void> {
  const a = await audioBytes(page);
  await expect.poll(() => audioBytes(page), { timeout: 10_000, interval: 250 }).toBeGreaterThan(a + 500);
}

it('the host mutes a speaker: the viewer’s audio bytes stop; ask → allow → resume: they flow again', async () => {
  const room = await newRoom('mod-browser-mute');
  const host = await openMeeting('host', 'host', room);
  const speaker = await openMeeting('spk', 'speaker', room, { onStage: true });
  const viewer = await openMeeting('v', 'viewer', room);
  await flowing(viewer);

  await host.evaluate(`window.meeting.stage.mute(['spk'], ['audio'])`);
  await expect.poll(() => speaker.evaluate('window.meeting.stage.held')).toEqual(['audio']);
  await sleep(700); // packets already in flight
  const stopped = await audioBytes(viewer);
  await sleep(2000);
  expect(await audioBytes(viewer)).toBe(stopped);
  // the video is not held: still decoding
  const frames = (await inboundStats(viewer)).video.framesDecoded;
  await expect.poll(async () => (await inboundStats(viewer)).video.framesDecoded).toBeGreaterThan(frames);

  // resuming by itself is refused by the server; nothing flows
  expect(
    await speaker.evaluate(`window.meeting.stage.resumeSource('audio').then(() => 'resumed', (e) => e.code)`),
  ).toBe('FORBIDDEN');
  await sleep(1000);
  expect(await audioBytes(viewer)).toBe(stopped);

  await speaker.evaluate(`window.meeting.stage.requestUnmute('audio')`);
  await expect
    .poll(() => host.evaluate('window.log.filter((l) => l.startsWith("unmuteRequested"))'))
    .toEqual(['unmuteRequested {"userId":"spk","source":"audio"}']);
  expect(await viewer.evaluate('window.log')).toEqual([]); // the viewer is told nothing of holds
  await host.evaluate(`window.meeting.stage.allowUnmute(['spk'], ['audio'])`);
  await expect.poll(() => speaker.evaluate('window.meeting.stage.held')).toEqual([]);
  await speaker.evaluate(`window.meeting.stage.resumeSource('audio')`);
  await flowing(viewer);
}, 60_000);

it('auto-fill brings the next requester on stage when a slot ends; the watcher decodes them', async () => {
  const room = await newRoom('mod-browser-fill', 'REQUEST', { stageCap: 1, autoFill: true, slotSeconds: 4 });
  const watcher = await openMeeting('w', 'host', room);
  const first = await openMeeting('a', 'viewer', room, { joinWhenAccepted: true });
  await first.evaluate(`window.meeting.stage.requestAccess()`);
  await expect.poll(() => room.stage.get('a')?.status, { timeout: 10_000 }).toBe('ON_STAGE');
  const next = await openMeeting('b', 'viewer', room, { joinWhenAccepted: true });
  expect(await next.evaluate(`window.meeting.stage.requestAccess()`)).toBe('REQUESTED_TO_JOIN_STAGE');
  expect(await next.evaluate('window.meeting.stage.position')).toBe(1);
  expect(room.stage.get('b')?.status).toBe('REQUESTED_TO_JOIN_STAGE'); // the seat is taken
  // the slot ends: a goes off, @auto grants b, b's page joins, the watcher decodes b
  await expect.poll(() => room.stage.get('b')?.status, { timeout: 10_000 }).toBe('ON_STAGE');
  expect(room.stage.get('a')?.status).toBe('OFF_STAGE');
  expect(await next.evaluate('window.log.filter((l) => l.startsWith("stageAccessRequestAccepted"))')).toEqual([
    'stageAccessRequestAccepted {"by":"@auto","invited":false}',
  ]);
  expect(await first.evaluate('window.log.some((l) => l.startsWith("stageSlotEnding"))')).toBe(true);
  await expect
    .poll(
      () => {
        const w = room.participants.get('w')!;
        const bProducers = [...(room.participants.get('b')?.producers.keys() ?? [])];
        return (
          bProducers.length > 0 && [...w.consumers.values()].filter((c) => bProducers.includes(c.producerId)).length
        );
      },
      { timeout: 10_000 },
    )
    .toBe(2);
  await flowing(watcher);
}, 60_000);
