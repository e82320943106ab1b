/**
 * setConsumerPreferences over raw sockets (no thin client): validation, whose consumer it is,
 * size → preferred simulcast layer, and the hidden pause apart from the producer's pause and
 * from the consumer's initial paused state. What the worker holds is read back from mediasoup's
 * own consumer objects (`paused`, `producerPaused`, `preferredLayers`, `priority`).
 */
import { describe, expect, it } from 'vitest';
import type { types as ms } from 'mediasoup';
import { layerForSize } from '../../server/media/layers.js';
import { connectRaw, DTLS, joinRaw, rtpParameters, type RawClient } from '../helpers/server.js';
import { server, room, clients, useRawRooms, adoptRoom } from '../helpers/rawRooms.js';

useRawRooms();

async function client(userId: string, preset: 'host' | 'speaker' | 'viewer'): Promise<RawClient> {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
  clients.push(c);
  await joinRaw(c);
  return c;
}

/** Three simulcast encodings (as the thin client sends a 1280x720 camera), L1T3 each. */
function simulcast(ssrc: number) {
  const base = rtpParameters('video', ssrc);
  return { ...base, encodings: [0, 1, 2].map((i) => ({ ssrc: ssrc + i, scalabilityMode: 'L1T3' })) };
}

async function publish(c: RawClient, kind: 'audio' | 'video', rtp: unknown, source?: string): Promise<string> {
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const { id } = await c.request('produce', { transportId: t.id, kind, rtpParameters: rtp, ...(source && { source }) });
  return id;
}

async function receiver(userId: string): Promise<RawClient> {
  const c = await client(userId, 'viewer');
  await c.request('createTransport', { direction: 'recv' });
  return c;
}

function consumer(userId: string, consumerId: string): ms.Consumer {
  const c = room.participants.get(userId)?.consumers.get(consumerId);
  if (!c) throw new Error(`no consumer ${consumerId} of ${userId}`);
  return c;
}

/** A speaker ON_STAGE with a simulcast camera and a microphone; two viewers consuming both. */
async function setup() {
  adoptRoom(await server.sg.rooms.create(`prefs-${Math.random().toString(36).slice(2, 8)}`, 'OPEN'));
  const speaker = await client('speaker', 'speaker');
  await speaker.request('stage.join');
  const videoId = await publish(speaker, 'video', simulcast(5000));
  const t = [...room.participants.get('speaker')!.transports.keys()][0]!;
  const { id: audioId } = await speaker.request('produce', {
    transportId: t,
    kind: 'audio',
    rtpParameters: rtpParameters('audio', 6000),
  });
  const alice = await receiver('alice');
  const bob = await receiver('bob');
  const a = {
    video: await alice.request('consume', { producerId: videoId }),
    audio: await alice.request('consume', { producerId: audioId }),
  };
  const b = { video: await bob.request('consume', { producerId: videoId }) };
  return { speaker, alice, bob, a, b, videoId };
}

describe('setConsumerPreferences', () => {
  it('refuses bad input with INVALID_REQUEST and changes nothing', async () => {
    const { alice, a } = await setup();
    const id = a.video.id;
    const bad: unknown[] = [
      { consumerId: id, width: -1 },
      { consumerId: id, width: 1.5 },
      { consumerId: id, height: 16_385 },
      { consumerId: id, width: '640' },
      { consumerId: id, width: null },
      { consumerId: id, visible: 'yes' },
      { consumerId: id, width: 640, extra: 1 },
      { consumerId: '', width: 640 },
      { width: 640 },
      { consumerId: id }, // nothing to set
      { consumerId: a.audio.id, width: 640 }, // audio has no size
    ];
    for (const data of bad) {
      expect(await alice.ack('setConsumerPreferences', data), JSON.stringify(data)).toMatchObject({
        ok: false,
        error: { code: 'INVALID_REQUEST' },
      });
    }
    const c = consumer('alice', id);
    // a simulcast consumer starts on its lowest layer (no RTP flows here, so it stays there)
    expect(c.preferredLayers).toEqual({ spatialLayer: 0, temporalLayer: 2 });
    expect(c.paused).toBe(true);
  });

  it("someone else's consumer or an unknown one is NOT_FOUND, and the owner's consumer is untouched", async () => {
    const { alice, bob, a } = await setup();
    for (const consumerId of [a.video.id, 'nope']) {
      expect(await bob.ack('setConsumerPreferences', { consumerId, width: 100, visible: false })).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
    }
    await alice.request('resumeConsumer', { consumerId: a.video.id });
    const c = consumer('alice', a.video.id);
    expect(c.paused).toBe(false);
    expect(
      (await alice.request('setConsumerPreferences', { consumerId: a.video.id, visible: true })).spatialLayer,
    ).toBe(2);
  });

  it('a size picks the spatial layer that covers it (top temporal layer)', async () => {
    const { alice, a } = await setup();
    const cases: [number, number, number][] = [
      [320, 180, 0],
      [200, 100, 0],
      [321, 0, 1],
      [640, 360, 1],
      [0, 361, 2], // a tall tile: 16:9 of 361 lines is 642 wide
      [1280, 720, 2],
      [3840, 2160, 2],
      [0, 0, 0],
    ];
    for (const [width, height, layer] of cases) {
      const r = await alice.request('setConsumerPreferences', { consumerId: a.video.id, width, height });
      expect(r.spatialLayer, `${width}x${height}`).toBe(layer);
      // still starting on the lowest layer: the wanted one is applied at the first layer sent
      expect(consumer('alice', a.video.id).preferredLayers).toEqual({ spatialLayer: 0, temporalLayer: 2 });
    }
    expect(layerForSize(2, 320, 180)).toBe(0); // two layers (a 640x480 camera): 320 and 640
    expect(layerForSize(2, 640, 360)).toBe(1);
    expect(layerForSize(2, 1280, 0)).toBe(1);
    expect(layerForSize(1, 1280, 720)).toBe(0);
  });

  it('hidden pauses on the server; shown resumes only once the client resumed; the producer pause is apart', async () => {
    const { speaker, alice, a, videoId } = await setup();
    const id = a.video.id;
    const c = consumer('alice', id);
    // shown before resumeConsumer: still paused (the client is not ready)
    expect(await alice.request('setConsumerPreferences', { consumerId: id, visible: true })).toMatchObject({
      paused: true,
    });
    expect(c.paused).toBe(true);
    // hidden, then resumeConsumer: stays paused
    await alice.request('setConsumerPreferences', { consumerId: id, visible: false });
    await alice.request('resumeConsumer', { consumerId: id });
    expect(c.paused).toBe(true);
    // shown: resumed
    expect(await alice.request('setConsumerPreferences', { consumerId: id, visible: true })).toMatchObject({
      paused: false,
    });
    expect(c.paused).toBe(false);
    // the owner pauses the producer: the consumer is not paused by the viewer...
    await speaker.request('pauseProducer', { producerId: videoId });
    expect(c.producerPaused).toBe(true);
    expect(c.paused).toBe(false);
    // ...hiding and showing meanwhile leaves the producer paused
    await alice.request('setConsumerPreferences', { consumerId: id, visible: false });
    expect(c.paused).toBe(true);
    await alice.request('setConsumerPreferences', { consumerId: id, visible: true });
    expect(c.paused).toBe(false);
    expect(c.producerPaused).toBe(true);
    await speaker.request('resumeProducer', { producerId: videoId });
    expect(c.producerPaused).toBe(false);
    // hidden while the producer resumes: stays paused
    await alice.request('setConsumerPreferences', { consumerId: id, visible: false });
    await speaker.request('pauseProducer', { producerId: videoId });
    await speaker.request('resumeProducer', { producerId: videoId });
    expect(c.paused).toBe(true);
  });

  it('screenshare consumers get a higher priority than cameras', async () => {
    adoptRoom(await server.sg.rooms.create(`prio-${Math.random().toString(36).slice(2, 8)}`, 'OPEN'));
    const host = await client('host', 'host');
    await host.request('stage.join');
    const camId = await publish(host, 'video', simulcast(7000));
    const t = [...room.participants.get('host')!.transports.keys()][0]!;
    const { id: screenId } = await host.request('produce', {
      transportId: t,
      kind: 'video',
      rtpParameters: { ...rtpParameters('video', 8000), mid: '2' },
      source: 'screenshare',
    });
    const viewer = await receiver('viewer');
    const cam = await viewer.request('consume', { producerId: camId });
    const screen = await viewer.request('consume', { producerId: screenId });
    expect(consumer('viewer', screen.id).priority).toBeGreaterThan(consumer('viewer', cam.id).priority);
    expect(consumer('viewer', cam.id).priority).toBe(1);
  });
});
