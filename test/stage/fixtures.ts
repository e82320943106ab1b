/** Shared fixtures of the Part 2 Stage tests: a roster on a fake clock, a full event log, refusal checks. */
import { expect } from 'vitest';
import { BACKEND_ACTOR, Stage } from '../../server/stage/Stage.js';
import type { StageEvents } from '../../server/stage/Stage.js';
import { MEDIA_SOURCES, PRESETS } from '../../shared/stage.js';
import type { Preset, StageMode, StageSettings, StageStatus } from '../../shared/stage.js';
import { StagegateError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';
import { FakeClock } from './fakeClock.js';

export const OFF: StageStatus = 'OFF_STAGE';
export const REQ: StageStatus = 'REQUESTED_TO_JOIN_STAGE';
export const ACC: StageStatus = 'ACCEPTED_TO_JOIN_STAGE';
export const ON: StageStatus = 'ON_STAGE';

const MEDIA = { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'NOT_ALLOWED' } as const;
/** May kick (and so mute and remove) but not manage requests. */
export const BOUNCER: Preset = {
  name: 'bouncer',
  stageAccess: 'ALLOWED',
  acceptStageRequests: false,
  kickParticipant: true,
  media: MEDIA,
};
/** Can only be invited. */
export const GUEST: Preset = {
  name: 'guest',
  stageAccess: 'NOT_ALLOWED',
  acceptStageRequests: false,
  kickParticipant: false,
  media: MEDIA,
};

export const ALL_EVENTS = [
  'statusChanged',
  'requestsChanged',
  'newRequest',
  'requestApproved',
  'requestRejected',
  'removed',
  'modeChanged',
  'requestPositionsChanged',
  'mutedByHost',
  'unmuteRequested',
  'unmuteAllowed',
  'removedFromRoom',
  'banned',
  'unbanned',
  'settingsChanged',
  'slotChanged',
  'stageSlotEnding',
] as const satisfies readonly (keyof StageEvents)[];
// Every event of StageEvents is listed (compile-time check).
type Missing = Exclude<keyof StageEvents, (typeof ALL_EVENTS)[number]>;
const allListed: Missing extends never ? true : Missing = true;
void allListed;

export type Logged = {
  [E in keyof StageEvents]: { event: E; payload: Parameters<StageEvents[E]>[0]; at: number };
}[keyof StageEvents];

/** Every id a fixture ever uses, for state dumps (members or not). */
export const IDS = ['h', 'h2', 's', 'b', 'v1', 'v2', 'v3', 'v4', 'g', 'ghost'];

/**
 * h, h2 hosts; s speaker; b bouncer (kick only); v1..v4 viewers; g guest. The clock starts at
 * 1_000_000 and moves only with `clock.advance`. Events are logged from after the roster joined.
 */
export function setup(opts: { mode?: StageMode; settings?: Partial<StageSettings>; scheduler?: boolean } = {}) {
  const clock = new FakeClock();
  const stage = new Stage({
    mode: opts.mode ?? 'REQUEST',
    ...(opts.settings ? { settings: opts.settings } : {}),
    now: clock.now,
    ...(opts.scheduler === false ? {} : { schedule: clock.schedule }),
  });
  stage.add({ id: 'h', name: 'Hana', preset: PRESETS.host });
  stage.add({ id: 'h2', name: 'Hugo', preset: PRESETS.host });
  stage.add({ id: 's', name: 'Sam', preset: PRESETS.speaker });
  stage.add({ id: 'b', name: 'Bo', preset: BOUNCER });
  for (const id of ['v1', 'v2', 'v3', 'v4']) stage.add({ id, name: id.toUpperCase(), preset: PRESETS.viewer });
  stage.add({ id: 'g', name: 'Gus', preset: GUEST });
  const log: Logged[] = [];
  for (const event of ALL_EVENTS) {
    stage.on(event, ((payload: unknown) => log.push({ event, payload, at: clock.t } as Logged)) as never);
  }
  const status = (id: string): StageStatus | undefined => stage.get(id)?.status;
  const clear = (): void => {
    log.length = 0;
  };
  /** Payloads of one event, in order. */
  const of = <E extends keyof StageEvents>(event: E): Parameters<StageEvents[E]>[0][] =>
    log.filter((l) => l.event === event).map((l) => l.payload as Parameters<StageEvents[E]>[0]);
  return { stage, clock, log, status, clear, of };
}
export type Ctx = ReturnType<typeof setup>;

/** Everything observable about a Stage, for "nothing changed" checks. */
export function dump(stage: Stage) {
  return {
    members: stage.members(),
    mode: stage.mode,
    settings: stage.settings,
    queue: stage.getAccessRequests(BACKEND_ACTOR),
    positions: IDS.map((id) => stage.positionOf(id)),
    holds: IDS.map((id) => stage.holdsOf(id)),
    held: IDS.flatMap((id) => MEDIA_SOURCES.map((s) => stage.isHeld(id, s))),
    bans: stage.bannedUsers(),
    cooldowns: IDS.map((id) => stage.cooldownLeftMs(id)),
    nextDeadline: stage.nextDeadline,
  };
}

export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** The action throws a StagegateError with `code`, and nothing changed or was emitted. Returns the error. */
export function expectRefused(ctx: Ctx, fn: () => unknown, code: ErrorCode): StagegateError {
  const before = dump(ctx.stage);
  const events = ctx.log.length;
  const armed = ctx.clock.armed;
  const error = catchError(fn);
  expect(error).toBeInstanceOf(StagegateError);
  expect((error as StagegateError).code).toBe(code);
  expect(dump(ctx.stage)).toStrictEqual(before);
  expect(ctx.log.length).toBe(events);
  expect(ctx.clock.armed).toBe(armed);
  return error as StagegateError;
}

/** A batch entry refused with `code`. */
export const refusedWith = (code: ErrorCode) => ({ ok: false, code, message: expect.any(String) as string });
