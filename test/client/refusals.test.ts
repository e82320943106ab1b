/**
 * Refused actions reject with StagegateError and the server's exact code, and change nothing;
 * refused connections reject joinMeeting.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { FakeHandler } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { joinMeeting, StagegateError, type Preset } from '../../client/index.js';
import { serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

async function rejection(promise: Promise<unknown>): Promise<StagegateError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StagegateError);
  return err as StagegateError;
}

describe('stage actions outside the caller’s permissions', () => {
  test('a viewer cannot grant, deny, kick, list requests or change the mode (FORBIDDEN)', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    const other = await h.join(room, 'w', 'viewer');
    await other.stage.requestAccess();

    expect((await rejection(viewer.stage.grantAccess(['w']))).code).toBe('FORBIDDEN');
    expect((await rejection(viewer.stage.denyAccess(['w']))).code).toBe('FORBIDDEN');
    expect((await rejection(viewer.stage.kick(['host']))).code).toBe('FORBIDDEN');
    expect((await rejection(viewer.stage.getAccessRequests())).code).toBe('FORBIDDEN');
    expect((await rejection(viewer.stage.setMode('OPEN'))).code).toBe('FORBIDDEN');

    // Nothing changed.
    expect(other.stage.status).toBe('REQUESTED_TO_JOIN_STAGE');
    expect(viewer.stage.mode).toBe('REQUEST');
    expect((await host.stage.getAccessRequests()).map((r) => r.userId)).toEqual(['w']);
  });

  test('a NOT_ALLOWED preset cannot request (FORBIDDEN), but can be invited', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const audience: Preset = {
      name: 'audience',
      stageAccess: 'NOT_ALLOWED',
      acceptStageRequests: false,
      kickParticipant: false,
      media: { audio: 'ALLOWED', video: 'NOT_ALLOWED', screenshare: 'NOT_ALLOWED' },
    };
    const guest = await h.join(room, 'guest', audience);
    expect((await rejection(guest.stage.requestAccess())).code).toBe('FORBIDDEN');
    expect(guest.stage.status).toBe('OFF_STAGE');

    await host.stage.grantAccess(['guest']);
    const added = waitFor(host, 'trackAdded');
    await guest.stage.join();
    // Only what the preset allows is published: audio.
    expect([...guest.producers.values()].map((p) => p.source)).toEqual(['audio']);
    expect(serverProducers(room, 'guest')).toBe(1);
    expect((await added).kind).toBe('audio');
  });
});

describe('stage actions that do not fit the caller’s status', () => {
  test('join() while OFF_STAGE → INVALID_STATE, nothing published', async () => {
    const room = await h.room('REQUEST');
    await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    expect((await rejection(viewer.stage.join())).code).toBe('INVALID_STATE');
    expect(viewer.stage.status).toBe('OFF_STAGE');
    expect(viewer.producers.size).toBe(0);
    expect(serverProducers(room, 'v')).toBe(0);
  });

  test('join() while REQUESTED → INVALID_STATE; requesting twice → INVALID_STATE; cancel works once', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    await viewer.stage.requestAccess();
    expect((await rejection(viewer.stage.join())).code).toBe('INVALID_STATE');
    expect((await rejection(viewer.stage.requestAccess())).code).toBe('INVALID_STATE');

    const emptied = waitFor(host.stage, 'stageAccessRequestUpdate', (e) => e.requests.length === 0);
    await expect(viewer.stage.cancelRequestAccess()).resolves.toBe('OFF_STAGE');
    await emptied;
    expect((await rejection(viewer.stage.cancelRequestAccess())).code).toBe('INVALID_STATE');
  });

  test('leave() while OFF_STAGE → INVALID_STATE; grant to someone already accepted → per-user INVALID_STATE', async () => {
    const room = await h.room('REQUEST');
    const host = await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    expect((await rejection(viewer.stage.leave())).code).toBe('INVALID_STATE');
    await host.stage.grantAccess(['v']);
    const again = await host.stage.grantAccess(['v']);
    expect(again.v).toMatchObject({ ok: false, code: 'INVALID_STATE' });
  });

  test('requestAccess() in INVITE mode → STAGE_DISABLED', async () => {
    const room = await h.room('INVITE');
    await h.join(room, 'host', 'host');
    const viewer = await h.join(room, 'v', 'viewer');
    expect(viewer.stage.mode).toBe('INVITE');
    const err = await rejection(viewer.stage.requestAccess());
    expect(err.code).toBe('STAGE_DISABLED');
    expect(viewer.stage.status).toBe('OFF_STAGE');
  });

  test('after meeting.leave() every action rejects with DISCONNECTED', async () => {
    const room = await h.room('REQUEST');
    const viewer = await h.join(room, 'v', 'viewer');
    await viewer.leave();
    expect((await rejection(viewer.stage.requestAccess())).code).toBe('DISCONNECTED');
  });
});

describe('refused connections', () => {
  const base = () => ({ url: h.url, handlerFactory: FakeHandler.createFactory(fakeParameters) });

  test('a token for another room (roomId mismatch) → UNAUTHORIZED', async () => {
    await h.room('REQUEST');
    const token = await h.sg.tokens.mint({ userId: 'u', name: 'u', roomId: 'elsewhere', preset: 'viewer' });
    const err = await rejection(joinMeeting({ ...base(), token, roomId: 'room-1' }));
    expect(err.code).toBe('UNAUTHORIZED');
  });

  test('a tampered token → UNAUTHORIZED', async () => {
    const room = await h.room('REQUEST');
    const token = await h.sg.tokens.mint({ userId: 'u', name: 'u', roomId: room.id, preset: 'viewer' });
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, preset: 'host' })).toString('base64url');
    const err = await rejection(joinMeeting({ ...base(), token: `${header}.${forged}.${signature}`, roomId: room.id }));
    expect(err.code).toBe('UNAUTHORIZED');
    expect(room.participants.has('u')).toBe(false);
  });

  test('no token at all → UNAUTHORIZED', async () => {
    const err = await rejection(joinMeeting({ ...base(), token: '' }));
    expect(err.code).toBe('UNAUTHORIZED');
  });

  test('an unreachable server → StagegateError (DISCONNECTED)', async () => {
    const err = await rejection(joinMeeting({ ...base(), url: 'http://127.0.0.1:1', token: 'x' }));
    expect(err.code).toBe('DISCONNECTED');
  });

  test('no handlerFactory in Node → UNSUPPORTED before any network', async () => {
    const err = await rejection(joinMeeting({ url: h.url, token: 'x' }));
    expect(err.code).toBe('UNSUPPORTED');
  });
});
