/**
 * The Stage's state as JSON (`toState` → `fromState`), as cluster mode keeps it in Redis: after a
 * round trip through JSON the continued stage has the same members, settings, holds, bans,
 * cool-downs and deadlines, and from then on behaves exactly as the original would have.
 */
import { describe, expect, it } from 'vitest';
import { AUTO_ACTOR, BACKEND_ACTOR, Stage, type StageState } from '../../server/stage/Stage.js';
import { PRESETS } from '../../shared/stage.js';
import { StagegateError } from '../../shared/errors.js';
import { FakeClock } from './fakeClock.js';
import { ACC, ALL_EVENTS, ON, OFF, REQ, catchError, dump, setup, type Ctx, type Logged } from './fixtures.js';

const SETTINGS = {
  stageCap: 2,
  autoFill: false,
  acceptTimeoutSeconds: 30,
  slotSeconds: 60,
  requestCooldownSeconds: 120,
  audience: 'visible',
} as const;

/**
 * Every kind of Part 2 state at once: s on stage with a slot, s's audio and video held and an
 * unmute asked for audio, v4 removed with a ban, ghost banned ahead, v3 cooling down after a deny,
 * v1 accepted by `@auto` (its acceptance runs), v2 pending with the stage full.
 */
function richStage(): Ctx {
  const ctx = setup({ settings: SETTINGS });
  const { stage, clock } = ctx;
  stage.join('s');
  stage.mute('h', ['s'], ['audio', 'video']);
  stage.requestUnmute('s', 'audio');
  stage.removeFromRoom('h', ['v4'], { ban: true });
  stage.ban(BACKEND_ACTOR, 'ghost');
  stage.requestAccess('v3');
  stage.denyAccess('h', ['v3']);
  clock.advance(5_000);
  stage.requestAccess('v1');
  stage.setSettings('h', { autoFill: true });
  stage.requestAccess('v2');
  clock.advance(10_000);
  ctx.clear();
  return ctx;
}

/** A stage restored from `state` (through JSON) on a clock at `t`, with its events logged. */
function restore(state: StageState, t: number) {
  const clock = new FakeClock(t);
  const stage = Stage.fromState(JSON.parse(JSON.stringify(state)) as StageState, {
    now: clock.now,
    schedule: clock.schedule,
  });
  const log: Logged[] = [];
  for (const event of ALL_EVENTS)
    stage.on(event, ((payload: unknown) => log.push({ event, payload, at: clock.t } as Logged)) as never);
  return { stage, clock, log };
}

describe('Stage state round trip (toState → JSON → fromState)', () => {
  it('keeps settings, statuses, queue, holds, unmute asks, bans, cool-downs and deadlines', () => {
    const ctx = richStage();
    const { stage } = ctx;
    // the state the fixture built (so the comparison below compares something)
    expect(ctx.status('s')).toBe(ON);
    expect(ctx.status('v1')).toBe(ACC);
    expect(ctx.status('v2')).toBe(REQ);
    expect(stage.holdsOf('s')).toEqual({ held: ['audio', 'video'], unmuteRequested: ['audio'] });
    expect(stage.bannedUsers()).toEqual(['v4', 'ghost']);
    expect(stage.cooldownLeftMs('v3')).toBe(105_000);
    expect(stage.slotEndsAt('s')).toBe(1_000_000 + 60_000);
    const state = stage.toState();
    expect(state).toMatchObject({
      settings: { ...SETTINGS, autoFill: true },
      holds: [{ userId: 's', held: ['audio', 'video'], asked: ['audio'] }],
      bans: ['v4', 'ghost'],
      cooldowns: [['v3', 1_120_000]],
      slots: [{ userId: 's', endsAt: 1_060_000, warned: false }],
      autoAccepted: [['v1', 1_005_000]],
      lastQueueLength: 1,
    });

    const copy = restore(state, ctx.clock.t);
    expect(dump(copy.stage)).toStrictEqual(dump(stage));
    expect(copy.stage.toState()).toStrictEqual(state);
    expect(copy.stage.nextDeadline).toBe(stage.nextDeadline);
    expect(copy.log).toEqual([]); // restoring emits nothing
    // the same wake-up is armed
    expect(copy.clock.nextAt).toBe(ctx.clock.nextAt);
  });

  it('the restored stage refuses what the original refuses: BANNED, COOLING_DOWN, a second unmute ask', () => {
    const ctx = richStage();
    const copy = restore(ctx.stage.toState(), ctx.clock.t);
    for (const stage of [ctx.stage, copy.stage]) {
      for (const id of ['v4', 'ghost'])
        expect(catchError(() => stage.add({ id, name: id, preset: PRESETS.viewer }))).toMatchObject({
          code: 'BANNED',
        });
      const cooling = catchError(() => stage.requestAccess('v3')) as StagegateError;
      expect(cooling).toMatchObject({ code: 'COOLING_DOWN', details: { retryAfterMs: 105_000 } });
      expect(catchError(() => stage.requestUnmute('s', 'audio'))).toMatchObject({ code: 'INVALID_STATE' });
      expect(catchError(() => stage.join('v2'))).toMatchObject({ code: 'INVALID_STATE' });
      expect(stage.isHeld('s', 'video')).toBe(true);
      expect(stage.isHeld('s', 'screenshare')).toBe(false);
    }
  });

  it('goes on exactly as the original: the acceptance lapses, auto-fill, the slot warning and end at the same times', () => {
    const ctx = richStage();
    const copy = restore(ctx.stage.toState(), ctx.clock.t);
    for (const run of [ctx, copy]) {
      run.clock.advance(20_000); // v1's @auto acceptance lapses at 1_035_000: v2 gets the seat
      run.stage.unban(BACKEND_ACTOR, 'v4');
      run.stage.add({ id: 'v4', name: 'V4', preset: PRESETS.viewer });
      run.clock.advance(40_000); // s's warning at 1_045_000, end at 1_060_000; v2's acceptance lapses at 1_065_000
      run.clock.advance(120_000); // v3's cool-down is over
      run.stage.requestAccess('v3');
    }
    expect(copy.log.length).toBeGreaterThan(8);
    expect(copy.log).toEqual(ctx.log);
    const kinds = copy.log.map((l) => `${l.at}:${l.event}`);
    expect(kinds).toContain('1035000:statusChanged');
    expect(kinds).toContain('1045000:stageSlotEnding');
    expect(kinds).toContain('1060000:statusChanged');
    expect(copy.log).toContainEqual(
      expect.objectContaining({
        event: 'statusChanged',
        at: 1_060_000,
        payload: expect.objectContaining({ userId: 's', reason: 'slot-ended', by: AUTO_ACTOR }) as unknown,
      }),
    );
    expect(dump(copy.stage)).toStrictEqual(dump(ctx.stage));
    expect(copy.stage.get('s')?.status).toBe(ACC);
    expect(copy.stage.get('v1')?.status).toBe(OFF);
  });

  it('a deadline that passed meanwhile is acted on at the first wake-up, not while restoring', () => {
    const ctx = richStage();
    const copy = restore(ctx.stage.toState(), 1_100_000); // the takeover came after s's slot end
    expect(copy.log).toEqual([]);
    expect(copy.stage.get('s')?.status).toBe(ON);
    copy.clock.advance(0);
    expect(copy.stage.get('s')?.status).toBe(ACC);
    expect(copy.log).toContainEqual(
      expect.objectContaining({
        event: 'statusChanged',
        payload: expect.objectContaining({ userId: 's', reason: 'slot-ended' }) as unknown,
      }),
    );
  });

  it('a state without the Part 2 fields (an older node) restores with none', () => {
    const ctx = richStage();
    const { mode, settings, requestSeq, members } = ctx.stage.toState();
    const copy = restore({ mode, settings, requestSeq, members }, ctx.clock.t);
    expect(copy.stage.bannedUsers()).toEqual([]);
    expect(copy.stage.holdsOf('s')).toEqual({ held: [], unmuteRequested: [] });
    expect(copy.stage.cooldownLeftMs('v3')).toBe(0);
    expect(copy.stage.nextDeadline).toBeUndefined();
    expect(copy.stage.getAccessRequests(BACKEND_ACTOR).map((r) => r.userId)).toEqual(['v2']);
  });

  it('expired cool-downs are left out of the state', () => {
    const ctx = richStage();
    ctx.clock.advance(200_000);
    expect(ctx.stage.toState().cooldowns).toEqual([]);
  });
});
