/**
 * The thin client follows its token: `meeting.useToken()` reconnects with a new token of the same
 * user and the server applies its name and preset (the client publishes what the new preset
 * allows and mirrors the new rights); the others' rosters show the change (`participantUpdated`);
 * a token refreshed by the server (`tokenRefreshed`) carries a reconnect past the original expiry.
 * Real server on port 0, real mediasoup worker; mediasoup-client's FakeHandler.
 */
import { FakeHandler } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { joinMeeting, type Meeting, type Preset } from '../../client/index.js';
import type { Room } from '../../server/room/Room.js';
import { PRESETS } from '../../shared/stage.js';
import { fakeTracks, serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ reconnectGraceMs: 30_000 });
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

const NO_VIDEO: Preset = {
  ...PRESETS.speaker,
  name: 'audio-speaker',
  media: { ...PRESETS.speaker.media, video: 'NOT_ALLOWED' },
};

const mint = (
  room: Room,
  userId: string,
  preset: 'host' | 'speaker' | 'viewer' | Preset,
  name = userId,
  ttl?: number,
) => h.sg.tokens.mint({ userId, name, roomId: room.id, preset, roomInstance: room.instanceId }, ttl);

/** The producer ids the worker holds for the room's router. */
async function workerProducerIds(room: Room): Promise<string[]> {
  return (await room.router.dump()).mapProducerIdConsumerIds.map((e) => e.key);
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('meeting.useToken()', () => {
  test('a speaker switched to a preset without video keeps ON_STAGE and audio; the video producer is gone from the worker', async () => {
    const room = await h.room('REQUEST');
    const watcher = await h.join(room, 'w', 'viewer');
    const s = await h.join(room, 's', 'speaker');
    await s.stage.join();
    await until(() => serverProducers(room, 's') === 2, 'two producers');
    const videoId = [...s.producers.values()].find((p) => p.kind === 'video')!.id;

    const updated = waitFor(watcher, 'participantUpdated');
    const selfUpdated = waitFor(s, 'selfUpdated');
    await s.useToken(await mint(room, 's', NO_VIDEO, 'Sam'));
    expect(await selfUpdated).toMatchObject({ name: 'Sam', preset: { name: 'audio-speaker' }, reconciled: true });
    expect(s.self).toMatchObject({ name: 'Sam', preset: { name: 'audio-speaker' }, stageStatus: 'ON_STAGE' });
    expect((await updated).participant).toMatchObject({ id: 's', name: 'Sam', presetName: 'audio-speaker' });
    expect(watcher.participants.get('s')).toMatchObject({ name: 'Sam', presetName: 'audio-speaker' });

    await until(() => serverProducers(room, 's') === 1, 'the audio producer back');
    await s.ready();
    expect([...s.producers.values()].map((p) => p.kind)).toEqual(['audio']);
    const held = await workerProducerIds(room);
    expect(held).not.toContain(videoId);
    expect(held).toHaveLength(1);
    expect(room.statusOf('s')).toBe('ON_STAGE');
    expect(s.stage.status).toBe('ON_STAGE');
  });

  test('a host switched to a viewer token loses its rights; a viewer switched to a host token gains them', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'h', 'host');
    const v = await h.join(room, 'v', 'viewer');
    const other = await h.join(room, 'o', 'viewer');
    await other.stage.requestAccess();
    expect(host.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');

    const emptied = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 0);
    const off = waitFor(host.stage, 'stageStatusUpdate', (e) => e.new === 'OFF_STAGE');
    await host.useToken(await mint(room, 'h', 'viewer'));
    expect(await emptied).toMatchObject({ reconciled: true }); // it no longer sees requests
    expect(await off).toMatchObject({ old: 'ACCEPTED_TO_JOIN_STAGE', by: '@backend' });
    await expect(host.stage.grantAccess(['o'])).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(host.stage.setMode('OPEN')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    expect(room.statusOf('o')).toBe('REQUESTED_TO_JOIN_STAGE');

    const promotedList = waitFor(v.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 1);
    const accepted = waitFor(v.stage, 'stageStatusUpdate', (e) => e.new === 'ACCEPTED_TO_JOIN_STAGE');
    await v.useToken(await mint(room, 'v', 'host'));
    expect((await promotedList).requests.map((r) => r.userId)).toEqual(['o']);
    await accepted;
    expect(v.self.preset.name).toBe('host');
    const results = await v.stage.grantAccess(['o']);
    expect(results.o).toEqual({ ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' });
    await v.stage.join();
    expect(v.stage.status).toBe('ON_STAGE');
  });

  test('refuses a token of another user, changes nothing', async () => {
    const room = await h.room('REQUEST');
    const v = await h.join(room, 'v', 'viewer');
    await expect(v.useToken(await mint(room, 'x', 'host'))).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(v.connectionState).toBe('connected');
    expect(room.participants.get('v')?.preset.name).toBe('viewer');
  });
});

describe('token refresh', () => {
  let meeting: Meeting | undefined;
  afterEach(async () => {
    await meeting?.leave();
    meeting = undefined;
  });

  test('a reconnect after the original token expired uses the refreshed token and keeps ON_STAGE', async () => {
    const room = await h.room('REQUEST');
    const original = await mint(room, 's', 'speaker', 's', 3);
    const exp = (JSON.parse(Buffer.from(original.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    meeting = await joinMeeting({
      url: h.url,
      token: original,
      handlerFactory: FakeHandler.createFactory(fakeParameters),
      tracks: fakeTracks(),
    });
    const m = meeting;
    const told: string[] = [];
    m.on('tokenRefreshed', ({ token }) => told.push(token));
    await m.stage.join();
    // handed over at 80% of the remaining life (the connection may be older than this listener)
    await until(() => m.token !== original, 'a refreshed token', 5_000);
    const freshExp = (JSON.parse(Buffer.from(m.token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    expect(freshExp).toBeGreaterThan(exp);
    if (told.length) expect(told.at(-1)).toBe(m.token);

    await until(() => Date.now() / 1000 > exp + 0.2, 'the original expiry', 5_000);
    const back = waitFor(m, 'reconnected', () => true, 10_000);
    m.__dropConnectionForTests!();
    await back;
    expect(m.stage.status).toBe('ON_STAGE');
    expect(room.statusOf('s')).toBe('ON_STAGE');
    await until(() => serverProducers(room, 's') === 2, 'republished');

    // the original token itself no longer opens a connection
    await expect(
      joinMeeting({ url: h.url, token: original, handlerFactory: FakeHandler.createFactory(fakeParameters) }),
    ).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });
});
