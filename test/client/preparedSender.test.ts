/**
 * The camera's sender prepared at ACCEPTED_TO_JOIN_STAGE (`previewTracks`, or a `tracks` object):
 * the client negotiates it and connects the send transport ahead, but holds its `produce`
 * request, so the server has no producer until the participant is ON_STAGE; `join()` sends the
 * held request. mediasoup-client runs a transport's produces one at a time, so a held one must
 * never be left in the way of another.
 *
 * Real server and worker; mediasoup-client's FakeHandler in Node (no browser: what reaches the
 * wire from a real one, nothing before the stage, is test/browser/preparedSender.test.ts).
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { FakeHandler, type types } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import type { Room } from '../../server/room/Room.js';
import { Signaling } from '../../client/Signaling.js';
import { BACKEND_ACTOR } from '../../server/stage/Stage.js';
import { fakeTrack, fakeTracks, serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

/** Counts the server's `connectTransport` and `produce` calls of a room. */
function spy(room: Room) {
  const calls = { connect: 0, produce: 0 };
  const connect = room.connectTransport.bind(room);
  room.connectTransport = (...args) => {
    calls.connect++;
    return connect(...args);
  };
  const produce = room.produce.bind(room);
  room.produce = (...args) => {
    calls.produce++;
    return produce(...args);
  };
  return calls;
}

/** A FakeHandler factory that counts what the send handlers negotiate: `send` and `stopSending` calls. */
function countingHandler() {
  const counts = { send: 0, stopSending: 0 };
  const base = FakeHandler.createFactory(fakeParameters);
  const handlerFactory: types.HandlerFactory = {
    ...base,
    factory: (options) => {
      const handler = base.factory(options);
      const send = handler.send.bind(handler);
      const stopSending = handler.stopSending.bind(handler);
      handler.send = (o) => {
        counts.send++;
        return send(o);
      };
      handler.stopSending = (id) => {
        counts.stopSending++;
        return stopSending(id);
      };
      return handler;
    },
  };
  return { handlerFactory, counts };
}

test('at ACCEPTED the send transport is connected and no producer exists; join() publishes the held camera first, then audio', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const tracks = fakeTracks();
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', { tracks, handlerFactory });
  expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
  // preparing connects the transport (the prepared produce's DTLS), and asks for no producer
  await expect.poll(() => calls.connect, { timeout: 5000 }).toBe(1);
  await new Promise((r) => setTimeout(r, 200));
  expect(calls.produce).toBe(0);
  expect(serverProducers(room, 'spk')).toBe(0);
  expect((await room.router.dump()).mapProducerIdConsumerIds).toEqual([]);

  await speaker.stage.join();
  const published = [...speaker.producers.values()];
  expect(published.map((p) => p.source)).toEqual(['video', 'audio']);
  expect(published.find((p) => p.kind === 'video')!.track).toBe(tracks.video);
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(calls).toEqual({ connect: 1, produce: 2 });
  // the camera went out through the sender negotiated ahead: one negotiation each, none undone
  expect(counts).toEqual({ send: 2, stopSending: 0 });
});

test('leaving the stage prepares again; rejoining publishes through the new one', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', { handlerFactory });
  await speaker.stage.join();
  await speaker.stage.leave();
  expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
  expect(serverProducers(room, 'spk')).toBe(0);
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(3); // the camera prepared again
  await new Promise((r) => setTimeout(r, 200));
  expect(calls.produce).toBe(2); // nothing asked for while ACCEPTED again
  await speaker.stage.join();
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(calls.produce).toBe(4);
  // the two producers of the first turn were undone, the prepared camera was not
  expect(counts).toEqual({ send: 4, stopSending: 2 });
});

test('a join whose tracks have no camera gives up the prepared sender instead of waiting behind it', async () => {
  const room = await h.room('REQUEST');
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', {
    handlerFactory,
    previewTracks: () => ({ video: fakeTrack('video') }),
    tracks: async () => ({ audio: fakeTrack('audio') }),
  });
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1); // prepared
  await speaker.stage.join();
  expect([...speaker.producers.values()].map((p) => p.kind)).toEqual(['audio']);
  expect(serverProducers(room, 'spk')).toBe(1);
  expect(counts).toEqual({ send: 2, stopSending: 1 });
});

test('another camera track at join() is published through the prepared sender (same layers)', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const other = fakeTrack('video');
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', {
    handlerFactory,
    previewTracks: () => ({ video: fakeTrack('video') }),
    tracks: async () => ({ audio: fakeTrack('audio'), video: other }),
  });
  await expect.poll(() => calls.connect, { timeout: 5000 }).toBe(1);
  await speaker.stage.join();
  expect([...speaker.producers.values()].find((p) => p.kind === 'video')!.track).toBe(other);
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(counts).toEqual({ send: 2, stopSending: 0 });
});

test('back to OFF_STAGE while prepared: the transport closes, no producer ever existed; accepted again, join works', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const host = await h.join(room, 'host', 'host');
  const { handlerFactory, counts } = countingHandler();
  const viewer = await h.join(room, 'v', 'viewer', { handlerFactory });
  await viewer.stage.requestAccess();
  await host.stage.grantAccess(['v']);
  await expect.poll(() => calls.connect, { timeout: 5000 }).toBe(1);
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  const off = waitFor(viewer.stage, 'stageStatusUpdate', (e) => e.new === 'OFF_STAGE');
  await host.stage.kick(['v']);
  await off;
  expect(room.participants.get('v')!.sendTransportId).toBeUndefined();
  expect(calls.produce).toBe(0);
  await expect.poll(() => counts.stopSending, { timeout: 5000 }).toBe(1); // the held one given up

  await viewer.stage.requestAccess();
  await host.stage.grantAccess(['v']);
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(2); // prepared on the new transport
  await viewer.stage.join();
  expect(serverProducers(room, 'v')).toBe(2);
  expect(counts).toEqual({ send: 3, stopSending: 1 });
});

test('without a track open ahead (previewTracks answers none) nothing is prepared: join() negotiates as before', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const speaker = await h.join(room, 'spk', 'speaker', { previewTracks: () => undefined });
  await new Promise((r) => setTimeout(r, 300));
  expect(calls.connect).toBe(0); // the transport exists, unconnected: nothing negotiated on it
  await speaker.stage.join();
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(calls.connect).toBe(1);
});

function camera(height: number): MediaStreamTrack {
  return new FakeMediaStreamTrack({
    kind: 'video',
    settings: { width: (height * 16) / 9, height },
  }) as unknown as MediaStreamTrack;
}

test('a preview opened after ACCEPTED: previewChanged() prepares its camera, and join() publishes through it', async () => {
  const room = await h.room('REQUEST');
  const { handlerFactory, counts } = countingHandler();
  let preview: MediaStreamTrack | undefined = undefined; // opened later
  const speaker = await h.join(room, 'spk', 'speaker', {
    handlerFactory,
    previewTracks: () => ({ video: preview }),
    tracks: async () => ({ audio: fakeTrack('audio'), video: preview }),
  });
  await new Promise((r) => setTimeout(r, 200));
  expect(counts.send).toBe(0); // no preview yet: nothing to prepare
  preview = camera(720);
  speaker.previewChanged();
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  speaker.previewChanged(); // the same camera: nothing new
  await new Promise((r) => setTimeout(r, 200));
  expect(counts).toEqual({ send: 1, stopSending: 0 });
  await speaker.stage.join();
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(counts).toEqual({ send: 2, stopSending: 0 });
});

test('another camera with other simulcast layers (720p → 480p): prepared anew before join; a join with a third one negotiates as usual', async () => {
  const room = await h.room('REQUEST');
  const calls = spy(room);
  const { handlerFactory, counts } = countingHandler();
  let preview = camera(720);
  let live = preview;
  const speaker = await h.join(room, 'spk', 'speaker', {
    handlerFactory,
    previewTracks: () => ({ video: preview }),
    tracks: async () => ({ audio: fakeTrack('audio'), video: live }),
  });
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  preview = camera(480); // three layers → two
  speaker.previewChanged();
  await expect.poll(() => counts, { timeout: 5000 }).toEqual({ send: 2, stopSending: 1 });
  live = camera(180); // one layer: does not fit the prepared two
  await speaker.stage.join();
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(counts).toEqual({ send: 4, stopSending: 2 });
  const video = [...room.participants.get('spk')!.producers.values()].find((p) => p.source === 'video')!;
  expect(video.producer.rtpParameters.encodings).toHaveLength(1);
  // the prepared camera's request went right behind stage.join and made a producer, closed on
  // the server when the live track turned out to need another sender: 3 produce calls, 2 kept
  expect(calls.produce).toBe(3);
});

/** The order in which the client sent requests and got their answers (every Signaling). */
function requestLog() {
  const log: string[] = [];
  const original = Signaling.prototype.request;
  Signaling.prototype.request = function (this: Signaling, method: string, ...args: unknown[]) {
    log.push(`send ${method}`);
    const answer = (original as (m: string, ...a: unknown[]) => Promise<unknown>).call(this, method, ...args);
    void answer.then(
      () => log.push(`ack ${method}`),
      () => log.push(`refused ${method}`),
    );
    return answer;
  } as typeof original;
  return { log, restore: () => (Signaling.prototype.request = original) };
}

test("join(): the prepared camera's produce goes right behind stage.join, before its answer (one round trip less)", async () => {
  const room = await h.room('REQUEST');
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', { handlerFactory });
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  const { log, restore } = requestLog();
  try {
    await speaker.stage.join();
  } finally {
    restore();
  }
  const at = (entry: string) => log.indexOf(entry);
  expect(at('send produce')).toBe(at('send stage.join') + 1);
  expect(at('send produce')).toBeLessThan(at('ack stage.join'));
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(counts).toEqual({ send: 2, stopSending: 0 });

  // without a prepared sender the produce waits for the answer, as before
  await speaker.stage.leave();
  const other = await h.join(room, 'spk2', 'speaker', { previewTracks: () => undefined });
  const second = requestLog();
  try {
    await other.stage.join();
  } finally {
    second.restore();
  }
  expect(second.log.indexOf('ack stage.join')).toBeLessThan(second.log.indexOf('send produce'));
});

test('a refused join (full stage): the produce sent behind it is refused too, no producer; once there is room the same prepared sender publishes', async () => {
  const room = await h.room('REQUEST', { stageCap: 1 });
  const calls = spy(room);
  const first = await h.join(room, 'first', 'speaker', { previewTracks: () => undefined });
  await first.stage.join();
  const { handlerFactory, counts } = countingHandler();
  const speaker = await h.join(room, 'spk', 'speaker', { handlerFactory });
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  await expect(speaker.stage.join()).rejects.toMatchObject({ code: 'STAGE_FULL' });
  await new Promise((r) => setTimeout(r, 200)); // the produce behind it has been answered
  expect(serverProducers(room, 'spk')).toBe(0);
  expect(calls.produce).toBe(3); // first's two, and the refused one
  expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');

  await first.stage.leave();
  await speaker.stage.join();
  expect(serverProducers(room, 'spk')).toBe(2);
  expect(counts).toEqual({ send: 2, stopSending: 0 }); // the same prepared sender
});

test('the producer made behind stage.join is closed on the server when the camera cannot be had at ON_STAGE', async () => {
  const room = await h.room('REQUEST');
  const speaker = await h.join(room, 'spk', 'speaker', {
    previewTracks: () => ({ video: fakeTrack('video') }),
    tracks: () => Promise.reject(new Error('the camera is gone')),
  });
  await new Promise((r) => setTimeout(r, 200)); // prepared
  await expect(speaker.stage.join()).rejects.toThrow();
  await expect.poll(() => serverProducers(room, 'spk'), { timeout: 5000 }).toBe(0);
  expect(room.statusOf('spk')).toBe('ON_STAGE');
});

test('a kick right after the producer made behind stage.join: that producer is gone, and the next join makes a new one', async () => {
  const room = await h.room('REQUEST');
  const { handlerFactory, counts } = countingHandler();
  // the app's tracks take a while at ON_STAGE (a permission prompt): the kick lands meanwhile,
  // before the client publishes through the prepared sender
  const speaker = await h.join(room, 'spk', 'speaker', {
    handlerFactory,
    previewTracks: () => ({ video: fakeTrack('video') }),
    tracks: async () => {
      await new Promise((r) => setTimeout(r, 300));
      return fakeTracks();
    },
  });
  await expect.poll(() => counts.send, { timeout: 5000 }).toBe(1);
  const real = room.produce.bind(room);
  const made: string[] = [];
  room.produce = async (p, req) => {
    const created = await real(p, req);
    made.push(created.id);
    if (made.length === 1) room.stage.kick(BACKEND_ACTOR, [p.id]); // before its ack leaves
    return created;
  };
  const kicked = waitFor(speaker.stage, 'stageStatusUpdate', (e) => e.old === 'ON_STAGE');
  await speaker.stage.join().catch(() => undefined); // either outcome: the kick won
  await kicked;
  await new Promise((r) => setTimeout(r, 200));
  expect(serverProducers(room, 'spk')).toBe(0);
  expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');

  await speaker.stage.join();
  const onServer = [...room.participants.get('spk')!.producers.keys()].sort();
  expect(onServer).toHaveLength(2);
  expect(onServer).not.toContain(made[0]);
  expect([...speaker.producers.keys()].sort()).toEqual(onServer);
});
