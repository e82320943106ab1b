/**
 * One room across two mediasoup workers with real media: real Chromium pages (fake camera and
 * microphone) driving the thin client, a real server with a pool of two real workers. What
 * proves it is decoded video on the viewers (`inbound-rtp` framesDecoded from getStats()).
 *
 * `maxConsumersPerRouter: 0` spreads from the first viewer: `edge` joins first and its receive
 * transport opens the room's router on the other worker; `near` and the speaker land on the
 * origin (the least loaded router). The speaker's producers are on the origin; `edge` receives
 * them through pipes.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Room } from '../../server/room/Room.js';
import { framesDecoded, newRoom, openMeeting as openMeetingPage, useMeetingPages } from '../helpers/meetingPages.js';

useMeetingPages({ numWorkers: 2, maxConsumersPerRouter: 0, reconnectGraceMs: 30_000 });

/** A page in the room with the thin client, its connection events on `window.log`; the speaker joins the stage. */
const openMeeting = (userId: string, preset: 'speaker' | 'viewer', room: Room) =>
  openMeetingPage(userId, preset, room, {
    events: ['reconnecting', 'disconnected', 'mediaError'],
    onStage: preset === 'speaker',
  });

async function decoding(viewer: Page, moreThan: number): Promise<void> {
  await expect.poll(() => framesDecoded(viewer), { timeout: 20_000, interval: 250 }).toBeGreaterThan(moreThan);
}

/** The worker pid of a user's receive transport, from the media plane's placement. */
function recvWorker(room: Room, userId: string): { pid: number; role: string } {
  const id = room.media.placement().participants[userId]?.recv;
  const r = room.media.routers().find((x) => !x.closed && x.router.id === id);
  if (!r) throw new Error(`no recv router for ${userId}`);
  return { pid: r.worker.pid, role: r.role };
}

/** edge (on the other worker) and near (origin) watching a speaker on the origin, both decoding. */
async function spreadRoom(name: string) {
  const room = await newRoom(name);
  const edge = await openMeeting('edge', 'viewer', room);
  const near = await openMeeting('near', 'viewer', room);
  const speaker = await openMeeting('spk', 'speaker', room);
  expect(recvWorker(room, 'edge').role).toBe('edge');
  expect(recvWorker(room, 'near').role).toBe('origin');
  expect(room.media.placement().participants.spk?.send).toBe(room.router.id);
  await decoding(edge, 20);
  await decoding(near, 20);
  return { room, edge, near, speaker };
}

const consumerIds = (room: Room, userId: string) => [...(room.participants.get(userId)?.consumers.keys() ?? [])].sort();

it('a speaker on one worker is decoded by a viewer on the other; SIGKILL of that worker brings only that viewer back', async () => {
  const { room, edge, near, speaker } = await spreadRoom('workers-edge');
  const originPid = room.worker.pid;
  const edgePid = recvWorker(room, 'edge').pid;
  expect(edgePid).not.toBe(originPid);
  // the viewer on the edge receives through pipes: the edge holds the speaker's producers
  const edgeRouter = room.media.routers().find((r) => r.role === 'edge')!;
  const producers = [...room.participants.get('spk')!.producers.keys()].sort();
  expect((await edgeRouter.router.dump()).mapProducerIdConsumerIds.map((e) => e.key).sort()).toEqual(producers);
  const nearConsumers = consumerIds(room, 'near');

  const atKill = await framesDecoded(edge);
  process.kill(edgePid, 'SIGKILL');
  await decoding(edge, atKill + 20);
  // back on a live worker; the origin and the speaker's producers untouched
  expect(recvWorker(room, 'edge').pid).not.toBe(edgePid);
  expect(room.worker.pid).toBe(originPid);
  expect([...room.participants.get('spk')!.producers.keys()].sort()).toEqual(producers);
  expect(consumerIds(room, 'near')).toEqual(nearConsumers); // near was not reset
  expect(consumerIds(room, 'edge')).toHaveLength(2);
  for (const page of [edge, near, speaker]) expect(await page.evaluate('window.log')).toEqual([]);
  await decoding(near, (await framesDecoded(near)) + 10);
});

it('SIGKILL of the origin worker brings every viewer back, the stage unchanged', async () => {
  const { room, edge, near, speaker } = await spreadRoom('workers-origin');
  const deadPid = room.worker.pid;
  const stageBefore = room.stage.members().map((m) => ({ ...m }));
  const at = { edge: await framesDecoded(edge), near: await framesDecoded(near) };
  const before = { edge: consumerIds(room, 'edge'), near: consumerIds(room, 'near') };

  process.kill(deadPid, 'SIGKILL');
  await expect.poll(() => room.worker.pid, { timeout: 10_000 }).not.toBe(deadPid);
  await decoding(edge, at.edge + 20);
  await decoding(near, at.near + 20);
  expect(room.stage.members()).toEqual(stageBefore);
  // everyone was reset: new consumers of new producers
  for (const u of ['edge', 'near'] as const) {
    expect(consumerIds(room, u)).toHaveLength(2);
    expect(consumerIds(room, u).some((id) => before[u].includes(id))).toBe(false);
  }
  expect(await speaker.evaluate('window.meeting.stage.status')).toBe('ON_STAGE');
  for (const page of [edge, near, speaker]) expect(await page.evaluate('window.log')).toEqual([]);
});
