/**
 * After a reconnect the client reconciles with the server's snapshot: what changed while it was
 * away is emitted (marked `reconciled`), received tracks are replaced, local tracks published
 * again as they are; stage actions while reconnecting reject at once; `leave()` stops it.
 * The drop is `meeting.__dropConnectionForTests()` ('transport close', as a network failure);
 * `faults.gate(userId)` keeps a user away while the test changes the room.
 */
import { describe, expect, test } from 'vitest';
import { collect, fakeTracks, names, record, serverProducers, waitFor, h, faults, useHarness } from './helpers.js';

useHarness({ reconnectGraceMs: 30_000 });

describe('reconciling after a reconnect', () => {
  test('the tracks are published again as they are: no second call of the tracks function (drop, then mediaReset)', async () => {
    const room = await h.room('REQUEST');
    let calls = 0;
    const tracks = async () => (calls++, fakeTracks());
    const speaker = await h.join(room, 'spk', 'speaker', { tracks });
    await speaker.stage.join();
    const first = speaker.localTracks;
    const reconnected = waitFor(speaker, 'reconnected');
    speaker.__dropConnectionForTests!();
    await reconnected;
    expect(calls).toBe(1);
    expect(speaker.localTracks).toEqual(first);
    expect(speaker.localTracks.video).toBe(first.video);
    expect(serverProducers(room, 'spk')).toBe(2);

    await room.moveTo(room.worker); // what a dead worker does: producers closed (transport-closed), mediaReset
    await expect.poll(() => serverProducers(room, 'spk')).toBe(2);
    await expect.poll(() => speaker.producers.size).toBe(2);
    expect(calls).toBe(1);
    expect(speaker.localTracks.video).toBe(first.video);
  });

  test('a viewer away while things changed: the differences are emitted, tracks replaced, consumers rebuilt', async () => {
    // visible, so that v sees the viewers come and go (a hidden room is reconciled the same way)
    const room = await h.room('REQUEST', { audience: 'visible' });
    const host = await h.join(room, 'host', 'host');
    const spk = await h.join(room, 'spk', 'speaker');
    const gone = await h.join(room, 'gone', 'viewer');
    const v = await h.join(room, 'v', 'viewer');
    const received = collect(v, 'trackAdded', 2);
    await host.stage.join();
    const hostTracks = (await received).map((e) => e.producerId);

    const open = faults.gate('v');
    const reconnecting = waitFor(v, 'reconnecting');
    v.__dropConnectionForTests!();
    await reconnecting;
    await expect.poll(() => room.participants.get('v')?.connected).toBe(false);
    expect(room.participants.get('v')?.consumers.size).toBe(0);

    // while v is away
    await host.stage.setMode('OPEN');
    await gone.leave();
    await h.join(room, 'late', 'viewer');
    await host.stage.leave();
    await spk.stage.join();

    const log = record(v);
    const reconnected = waitFor(v, 'reconnected', undefined, 10_000);
    open();
    await reconnected;
    const events = log.filter(([n]) => n !== 'reconnecting' && n !== 'reconnected');
    const of = (name: string) => events.filter(([n]) => n === name).map(([, e]) => e);
    expect(of('participantLeft')).toEqual([expect.objectContaining({ userId: 'gone', reconciled: true })]);
    expect(of('participantJoined')).toEqual([
      expect.objectContaining({ participant: expect.objectContaining({ id: 'late' }), reconciled: true }),
    ]);
    expect(of('stageModeUpdate')).toEqual([{ mode: 'OPEN', by: '', reconciled: true }]);
    expect(of('stageStatusUpdate')).toEqual([{ old: 'OFF_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE', reconciled: true }]);
    expect(of('peerStageStatusUpdate')).toEqual(
      expect.arrayContaining([
        { userId: 'host', old: 'ON_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE', reconciled: true },
        { userId: 'spk', old: 'ACCEPTED_TO_JOIN_STAGE', new: 'ON_STAGE', reconciled: true },
      ]),
    );
    expect(
      of('trackRemoved')
        .map((e) => e.producerId)
        .sort(),
    ).toEqual([...hostTracks].sort());
    const spkProducers = [...room.participants.get('spk')!.producers.keys()].sort();
    expect(
      of('trackAdded')
        .map((e) => e.producerId)
        .sort(),
    ).toEqual(spkProducers);
    expect(of('mediaError')).toEqual([]);

    expect([...v.participants.keys()].sort()).toEqual(['host', 'late', 'spk']);
    expect(v.stage.mode).toBe('OPEN');
    expect(v.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(v.participants.get('host')?.tracks).toEqual({});
    expect(Object.keys(v.participants.get('spk')!.tracks).sort()).toEqual(['audio', 'video']);
    expect(room.participants.get('v')?.consumers.size).toBe(2);
    // in OPEN mode v may join directly: the send transport was prepared on the new connection
    await v.stage.join();
    expect(serverProducers(room, 'v')).toBe(2);
  });

  test('the same producers again (their owner did not drop): old tracks removed, new ones added, in that order', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const v = await h.join(room, 'v', 'viewer');
    const received = collect(v, 'trackAdded', 2);
    await host.stage.join();
    const first = await received;
    const log = record(v);
    const reconnected = waitFor(v, 'reconnected');
    v.__dropConnectionForTests!();
    await reconnected;
    const media = log.filter(([n]) => n === 'trackAdded' || n === 'trackRemoved');
    for (const { producerId, track } of first) {
      const seq = media.filter(([, e]) => e.producerId === producerId);
      expect(names(seq)).toEqual(['trackRemoved', 'trackAdded']);
      expect(seq[1]![1].track).not.toBe(track); // a new MediaStreamTrack object
    }
    expect(Object.keys(v.participants.get('host')!.tracks).sort()).toEqual(['audio', 'video']);
    expect(room.participants.get('v')?.consumers.size).toBe(2);
  });

  test('a host away while the queue changed gets the new list (stageAccessRequestUpdate, reconciled)', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const v = await h.join(room, 'v', 'viewer');
    const open = faults.gate('host');
    const reconnecting = waitFor(host, 'reconnecting');
    host.__dropConnectionForTests!();
    await reconnecting;
    await v.stage.requestAccess();
    const update = waitFor(host.stage, 'stageAccessRequestUpdate');
    open();
    expect(await update).toEqual({ requests: [expect.objectContaining({ userId: 'v' })], reconciled: true });
  });

  test('stage actions while reconnecting reject at once with DISCONNECTED; the state stays consistent', async () => {
    const room = await h.room('REQUEST');
    const speaker = await h.join(room, 'spk', 'speaker');
    const open = faults.gate('spk');
    const reconnected = waitFor(speaker, 'reconnected');
    speaker.__dropConnectionForTests!();
    await expect(speaker.stage.join()).rejects.toMatchObject({ code: 'DISCONNECTED' });
    await expect(speaker.stage.requestAccess()).rejects.toMatchObject({ code: 'DISCONNECTED' });
    open();
    await reconnected;
    expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(speaker.producers.size).toBe(0);
    expect(serverProducers(room, 'spk')).toBe(0);
    await speaker.stage.join();
    expect(serverProducers(room, 'spk')).toBe(2);
  });

  test('leave() while reconnecting stops trying: disconnected {reason: "left"}, no reconnected', async () => {
    const room = await h.room('REQUEST');
    const v = await h.join(room, 'v', 'viewer');
    const open = faults.gate('v');
    const log = record(v);
    v.__dropConnectionForTests!();
    await v.leave();
    open();
    await new Promise((r) => setTimeout(r, 300));
    expect(names(log)).toEqual(['reconnecting', 'disconnected']);
    expect(log[1]![1]).toEqual({ reason: 'left' });
    expect(v.connectionState).toBe('disconnected');
  });
});
