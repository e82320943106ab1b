/**
 * With the server's reconnect grace period: a dropped connection keeps its place, a deliberate
 * `meeting.leave()` leaves the room at once (no grace period for a deliberate leave), and the
 * thin client reconnects by itself after an unexpected drop (`meeting.__dropConnectionForTests()`
 * closes the WebSocket under socket.io: 'transport close' on both ends, as a network failure).
 */
import { describe, expect, test } from 'vitest';
import { userKey } from '../../server/signaling/signaling.js';
import { collect, names, record, serverProducers, startHarness, waitFor, h, faults, useHarness } from './helpers.js';

useHarness({ reconnectGraceMs: 30_000 });

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

describe('automatic reconnection after an unexpected drop', () => {
  test('an ON_STAGE speaker: reconnecting → reconnected, publishes again by itself, the host receives it again', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'spk', 'speaker');
    const added = collect(host, 'trackAdded', 2);
    await speaker.stage.join();
    const before = (await added).map((e) => e.producerId);
    const tracksBefore = speaker.localTracks;
    const log = record(speaker);
    const hostLog = record(host);

    const removed = collect(host, 'trackRemoved', 2, (e) => before.includes(e.producerId));
    const readded = collect(host, 'trackAdded', 2, (e) => !before.includes(e.producerId));
    const reconnected = waitFor(speaker, 'reconnected');
    speaker.__dropConnectionForTests!();
    expect(speaker.connectionState).toBe('reconnecting');
    expect(speaker.connected).toBe(true); // still a live meeting
    expect(await reconnected).toEqual({ attempt: 1 });
    expect(speaker.connectionState).toBe('connected');
    expect(names(log)).toEqual(['reconnecting', 'reconnected']); // nothing changed meanwhile
    expect(log[0]![1]).toEqual({ attempt: 1 });

    // the server kept the place and has its producers again
    expect(room.stage.get('spk')?.status).toBe('ON_STAGE');
    expect(speaker.stage.status).toBe('ON_STAGE');
    expect(serverProducers(room, 'spk')).toBe(2);
    expect(speaker.producers.size).toBe(2);
    expect([...speaker.producers.keys()].some((id) => before.includes(id))).toBe(false);
    // the same local tracks, published again (no new getUserMedia)
    expect(speaker.localTracks.audio).toBe(tracksBefore.audio);
    expect(speaker.localTracks.video).toBe(tracksBefore.video);

    await removed;
    const again = await readded;
    expect(again.map((e) => e.kind).sort()).toEqual(['audio', 'video']);
    expect(host.participants.get('spk')?.tracks.video).toBe(again.find((e) => e.kind === 'video')!.track);
    // the host never saw the speaker leave the room or the stage
    expect(names(hostLog).filter((n) => n.startsWith('participant') || n.startsWith('peer'))).toEqual([]);
  });

  test('a REQUESTED viewer keeps its place in the queue; the host sees nothing', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const a = await h.join(room, 'a', 'viewer');
    const b = await h.join(room, 'b', 'viewer');
    const queued = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 2);
    await b.stage.requestAccess();
    await a.stage.requestAccess(); // a is second
    await queued;
    const hostLog = record(host);
    const log = record(a);

    const reconnected = waitFor(a, 'reconnected');
    a.__dropConnectionForTests!();
    await reconnected;
    expect(names(log)).toEqual(['reconnecting', 'reconnected']);
    expect(a.stage.status).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(room.stage.getAccessRequests('host').map((r) => r.userId)).toEqual(['b', 'a']);
    expect((await host.stage.getAccessRequests()).map((r) => r.userId)).toEqual(['b', 'a']);
    expect(hostLog).toEqual([]);
    // and the request is still good
    const joined = waitFor(a.stage, 'stageStatusUpdate', (e) => e.new === 'ACCEPTED_TO_JOIN_STAGE');
    await host.stage.grantAccess(['a']);
    await joined;
  });

  test('a drop right after the server took stage.join (the ack is lost): join() waits and resolves, publishing', async () => {
    const room = await h.room('REQUEST');
    await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'spk', 'speaker');
    speaker.stage.once('stageStatusUpdate', () => speaker.__dropConnectionForTests!()); // before the ack
    const reconnected = waitFor(speaker, 'reconnected');
    await expect(speaker.stage.join()).resolves.toBeUndefined();
    await reconnected;
    expect(speaker.stage.status).toBe('ON_STAGE');
    expect(speaker.producers.size).toBe(2);
    expect(serverProducers(room, 'spk')).toBe(2);
  });

  test('a drop while publishing after stage.join: join() resolves once published again', async () => {
    const room = await h.room('REQUEST');
    await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'spk', 'speaker');
    let produces = 0;
    faults.dropOn('spk', (method) => method === 'produce' && ++produces === 2); // audio went through, video not
    const log = record(speaker);
    await expect(speaker.stage.join()).resolves.toBeUndefined();
    expect(names(log)).toEqual(['stageStatusUpdate', 'reconnecting', 'reconnected']);
    expect(speaker.producers.size).toBe(2);
    expect(serverProducers(room, 'spk')).toBe(2);
    expect(speaker.stage.status).toBe('ON_STAGE');
  });

  test('a drop before the server got stage.join: join() rejects with DISCONNECTED once reconnected, nothing published', async () => {
    const room = await h.room('REQUEST');
    const speaker = await h.join(room, 'spk', 'speaker');
    faults.dropOn('spk', (method) => method === 'stage.join');
    const log = record(speaker);
    await expect(speaker.stage.join()).rejects.toMatchObject({ code: 'DISCONNECTED' });
    expect(names(log)).toEqual(['reconnecting', 'reconnected']); // it waited for the reconnect
    expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(speaker.producers.size).toBe(0);
    expect(serverProducers(room, 'spk')).toBe(0);
    await speaker.stage.join(); // and it can simply try again
    expect(serverProducers(room, 'spk')).toBe(2);
  });

  test("reconnectTimeoutMs: 0 disables it: a drop ends the meeting with socket.io's reason", async () => {
    const room = await h.room('REQUEST');
    const v = await h.join(room, 'v', 'viewer', { reconnectTimeoutMs: 0 });
    const log = record(v);
    const gone = waitFor(v, 'disconnected');
    v.__dropConnectionForTests!();
    expect(await gone).toEqual({ reason: 'transport close' });
    expect(names(log)).toEqual(['disconnected']);
  });

  test('a second connection of the same user (goodbye replaced) does not reconnect', async () => {
    const room = await h.room('REQUEST');
    const first = await h.join(room, 'spk', 'speaker');
    const log = record(first);
    await h.join(room, 'spk', 'speaker');
    await expect.poll(() => first.connectionState).toBe('disconnected');
    await new Promise((r) => setTimeout(r, 300));
    expect(log).toEqual([['disconnected', { reason: 'replaced' }]]);
  });

  test('the server disconnecting the socket itself (io server disconnect) does not reconnect', async () => {
    const room = await h.room('REQUEST');
    const v = await h.join(room, 'v', 'viewer');
    const log = record(v);
    h.sg.io.in(userKey(room.id, 'v')).disconnectSockets(true);
    await expect.poll(() => v.connectionState).toBe('disconnected');
    expect(log).toEqual([['disconnected', { reason: 'io server disconnect' }]]);
  });

  test('the server gone: retries with backoff, gives up after reconnectTimeoutMs: disconnected {reason: "connection-lost"}', async () => {
    const h2 = await startHarness({ reconnectGraceMs: 30_000 });
    try {
      const room = await h2.room('REQUEST');
      const m = await h2.join(room, 'v', 'viewer', { reconnectTimeoutMs: 2_000 });
      const log = record(m);
      const gone = waitFor(m, 'disconnected', undefined, 5_000);
      // The server stops listening, then its connections break (no goodbye): a crash, seen from the client.
      h2.sg.httpServer.close();
      const started = Date.now();
      h2.sg.io.engine.close();
      const { reason, error } = await gone;
      const elapsed = Date.now() - started;
      expect(reason).toBe('connection-lost');
      expect(error).toMatchObject({ code: 'DISCONNECTED' });
      expect(elapsed).toBeGreaterThanOrEqual(1_900);
      expect(elapsed).toBeLessThan(3_000);
      const attempts = log.filter(([n]) => n === 'reconnecting').map(([, e]) => e.attempt);
      // at 0, 250, 750, 1750 ms (each wait ±20 %): 3 or 4 attempts in 2 s
      expect(attempts.length).toBeGreaterThanOrEqual(3);
      expect(attempts.length).toBeLessThanOrEqual(4);
      expect(attempts).toEqual(attempts.map((_, i) => i + 1));
      expect(names(log).at(-1)).toBe('disconnected');
      expect(names(log)).not.toContain('reconnected');
      expect(m.connectionState).toBe('disconnected');
      expect(m.connected).toBe(false);
    } finally {
      await h2.close();
    }
  });
});
