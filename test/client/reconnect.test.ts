/**
 * With the server's reconnect grace period: a dropped connection keeps its place, a deliberate
 * `meeting.leave()` leaves the room at once (no grace period for a deliberate leave).
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { userKey } from '../../server/signaling/signaling.js';
import { collect, serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reconnectGraceMs: 30_000 });
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

test('meeting.leave() leaves the room at once, stage first', async () => {
  const room = await h.room('REQUEST');
  const host = await h.join(room, 'host', 'host');
  const viewer = await h.join(room, 'v', 'viewer');
  await viewer.stage.requestAccess();
  await host.stage.grantAccess(['v']);
  const added = collect(host, 'trackAdded', 2);
  await viewer.stage.join();
  await added;

  const steppedDown = waitFor(host.stage, 'peerStageStatusUpdate', (e) => e.userId === 'v');
  const removed = collect(host, 'trackRemoved', 2);
  const left = waitFor(host, 'participantLeft');
  await viewer.leave();
  expect(await steppedDown).toEqual({ userId: 'v', old: 'ON_STAGE', new: 'OFF_STAGE' });
  await removed;
  expect((await left).userId).toBe('v');
  expect(host.participants.has('v')).toBe(false);
  expect(room.participants.has('v')).toBe(false); // despite the 30 s grace period
  expect(room.stage.has('v')).toBe(false);
});

test('a pending request is withdrawn by meeting.leave()', async () => {
  const room = await h.room('REQUEST');
  const host = await h.join(room, 'host', 'host');
  const viewer = await h.join(room, 'v', 'viewer');
  await viewer.stage.requestAccess();
  const emptied = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 0);
  await viewer.leave();
  await emptied;
  expect(await host.stage.getAccessRequests()).toEqual([]);
});

test('a dropped connection that rejoins within the grace period is still ON_STAGE and publishes again', async () => {
  const room = await h.room('REQUEST');
  const host = await h.join(room, 'host', 'host');
  const speaker = await h.join(room, 'spk', 'speaker');
  const added = collect(host, 'trackAdded', 2);
  await speaker.stage.join();
  const before = (await added).map((e) => e.producerId);

  // Drop the connection from the server side (as a network failure would, without a goodbye).
  const dropped = waitFor(speaker, 'disconnected');
  const removed = collect(host, 'trackRemoved', 2);
  h.sg.io.in(userKey(room.id, 'spk')).disconnectSockets(true);
  expect((await dropped).reason).toBe('io server disconnect');
  await removed; // media goes at once: nobody hears a ghost
  expect(serverProducers(room, 'spk')).toBe(0);
  expect(room.stage.get('spk')?.status).toBe('ON_STAGE'); // the place is kept

  const readded = collect(host, 'trackAdded', 2, (e) => !before.includes(e.producerId));
  const again = await h.join(room, 'spk', 'speaker');
  expect(again.stage.status).toBe('ON_STAGE');
  expect(again.producers.size).toBe(2);
  expect(serverProducers(room, 'spk')).toBe(2);
  await readded;
});
