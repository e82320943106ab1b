/** STAGE.md Part 2 in the pure Stage: media holds ("Media moderation") and "Removal from the room and bans". */
import { describe, expect, it } from 'vitest';
import { AUTO_ACTOR, BACKEND_ACTOR } from '../../server/stage/Stage.js';
import { PRESETS } from '../../shared/stage.js';
import type { MediaSource } from '../../shared/stage.js';
import { ACC, OFF, ON, REQ, expectRefused, refusedWith, setup } from './fixtures.js';

/** v1 on stage (requested, granted, joined). */
function withSpeakerOnStage() {
  const ctx = setup();
  ctx.stage.requestAccess('v1');
  ctx.stage.grantAccess('h', ['v1']);
  ctx.stage.join('v1');
  ctx.clear();
  return ctx;
}

describe('mute', () => {
  it('holds the sources, tells the owner once per newly held source set', () => {
    const ctx = withSpeakerOnStage();
    expect(ctx.stage.mute('h', ['v1'], ['audio'])).toStrictEqual({ v1: { ok: true, status: ON } });
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(true);
    expect(ctx.stage.isHeld('v1', 'video')).toBe(false);
    expect(ctx.stage.isHeld('v2', 'audio')).toBe(false);
    expect(ctx.stage.mute('h', ['v1'], ['video', 'audio'])).toStrictEqual({ v1: { ok: true, status: ON } });
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([
      ['mutedByHost', { userId: 'v1', by: 'h', sources: ['audio'] }],
      ['mutedByHost', { userId: 'v1', by: 'h', sources: ['video'] }],
    ]);
    expect(ctx.stage.holdsOf('v1')).toStrictEqual({ held: ['audio', 'video'], unmuteRequested: [] });
    // the status is untouched: a hold is not a kick
    expect(ctx.status('v1')).toBe(ON);
  });

  it('"mute everyone": one call for several users; per user an unknown id or nothing new is refused alone', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.join('s');
    ctx.stage.mute('h', ['s'], ['audio']);
    ctx.clear();
    expect(ctx.stage.mute('h', ['v1', 's', 'ghost', 'v1'], ['audio'])).toStrictEqual({
      v1: { ok: true, status: ON },
      s: refusedWith('INVALID_STATE'),
      ghost: refusedWith('NOT_FOUND'),
    });
    expect(ctx.of('mutedByHost')).toStrictEqual([{ userId: 'v1', by: 'h', sources: ['audio'] }]);
  });

  it('kickParticipant holders and the backend may mute; others are FORBIDDEN, strangers NOT_FOUND, @auto is no actor', () => {
    const ctx = withSpeakerOnStage();
    expect(ctx.stage.mute('b', ['v1'], ['audio'])['v1']).toStrictEqual({ ok: true, status: ON });
    expect(ctx.stage.mute(BACKEND_ACTOR, ['v1'], ['video'])['v1']).toStrictEqual({ ok: true, status: ON });
    expect(ctx.of('mutedByHost').map((e) => e.by)).toEqual(['b', BACKEND_ACTOR]);
    expectRefused(ctx, () => ctx.stage.mute('s', ['v1'], ['screenshare']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.mute('v2', ['v1'], ['screenshare']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.mute('v1', ['v1'], ['screenshare']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.mute('ghost', ['v1'], ['screenshare']), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.mute(AUTO_ACTOR, ['v1'], ['screenshare']), 'NOT_FOUND');
  });

  it('bad sources refuse the whole call with INVALID_REQUEST', () => {
    const ctx = withSpeakerOnStage();
    for (const bad of [[], ['mic'], ['audio', 'mic'], 'audio', null, [1]]) {
      expectRefused(ctx, () => ctx.stage.mute('h', ['v1'], bad as MediaSource[]), 'INVALID_REQUEST');
    }
    expectRefused(ctx, () => ctx.stage.mute('h', 'v1' as unknown as string[], ['audio']), 'INVALID_REQUEST');
  });

  it('may hold someone off stage: they join held', () => {
    const ctx = setup();
    ctx.stage.mute('h', ['s'], ['video']);
    ctx.stage.join('s');
    expect(ctx.stage.isHeld('s', 'video')).toBe(true);
  });
});

describe('requestUnmute', () => {
  it('on stage with the source held: hosts are told (unmuteRequested), once', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio', 'video']);
    ctx.clear();
    ctx.stage.requestUnmute('v1', 'audio');
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([
      ['unmuteRequested', { userId: 'v1', source: 'audio' }],
    ]);
    expect(ctx.stage.holdsOf('v1')).toStrictEqual({ held: ['audio', 'video'], unmuteRequested: ['audio'] });
    // asking does not lift anything
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(true);
    expectRefused(ctx, () => ctx.stage.requestUnmute('v1', 'audio'), 'INVALID_STATE');
  });

  it('refused: source not held, not on stage, bad source, unknown user', () => {
    const ctx = withSpeakerOnStage();
    expectRefused(ctx, () => ctx.stage.requestUnmute('v1', 'audio'), 'INVALID_STATE');
    ctx.stage.mute('h', ['v1', 'v2', 's'], ['audio']);
    expectRefused(ctx, () => ctx.stage.requestUnmute('v2', 'audio'), 'INVALID_STATE'); // OFF_STAGE
    expectRefused(ctx, () => ctx.stage.requestUnmute('s', 'audio'), 'INVALID_STATE'); // ACCEPTED
    expectRefused(ctx, () => ctx.stage.requestUnmute('v1', 'mic' as MediaSource), 'INVALID_REQUEST');
    expectRefused(ctx, () => ctx.stage.requestUnmute('ghost', 'audio'), 'NOT_FOUND');
  });

  it('a pending request ends when the owner leaves the stage; the hold stays', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio']);
    ctx.stage.requestUnmute('v1', 'audio');
    ctx.stage.leave('v1');
    expect(ctx.stage.holdsOf('v1')).toStrictEqual({ held: ['audio'], unmuteRequested: [] });
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    ctx.stage.requestUnmute('v1', 'audio'); // may ask again
    expect(ctx.of('unmuteRequested')).toHaveLength(2);
  });
});

describe('allowUnmute', () => {
  it('lifts the holds and tells the owner which; nobody is resumed by it', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio', 'video']);
    ctx.stage.requestUnmute('v1', 'audio');
    ctx.clear();
    expect(ctx.stage.allowUnmute('h2', ['v1'], ['audio', 'screenshare'])).toStrictEqual({
      v1: { ok: true, status: ON },
    });
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([
      ['unmuteAllowed', { userId: 'v1', by: 'h2', sources: ['audio'] }],
    ]);
    expect(ctx.stage.holdsOf('v1')).toStrictEqual({ held: ['video'], unmuteRequested: [] });
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(false);
  });

  it('per user: nothing held → INVALID_STATE; whole call: viewer FORBIDDEN, bad sources INVALID_REQUEST', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio']);
    ctx.clear();
    expect(ctx.stage.allowUnmute('b', ['v1', 'v2', 'ghost'], ['video'])).toStrictEqual({
      v1: refusedWith('INVALID_STATE'),
      v2: refusedWith('INVALID_STATE'),
      ghost: refusedWith('NOT_FOUND'),
    });
    expect(ctx.log).toEqual([]);
    expectRefused(ctx, () => ctx.stage.allowUnmute('v1', ['v1'], ['audio']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.allowUnmute('s', ['v1'], ['audio']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.allowUnmute('h', ['v1'], []), 'INVALID_REQUEST');
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(true);
  });
});

describe('holds last until allowed or until the participant leaves the room', () => {
  it('survive leave, kick, mode switches and settings changes', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1', 's'], ['audio']);
    ctx.stage.kick('h', ['v1']);
    ctx.stage.join('s');
    ctx.stage.leave('s');
    ctx.stage.setMode('h', 'OPEN');
    ctx.stage.setMode('h', 'INVITE');
    ctx.stage.setSettings('h', { stageCap: 1, slotSeconds: 60 });
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(true);
    expect(ctx.stage.isHeld('s', 'audio')).toBe(true);
  });

  it('end when the participant leaves the room: a rejoin starts unheld', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio']);
    ctx.stage.remove('v1');
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(false);
    ctx.stage.add({ id: 'v1', name: 'V1', preset: PRESETS.viewer });
    expect(ctx.stage.holdsOf('v1')).toStrictEqual({ held: [], unmuteRequested: [] });
  });
});

describe('removeFromRoom', () => {
  it('an ON_STAGE member goes off stage (removed-from-room, by) and is forgotten at once', () => {
    const ctx = withSpeakerOnStage();
    ctx.stage.mute('h', ['v1'], ['audio']);
    ctx.clear();
    expect(ctx.stage.removeFromRoom('h', ['v1'])).toStrictEqual({ v1: { ok: true, status: OFF } });
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([
      ['statusChanged', { userId: 'v1', from: ON, to: OFF, reason: 'removed-from-room', by: 'h' }],
      ['removedFromRoom', { userId: 'v1', by: 'h', banned: false }],
    ]);
    expect(ctx.stage.has('v1')).toBe(false);
    expect(ctx.stage.isHeld('v1', 'audio')).toBe(false);
    expect(ctx.stage.isBanned('v1')).toBe(false);
    // not banned: may come back
    ctx.stage.add({ id: 'v1', name: 'V1', preset: PRESETS.viewer });
    expect(ctx.status('v1')).toBe(OFF);
  });

  it('a pending request is dropped; the one behind moves up', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.clear();
    ctx.stage.removeFromRoom('b', ['v1']);
    expect(ctx.log.map((l) => l.event)).toEqual(['removedFromRoom', 'requestsChanged', 'requestPositionsChanged']);
    expect(ctx.of('requestPositionsChanged')).toStrictEqual([
      { queueLength: 1, changed: [{ userId: 'v2', position: 1 }] },
    ]);
    expect(ctx.stage.positionOf('v2')).toStrictEqual({ position: 1, queueLength: 1 });
  });

  it('with ban: the id is banned and add() refuses it (BANNED) until the backend unbans', () => {
    const ctx = withSpeakerOnStage();
    expect(ctx.stage.removeFromRoom('h', ['v1', 'v2'], { ban: true })).toStrictEqual({
      v1: { ok: true, status: OFF },
      v2: { ok: true, status: OFF },
    });
    expect(ctx.of('removedFromRoom')).toStrictEqual([
      { userId: 'v1', by: 'h', banned: true },
      { userId: 'v2', by: 'h', banned: true },
    ]);
    expect(ctx.stage.isBanned('v1')).toBe(true);
    expect(ctx.stage.bannedUsers()).toEqual(['v1', 'v2']);
    expectRefused(ctx, () => ctx.stage.add({ id: 'v1', name: 'again', preset: PRESETS.viewer }), 'BANNED');
    expectRefused(ctx, () => ctx.stage.add({ id: 'v1', name: 'as host', preset: PRESETS.host }), 'BANNED');
    // only the backend unbans
    expectRefused(ctx, () => ctx.stage.unban('h', 'v1'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.unban('b', 'v1'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.unban('ghost', 'v1'), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.unban(AUTO_ACTOR, 'v1'), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.unban(BACKEND_ACTOR, 'v3'), 'INVALID_STATE');
    ctx.clear();
    ctx.stage.unban(BACKEND_ACTOR, 'v1');
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([['unbanned', { userId: 'v1', by: BACKEND_ACTOR }]]);
    expect(ctx.stage.isBanned('v1')).toBe(false);
    expect(ctx.stage.add({ id: 'v1', name: 'back', preset: PRESETS.viewer }).status).toBe(OFF);
    expect(ctx.stage.isBanned('v2')).toBe(true);
  });

  it('ban ahead: the backend bans an absent id (banned event), idempotent; a member is removed with the ban', () => {
    const ctx = withSpeakerOnStage();
    expect(ctx.stage.ban(BACKEND_ACTOR, 'ghost')).toBe(false);
    expect(ctx.log.map((l) => [l.event, l.payload])).toStrictEqual([
      ['banned', { userId: 'ghost', by: BACKEND_ACTOR }],
    ]);
    ctx.clear();
    expect(ctx.stage.ban(BACKEND_ACTOR, 'ghost')).toBe(false);
    expect(ctx.log).toEqual([]);
    expectRefused(ctx, () => ctx.stage.add({ id: 'ghost', name: 'g', preset: PRESETS.viewer }), 'BANNED');
    expectRefused(ctx, () => ctx.stage.ban('h', 'v2'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.ban(BACKEND_ACTOR, '@auto'), 'INVALID_REQUEST');
    expect(ctx.stage.ban(BACKEND_ACTOR, 'v1')).toBe(true);
    expect(ctx.stage.has('v1')).toBe(false);
    expect(ctx.of('removedFromRoom')).toStrictEqual([{ userId: 'v1', by: BACKEND_ACTOR, banned: true }]);
    expect(ctx.stage.bannedUsers()).toEqual(['ghost', 'v1']);
  });

  it('a host cannot remove or ban another acceptStageRequests holder (nor itself); the backend can', () => {
    const ctx = setup();
    ctx.stage.join('h2');
    ctx.clear();
    expect(ctx.stage.removeFromRoom('h', ['h2', 'h', 'v1'], { ban: true })).toStrictEqual({
      h2: refusedWith('FORBIDDEN'),
      h: refusedWith('FORBIDDEN'),
      v1: { ok: true, status: OFF },
    });
    expect(ctx.stage.has('h2')).toBe(true);
    expect(ctx.stage.isBanned('h2')).toBe(false);
    expect(ctx.of('removedFromRoom').map((e) => e.userId)).toEqual(['v1']);
    expect(ctx.stage.removeFromRoom(BACKEND_ACTOR, ['h2'], { ban: true })).toStrictEqual({
      h2: { ok: true, status: OFF },
    });
    expect(ctx.of('statusChanged').at(-1)).toStrictEqual({
      userId: 'h2',
      from: ON,
      to: OFF,
      reason: 'removed-from-room',
      by: BACKEND_ACTOR,
    });
    expect(ctx.stage.isBanned('h2')).toBe(true);
  });

  it('needs kickParticipant: speaker and viewer FORBIDDEN, stranger NOT_FOUND, bad opts INVALID_REQUEST', () => {
    const ctx = withSpeakerOnStage();
    expectRefused(ctx, () => ctx.stage.removeFromRoom('s', ['v1']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.removeFromRoom('v1', ['v2'], { ban: true }), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.removeFromRoom('ghost', ['v1']), 'NOT_FOUND');
    expectRefused(
      ctx,
      () => ctx.stage.removeFromRoom('h', ['v1'], { ban: 'yes' as unknown as boolean }),
      'INVALID_REQUEST',
    );
    expectRefused(
      ctx,
      () => ctx.stage.removeFromRoom('h', ['v1'], null as unknown as { ban?: boolean }),
      'INVALID_REQUEST',
    );
    expect(ctx.stage.removeFromRoom('h', ['ghost'])).toStrictEqual({ ghost: refusedWith('NOT_FOUND') });
    expect(ctx.stage.isBanned('ghost')).toBe(false);
  });

  it('an ACCEPTED or REQUESTED member is forgotten without a status event; their seat and timers go too', () => {
    const ctx = setup({ settings: { stageCap: 1, autoFill: true } });
    ctx.stage.requestAccess('v1'); // granted by @auto at once
    ctx.stage.requestAccess('v2'); // waits
    expect(ctx.status('v1')).toBe(ACC);
    expect(ctx.stage.nextDeadline).toBeDefined();
    ctx.clear();
    ctx.stage.removeFromRoom('h', ['v1']);
    // v1's seat is free again: v2 is granted by @auto
    expect(ctx.log.map((l) => l.event)).toEqual([
      'removedFromRoom',
      'statusChanged',
      'requestApproved',
      'requestsChanged',
      'requestPositionsChanged',
    ]);
    expect(ctx.status('v2')).toBe(ACC);
    expect(ctx.stage.nextDeadline).toBe(ctx.clock.t + 60_000);
  });

  it('the reserved @auto and @backend ids cannot be added', () => {
    const ctx = setup();
    expectRefused(ctx, () => ctx.stage.add({ id: AUTO_ACTOR, name: 'x', preset: PRESETS.host }), 'INVALID_REQUEST');
    expectRefused(ctx, () => ctx.stage.add({ id: BACKEND_ACTOR, name: 'x', preset: PRESETS.host }), 'INVALID_REQUEST');
  });

  it('REQUESTED status of a removed member does not linger in the queue', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v3');
    ctx.stage.removeFromRoom('h', ['v3'], { ban: true });
    expect(ctx.stage.getAccessRequests('h')).toEqual([]);
    expect(ctx.stage.positionOf('v3')).toBeUndefined();
    expect([REQ]).not.toContain(ctx.status('v3'));
  });
});
