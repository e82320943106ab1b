/**
 * STAGE.md Part 2 through the thin client: `meeting.stage` methods for holds, removal, slots,
 * and its state (`held`, `position`/`queueLength`, `slotEndsAt`), errors carrying `retryAfterMs`.
 * Real server, real socket.io, real mediasoup worker; FakeHandler and fake tracks on the client side.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { StagegateError } from '../../client/index.js';
import { startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

describe('meeting.stage Part 2', () => {
  test('mute → held, resume refused; requestUnmute → allowUnmute → held cleared', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    const told = waitFor(speaker.stage, 'mutedByHost');
    const results = await host.stage.mute(['speaker'], ['audio']);
    expect(results.speaker).toMatchObject({ ok: true });
    expect(await told).toEqual({ userId: 'speaker', by: 'host', sources: ['audio'] });
    expect(speaker.stage.held).toEqual(['audio']);
    const asked = waitFor(host.stage, 'unmuteRequested');
    await speaker.stage.requestUnmute('audio');
    expect(await asked).toEqual({ userId: 'speaker', source: 'audio' });
    const allowed = waitFor(speaker.stage, 'unmuteAllowed');
    await host.stage.allowUnmute(['speaker'], ['audio']);
    await allowed;
    expect(speaker.stage.held).toEqual([]);
    // a speaker may not mute
    await expect(speaker.stage.mute(['host'], ['audio'])).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  test('position and queueLength while requesting; COOLING_DOWN carries retryAfterMs', async () => {
    const room = await h.room('REQUEST', { requestCooldownSeconds: 30 });
    const host = await h.join(room, 'host', 'host');
    const a = await h.join(room, 'a', 'viewer');
    const b = await h.join(room, 'b', 'viewer');
    await a.stage.requestAccess();
    await b.stage.requestAccess();
    expect([b.stage.position, b.stage.queueLength]).toEqual([2, 2]);
    const moved = waitFor(b.stage, 'stageRequestPosition');
    await host.stage.denyAccess(['a']);
    expect(await moved).toEqual({ position: 1, queueLength: 1 });
    expect(b.stage.position).toBe(1);
    expect(a.stage.position).toBeUndefined();
    const err = await a.stage.requestAccess().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StagegateError);
    expect((err as StagegateError).code).toBe('COOLING_DOWN');
    expect((err as StagegateError).retryAfterMs).toBeGreaterThan(20_000);
  });

  test('slotEndsAt and extendSlot; removeFromRoom ends the meeting with removed-from-room', async () => {
    const room = await h.room('REQUEST', { slotSeconds: 60 });
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'speaker', 'speaker');
    await speaker.stage.join();
    await expect.poll(() => speaker.stage.slotEndsAt).toBeGreaterThan(Date.now() + 50_000);
    const before = speaker.stage.slotEndsAt!;
    await expect.poll(() => host.participants.get('speaker')?.slotEndsAt).toBe(before);
    const endsAt = await host.stage.extendSlot('speaker', 30);
    expect(endsAt).toBe(before + 30_000);
    await expect.poll(() => speaker.stage.slotEndsAt).toBe(endsAt);
    await expect.poll(() => host.participants.get('speaker')?.slotEndsAt).toBe(endsAt);
    const gone = waitFor(speaker, 'disconnected');
    await host.stage.removeFromRoom(['speaker'], { ban: true });
    expect((await gone).reason).toBe('removed-from-room');
    await expect(h.join(room, 'speaker', 'speaker')).rejects.toMatchObject({ code: 'BANNED' });
  });
});
