/**
 * Media gating and hostile clients, over raw sockets that skip the thin client: a real server on
 * port 0, a real mediasoup worker, real socket.io. What the worker holds is read back with
 * router.dump(), not from Stagegate's own maps.
 */
import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { connectRaw, DTLS, rtpParameters, until, type RawClient, type TestServer } from '../helpers/server.js';
import { server, room, clients, freshRoom, useRawRooms, connectTo } from '../helpers/rawRooms.js';

const GRACE_MS = 300;
useRawRooms({ reconnectGraceMs: GRACE_MS });
const client = (userId: string, preset: Parameters<TestServer['token']>[1]) => connectTo(userId, preset);

/** Producers and consumers the worker itself holds for this room's router. */
async function workerCounts() {
  const dump = await room.router.dump();
  const consumers = dump.mapProducerIdConsumerIds.reduce((n, e) => n + e.values.length, 0);
  return { producers: dump.mapProducerIdConsumerIds.length, consumers, transports: dump.transportIds.length };
}

/** ON_STAGE with a connected send transport; returns its id. */
async function onStageWithTransport(c: RawClient): Promise<string> {
  await c.request('stage.join');
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  return t.id;
}

describe('produce is refused unless ON_STAGE', () => {
  it('refuses a raw produce while OFF_STAGE, REQUESTED or ACCEPTED, and the worker holds no producer', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const viewer = await client('viewer', 'viewer');

    // OFF_STAGE: not even a send transport.
    const t0 = await viewer.ack('createTransport', { direction: 'send' });
    expect(t0).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    const p0 = await viewer.ack('produce', { transportId: 'x', kind: 'audio', rtpParameters: rtpParameters('audio') });
    expect(p0).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });

    // REQUESTED
    await viewer.request('stage.requestAccess');
    const p1 = await viewer.ack('produce', { transportId: 'x', kind: 'audio', rtpParameters: rtpParameters('audio') });
    expect(p1).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });

    // ACCEPTED: a send transport is allowed (prepared ahead of join), producing is not.
    await host.request('stage.grantAccess', { userIds: ['viewer'] });
    const t = await viewer.request('createTransport', { direction: 'send' });
    await viewer.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    const p2 = await viewer.ack('produce', { transportId: t.id, kind: 'video', rtpParameters: rtpParameters('video') });
    expect(p2).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });

    expect((await workerCounts()).producers).toBe(0);
    expect(room.participants.get('viewer')!.producers.size).toBe(0);
  });

  it('produces once ON_STAGE, and the kind comes from the RTP parameters, not the label', async () => {
    await freshRoom();
    const speaker = await client('speaker', 'speaker');
    const tid = await onStageWithTransport(speaker);

    const lie = await speaker.ack('produce', {
      transportId: tid,
      kind: 'audio',
      rtpParameters: rtpParameters('video'),
    });
    expect(lie).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    const sourceLie = await speaker.ack('produce', {
      transportId: tid,
      kind: 'audio',
      source: 'screenshare',
      rtpParameters: rtpParameters('audio'),
    });
    expect(sourceLie).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect((await workerCounts()).producers).toBe(0);

    const ok = await speaker.request('produce', {
      transportId: tid,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    expect(ok.source).toBe('audio');
    expect((await workerCounts()).producers).toBe(1);
  });

  it('refuses media kinds and sources the preset forbids', async () => {
    await freshRoom();
    // speaker: audio+video, no screenshare; a custom preset without audio
    const speaker = await client('speaker', 'speaker');
    const mute = await client('mute', {
      name: 'video-only',
      stageAccess: 'ALLOWED',
      acceptStageRequests: false,
      kickParticipant: false,
      media: { audio: 'NOT_ALLOWED', video: 'ALLOWED', screenshare: 'NOT_ALLOWED' },
    });
    const t1 = await onStageWithTransport(speaker);
    const screen = await speaker.ack('produce', {
      transportId: t1,
      kind: 'video',
      source: 'screenshare',
      rtpParameters: rtpParameters('video'),
    });
    expect(screen).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });

    const t2 = await onStageWithTransport(mute);
    const audio = await mute.ack('produce', { transportId: t2, kind: 'audio', rtpParameters: rtpParameters('audio') });
    expect(audio).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect((await workerCounts()).producers).toBe(0);
  });

  it('allows one producer per source, also when two produce calls race', async () => {
    await freshRoom();
    const speaker = await client('speaker', 'speaker');
    const tid = await onStageWithTransport(speaker);
    const acks = await Promise.all(
      [1, 2, 3].map((n) =>
        speaker.ack('produce', { transportId: tid, kind: 'audio', rtpParameters: rtpParameters('audio', 5000 + n) }),
      ),
    );
    expect(acks.filter((a) => a.ok)).toHaveLength(1);
    expect(acks.filter((a) => !a.ok)).toEqual([
      { ok: false, error: { code: 'INVALID_STATE', message: 'already producing audio' } },
      { ok: false, error: { code: 'INVALID_STATE', message: 'already producing audio' } },
    ]);
    expect((await workerCounts()).producers).toBe(1);
  });

  it('refuses producing on another participant’s transport', async () => {
    await freshRoom();
    const a = await client('a', 'speaker');
    const b = await client('b', 'speaker');
    const ta = await onStageWithTransport(a);
    await onStageWithTransport(b);
    const r = await b.ack('produce', { transportId: ta, kind: 'audio', rtpParameters: rtpParameters('audio') });
    expect(r).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect((await workerCounts()).producers).toBe(0);
  });
});

describe('stage actions by hostile clients', () => {
  it('refuses a viewer calling grant, deny, kick and setMode, and changes nothing', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    const other = await client('other', 'viewer');
    await other.request('stage.requestAccess');
    await speaker.request('stage.join');
    const before = room.stage.members().map((m) => ({ ...m }));

    for (const [method, data] of [
      ['stage.grantAccess', { userIds: ['other'] }],
      ['stage.denyAccess', { userIds: ['other'] }],
      ['stage.kick', { userIds: ['speaker'] }],
      ['stage.setMode', { mode: 'OPEN' }],
      ['stage.getAccessRequests', {}],
    ] as const) {
      const r = await viewer.ack(method, data);
      expect(r, method).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    }
    expect(room.stage.members()).toEqual(before);
    expect(room.stage.mode).toBe('REQUEST');
    expect(
      host.received.filter(
        (n) => n.name === 'peerStageStatusUpdate' && (n.data as { userId: string }).userId === 'other',
      ),
    ).toHaveLength(1);
  });

  it('ignores forged identities: extra fields are refused, unknown ids are reported per user', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const viewer = await client('viewer', 'viewer');
    // a client cannot name who it acts as
    const forged = await viewer.ack('stage.join', { userId: 'host' });
    expect(forged).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    const forgedGrant = await viewer.ack('stage.grantAccess', { userIds: ['viewer'], actorId: 'host' });
    expect(forgedGrant).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    // unknown targets
    const r = await host.request('stage.grantAccess', { userIds: ['nobody', 'viewer'] });
    expect(r.results.nobody).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(r.results.viewer).toEqual({ ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' });
  });

  it('answers malformed requests with typed errors and unknown methods too', async () => {
    await freshRoom();
    const viewer = await client('viewer', 'viewer');
    expect(await viewer.ack('stage.grantAccess', { userIds: 'all' })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_REQUEST' },
    });
    expect(await viewer.ack('createTransport', { direction: 'sideways' })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_REQUEST' },
    });
    expect(await viewer.ack('stage.kick', { userIds: Array.from({ length: 101 }, (_, i) => `u${i}`) })).toMatchObject({
      ok: false,
      error: { code: 'INVALID_REQUEST' },
    });
    const unknown = await viewer.socket.timeout(5000).emitWithAck('deleteEverything', {});
    expect(unknown).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
  });

  it('refuses requests before joinRoom', async () => {
    await freshRoom();
    const c = await connectRaw(server.url, { token: await server.token('early', 'host', room.id) });
    clients.push(c);
    expect(await c.ack('stage.join')).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    expect(room.participants.size).toBe(0);
  });

  it('never lets a producer survive a kick that races its creation', async () => {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    let refused = 0;
    for (let i = 0; i < 15; i++) {
      const tid = await onStageWithTransport(speaker);
      // produce and kick leave at the same time; the kick reaches the server while the worker creates the producer
      const [produced] = await Promise.all([
        speaker.ack('produce', { transportId: tid, kind: 'video', rtpParameters: rtpParameters('video', 1000 + i) }),
        host.request('stage.kick', { userIds: ['speaker'] }),
      ]);
      if (!produced.ok) refused++;
      expect(room.participants.get('speaker')!.producers.size).toBe(0);
      expect((await workerCounts()).producers).toBe(0);
    }
    // the race was really run: at least some produce calls were caught in flight
    expect(refused).toBeGreaterThan(0);
  });
});

describe('tokens', () => {
  it('refuses tokens for another room, expired, tampered and unsigned tokens at connection', async () => {
    await freshRoom();
    const expect401 = async (auth: Record<string, unknown>, message: RegExp) => {
      const err = await connectRaw(server.url, auth).then(
        () => undefined,
        (e: { code?: string; message: string }) => e,
      );
      expect(err?.code).toBe('UNAUTHORIZED');
      expect(err?.message).toMatch(message);
    };
    const good = await server.token('u', 'viewer', room.id);
    await expect401({ token: await server.token('u', 'viewer', 'other-room'), roomId: room.id }, /another room/);
    await expect401(
      { token: await server.sg.tokens.mint({ userId: 'u', name: 'u', roomId: room.id, preset: 'host' }, -60) },
      /expired/,
    );
    const [h, p, s] = good.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), preset: 'host' }),
    ).toString('base64url');
    await expect401({ token: `${h}.${forgedPayload}.${s}` }, /signature/);
    await expect401({ token: `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.` }, /malformed|unsigned/);
    const otherKey = await new SignJWT({ name: 'u', room: room.id, preset: 'host' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('stagegate')
      .setSubject('u')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('x'.repeat(32)));
    await expect401({ token: otherKey }, /signature/);
    await expect401({}, /required/);
    expect(room.participants.size).toBe(0);
  });
});

describe('close cascades', () => {
  async function speakerWithAudience() {
    await freshRoom();
    const host = await client('host', 'host');
    const speaker = await client('speaker', 'speaker');
    const viewer = await client('viewer', 'viewer');
    const tid = await onStageWithTransport(speaker);
    const { id: producerId } = await speaker.request('produce', {
      transportId: tid,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    const consumers: Record<string, string> = {};
    for (const [name, c] of [
      ['host', host],
      ['viewer', viewer],
    ] as const) {
      await c.request('createTransport', { direction: 'recv' });
      consumers[name] = (await c.request('consume', { producerId })).id;
    }
    expect(await workerCounts()).toMatchObject({ producers: 1, consumers: 2 });
    return { host, speaker, viewer, producerId, consumers };
  }

  async function expectCascade(
    s: Awaited<ReturnType<typeof speakerWithAudience>>,
    reason: string,
    act: () => Promise<unknown>,
  ) {
    const closedForViewer = s.viewer.next('consumerClosed');
    const closedForHost = s.host.next('consumerClosed');
    const producerClosed = s.viewer.next('producerClosed');
    await act();
    expect(await closedForViewer).toEqual({ consumerId: s.consumers.viewer, producerId: s.producerId });
    expect(await closedForHost).toEqual({ consumerId: s.consumers.host, producerId: s.producerId });
    expect(await producerClosed).toMatchObject({ producerId: s.producerId, userId: 'speaker', reason });
    await until(async () => (await workerCounts()).producers === 0, 2000, 'worker producers to close');
    expect(await workerCounts()).toMatchObject({ producers: 0, consumers: 0 });
  }

  it('kick closes the producer in the worker and tells every receiver and the speaker', async () => {
    const s = await speakerWithAudience();
    const removed = s.speaker.next('removedFromStage');
    const byServer = s.speaker.next('producerClosedByServer');
    await expectCascade(s, 'kicked', () => s.host.request('stage.kick', { userIds: ['speaker'] }));
    expect(await removed).toEqual({ by: 'host' });
    expect(await byServer).toEqual({ producerId: s.producerId, reason: 'kicked' });
  });

  it('leave closes the producer in the worker and tells every receiver', async () => {
    const s = await speakerWithAudience();
    await expectCascade(s, 'left-stage', () => s.speaker.request('stage.leave'));
  });

  it('a kick through the backend HTTP API closes the producer in the worker too', async () => {
    const s = await speakerWithAudience();
    await expectCascade(s, 'kicked', async () => {
      const res = await fetch(`${server.url}/api/rooms/${room.id}/stage/kick`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.sg.apiSecret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userIds: ['speaker'] }),
      });
      expect(res.status).toBe(200);
    });
  });

  it('disconnect of an on-stage participant closes its producer at once, and it leaves after the grace period', async () => {
    const s = await speakerWithAudience();
    const dropped = Date.now();
    await expectCascade(s, 'disconnected', async () => s.speaker.close());
    // during the grace period the place is kept, without media
    expect(room.statusOf('speaker')).toBe('ON_STAGE');
    expect(s.viewer.received.some((n) => n.name === 'participantLeft')).toBe(false);
    expect(await s.viewer.next('participantLeft', 3000)).toEqual({ userId: 'speaker' });
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(GRACE_MS - 20);
    expect(room.participants.has('speaker')).toBe(false);
    expect(room.stage.has('speaker')).toBe(false);
  });

  it('switching stage mode never removes anyone already on stage', async () => {
    const s = await speakerWithAudience();
    await s.host.request('stage.setMode', { mode: 'INVITE' });
    await s.host.request('stage.setMode', { mode: 'OPEN' });
    await s.host.request('stage.setMode', { mode: 'REQUEST' });
    expect(await workerCounts()).toMatchObject({ producers: 1, consumers: 2 });
  });

  it('leaves nothing in the worker after everyone leaves', async () => {
    const s = await speakerWithAudience();
    for (const c of [s.speaker, s.viewer, s.host]) c.close();
    await until(() => room.participants.size === 0, 3000, 'everyone to leave');
    await until(async () => (await workerCounts()).transports === 0, 2000, 'transports to close');
    const dump = await room.router.dump();
    expect(dump.transportIds).toEqual([]);
    expect(dump.mapProducerIdConsumerIds).toEqual([]);
    expect(dump.mapConsumerIdProducerId).toEqual([]);
    expect(room.stage.members()).toEqual([]);
  });
});
