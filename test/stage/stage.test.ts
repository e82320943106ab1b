import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { AUTO_ACTOR, BACKEND_ACTOR, Stage } from '../../server/stage/Stage.js';
import type { StageChangeReason, StageEvents, StageMember } from '../../server/stage/Stage.js';
import { MEDIA_SOURCES, PRESETS, STAGE_MODES } from '../../shared/stage.js';
import type { AccessRequest, MediaSource, Preset, StageMode, StageSettings, StageStatus } from '../../shared/stage.js';
import { FakeClock } from './fakeClock.js';
import { StagegateError } from '../../shared/errors.js';
import type { ErrorCode } from '../../shared/errors.js';

// ---------- fixtures ----------

const OFF: StageStatus = 'OFF_STAGE';
const REQ: StageStatus = 'REQUESTED_TO_JOIN_STAGE';
const ACC: StageStatus = 'ACCEPTED_TO_JOIN_STAGE';
const ON: StageStatus = 'ON_STAGE';

const MEDIA = { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'NOT_ALLOWED' } as const;
/** Can only be invited. */
const GUEST: Preset = {
  name: 'guest',
  stageAccess: 'NOT_ALLOWED',
  acceptStageRequests: false,
  kickParticipant: false,
  media: MEDIA,
};
/** Manages the stage but must itself request (exercises actions that affect the actor). */
const MODERATOR: Preset = {
  name: 'moderator',
  stageAccess: 'CAN_REQUEST',
  acceptStageRequests: true,
  kickParticipant: true,
  media: MEDIA,
};
/** May kick but not manage requests. */
const BOUNCER: Preset = {
  name: 'bouncer',
  stageAccess: 'ALLOWED',
  acceptStageRequests: false,
  kickParticipant: true,
  media: MEDIA,
};

const PRESET_BY_NAME: Record<string, Preset> = {
  host: PRESETS.host,
  speaker: PRESETS.speaker,
  viewer: PRESETS.viewer,
  guest: GUEST,
  moderator: MODERATOR,
  bouncer: BOUNCER,
};

const EVENT_NAMES = [
  'statusChanged',
  'requestsChanged',
  'newRequest',
  'requestApproved',
  'requestRejected',
  'removed',
  'modeChanged',
] as const satisfies readonly (keyof StageEvents)[];

type Logged = { [E in keyof StageEvents]: { event: E; payload: Parameters<StageEvents[E]>[0] } }[keyof StageEvents];

function record<E extends keyof StageEvents>(stage: Stage, event: E, log: Logged[]): void {
  const listener = (payload: Parameters<StageEvents[E]>[0]): void => {
    log.push({ event, payload } as Logged);
  };
  stage.on(event, listener as StageEvents[E]);
}

/** h host, s speaker, v1 v2 v3 viewers, g guest (NOT_ALLOWED). Events are logged from after the roster joined. */
function setup(mode: StageMode = 'REQUEST', clock?: () => number) {
  let t = 1_000;
  const stage = new Stage({ mode, now: clock ?? (() => (t += 10)) });
  stage.add({ id: 'h', name: 'Hana', preset: PRESETS.host });
  stage.add({ id: 's', name: 'Sam', preset: PRESETS.speaker });
  stage.add({ id: 'v1', name: 'Vera', preset: PRESETS.viewer });
  stage.add({ id: 'v2', name: 'Vik', preset: PRESETS.viewer });
  stage.add({ id: 'v3', name: 'Val', preset: PRESETS.viewer });
  stage.add({ id: 'g', name: 'Gus', preset: GUEST });
  const log: Logged[] = [];
  for (const e of EVENT_NAMES) record(stage, e, log);
  const status = (id: string): StageStatus | undefined => stage.get(id)?.status;
  const clear = (): void => {
    log.length = 0;
  };
  return { stage, log, status, clear };
}
type Ctx = ReturnType<typeof setup>;

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** The action throws a StagegateError with `code`, and nothing changed or was emitted. */
function expectRefused(ctx: Ctx, fn: () => unknown, code: ErrorCode): void {
  const { stage, log } = ctx;
  const before = {
    members: stage.members(),
    mode: stage.mode,
    pending: stage.getAccessRequests('h'),
    events: log.length,
  };
  const error = catchError(fn);
  expect(error).toBeInstanceOf(StagegateError);
  expect((error as StagegateError).code).toBe(code);
  expect(stage.members()).toStrictEqual(before.members);
  expect(stage.mode).toBe(before.mode);
  expect(stage.getAccessRequests('h')).toStrictEqual(before.pending);
  expect(log.length).toBe(before.events);
}

const names = (log: Logged[]): string[] => log.map((l) => l.event);
const ids = (reqs: AccessRequest[]): string[] => reqs.map((r) => r.userId);

// ---------- add / remove / queries ----------

describe('add, remove and queries', () => {
  it('adds a viewer OFF_STAGE silently and a host ACCEPTED with a join-room statusChanged', () => {
    const stage = new Stage();
    const log: Logged[] = [];
    for (const e of EVENT_NAMES) record(stage, e, log);
    const v = stage.add({ id: 'v', name: 'Vera', preset: PRESETS.viewer });
    expect(v).toStrictEqual({ id: 'v', name: 'Vera', preset: PRESETS.viewer, status: OFF });
    expect(log).toEqual([]);
    const h = stage.add({ id: 'h', name: 'Hana', preset: PRESETS.host });
    expect(h.status).toBe(ACC);
    expect(log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'h', from: OFF, to: ACC, reason: 'join-room' } },
    ]);
    expect(stage.mode).toBe('REQUEST');
    expect(stage.members().map((m) => [m.id, m.status])).toEqual([
      ['v', OFF],
      ['h', ACC],
    ]);
  });

  it('adds everyone ACCEPTED in OPEN mode, and a guest OFF_STAGE in INVITE mode', () => {
    const open = new Stage({ mode: 'OPEN' });
    expect(open.add({ id: 'v', name: 'V', preset: PRESETS.viewer }).status).toBe(ACC);
    expect(open.add({ id: 'g', name: 'G', preset: GUEST }).status).toBe(ACC);
    const invite = new Stage({ mode: 'INVITE' });
    expect(invite.mode).toBe('INVITE');
    expect(invite.add({ id: 'g', name: 'G', preset: GUEST }).status).toBe(OFF);
    expect(invite.add({ id: 's', name: 'S', preset: PRESETS.speaker }).status).toBe(ACC);
  });

  it('refuses re-adding an existing id with INVALID_STATE', () => {
    const ctx = setup();
    expectRefused(ctx, () => ctx.stage.add({ id: 'v1', name: 'Other', preset: PRESETS.host }), 'INVALID_STATE');
    expect(ctx.stage.get('v1')?.name).toBe('Vera');
  });

  it('has/get/members: unknown ids are undefined, snapshots are copies', () => {
    const { stage } = setup();
    expect(stage.has('v1')).toBe(true);
    expect(stage.has('nobody')).toBe(false);
    expect(stage.get('nobody')).toBeUndefined();
    const snap = stage.get('v1') as StageMember;
    snap.status = ON;
    expect(stage.get('v1')?.status).toBe(OFF);
    expect(stage.members().map((m) => m.id)).toEqual(['h', 's', 'v1', 'v2', 'v3', 'g']);
  });

  it('remove: an ON_STAGE member goes OFF_STAGE (leave-room) then is gone', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    ctx.clear();
    ctx.stage.remove('v1');
    expect(ctx.stage.has('v1')).toBe(false);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: ON, to: OFF, reason: 'leave-room' } },
    ]);
  });

  it('remove: a pending request is dropped with one requestsChanged', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.clear();
    ctx.stage.remove('v1');
    expect(names(ctx.log)).toEqual(['requestsChanged']);
    expect(ids(ctx.log[0]?.payload as AccessRequest[])).toEqual(['v2']);
    expect(ids(ctx.stage.getAccessRequests('h'))).toEqual(['v2']);
  });

  it('remove: an OFF_STAGE or ACCEPTED member leaves silently; an unknown id is a no-op', () => {
    const ctx = setup();
    ctx.stage.remove('v3');
    ctx.stage.remove('s');
    ctx.stage.remove('nobody');
    expect(ctx.log).toEqual([]);
    expect(ctx.stage.members().map((m) => m.id)).toEqual(['h', 'v1', 'v2', 'g']);
  });
});

// ---------- requestAccess / cancelRequestAccess / getAccessRequests ----------

describe('requestAccess', () => {
  it('OFF_STAGE → REQUESTED with requestedAt, emitting statusChanged, newRequest, requestsChanged', () => {
    const ctx = setup();
    expect(ctx.stage.requestAccess('v1')).toBe(REQ);
    const req = { userId: 'v1', name: 'Vera', requestedAt: 1_010 };
    expect(ctx.stage.get('v1')).toStrictEqual({
      id: 'v1',
      name: 'Vera',
      preset: PRESETS.viewer,
      status: REQ,
      requestedAt: 1_010,
    });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: OFF, to: REQ, reason: 'request' } },
      { event: 'newRequest', payload: req },
      { event: 'requestsChanged', payload: [req] },
    ]);
    expect(ctx.stage.getAccessRequests('h')).toStrictEqual([req]);
  });

  it('an ALLOWED caller already ACCEPTED succeeds as a no-op (host), even in INVITE mode (speaker)', () => {
    const ctx = setup();
    expect(ctx.stage.requestAccess('h')).toBe(ACC);
    ctx.stage.setMode('h', 'INVITE');
    ctx.clear();
    expect(ctx.stage.requestAccess('s')).toBe(ACC);
    expect(ctx.log).toEqual([]);
    expect(ctx.status('s')).toBe(ACC);
  });

  it('an invited (ACCEPTED) viewer asking again succeeds as a no-op', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v1']);
    ctx.clear();
    expect(ctx.stage.requestAccess('v1')).toBe(ACC);
    expect(ctx.log).toEqual([]);
  });

  it('in OPEN mode every caller is already ACCEPTED: no-op', () => {
    const ctx = setup('OPEN');
    expect(ctx.stage.requestAccess('g')).toBe(ACC);
    expect(ctx.stage.requestAccess('v1')).toBe(ACC);
    expect(ctx.log).toEqual([]);
  });

  it('refuses: already REQUESTED → INVALID_STATE', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    expectRefused(ctx, () => ctx.stage.requestAccess('v1'), 'INVALID_STATE');
    expect(ctx.status('v1')).toBe(REQ);
  });

  it('refuses: ON_STAGE → INVALID_STATE (host and viewer)', () => {
    const ctx = setup();
    ctx.stage.join('h');
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    expectRefused(ctx, () => ctx.stage.requestAccess('h'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.requestAccess('v1'), 'INVALID_STATE');
  });

  it('refuses: INVITE mode → STAGE_DISABLED (viewer and guest)', () => {
    const ctx = setup('INVITE');
    expectRefused(ctx, () => ctx.stage.requestAccess('v1'), 'STAGE_DISABLED');
    expectRefused(ctx, () => ctx.stage.requestAccess('g'), 'STAGE_DISABLED');
    expect(ctx.status('v1')).toBe(OFF);
  });

  it('refuses: NOT_ALLOWED preset in REQUEST mode → FORBIDDEN', () => {
    const ctx = setup();
    expectRefused(ctx, () => ctx.stage.requestAccess('g'), 'FORBIDDEN');
    expect(ctx.status('g')).toBe(OFF);
  });

  it('refuses: unknown user → NOT_FOUND', () => {
    const ctx = setup();
    expectRefused(ctx, () => ctx.stage.requestAccess('nobody'), 'NOT_FOUND');
  });

  it('lists requests oldest first, by requestedAt even when the clock goes backwards', () => {
    const times = [500, 300, 400];
    const ctx = setup('REQUEST', () => times.shift() ?? 0);
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.stage.requestAccess('v3');
    expect(ctx.stage.getAccessRequests('h')).toStrictEqual([
      { userId: 'v2', name: 'Vik', requestedAt: 300 },
      { userId: 'v3', name: 'Val', requestedAt: 400 },
      { userId: 'v1', name: 'Vera', requestedAt: 500 },
    ]);
    const lastList = ctx.log.filter((l) => l.event === 'requestsChanged').at(-1)?.payload as AccessRequest[];
    expect(ids(lastList)).toEqual(['v2', 'v3', 'v1']);
  });

  it('breaks requestedAt ties by request order', () => {
    const ctx = setup('REQUEST', () => 42);
    ctx.stage.requestAccess('v3');
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    expect(ids(ctx.stage.getAccessRequests('h'))).toEqual(['v3', 'v1', 'v2']);
  });
});

describe('cancelRequestAccess', () => {
  it('REQUESTED → OFF_STAGE, emitting statusChanged and requestsChanged', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.clear();
    expect(ctx.stage.cancelRequestAccess('v1')).toBe(OFF);
    expect(ctx.stage.get('v1')).toStrictEqual({ id: 'v1', name: 'Vera', preset: PRESETS.viewer, status: OFF });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: REQ, to: OFF, reason: 'cancel' } },
      { event: 'requestsChanged', payload: [{ userId: 'v2', name: 'Vik', requestedAt: 1_020 }] },
    ]);
  });

  it('refuses anything but REQUESTED with INVALID_STATE, unknown with NOT_FOUND', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v2']);
    expectRefused(ctx, () => ctx.stage.cancelRequestAccess('v1'), 'INVALID_STATE'); // OFF
    expectRefused(ctx, () => ctx.stage.cancelRequestAccess('v2'), 'INVALID_STATE'); // ACCEPTED by invite
    expectRefused(ctx, () => ctx.stage.cancelRequestAccess('h'), 'INVALID_STATE'); // ACCEPTED
    ctx.stage.join('h');
    expectRefused(ctx, () => ctx.stage.cancelRequestAccess('h'), 'INVALID_STATE'); // ON_STAGE
    expectRefused(ctx, () => ctx.stage.cancelRequestAccess('nobody'), 'NOT_FOUND');
  });
});

describe('getAccessRequests', () => {
  it('needs acceptStageRequests: FORBIDDEN for speaker/viewer, NOT_FOUND for unknown', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    expectRefused(ctx, () => ctx.stage.getAccessRequests('s'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.getAccessRequests('v1'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.getAccessRequests('nobody'), 'NOT_FOUND');
  });

  it('works for any preset with acceptStageRequests and returns a copy', () => {
    const ctx = setup();
    ctx.stage.add({ id: 'm', name: 'Mo', preset: MODERATOR });
    ctx.stage.requestAccess('v1');
    const list = ctx.stage.getAccessRequests('m');
    expect(list).toStrictEqual([{ userId: 'v1', name: 'Vera', requestedAt: 1_010 }]);
    list.pop();
    (list as AccessRequest[]).push({ userId: 'x', name: 'x', requestedAt: 0 });
    expect(ids(ctx.stage.getAccessRequests('h'))).toEqual(['v1']);
  });
});

// ---------- grantAccess / denyAccess ----------

describe('grantAccess', () => {
  it('approves a request: REQUESTED → ACCEPTED, requestApproved invited=false, requestsChanged', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.clear();
    expect(ctx.stage.grantAccess('h', ['v1'])).toStrictEqual({ v1: { ok: true, status: ACC } });
    expect(ctx.status('v1')).toBe(ACC);
    expect(ctx.stage.get('v1')?.requestedAt).toBeUndefined();
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: REQ, to: ACC, reason: 'grant', by: 'h' } },
      { event: 'requestApproved', payload: { userId: 'v1', by: 'h', invited: false } },
      { event: 'requestsChanged', payload: [] },
    ]);
  });

  it('invites: OFF_STAGE → ACCEPTED, invited=true, no requestsChanged', () => {
    const ctx = setup();
    expect(ctx.stage.grantAccess('h', ['v1'])).toStrictEqual({ v1: { ok: true, status: ACC } });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: OFF, to: ACC, reason: 'grant', by: 'h' } },
      { event: 'requestApproved', payload: { userId: 'v1', by: 'h', invited: true } },
    ]);
  });

  it('invites a NOT_ALLOWED guest in every mode that leaves them OFF_STAGE', () => {
    for (const mode of ['REQUEST', 'INVITE'] as const) {
      const ctx = setup(mode);
      expect(ctx.stage.grantAccess('h', ['g'])).toStrictEqual({ g: { ok: true, status: ACC } });
      expect(ctx.stage.join('g')).toBe(ON);
    }
  });

  it('batch: applies each fitting user once, reports every user, one requestsChanged', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.stage.grantAccess('h', ['v3']);
    ctx.stage.join('v3');
    ctx.clear();
    const result = ctx.stage.grantAccess('h', ['v1', 'g', 'nobody', 's', 'v1', 'v3', 'v2']);
    expect(Object.keys(result)).toEqual(['v1', 'g', 'nobody', 's', 'v3', 'v2']);
    expect(result['v1']).toStrictEqual({ ok: true, status: ACC });
    expect(result['g']).toStrictEqual({ ok: true, status: ACC });
    expect(result['v2']).toStrictEqual({ ok: true, status: ACC });
    expect(result['nobody']).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(result['s']).toMatchObject({ ok: false, code: 'INVALID_STATE' });
    expect(result['v3']).toMatchObject({ ok: false, code: 'INVALID_STATE' });
    expect(ctx.status('v3')).toBe(ON);
    expect(names(ctx.log)).toEqual([
      'statusChanged',
      'requestApproved',
      'statusChanged',
      'requestApproved',
      'statusChanged',
      'requestApproved',
      'requestsChanged',
    ]);
    expect(ctx.log.filter((l) => l.event === 'requestApproved').map((l) => l.payload)).toStrictEqual([
      { userId: 'v1', by: 'h', invited: false },
      { userId: 'g', by: 'h', invited: true },
      { userId: 'v2', by: 'h', invited: false },
    ]);
    expect(ctx.log.at(-1)).toStrictEqual({ event: 'requestsChanged', payload: [] });
  });

  it('batch where nobody fits: per-user errors, nothing emitted', () => {
    const ctx = setup();
    const result = ctx.stage.grantAccess('h', ['s', 'h', 'ghost']);
    expect(result).toStrictEqual({
      s: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      h: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      ghost: { ok: false, code: 'NOT_FOUND', message: expect.any(String) },
    });
    expect(ctx.log).toEqual([]);
  });

  it('an empty list returns {} and emits nothing', () => {
    const ctx = setup();
    expect(ctx.stage.grantAccess('h', [])).toStrictEqual({});
    expect(ctx.log).toEqual([]);
  });

  it('refuses the whole call: FORBIDDEN without acceptStageRequests, NOT_FOUND for an unknown actor', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.add({ id: 'b', name: 'Bo', preset: BOUNCER });
    expectRefused(ctx, () => ctx.stage.grantAccess('s', ['v1']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.grantAccess('v2', ['v2']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.grantAccess('b', ['v1']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.grantAccess('nobody', ['v1']), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.grantAccess('s', []), 'FORBIDDEN');
    expect(ctx.status('v1')).toBe(REQ);
  });

  it('a moderator (CAN_REQUEST + acceptStageRequests) can invite themselves; by is omitted on their own statusChanged', () => {
    const ctx = setup();
    ctx.stage.add({ id: 'm', name: 'Mo', preset: MODERATOR });
    ctx.clear();
    expect(ctx.stage.grantAccess('m', ['m'])).toStrictEqual({ m: { ok: true, status: ACC } });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'm', from: OFF, to: ACC, reason: 'grant' } },
      { event: 'requestApproved', payload: { userId: 'm', by: 'm', invited: true } },
    ]);
  });

  it('keeps odd ids such as __proto__ as plain result keys', () => {
    const ctx = setup();
    const result = ctx.stage.grantAccess('h', ['__proto__']);
    expect(Object.keys(result)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
  });
});

describe('denyAccess', () => {
  it('REQUESTED → OFF_STAGE with requestRejected {by, denied}; the user may request again', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.clear();
    expect(ctx.stage.denyAccess('h', ['v1'])).toStrictEqual({ v1: { ok: true, status: OFF } });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: REQ, to: OFF, reason: 'deny', by: 'h' } },
      { event: 'requestRejected', payload: { userId: 'v1', by: 'h', reason: 'denied' } },
      { event: 'requestsChanged', payload: [{ userId: 'v2', name: 'Vik', requestedAt: 1_020 }] },
    ]);
    expect(ctx.stage.requestAccess('v1')).toBe(REQ);
    expect(ctx.stage.getAccessRequests('h')).toStrictEqual([
      { userId: 'v2', name: 'Vik', requestedAt: 1_020 },
      { userId: 'v1', name: 'Vera', requestedAt: 1_030 },
    ]);
  });

  it('batch: one requestsChanged, per-user INVALID_STATE / NOT_FOUND', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.stage.grantAccess('h', ['v3']);
    ctx.clear();
    const result = ctx.stage.denyAccess('h', ['v2', 'v1', 'v3', 'g', 'h', 'ghost', 'v2']);
    expect(result).toStrictEqual({
      v2: { ok: true, status: OFF },
      v1: { ok: true, status: OFF },
      v3: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      g: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      h: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      ghost: { ok: false, code: 'NOT_FOUND', message: expect.any(String) },
    });
    expect(names(ctx.log)).toEqual([
      'statusChanged',
      'requestRejected',
      'statusChanged',
      'requestRejected',
      'requestsChanged',
    ]);
    expect(ctx.status('v3')).toBe(ACC);
    expect(ctx.stage.getAccessRequests('h')).toEqual([]);
  });

  it('refuses the whole call: FORBIDDEN / NOT_FOUND actor', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    expectRefused(ctx, () => ctx.stage.denyAccess('s', ['v1']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.denyAccess('v1', ['v1']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.denyAccess('ghost', ['v1']), 'NOT_FOUND');
  });

  it('an empty list returns {}', () => {
    const ctx = setup();
    expect(ctx.stage.denyAccess('h', [])).toStrictEqual({});
    expect(ctx.log).toEqual([]);
  });
});

// ---------- join / leave / kick ----------

describe('join', () => {
  it('ACCEPTED → ON_STAGE (host directly, viewer after a grant)', () => {
    const ctx = setup();
    expect(ctx.stage.join('h')).toBe(ON);
    ctx.stage.grantAccess('h', ['v1']);
    ctx.clear();
    expect(ctx.stage.join('v1')).toBe(ON);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: ACC, to: ON, reason: 'join' } },
    ]);
  });

  it('refuses OFF_STAGE, REQUESTED and ON_STAGE with INVALID_STATE, unknown with NOT_FOUND', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v2');
    ctx.stage.join('s');
    expectRefused(ctx, () => ctx.stage.join('v1'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.join('g'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.join('v2'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.join('s'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.join('nobody'), 'NOT_FOUND');
  });

  it('in OPEN mode joining while ON_STAGE is still INVALID_STATE', () => {
    const ctx = setup('OPEN');
    ctx.stage.join('v1');
    expectRefused(ctx, () => ctx.stage.join('v1'), 'INVALID_STATE');
  });

  it('in OPEN mode a viewer and a guest join directly', () => {
    const ctx = setup('OPEN');
    expect(ctx.stage.join('v1')).toBe(ON);
    expect(ctx.stage.join('g')).toBe(ON);
    expect(ctx.log.map((l) => l.payload)).toStrictEqual([
      { userId: 'v1', from: ACC, to: ON, reason: 'join' },
      { userId: 'g', from: ACC, to: ON, reason: 'join' },
    ]);
  });
});

describe('leave', () => {
  it('viewer ON_STAGE → OFF_STAGE, and the grant is used up', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    ctx.clear();
    expect(ctx.stage.leave('v1')).toBe(OFF);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: ON, to: OFF, reason: 'leave' } },
    ]);
    expectRefused(ctx, () => ctx.stage.join('v1'), 'INVALID_STATE');
  });

  it('host/speaker ON_STAGE → ACCEPTED', () => {
    const ctx = setup();
    ctx.stage.join('s');
    ctx.clear();
    expect(ctx.stage.leave('s')).toBe(ACC);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 's', from: ON, to: ACC, reason: 'leave' } },
    ]);
  });

  it('declining an invite: ACCEPTED → OFF_STAGE', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['g']);
    ctx.clear();
    expect(ctx.stage.leave('g')).toBe(OFF);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'g', from: ACC, to: OFF, reason: 'leave' } },
    ]);
  });

  it('refuses: ACCEPTED host (nothing to decline), OFF_STAGE, REQUESTED → INVALID_STATE; unknown → NOT_FOUND', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v2');
    expectRefused(ctx, () => ctx.stage.leave('h'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.leave('v1'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.leave('v2'), 'INVALID_STATE');
    expectRefused(ctx, () => ctx.stage.leave('nobody'), 'NOT_FOUND');
  });

  it('in OPEN mode a viewer leaving goes back to ACCEPTED, and cannot leave from ACCEPTED', () => {
    const ctx = setup('OPEN');
    ctx.stage.join('v1');
    expect(ctx.stage.leave('v1')).toBe(ACC);
    expectRefused(ctx, () => ctx.stage.leave('v1'), 'INVALID_STATE');
  });
});

describe('kick', () => {
  it('viewer ON_STAGE → OFF_STAGE with statusChanged {by} then removed', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    ctx.clear();
    expect(ctx.stage.kick('h', ['v1'])).toStrictEqual({ v1: { ok: true, status: OFF } });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: ON, to: OFF, reason: 'kick', by: 'h' } },
      { event: 'removed', payload: { userId: 'v1', by: 'h' } },
    ]);
    expectRefused(ctx, () => ctx.stage.join('v1'), 'INVALID_STATE');
  });

  it('speaker ON_STAGE → ACCEPTED; an invited viewer ACCEPTED → OFF_STAGE (invite revoked)', () => {
    const ctx = setup();
    ctx.stage.join('s');
    ctx.stage.grantAccess('h', ['v2']);
    ctx.clear();
    expect(ctx.stage.kick('h', ['s', 'v2'])).toStrictEqual({
      s: { ok: true, status: ACC },
      v2: { ok: true, status: OFF },
    });
    expect(names(ctx.log)).toEqual(['statusChanged', 'removed', 'statusChanged', 'removed']);
    expect(ctx.log[2]?.payload).toStrictEqual({ userId: 'v2', from: ACC, to: OFF, reason: 'kick', by: 'h' });
  });

  it('per user: ACCEPTED speaker, OFF_STAGE, REQUESTED → INVALID_STATE; unknown → NOT_FOUND; duplicates once', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v2');
    ctx.stage.join('h');
    ctx.clear();
    const result = ctx.stage.kick('h', ['s', 'v1', 'v2', 'ghost', 's']);
    expect(result).toStrictEqual({
      s: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      v1: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      v2: { ok: false, code: 'INVALID_STATE', message: expect.any(String) },
      ghost: { ok: false, code: 'NOT_FOUND', message: expect.any(String) },
    });
    expect(ctx.log).toEqual([]);
    expect(ctx.status('v2')).toBe(REQ);
  });

  it('kicking yourself acts as leave and still emits removed (no by on statusChanged)', () => {
    const ctx = setup();
    ctx.stage.join('h');
    ctx.clear();
    expect(ctx.stage.kick('h', ['h'])).toStrictEqual({ h: { ok: true, status: ACC } });
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'h', from: ON, to: ACC, reason: 'kick' } },
      { event: 'removed', payload: { userId: 'h', by: 'h' } },
    ]);
  });

  it('a preset with only kickParticipant may kick', () => {
    const ctx = setup();
    ctx.stage.add({ id: 'b', name: 'Bo', preset: BOUNCER });
    ctx.stage.join('s');
    expect(ctx.stage.kick('b', ['s'])).toStrictEqual({ s: { ok: true, status: ACC } });
  });

  it('refuses the whole call: FORBIDDEN without kickParticipant, NOT_FOUND for an unknown actor', () => {
    const ctx = setup();
    ctx.stage.join('s');
    expectRefused(ctx, () => ctx.stage.kick('v1', ['s']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.kick('s', ['s']), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.kick('ghost', ['s']), 'NOT_FOUND');
    expect(ctx.status('s')).toBe(ON);
  });

  it('an empty list returns {}', () => {
    const ctx = setup();
    expect(ctx.stage.kick('h', [])).toStrictEqual({});
    expect(ctx.log).toEqual([]);
  });
});

// ---------- setMode ----------

describe('setMode', () => {
  it('refuses: FORBIDDEN without acceptStageRequests, NOT_FOUND unknown actor, INVALID_REQUEST unknown mode', () => {
    const ctx = setup();
    ctx.stage.add({ id: 'b', name: 'Bo', preset: BOUNCER });
    expectRefused(ctx, () => ctx.stage.setMode('s', 'OPEN'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.setMode('b', 'INVITE'), 'FORBIDDEN');
    expectRefused(ctx, () => ctx.stage.setMode('ghost', 'OPEN'), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.setMode('h', 'CLOSED' as StageMode), 'INVALID_REQUEST');
    expect(ctx.stage.mode).toBe('REQUEST');
  });

  it('the same mode is a no-op', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.clear();
    expect(ctx.stage.setMode('h', 'REQUEST')).toBe('REQUEST');
    expect(ctx.log).toEqual([]);
    expect(ctx.status('v1')).toBe(REQ);
  });

  it('to INVITE rejects every pending request, touches nobody else', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.stage.grantAccess('h', ['v3']);
    ctx.stage.join('v3');
    ctx.stage.grantAccess('h', ['g']);
    ctx.stage.join('s');
    ctx.clear();
    expect(ctx.stage.setMode('h', 'INVITE')).toBe('INVITE');
    expect(ctx.stage.mode).toBe('INVITE');
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: REQ, to: OFF, reason: 'mode', by: 'h' } },
      { event: 'requestRejected', payload: { userId: 'v1', by: 'h', reason: 'mode' } },
      { event: 'statusChanged', payload: { userId: 'v2', from: REQ, to: OFF, reason: 'mode', by: 'h' } },
      { event: 'requestRejected', payload: { userId: 'v2', by: 'h', reason: 'mode' } },
      { event: 'requestsChanged', payload: [] },
      { event: 'modeChanged', payload: { mode: 'INVITE', by: 'h' } },
    ]);
    expect(ctx.stage.members().map((m) => [m.id, m.status])).toEqual([
      ['h', ACC],
      ['s', ON],
      ['v1', OFF],
      ['v2', OFF],
      ['v3', ON],
      ['g', ACC],
    ]);
    expectRefused(ctx, () => ctx.stage.requestAccess('v1'), 'STAGE_DISABLED');
  });

  it('to OPEN makes everyone off stage ACCEPTED and approves pending requests', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.grantAccess('h', ['v3']);
    ctx.stage.join('v3');
    ctx.clear();
    expect(ctx.stage.setMode('h', 'OPEN')).toBe('OPEN');
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: REQ, to: ACC, reason: 'mode', by: 'h' } },
      { event: 'requestApproved', payload: { userId: 'v1', by: 'h', invited: false } },
      { event: 'statusChanged', payload: { userId: 'v2', from: OFF, to: ACC, reason: 'mode', by: 'h' } },
      { event: 'statusChanged', payload: { userId: 'g', from: OFF, to: ACC, reason: 'mode', by: 'h' } },
      { event: 'requestsChanged', payload: [] },
      { event: 'modeChanged', payload: { mode: 'OPEN', by: 'h' } },
    ]);
    expect(ctx.status('v3')).toBe(ON);
  });

  it('to OPEN without pending requests emits no requestsChanged', () => {
    const ctx = setup();
    ctx.stage.setMode('h', 'OPEN');
    expect(names(ctx.log)).toEqual(['statusChanged', 'statusChanged', 'statusChanged', 'statusChanged', 'modeChanged']);
  });

  it('back from OPEN: only members ACCEPTED because of OPEN go OFF_STAGE; grants, approvals and ON_STAGE stay', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1'); // approved by the switch to OPEN
    ctx.stage.grantAccess('h', ['g']); // invited before OPEN
    ctx.stage.setMode('h', 'OPEN');
    ctx.stage.join('v3'); // on stage thanks to OPEN
    ctx.clear();
    expect(ctx.stage.setMode('h', 'REQUEST')).toBe('REQUEST');
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v2', from: ACC, to: OFF, reason: 'mode', by: 'h' } },
      { event: 'modeChanged', payload: { mode: 'REQUEST', by: 'h' } },
    ]);
    expect(ctx.stage.members().map((m) => [m.id, m.status])).toEqual([
      ['h', ACC],
      ['s', ACC],
      ['v1', ACC],
      ['v2', OFF],
      ['v3', ON],
      ['g', ACC],
    ]);
    // v3 was only on stage because of OPEN: leaving now ends at OFF_STAGE.
    expect(ctx.stage.leave('v3')).toBe(OFF);
  });

  it('a grant is consumed by leaving: OPEN → join → leave → back to INVITE ends OFF_STAGE', () => {
    const ctx = setup();
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.setMode('h', 'OPEN');
    ctx.stage.join('v1');
    expect(ctx.stage.leave('v1')).toBe(ACC);
    ctx.clear();
    ctx.stage.setMode('h', 'INVITE');
    expect(ctx.status('v1')).toBe(OFF);
    expect(ctx.log[0]?.payload).toStrictEqual({ userId: 'v1', from: ACC, to: OFF, reason: 'mode', by: 'h' });
  });

  it('INVITE → REQUEST changes nobody', () => {
    const ctx = setup('INVITE');
    ctx.stage.grantAccess('h', ['v1']);
    ctx.clear();
    ctx.stage.setMode('h', 'REQUEST');
    expect(ctx.log).toStrictEqual([{ event: 'modeChanged', payload: { mode: 'REQUEST', by: 'h' } }]);
    expect(ctx.status('v1')).toBe(ACC);
    expect(ctx.status('v2')).toBe(OFF);
  });

  it('a moderator who is affected by their own switch gets no by on their statusChanged', () => {
    const ctx = setup();
    ctx.stage.add({ id: 'm', name: 'Mo', preset: MODERATOR });
    ctx.stage.setMode('m', 'OPEN');
    ctx.clear();
    ctx.stage.setMode('m', 'REQUEST');
    expect(ctx.log.find((l) => l.event === 'statusChanged' && l.payload.userId === 'm')?.payload).toStrictEqual({
      userId: 'm',
      from: ACC,
      to: OFF,
      reason: 'mode',
    });
  });
});

// ---------- backend actor ----------

describe('updateMember (a new token for the same user)', () => {
  const NO_VIDEO: Preset = { ...PRESETS.speaker, name: 'speaker-audio', media: { ...MEDIA, video: 'NOT_ALLOWED' } };

  it('a demoted host loses its rights at once: grantAccess, setMode, list and kick are FORBIDDEN', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.updateMember('h', { name: 'Hana', preset: PRESETS.viewer });
    ctx.clear();
    const before = ctx.stage.members();
    expect(catchError(() => ctx.stage.grantAccess('h', ['v1']))).toMatchObject({ code: 'FORBIDDEN' });
    expect(catchError(() => ctx.stage.setMode('h', 'OPEN'))).toMatchObject({ code: 'FORBIDDEN' });
    expect(catchError(() => ctx.stage.kick('h', ['s']))).toMatchObject({ code: 'FORBIDDEN' });
    expect(catchError(() => ctx.stage.getAccessRequests('h'))).toMatchObject({ code: 'FORBIDDEN' });
    expect(ctx.stage.members()).toStrictEqual(before);
    expect(ctx.stage.mode).toBe('REQUEST');
    expect(ctx.log).toStrictEqual([]);
  });

  it('ON_STAGE without a grant and no direct access any more → OFF_STAGE as a kick by @backend', () => {
    const ctx = setup();
    ctx.stage.join('s');
    ctx.clear();
    const m = ctx.stage.updateMember('s', { name: 'Sam', preset: PRESETS.viewer });
    expect(m.status).toBe(OFF);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 's', from: ON, to: OFF, reason: 'preset', by: BACKEND_ACTOR } },
      { event: 'removed', payload: { userId: 's', by: BACKEND_ACTOR } },
    ]);
  });

  it('keeps ON_STAGE when the new preset still allows it: direct access, or a host granted it', () => {
    const ctx = setup();
    ctx.stage.join('s');
    ctx.stage.grantAccess('h', ['v1']);
    ctx.stage.join('v1');
    ctx.clear();
    expect(ctx.stage.updateMember('s', { name: 'Sam', preset: NO_VIDEO }).status).toBe(ON);
    expect(ctx.stage.updateMember('v1', { name: 'Vera', preset: GUEST }).status).toBe(ON);
    expect(ctx.log).toStrictEqual([]);
  });

  it('a promoted viewer OFF_STAGE becomes ACCEPTED; a pending request of a promoted viewer is moot', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v2');
    ctx.clear();
    ctx.stage.updateMember('v1', { name: 'Vera', preset: PRESETS.speaker });
    ctx.stage.updateMember('v2', { name: 'Vik', preset: PRESETS.host });
    expect(ctx.status('v1')).toBe(ACC);
    expect(ctx.status('v2')).toBe(ACC);
    expect(ctx.log).toStrictEqual([
      { event: 'statusChanged', payload: { userId: 'v1', from: OFF, to: ACC, reason: 'preset', by: BACKEND_ACTOR } },
      { event: 'statusChanged', payload: { userId: 'v2', from: REQ, to: ACC, reason: 'preset', by: BACKEND_ACTOR } },
      { event: 'requestsChanged', payload: [] },
    ]);
    // the new host has the rights now
    expect(ctx.stage.setMode('v2', 'INVITE')).toBe('INVITE');
  });

  it('a pending request of a user now NOT_ALLOWED is rejected by @backend; a renamed requester updates the list', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.requestAccess('v2');
    ctx.clear();
    ctx.stage.updateMember('v1', { name: 'Vera', preset: GUEST });
    expect(ctx.status('v1')).toBe(OFF);
    expect(names(ctx.log)).toEqual(['statusChanged', 'requestRejected', 'requestsChanged']);
    expect(ctx.log[1]?.payload).toStrictEqual({ userId: 'v1', by: BACKEND_ACTOR, reason: 'denied' });
    ctx.clear();
    ctx.stage.updateMember('v2', { name: 'Viktor', preset: PRESETS.viewer });
    expect(ctx.log).toStrictEqual([
      { event: 'requestsChanged', payload: [{ userId: 'v2', name: 'Viktor', requestedAt: expect.any(Number) }] },
    ]);
    expect(ctx.status('v2')).toBe(REQ);
  });

  it('the same preset again changes nothing (a refreshed token), even for one ON_STAGE only thanks to OPEN', () => {
    const ctx = setup('OPEN');
    ctx.stage.join('v1');
    ctx.stage.setMode('h', 'REQUEST');
    ctx.clear();
    ctx.stage.updateMember('v1', { name: 'Vera', preset: { ...PRESETS.viewer } });
    expect(ctx.status('v1')).toBe(ON);
    expect(ctx.log).toStrictEqual([]);
    expectRefused(ctx, () => ctx.stage.updateMember('ghost', { name: 'G', preset: PRESETS.host }), 'NOT_FOUND');
  });
});

describe('BACKEND_ACTOR', () => {
  it('holds every host permission without being a member', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.join('s');
    expect(ctx.stage.has(BACKEND_ACTOR)).toBe(false);
    expect(ids(ctx.stage.getAccessRequests(BACKEND_ACTOR))).toEqual(['v1']);
    ctx.clear();
    expect(ctx.stage.grantAccess(BACKEND_ACTOR, ['v1'])).toStrictEqual({ v1: { ok: true, status: ACC } });
    expect(ctx.log[0]?.payload).toStrictEqual({ userId: 'v1', from: REQ, to: ACC, reason: 'grant', by: BACKEND_ACTOR });
    expect(ctx.stage.kick(BACKEND_ACTOR, ['s'])).toStrictEqual({ s: { ok: true, status: ACC } });
    expect(ctx.stage.setMode(BACKEND_ACTOR, 'INVITE')).toBe('INVITE');
    expect(ctx.log.at(-1)).toStrictEqual({ event: 'modeChanged', payload: { mode: 'INVITE', by: BACKEND_ACTOR } });
  });

  it('cannot act on itself or be added as a member', () => {
    const ctx = setup();
    expectRefused(ctx, () => ctx.stage.requestAccess(BACKEND_ACTOR), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.join(BACKEND_ACTOR), 'NOT_FOUND');
    expectRefused(ctx, () => ctx.stage.add({ id: BACKEND_ACTOR, name: 'x', preset: PRESETS.host }), 'INVALID_REQUEST');
    expect(ctx.stage.grantAccess(BACKEND_ACTOR, [BACKEND_ACTOR])[BACKEND_ACTOR]).toMatchObject({ code: 'NOT_FOUND' });
  });
});

// ---------- listeners ----------

describe('listeners', () => {
  it('on() returns an unsubscribe function', () => {
    const { stage } = setup();
    const seen: string[] = [];
    const off = stage.on('statusChanged', (e) => seen.push(e.userId));
    stage.requestAccess('v1');
    off();
    stage.requestAccess('v2');
    expect(seen).toEqual(['v1']);
  });

  it('a throwing listener is reported and does not stop the others or the machine', () => {
    const errors: Array<[unknown, string]> = [];
    const stage = new Stage({ onListenerError: (error, event) => errors.push([error, event]) });
    stage.add({ id: 'v', name: 'V', preset: PRESETS.viewer });
    const boom = new Error('boom');
    stage.on('statusChanged', () => {
      throw boom;
    });
    const after: string[] = [];
    stage.on('statusChanged', (e) => after.push(e.to));
    stage.on('newRequest', (r) => after.push(`new:${r.userId}`));
    expect(stage.requestAccess('v')).toBe(REQ);
    expect(after).toEqual([REQ, 'new:v']);
    expect(errors).toEqual([[boom, 'statusChanged']]);
    expect(stage.cancelRequestAccess('v')).toBe(OFF);
    expect(errors).toHaveLength(2);
  });

  it('reports listener errors to console.error by default', () => {
    const spy = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const stage = new Stage();
      stage.on('statusChanged', () => {
        throw new Error('boom');
      });
      stage.add({ id: 'h', name: 'H', preset: PRESETS.host });
      expect(spy).toHaveBeenCalledTimes(1);
      expect(stage.get('h')?.status).toBe(ACC);
    } finally {
      spy.mockRestore();
    }
  });

  it('a listener acting on the stage does not let later listeners see its events before the current one', () => {
    const { stage } = setup();
    stage.on('statusChanged', (e) => {
      if (e.to === REQ) stage.grantAccess('h', [e.userId]);
    });
    const seen: string[] = [];
    stage.on('statusChanged', (e) => seen.push(`${e.from}>${e.to}`));
    stage.requestAccess('v1');
    expect(seen).toEqual([`${OFF}>${REQ}`, `${REQ}>${ACC}`]);
  });

  it('a listener acting on the stage sees ordered events; each action returns its own result', () => {
    const ctx = setup();
    ctx.stage.on('newRequest', (r) => {
      ctx.stage.grantAccess('h', [r.userId]);
    });
    expect(ctx.stage.requestAccess('v1')).toBe(REQ);
    expect(ctx.status('v1')).toBe(ACC);
    expect(names(ctx.log)).toEqual([
      'statusChanged',
      'newRequest',
      'requestsChanged',
      'statusChanged',
      'requestApproved',
      'requestsChanged',
    ]);
    expect(ctx.log[2]?.payload).toStrictEqual([{ userId: 'v1', name: 'Vera', requestedAt: 1_010 }]);
    expect(ctx.log[5]?.payload).toStrictEqual([]);
  });
});

// ---------- seed flows ----------

describe('seed flows', () => {
  it('request → grant → join → leave', () => {
    const ctx = setup();
    expect(ctx.stage.requestAccess('v1')).toBe(REQ);
    expect(ctx.stage.grantAccess('h', ['v1'])['v1']).toStrictEqual({ ok: true, status: ACC });
    expect(ctx.stage.join('v1')).toBe(ON);
    expect(ctx.stage.leave('v1')).toBe(OFF);
    expect(
      ctx.log.filter((l) => l.event === 'statusChanged').map((l) => [l.payload.from, l.payload.to, l.payload.reason]),
    ).toEqual([
      [OFF, REQ, 'request'],
      [REQ, ACC, 'grant'],
      [ACC, ON, 'join'],
      [ON, OFF, 'leave'],
    ]);
  });

  it('invite → decline', () => {
    const ctx = setup();
    expect(ctx.stage.grantAccess('h', ['v2'])['v2']).toStrictEqual({ ok: true, status: ACC });
    expect(ctx.log.find((l) => l.event === 'requestApproved')?.payload).toStrictEqual({
      userId: 'v2',
      by: 'h',
      invited: true,
    });
    expect(ctx.stage.leave('v2')).toBe(OFF);
    expect(ctx.status('v2')).toBe(OFF);
  });

  it('host requestAccess → ACCEPTED → join', () => {
    const ctx = setup();
    expect(ctx.stage.requestAccess('h')).toBe(ACC);
    expect(ctx.stage.join('h')).toBe(ON);
  });

  it('deny → request again → grant', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    expect(ctx.stage.denyAccess('h', ['v1'])['v1']).toStrictEqual({ ok: true, status: OFF });
    expect(ctx.stage.requestAccess('v1')).toBe(REQ);
    expect(ctx.stage.grantAccess('h', ['v1'])['v1']).toStrictEqual({ ok: true, status: ACC });
  });

  it('the three modes: REQUEST → INVITE rejects, INVITE → OPEN opens, OPEN → REQUEST closes', () => {
    const ctx = setup();
    ctx.stage.requestAccess('v1');
    ctx.stage.setMode('h', 'INVITE');
    expect(ctx.status('v1')).toBe(OFF);
    expect(ctx.log.filter((l) => l.event === 'requestRejected').map((l) => l.payload)).toStrictEqual([
      { userId: 'v1', by: 'h', reason: 'mode' },
    ]);
    ctx.stage.setMode('h', 'OPEN');
    expect(ctx.stage.members().every((m) => m.status === ACC)).toBe(true);
    ctx.stage.join('v1');
    ctx.stage.setMode('h', 'REQUEST');
    expect(ctx.stage.members().map((m) => [m.id, m.status])).toEqual([
      ['h', ACC],
      ['s', ACC],
      ['v1', ON],
      ['v2', OFF],
      ['v3', OFF],
      ['g', OFF],
    ]);
  });
});

// ---------- property-based ----------

type Action =
  | { kind: 'request' | 'cancel' | 'join' | 'leave' | 'remove'; user: string }
  | { kind: 'grant' | 'deny' | 'kick'; actor: string; users: string[] }
  | { kind: 'mode'; actor: string; mode: StageMode }
  | { kind: 'list'; actor: string }
  | { kind: 'add'; user: string; preset: string }
  /** A new token for the user: another name and/or preset. */
  | { kind: 'update'; user: string; preset: string; name: string };

const ROSTER: Array<[string, string]> = [
  ['obs', 'host'], // observer: never removed, used to read the pending list
  ['h2', 'host'],
  ['sp', 'speaker'],
  ['v1', 'viewer'],
  ['v2', 'viewer'],
  ['v3', 'viewer'],
  ['g1', 'guest'],
  ['mod', 'moderator'],
  ['bo', 'bouncer'],
];
const ID = fc.constantFrom(...ROSTER.map(([id]) => id), 'ghost');
const REMOVABLE = fc.constantFrom(...ROSTER.map(([id]) => id).filter((id) => id !== 'obs'), 'ghost');
/** Mostly members who may manage the stage, so that batch actions and mode switches often go through. */
const ACTOR = fc.oneof(
  { arbitrary: fc.constantFrom('obs', 'h2', 'mod', 'bo'), weight: 3 },
  { arbitrary: ID, weight: 1 },
);
/** Mostly members who need a host (viewers, guest, moderator). */
const SELF = fc.oneof(
  { arbitrary: fc.constantFrom('v1', 'v2', 'v3', 'g1', 'mod'), weight: 3 },
  { arbitrary: ID, weight: 1 },
);

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('update'),
      user: REMOVABLE,
      preset: fc.constantFrom(...Object.keys(PRESET_BY_NAME)),
      name: fc.constantFrom('Ann', 'Bea'),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constantFrom('request', 'cancel', 'join', 'leave'), user: SELF }), weight: 8 },
  { arbitrary: fc.record({ kind: fc.constant('remove'), user: REMOVABLE }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('grant', 'deny', 'kick'),
      actor: ACTOR,
      users: fc.array(ID, { maxLength: 5 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('mode'), actor: ACTOR, mode: fc.constantFrom(...STAGE_MODES) }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('list'), actor: ID }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('add'),
      user: REMOVABLE,
      preset: fc.constantFrom(...Object.keys(PRESET_BY_NAME)),
    }),
    weight: 1,
  },
) as fc.Arbitrary<Action>;

function run(stage: Stage, a: Action): void {
  switch (a.kind) {
    case 'request':
      stage.requestAccess(a.user);
      return;
    case 'cancel':
      stage.cancelRequestAccess(a.user);
      return;
    case 'join':
      stage.join(a.user);
      return;
    case 'leave':
      stage.leave(a.user);
      return;
    case 'remove':
      stage.remove(a.user);
      return;
    case 'grant':
      stage.grantAccess(a.actor, a.users);
      return;
    case 'deny':
      stage.denyAccess(a.actor, a.users);
      return;
    case 'kick':
      stage.kick(a.actor, a.users);
      return;
    case 'mode':
      stage.setMode(a.actor, a.mode);
      return;
    case 'list':
      stage.getAccessRequests(a.actor);
      return;
    case 'add':
      stage.add({ id: a.user, name: a.user.toUpperCase(), preset: PRESET_BY_NAME[a.preset] as Preset });
      return;
    case 'update':
      stage.updateMember(a.user, { name: a.name, preset: PRESET_BY_NAME[a.preset] as Preset });
      return;
  }
}

/** Allowed `from>to` transitions per reason (STAGE.md action table). */
const LEGAL: Record<StageChangeReason, string[]> = {
  'join-room': [`${OFF}>${ACC}`],
  request: [`${OFF}>${REQ}`, `${OFF}>${ACC}`],
  cancel: [`${REQ}>${OFF}`],
  grant: [`${REQ}>${ACC}`, `${OFF}>${ACC}`],
  deny: [`${REQ}>${OFF}`],
  join: [`${ACC}>${ON}`],
  leave: [`${ON}>${OFF}`, `${ON}>${ACC}`, `${ACC}>${OFF}`],
  kick: [`${ON}>${OFF}`, `${ON}>${ACC}`, `${ACC}>${OFF}`],
  mode: [`${REQ}>${OFF}`, `${REQ}>${ACC}`, `${OFF}>${ACC}`, `${ACC}>${OFF}`],
  'leave-room': [`${ON}>${OFF}`],
  preset: [`${ON}>${OFF}`, `${ACC}>${OFF}`, `${OFF}>${ACC}`, `${REQ}>${ACC}`, `${REQ}>${OFF}`],
  'slot-ended': [`${ON}>${OFF}`, `${ON}>${ACC}`],
  'accept-timeout': [`${ACC}>${OFF}`],
  'removed-from-room': [`${ON}>${OFF}`],
};

describe('property: invariants hold after any sequence of actions', () => {
  it('pending list, direct-join rule, event replay, refusals change nothing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STAGE_MODES),
        fc.array(actionArb, { minLength: 20, maxLength: 60 }),
        (initialMode, actions) => {
          let t = 0;
          const stage = new Stage({ mode: initialMode, now: () => (t += 1 + (t % 3)) });
          const log: Logged[] = [];
          for (const e of EVENT_NAMES) record(stage, e, log);
          const replay = new Map<string, StageStatus>();
          const problems: string[] = [];
          /** Who a host let in (from the events): a grant lasts until they go OFF_STAGE or leave the stage. */
          const granted = new Set<string>();
          let lastList: AccessRequest[] | undefined;
          stage.on('statusChanged', (e) => {
            const prev = replay.get(e.userId) ?? OFF; // a member is added OFF_STAGE
            if (prev !== e.from) problems.push(`${e.userId}: event from ${e.from}, replay had ${prev}`);
            if (e.from === e.to) problems.push(`${e.userId}: no-op event`);
            replay.set(e.userId, e.to);
            // (5) every transition is one the contract allows for its reason
            const legal =
              LEGAL[e.reason].includes(`${e.from}>${e.to}`) || (e.reason === 'join' && stage.mode === 'OPEN');
            if (!legal) problems.push(`${e.userId}: illegal ${e.from}>${e.to} (${e.reason})`);
            // (6) a mode switch only sends back OFF_STAGE the ACCEPTED members no host let in
            if (e.reason === 'mode' && e.from === ACC && granted.has(e.userId))
              problems.push(`${e.userId}: grant revoked`);
            if (e.to === OFF || e.from === ON) granted.delete(e.userId);
          });
          stage.on('requestApproved', (e) => granted.add(e.userId));
          stage.on('requestsChanged', (list) => {
            lastList = list;
          });
          for (const [id, preset] of ROSTER) stage.add({ id, name: id, preset: PRESET_BY_NAME[preset] as Preset });

          for (const action of actions) {
            const before = { members: stage.members(), mode: stage.mode, pending: stage.getAccessRequests('obs') };
            const eventsBefore = log.length;
            const error = catchError(() => run(stage, action));
            const emitted = log.slice(eventsBefore);
            if (action.kind === 'remove') {
              // a member who leaves the room while ON_STAGE was first taken off stage (leave-room)
              expect(replay.get(action.user) ?? OFF).not.toBe(ON);
              replay.delete(action.user);
              granted.delete(action.user);
            }

            if (error !== undefined) {
              // (4) a refusal is a StagegateError, changes nothing and emits nothing
              expect(error).toBeInstanceOf(StagegateError);
              expect(stage.members()).toStrictEqual(before.members);
              expect(stage.mode).toBe(before.mode);
              expect(stage.getAccessRequests('obs')).toStrictEqual(before.pending);
              expect(emitted).toEqual([]);
            }
            // at most one requestsChanged per action, and at most one modeChanged, always last
            expect(emitted.filter((l) => l.event === 'requestsChanged').length).toBeLessThanOrEqual(1);
            const modeIdx = emitted.findIndex((l) => l.event === 'modeChanged');
            if (modeIdx >= 0) expect(modeIdx).toBe(emitted.length - 1);

            const members = stage.members();
            const pending = stage.getAccessRequests('obs');
            // (1) the pending list is exactly the REQUESTED members, sorted by requestedAt
            expect(new Set(ids(pending))).toEqual(new Set(members.filter((m) => m.status === REQ).map((m) => m.id)));
            expect(pending.length).toBe(members.filter((m) => m.status === REQ).length);
            for (let i = 1; i < pending.length; i++) {
              expect((pending[i - 1] as AccessRequest).requestedAt).toBeLessThanOrEqual(
                (pending[i] as AccessRequest).requestedAt,
              );
            }
            for (const m of members) expect(m.requestedAt !== undefined).toBe(m.status === REQ);
            // the last emitted list is the current one
            expect(lastList ?? []).toStrictEqual(pending);
            // (2) nobody who may join directly is OFF_STAGE or REQUESTED
            for (const m of members) {
              if (m.preset.stageAccess === 'ALLOWED' || stage.mode === 'OPEN') expect([ACC, ON]).toContain(m.status);
            }
            // (3) replaying statusChanged gives the current statuses
            expect(problems).toEqual([]);
            expect(new Set(replay.keys()).size).toBeLessThanOrEqual(members.length);
            for (const id of replay.keys()) expect(stage.has(id)).toBe(true);
            for (const m of members) expect(replay.get(m.id) ?? OFF).toBe(m.status);
            // (6) outside OPEN, someone who needs a host is ACCEPTED exactly when a host let them in
            for (const m of members) {
              if (stage.mode === 'OPEN' || m.preset.stageAccess === 'ALLOWED' || m.status === ON) continue;
              expect(m.status === ACC).toBe(granted.has(m.id));
            }
            // (7) INVITE mode has no pending requests
            if (stage.mode === 'INVITE') expect(pending).toEqual([]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------- property-based, Part 2: settings, holds, removal and bans, slots, the clock ----------

type Action2 =
  | Action
  | { kind: 'advance'; ms: number }
  | { kind: 'settings'; actor: string; settings: Record<string, unknown> }
  | { kind: 'mute' | 'allow'; actor: string; users: string[]; sources: MediaSource[] }
  | { kind: 'askUnmute'; user: string; source: MediaSource }
  | { kind: 'removeFromRoom'; actor: string; users: string[]; ban: boolean }
  | { kind: 'unban'; actor: string; user: string }
  | { kind: 'extend'; actor: string; user: string; seconds: number };

const ACTOR2 = fc.oneof({ arbitrary: ACTOR, weight: 4 }, { arbitrary: fc.constant(BACKEND_ACTOR), weight: 1 });
const SOURCE = fc.constantFrom(...MEDIA_SOURCES);
/** Mostly valid settings, sometimes out of range (refused). */
const SETTINGS = fc.record(
  {
    stageCap: fc.oneof(fc.constant(null), fc.integer({ min: -1, max: 4 })),
    autoFill: fc.boolean(),
    acceptTimeoutSeconds: fc.integer({ min: 0, max: 30 }),
    slotSeconds: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 90 })),
    requestCooldownSeconds: fc.integer({ min: -1, max: 40 }),
    audience: fc.constantFrom('hidden', 'visible', 'public'),
  },
  { requiredKeys: [] },
);

/** Initial settings: always valid, so that every rule is on in many runs. */
const VALID_SETTINGS = fc.record({
  stageCap: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 3 })),
  autoFill: fc.boolean(),
  acceptTimeoutSeconds: fc.integer({ min: 1, max: 30 }),
  slotSeconds: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 60 })),
  requestCooldownSeconds: fc.integer({ min: 0, max: 30 }),
});

const VIEWERS = ['v1', 'v2', 'v3'];
const action2Arb: fc.Arbitrary<Action2> = fc.oneof(
  { arbitrary: actionArb, weight: 12 },
  // the queue's own traffic, so that cool-downs, seats and positions are exercised often
  {
    arbitrary: fc.record({ kind: fc.constantFrom('request', 'join'), user: fc.constantFrom(...VIEWERS, 'sp') }),
    weight: 8,
  },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('grant', 'deny', 'kick'),
      actor: fc.constantFrom('obs', 'h2'),
      users: fc.subarray([...VIEWERS, 'g1', 'sp'], { minLength: 1 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant('advance'), ms: fc.integer({ min: 0, max: 40_000 }) }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('settings'), actor: ACTOR2, settings: SETTINGS }), weight: 3 },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom('mute', 'allow'),
      actor: ACTOR2,
      users: fc.array(ID, { maxLength: 4 }),
      sources: fc.subarray([...MEDIA_SOURCES]),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('askUnmute'), user: ID, source: SOURCE }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('removeFromRoom'),
      actor: ACTOR2,
      users: fc.array(fc.oneof(REMOVABLE, fc.constantFrom(...VIEWERS)), { maxLength: 2 }),
      ban: fc.boolean(),
    }),
    weight: 2,
  },
  // coming back after a removal (refused while banned)
  {
    arbitrary: fc.record({
      kind: fc.constant('add'),
      user: fc.constantFrom(...VIEWERS),
      preset: fc.constant('viewer'),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('unban'), actor: fc.oneof(ACTOR, fc.constant(BACKEND_ACTOR)), user: ID }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('extend'),
      actor: ACTOR2,
      user: ID,
      seconds: fc.integer({ min: 0, max: 60 }),
    }),
    weight: 1,
  },
) as fc.Arbitrary<Action2>;

/** Runs one action; a request goes through requestAccessWithPosition and its answer is handed to `answered`. */
function run2(
  stage: Stage,
  clock: FakeClock,
  a: Action2,
  answered: (userId: string, position: number | undefined) => void,
): void {
  switch (a.kind) {
    case 'advance':
      clock.advance(a.ms);
      return;
    case 'request': {
      const answer = stage.requestAccessWithPosition(a.user);
      answered(a.user, answer.position);
      return;
    }
    case 'settings':
      stage.setSettings(a.actor, a.settings as Partial<StageSettings>);
      return;
    case 'mute':
      stage.mute(a.actor, a.users, a.sources);
      return;
    case 'allow':
      stage.allowUnmute(a.actor, a.users, a.sources);
      return;
    case 'askUnmute':
      stage.requestUnmute(a.user, a.source);
      return;
    case 'removeFromRoom':
      stage.removeFromRoom(a.actor, a.users, { ban: a.ban });
      return;
    case 'unban':
      stage.unban(a.actor, a.user);
      return;
    case 'extend':
      stage.extendSlot(a.actor, a.user, a.seconds);
      return;
    default:
      run(stage, a);
  }
}

const ROSTER_IDS = [...ROSTER.map(([id]) => id), 'ghost'];

/** Everything observable, for "a refusal changes nothing". */
function dump2(stage: Stage) {
  return {
    members: stage.members(),
    mode: stage.mode,
    settings: stage.settings,
    pending: stage.getAccessRequests(BACKEND_ACTOR),
    positions: ROSTER_IDS.map((id) => stage.positionOf(id)),
    holds: ROSTER_IDS.map((id) => stage.holdsOf(id)),
    bans: stage.bannedUsers(),
    cooldowns: ROSTER_IDS.map((id) => stage.cooldownLeftMs(id)),
    nextDeadline: stage.nextDeadline,
  };
}

const isHostPreset = (m: { preset: Preset }): boolean => m.preset.acceptStageRequests;

describe('property: Part 2 invariants hold after any sequence of actions and clock advances', () => {
  it('cap, holds, bans, queue order and positions, slots, cool-downs, auto-fill, refusals change nothing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<StageMode>('REQUEST', 'REQUEST', 'OPEN', 'INVITE'),
        VALID_SETTINGS,
        fc.array(action2Arb, { minLength: 20, maxLength: 60 }),
        (initialMode, initialSettings, actions) => {
          const clock = new FakeClock();
          const stage = new Stage({
            mode: initialMode,
            settings: initialSettings,
            now: clock.now,
            schedule: clock.schedule,
          });
          const problems: string[] = [];
          // models built from the events only
          const replay = new Map<string, StageStatus>();
          const held = new Map<string, Set<MediaSource>>();
          const banned = new Set<string>();
          const queue: string[] = [];
          const told = new Map<string, number>();
          const granted = new Set<string>();
          // when each cool-down ends: fixed at its start (a later setting applies to later ones)
          const cooledUntil = new Map<string, number>();
          let queueLength = 0;
          const forget = (userId: string): void => {
            replay.delete(userId);
            held.delete(userId);
            granted.delete(userId);
            told.delete(userId);
            const i = queue.indexOf(userId);
            if (i >= 0) queue.splice(i, 1);
          };

          stage.on('statusChanged', (e) => {
            const prev = replay.get(e.userId) ?? OFF;
            if (prev !== e.from) problems.push(`${e.userId}: event from ${e.from}, replay had ${prev}`);
            replay.set(e.userId, e.to);
            const legal =
              LEGAL[e.reason].includes(`${e.from}>${e.to}`) || (e.reason === 'join' && stage.mode === 'OPEN');
            if (!legal) problems.push(`${e.userId}: illegal ${e.from}>${e.to} (${e.reason})`);
            // what the settings do by themselves is done by @auto, and only that
            const auto = e.reason === 'slot-ended' || e.reason === 'accept-timeout';
            if (auto && e.by !== AUTO_ACTOR) problems.push(`${e.userId}: ${e.reason} by ${String(e.by)}`);
            if (e.by === AUTO_ACTOR && !auto && e.reason !== 'grant') problems.push(`@auto did ${e.reason}`);
            if (e.to === REQ) {
              queue.push(e.userId);
              // (cool-down) a request after a deny, kick or slot end only once the cool-down has passed
              const until = cooledUntil.get(e.userId);
              if (e.reason === 'request' && until !== undefined && clock.t < until)
                problems.push(`${e.userId}: requested ${until - clock.t} ms before its cool-down ended`);
            }
            if (e.from === REQ) {
              queue.splice(queue.indexOf(e.userId), 1);
              told.delete(e.userId);
            }
            if (e.to === OFF || e.from === ON) granted.delete(e.userId);
            if (['deny', 'kick', 'slot-ended'].includes(e.reason) && stage.settings.requestCooldownSeconds > 0)
              cooledUntil.set(e.userId, clock.t + stage.settings.requestCooldownSeconds * 1000);
          });
          stage.on('requestApproved', (e) => granted.add(e.userId));
          stage.on('mutedByHost', (e) => {
            const set = held.get(e.userId) ?? new Set<MediaSource>();
            for (const source of e.sources) {
              if (set.has(source)) problems.push(`${e.userId}: ${source} held twice`);
              set.add(source);
            }
            held.set(e.userId, set);
          });
          stage.on('unmuteAllowed', (e) => {
            for (const source of e.sources) {
              if (!held.get(e.userId)?.delete(source)) problems.push(`${e.userId}: allowed ${source} not held`);
            }
          });
          stage.on('removedFromRoom', (e) => {
            forget(e.userId);
            if (e.banned) banned.add(e.userId);
          });
          stage.on('unbanned', (e) => banned.delete(e.userId));
          stage.on('settingsChanged', (e) => {
            if (e.settings.requestCooldownSeconds === 0) cooledUntil.clear();
          });
          stage.on('requestPositionsChanged', (e) => {
            queueLength = e.queueLength;
            for (const { userId, position } of e.changed) told.set(userId, position);
          });
          for (const [id, preset] of ROSTER) stage.add({ id, name: id, preset: PRESET_BY_NAME[preset] as Preset });

          let onBefore = 0;
          for (const action of actions) {
            const before = dump2(stage);
            const error = catchError(() =>
              run2(stage, clock, action, (userId, position) => {
                if (position !== undefined) told.set(userId, position);
              }),
            );
            if (action.kind === 'remove') forget(action.user);

            if (error !== undefined) {
              // a refusal is a StagegateError and changes nothing (events: checked by the models below)
              expect(error).toBeInstanceOf(StagegateError);
              expect(dump2(stage)).toStrictEqual(before);
              const e = error as StagegateError;
              if (e.code === 'COOLING_DOWN' && action.kind === 'request') {
                // refused exactly while the model's cool-down runs, with the time it has left
                expect(e.details?.retryAfterMs).toBe((cooledUntil.get(action.user) ?? clock.t) - clock.t);
                expect(e.details?.retryAfterMs).toBeGreaterThan(0);
              }
            }
            expect(problems).toEqual([]);

            const members = stage.members();
            const settings = stage.settings;
            const nonHosts = members.filter((m) => !isHostPreset(m));
            // (cap) the number of non-hosts on stage never grows beyond stageCap, except by a new
            // token demoting a host on stage to a non-host: like lowering the cap, it removes nobody
            const on = nonHosts.filter((m) => m.status === ON).length;
            if (on > onBefore && settings.stageCap !== null && action.kind !== 'update') {
              expect(on).toBeLessThanOrEqual(settings.stageCap);
            }
            onBefore = on;
            // (holds) exactly what mutedByHost added and unmuteAllowed or leaving the room took away
            for (const id of ROSTER_IDS) {
              for (const source of MEDIA_SOURCES) {
                expect(stage.isHeld(id, source)).toBe(held.get(id)?.has(source) ?? false);
              }
              const h = stage.holdsOf(id);
              for (const source of h.unmuteRequested) expect(h.held).toContain(source);
              if (h.unmuteRequested.length > 0) expect(stage.get(id)?.status).toBe(ON);
            }
            // (bans) the banned ids are exactly those removed with ban and not unbanned, and none is a member
            expect(new Set(stage.bannedUsers())).toEqual(banned);
            for (const id of banned) expect(stage.has(id)).toBe(false);
            // (queue) in request order (the clock never goes back), positions 1..n, as told
            const pending = stage.getAccessRequests(BACKEND_ACTOR);
            expect(ids(pending)).toEqual(queue);
            for (let i = 1; i < pending.length; i++) {
              expect((pending[i - 1] as AccessRequest).requestedAt).toBeLessThanOrEqual(
                (pending[i] as AccessRequest).requestedAt,
              );
            }
            pending.forEach((r, i) => {
              expect(stage.positionOf(r.userId)).toStrictEqual({ position: i + 1, queueLength: pending.length });
              expect(told.get(r.userId)).toBe(i + 1);
            });
            expect(queueLength).toBe(pending.length);
            // replay of statusChanged gives the current statuses
            for (const m of members) expect(replay.get(m.id) ?? OFF).toBe(m.status);
            // (slots) exactly the non-hosts on stage have a turn while slots are on, and it ends in the future
            for (const m of members) {
              const slotted = m.status === ON && !isHostPreset(m) && settings.slotSeconds !== null;
              expect(m.slotEndsAt !== undefined).toBe(slotted);
              if (m.slotEndsAt !== undefined) expect(m.slotEndsAt).toBeGreaterThan(clock.t);
            }
            // (clock) nothing overdue; one wake-up armed exactly when a deadline is pending
            const next = stage.nextDeadline;
            if (next !== undefined) expect(next).toBeGreaterThan(clock.t);
            expect(clock.armed).toBe(next === undefined ? 0 : 1);
            expect(clock.nextAt).toBe(next);
            // (auto-fill) no waiting request while a seat is free
            if (settings.autoFill) {
              const seats = nonHosts.filter((m) => m.status === ON || (m.status === ACC && granted.has(m.id))).length;
              const waiting = pending.some((r) => !isHostPreset(stage.get(r.userId) as StageMember));
              if (waiting) expect(settings.stageCap).not.toBeNull();
              if (waiting) expect(seats).toBeGreaterThanOrEqual(settings.stageCap as number);
            }
            // nobody who may join directly is OFF_STAGE or REQUESTED
            for (const m of members) {
              if (m.preset.stageAccess === 'ALLOWED' || stage.mode === 'OPEN') expect([ACC, ON]).toContain(m.status);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
