/**
 * The pure stage state machine of one room: statuses, pending requests, grants and the stage mode
 * (STAGE.md Part 1), and the Part 2 rules: media holds, removal and bans, room settings (seats,
 * auto-fill, slots, cool-downs) and queue positions. No mediasoup, no sockets, no I/O: the room
 * layer calls it and listens to its events.
 *
 * Guarantees:
 * - A refused action throws a `StagegateError`, changes nothing and emits nothing.
 * - Events are emitted synchronously after the state has changed, in the order the changes
 *   happened. Within one action: for each affected member `statusChanged` then that member's
 *   specific event (`newRequest`, `requestApproved`, `requestRejected`, `removed`, `slotChanged`...);
 *   then what `@auto` does as a consequence (auto-fill grants); then at most one `requestsChanged`
 *   and one `requestPositionsChanged` (only when the pending list changed); then `modeChanged` or
 *   `settingsChanged`.
 * - A listener that calls back into the Stage is safe: its action's events are queued and
 *   delivered after the events already queued, so every listener sees changes in order.
 * - A throwing listener is reported through `onListenerError` (default console.error) and the
 *   others still run.
 *
 * Time (slots, `@auto` acceptance time-outs, cool-downs) — the clock design:
 * - The Stage reads time only through the injected `now()` and owns no real timer.
 * - Cool-downs need no timer: `requestAccess` compares `now()` with when the cool-down started.
 * - Deadlines (a slot's warning and end, an `@auto` acceptance lapsing) are acted on by `tick()`,
 *   which handles every deadline that is due at `now()`, oldest first, each as its own action.
 *   `nextDeadline` tells when the next one is due.
 * - With a `schedule` option (see clock.ts: `realScheduler()` in the room, a fake in tests), the
 *   Stage keeps exactly one wake-up armed at `nextDeadline`, re-armed after every action, and the
 *   wake-up calls `tick()`. Without one, the owner must call `tick()` at `nextDeadline` itself.
 *   Either way the same inputs and the same `now()` values give the same events: deterministic.
 */
import type {
  AccessRequest,
  BatchResult,
  MediaSource,
  Preset,
  QueuePosition,
  RequestAccessAnswer,
  StageMode,
  StageSettings,
  StageStatus,
} from '../../shared/stage.js';
import { DEFAULT_STAGE_SETTINGS } from '../../shared/stage.js';
import type { ErrorCode } from '../../shared/errors.js';
import {
  byRequestOrder,
  isStageMode,
  mayJoinDirectly,
  samePreset,
  modeEffect,
  refuse,
  restingStatus,
  statusAfterLeave,
  toAccessRequest,
  describeStatus,
} from './stageRules.js';
import { EventQueue } from './eventQueue.js';
import { Holds, isMediaSource, parseSources, type HoldsState } from './holds.js';
import { AUTO_ACTOR, Cooldowns, Timetable, extendedSlot, isHost, newSlot } from './seats.js';
import type { Due, TimetableState } from './seats.js';
import { SETTING_KEYS, validateSettings, wholeNumber } from './settings.js';
import { Alarm } from './clock.js';
import type { Now, StageScheduler } from './clock.js';
import type { EventName, StageChangeReason, StageEvents, StageMember } from './stageTypes.js';

export { AUTO_ACTOR } from './seats.js';
export type { StageChangeReason, StageEvents, StageMember } from './stageTypes.js';

/** Internal record: the public member plus what the rules need. */
interface MemberRecord extends StageMember {
  /** A host let them in (grant/invite, or a pending request approved by a switch to OPEN). Consumed on leaving. */
  granted: boolean;
  /** Order of the request, to break `requestedAt` ties. */
  requestSeq: number;
  /** While REQUESTED: the queue position last told (in the answer or in requestPositionsChanged). */
  toldPosition?: number;
}

/** What one user of a batch action came to: `undefined` when applied, else the refusal (INVALID_STATE by default). */
type BatchStep = (m: MemberRecord) => string | { code: ErrorCode; message: string } | undefined;

/**
 * The actor id of the application's backend (HTTP API with the API secret): holds every host
 * permission without being a member. No member can have this id (it fails the id pattern, and
 * `add` refuses it), so it cannot be spoofed. `AUTO_ACTOR` (`@auto`) is reserved the same way and
 * is never accepted as an actor.
 */
export const BACKEND_ACTOR = '@backend';

const REQUESTED: StageStatus = 'REQUESTED_TO_JOIN_STAGE';
const ACCEPTED: StageStatus = 'ACCEPTED_TO_JOIN_STAGE';

export class Stage {
  #mode: StageMode;
  #settings: StageSettings;
  private readonly now: Now;
  private readonly alarm: Alarm;
  private readonly events: EventQueue<StageEvents>;
  private readonly byId = new Map<string, MemberRecord>();
  private readonly holds = new Holds();
  private readonly bans = new Set<string>();
  private readonly cooldowns = new Cooldowns();
  /** Slots and `@auto` acceptances: what has a deadline. */
  private readonly timetable = new Timetable();
  private ticking = false;
  private requestsDirty = false;
  private requestSeq = 0;
  private lastQueueLength = 0;

  constructor(
    opts: {
      mode?: StageMode;
      /** Initial settings (validated as `setSettings`); the rest are the defaults. */
      settings?: Partial<StageSettings>;
      now?: Now;
      /** Wakes the Stage at its next deadline; without it, call `tick()` yourself (see the top of this file). */
      schedule?: StageScheduler;
      onListenerError?: (error: unknown, event: EventName) => void;
    } = {},
  ) {
    const mode = opts.mode ?? 'REQUEST';
    if (!isStageMode(mode)) throw refuse('INVALID_REQUEST', `Unknown stage mode ${String(mode)}`);
    this.#mode = mode;
    this.#settings = { ...DEFAULT_STAGE_SETTINGS, ...validateSettings(opts.settings ?? {}) };
    this.now = opts.now ?? Date.now;
    this.alarm = new Alarm(opts.schedule);
    this.events = new EventQueue<StageEvents>(
      opts.onListenerError ?? ((error, event) => console.error(`Stage: a ${event} listener threw`, error)),
    );
  }

  /** The room's current stage mode. */
  get mode(): StageMode {
    return this.#mode;
  }

  /** A copy of the room's current settings. */
  get settings(): StageSettings {
    return { ...this.#settings };
  }

  /** Epoch ms of the next deadline `tick()` will act on, or `undefined` when none is pending. */
  get nextDeadline(): number | undefined {
    return this.nextDue()?.at;
  }

  /** Subscribe to an event; returns the function that unsubscribes. */
  on<E extends EventName>(event: E, listener: StageEvents[E]): () => void {
    return this.events.on(event, listener);
  }

  /** Whether `userId` is a member of the room. */
  has(userId: string): boolean {
    return this.byId.has(userId);
  }

  /** A snapshot of one member, or `undefined` for an unknown id. */
  get(userId: string): Readonly<StageMember> | undefined {
    const m = this.byId.get(userId);
    return m && this.snapshot(m);
  }

  /** Snapshots of every member, in the order they were added. */
  members(): Readonly<StageMember>[] {
    return [...this.byId.values()].map((m) => this.snapshot(m));
  }

  /**
   * Add a member on room join. Initial status: ACCEPTED_TO_JOIN_STAGE when they may join directly
   * (preset ALLOWED, or mode OPEN; emits statusChanged OFF_STAGE → ACCEPTED, reason 'join-room'),
   * else OFF_STAGE (emits nothing). Refused: a reserved id (`@backend`, `@auto`) → INVALID_REQUEST;
   * a banned id → BANNED; an existing id → INVALID_STATE.
   */
  add(member: { id: string; name: string; preset: Preset }): Readonly<StageMember> {
    if (member.id === BACKEND_ACTOR || member.id === AUTO_ACTOR)
      throw refuse('INVALID_REQUEST', `${member.id} is reserved`);
    if (this.bans.has(member.id)) throw refuse('BANNED', `${member.id} is banned from this room`);
    if (this.byId.has(member.id)) throw refuse('INVALID_STATE', `${member.id} is already in the room`);
    const record: MemberRecord = {
      id: member.id,
      name: member.name,
      preset: member.preset,
      status: 'OFF_STAGE',
      granted: false,
      requestSeq: 0,
    };
    this.byId.set(record.id, record);
    const initial = restingStatus(record.preset, this.#mode);
    if (initial !== 'OFF_STAGE') this.transition(record, initial, 'join-room');
    const added = this.snapshot(record);
    this.commit();
    return added;
  }

  /**
   * Remove a member (left the room / disconnected). If ON_STAGE, emits statusChanged to OFF_STAGE
   * (reason 'leave-room') first; a pending request is dropped (emits requestsChanged); their holds
   * end. Unknown id: no-op.
   */
  remove(userId: string): void {
    const m = this.byId.get(userId);
    if (!m) return;
    this.forget(m, 'leave-room');
    this.commit();
  }

  /**
   * Ask to join the stage. OFF_STAGE → REQUESTED (emits statusChanged, newRequest, requestsChanged).
   * A caller who may join directly goes to ACCEPTED; already ACCEPTED is a no-op success.
   * Refused: unknown → NOT_FOUND; REQUESTED or ON_STAGE → INVALID_STATE; INVITE mode → STAGE_DISABLED;
   * NOT_ALLOWED preset → FORBIDDEN; within the cool-down → COOLING_DOWN. Returns the new status
   * (ACCEPTED already when auto-fill granted the request at once).
   */
  requestAccess(userId: string): StageStatus {
    return this.requestAccessWithPosition(userId).status;
  }

  /** `requestAccess`, answering also the queue place (`position`, `queueLength`) when the request is pending. */
  requestAccessWithPosition(userId: string): RequestAccessAnswer {
    const m = this.self(userId);
    if (m.status === REQUESTED) throw refuse('INVALID_STATE', `${userId} has already requested to join the stage`);
    if (m.status === 'ON_STAGE') throw refuse('INVALID_STATE', `${userId} is already on stage`);
    if (m.status === ACCEPTED) return { status: ACCEPTED };
    if (mayJoinDirectly(m.preset, this.#mode)) {
      this.transition(m, ACCEPTED, 'request');
    } else {
      if (this.#mode === 'INVITE') throw refuse('STAGE_DISABLED', 'The stage is invite-only: requests are off');
      if (m.preset.stageAccess === 'NOT_ALLOWED')
        throw refuse('FORBIDDEN', `${userId} may not request to join the stage`);
      const retryAfterMs = this.cooldownLeftMs(userId);
      if (retryAfterMs > 0)
        throw refuse('COOLING_DOWN', `${userId} may request again in ${Math.ceil(retryAfterMs / 1000)} s`, {
          retryAfterMs,
        });
      this.transition(m, REQUESTED, 'request');
      this.enqueue('newRequest', toAccessRequest(m));
    }
    this.settle();
    const answer: RequestAccessAnswer = { status: m.status };
    if (m.status === REQUESTED) Object.assign(answer, this.placeOf(m));
    this.commit();
    return answer;
  }

  /** Withdraw a pending request: REQUESTED → OFF_STAGE (emits statusChanged, requestsChanged). Otherwise INVALID_STATE. */
  cancelRequestAccess(userId: string): StageStatus {
    const m = this.self(userId);
    if (m.status !== REQUESTED) throw refuse('INVALID_STATE', `${userId} has no pending request`);
    this.transition(m, 'OFF_STAGE', 'cancel');
    return this.commitWith(m.status);
  }

  /** The pending requests, oldest first. Needs `acceptStageRequests`. */
  getAccessRequests(actorId: string): AccessRequest[] {
    this.actor(actorId, 'acceptStageRequests');
    return this.queue().map(toAccessRequest);
  }

  /** The queue place of a pending request (1 = next), or `undefined` when `userId` has none. */
  positionOf(userId: string): QueuePosition | undefined {
    const m = this.byId.get(userId);
    return m?.status === REQUESTED ? this.placeOf(m) : undefined;
  }

  /**
   * Let users in (needs `acceptStageRequests`): REQUESTED → ACCEPTED (an approval) or OFF_STAGE → ACCEPTED
   * (an invite, in any mode and for any preset; also beyond `stageCap`: they wait ACCEPTED).
   * Emits statusChanged + requestApproved per user. Per user: unknown → NOT_FOUND, ACCEPTED/ON_STAGE → INVALID_STATE.
   */
  grantAccess(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'acceptStageRequests', userIds, (m) => {
      if (m.status !== REQUESTED && m.status !== 'OFF_STAGE') return `${m.id} is already ${describeStatus(m.status)}`;
      this.accept(m, actorId);
      return undefined;
    });
  }

  /**
   * Reject pending requests (needs `acceptStageRequests`): REQUESTED → OFF_STAGE, emits statusChanged +
   * requestRejected {reason:'denied'}. The user may request again (after the cool-down). Per user: others → INVALID_STATE.
   */
  denyAccess(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'acceptStageRequests', userIds, (m) => {
      if (m.status !== REQUESTED) return `${m.id} has no pending request`;
      this.transition(m, 'OFF_STAGE', 'deny', actorId);
      this.enqueue('requestRejected', { userId: m.id, by: actorId, reason: 'denied' });
      this.startCooldown(m.id);
      return undefined;
    });
  }

  /**
   * Go on stage: ACCEPTED → ON_STAGE (in OPEN mode also from OFF_STAGE/REQUESTED). Otherwise INVALID_STATE.
   * A non-host when `stageCap` non-hosts are on stage → STAGE_FULL. With `slotSeconds`, a non-host's turn starts.
   */
  join(userId: string): StageStatus {
    const m = this.self(userId);
    const fits = m.status === ACCEPTED || (this.#mode === 'OPEN' && m.status !== 'ON_STAGE');
    if (!fits) throw refuse('INVALID_STATE', `${userId} is ${describeStatus(m.status)}: cannot join the stage`);
    const cap = this.#settings.stageCap;
    if (cap !== null && !isHost(m.preset) && this.count((o) => o.status === 'ON_STAGE') >= cap)
      throw refuse('STAGE_FULL', `The stage is full (${cap} on stage)`);
    this.transition(m, 'ON_STAGE', 'join');
    return this.commitWith(m.status);
  }

  /**
   * Leave the stage, or decline an invite: ON_STAGE/ACCEPTED → OFF_STAGE, or → ACCEPTED for a member
   * who may join directly. Refused (INVALID_STATE) when nothing would change.
   */
  leave(userId: string): StageStatus {
    const m = this.self(userId);
    const to = statusAfterLeave(m.status, m.preset, this.#mode);
    if (!to) throw refuse('INVALID_STATE', `${userId} is ${describeStatus(m.status)}: nothing to leave`);
    this.transition(m, to, 'leave');
    return this.commitWith(m.status);
  }

  /**
   * Take users off stage (needs `kickParticipant`): as `leave()` for each, plus `removed {userId, by}`,
   * and the request cool-down starts. Per user: a target that would not change (e.g. OFF_STAGE, or
   * ACCEPTED and may join directly) → INVALID_STATE. Kicking oneself is allowed.
   */
  kick(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'kickParticipant', userIds, (m) => {
      const to = statusAfterLeave(m.status, m.preset, this.#mode);
      if (!to) return `${m.id} is ${describeStatus(m.status)}: nothing to remove`;
      this.transition(m, to, 'kick', actorId);
      this.enqueue('removed', { userId: m.id, by: actorId });
      this.startCooldown(m.id);
      return undefined;
    });
  }

  /**
   * Change the stage mode (needs `acceptStageRequests`). Same mode: no-op. To INVITE: pending requests
   * are rejected. To OPEN: everyone off stage becomes ACCEPTED (pending requests approved). Away from
   * OPEN: members ACCEPTED only because of OPEN go back to OFF_STAGE. ON_STAGE members are never touched.
   * Emits the member changes, then requestsChanged (if any), then modeChanged.
   */
  setMode(actorId: string, mode: StageMode): StageMode {
    this.actor(actorId, 'acceptStageRequests');
    if (!isStageMode(mode)) throw refuse('INVALID_REQUEST', `Unknown stage mode ${String(mode)}`);
    if (mode === this.#mode) return mode;
    this.#mode = mode;
    for (const m of this.byId.values()) {
      const effect = modeEffect(m.status, m.preset, m.granted, mode);
      if (effect.kind === 'open') {
        this.transition(m, ACCEPTED, 'mode', actorId);
      } else if (effect.kind === 'approve') {
        this.transition(m, ACCEPTED, 'mode', actorId);
        m.granted = true;
        this.enqueue('requestApproved', { userId: m.id, by: actorId, invited: false });
      } else if (effect.kind === 'reject') {
        this.transition(m, 'OFF_STAGE', 'mode', actorId);
        this.enqueue('requestRejected', { userId: m.id, by: actorId, reason: 'mode' });
      } else if (effect.kind === 'revoke') {
        this.transition(m, 'OFF_STAGE', 'mode', actorId);
      }
    }
    this.settle();
    this.enqueue('modeChanged', { mode, by: actorId });
    this.commit();
    return mode;
  }

  // ---- media moderation ----

  /** Whether a host holds `source` of `userId` (the media layer refuses to resume it). */
  isHeld(userId: string, source: MediaSource): boolean {
    return this.holds.isHeld(userId, source);
  }

  /** The held sources of `userId` and those of them they asked to unmute (MEDIA_SOURCES order). */
  holdsOf(userId: string): { held: MediaSource[]; unmuteRequested: MediaSource[] } {
    return { held: this.holds.heldOf(userId), unmuteRequested: this.holds.askedOf(userId) };
  }

  /**
   * Hold `sources` of each user (needs `kickParticipant`; any status, so a member may also join
   * already held). Emits mutedByHost with the newly held sources. Bad `sources` → INVALID_REQUEST for
   * the whole call. Per user: every source already held → INVALID_STATE.
   */
  mute(actorId: string, userIds: string[], sources: MediaSource[]): BatchResult {
    this.actor(actorId, 'kickParticipant');
    const list = parseSources(sources);
    return this.batch(actorId, 'kickParticipant', userIds, (m) => {
      const added = this.holds.hold(m.id, list);
      if (added.length === 0) return `${m.id}: ${list.join(', ')} already held`;
      this.enqueue('mutedByHost', { userId: m.id, by: actorId, sources: added });
      return undefined;
    });
  }

  /**
   * The owner asks to have a held source allowed again: emits unmuteRequested. Pending until allowed
   * or until they leave the stage. Refused: unknown → NOT_FOUND; bad source → INVALID_REQUEST;
   * not ON_STAGE, source not held, or already asked → INVALID_STATE.
   */
  requestUnmute(userId: string, source: MediaSource): void {
    const m = this.self(userId);
    if (!isMediaSource(source)) throw refuse('INVALID_REQUEST', `unknown media source ${String(source)}`);
    if (m.status !== 'ON_STAGE') throw refuse('INVALID_STATE', `${userId} is ${describeStatus(m.status)}`);
    if (!this.holds.isHeld(userId, source)) throw refuse('INVALID_STATE', `${source} of ${userId} is not held`);
    if (this.holds.isAsked(userId, source))
      throw refuse('INVALID_STATE', `${userId} already asked to unmute ${source}`);
    this.holds.ask(userId, source);
    this.enqueue('unmuteRequested', { userId, source });
    this.commit();
  }

  /**
   * Lift holds (needs `kickParticipant`): emits unmuteAllowed with the sources that were held; the owner
   * decides to resume. Bad `sources` → INVALID_REQUEST for the whole call. Per user: none held → INVALID_STATE.
   */
  allowUnmute(actorId: string, userIds: string[], sources: MediaSource[]): BatchResult {
    this.actor(actorId, 'kickParticipant');
    const list = parseSources(sources);
    return this.batch(actorId, 'kickParticipant', userIds, (m) => {
      const lifted = this.holds.lift(m.id, list);
      if (lifted.length === 0) return `${m.id}: ${list.join(', ')} not held`;
      this.enqueue('unmuteAllowed', { userId: m.id, by: actorId, sources: lifted });
      return undefined;
    });
  }

  // ---- removal and bans ----

  /** Whether `userId` is banned from this room (the room refuses their connections; `add` refuses them). */
  isBanned(userId: string): boolean {
    return this.bans.has(userId);
  }

  /** The banned user ids, in the order they were banned. */
  bannedUsers(): string[] {
    return [...this.bans];
  }

  /**
   * Remove members from the room at once (needs `kickParticipant`, or the backend): ON_STAGE → OFF_STAGE
   * (reason 'removed-from-room'), a pending request dropped, the member and their holds forgotten,
   * then removedFromRoom (the room closes their media and disconnects them). `ban`: the id is banned
   * too. Per user: unknown → NOT_FOUND; a holder of `acceptStageRequests`, unless the actor is the
   * backend → FORBIDDEN. A bad `opts` → INVALID_REQUEST for the whole call.
   */
  removeFromRoom(actorId: string, userIds: string[], opts: { ban?: boolean } = {}): BatchResult {
    this.actor(actorId, 'kickParticipant');
    if (typeof opts !== 'object' || opts === null || (opts.ban !== undefined && typeof opts.ban !== 'boolean'))
      throw refuse('INVALID_REQUEST', 'ban must be true or false');
    const ban = opts.ban === true;
    return this.batch(actorId, 'kickParticipant', userIds, (m) => {
      if (actorId !== BACKEND_ACTOR && m.preset.acceptStageRequests)
        return { code: 'FORBIDDEN', message: `only the backend may remove ${m.id}, who manages the stage` };
      this.forget(m, 'removed-from-room', actorId);
      if (ban) this.bans.add(m.id);
      this.enqueue('removedFromRoom', { userId: m.id, by: actorId, banned: ban });
      m.status = 'OFF_STAGE'; // the record is gone; the batch result reports them off stage
      return undefined;
    });
  }

  /**
   * Ban `userId` (the backend only: a member → FORBIDDEN, unknown actor → NOT_FOUND). A member is
   * removed from the room with the ban (as `removeFromRoom`); an absent id is banned ahead, so
   * their first connection is refused. Already banned → nothing changes, no event. Returns
   * whether the id was in the room.
   */
  ban(actorId: string, userId: string): boolean {
    if (actorId !== BACKEND_ACTOR) {
      this.self(actorId);
      throw refuse('FORBIDDEN', 'only the backend may ban an id ahead');
    }
    if (typeof userId !== 'string' || userId.length === 0 || userId.startsWith('@'))
      throw refuse('INVALID_REQUEST', 'userId must be a user id');
    if (this.byId.has(userId)) {
      this.removeFromRoom(actorId, [userId], { ban: true });
      return true;
    }
    if (this.bans.has(userId)) return false;
    this.bans.add(userId);
    this.enqueue('banned', { userId, by: actorId });
    this.commit();
    return false;
  }

  /** Lift a ban (the backend only: a member → FORBIDDEN, unknown → NOT_FOUND). Not banned → INVALID_STATE. */
  unban(actorId: string, userId: string): void {
    if (actorId !== BACKEND_ACTOR) {
      this.self(actorId);
      throw refuse('FORBIDDEN', 'only the backend may lift a ban');
    }
    if (!this.bans.has(userId)) throw refuse('INVALID_STATE', `${String(userId)} is not banned`);
    this.bans.delete(userId);
    this.enqueue('unbanned', { userId, by: actorId });
    this.commit();
  }

  // ---- settings, slots, cool-downs ----

  /**
   * Change room settings (needs `acceptStageRequests`, or the backend). Any bad field → INVALID_REQUEST
   * and nothing changes. Unchanged values are ignored; nothing changed → no event. Effects: slots
   * switched on start a turn (from now) for every non-host on stage, switched off end them
   * (`slotChanged` null); a new `slotSeconds` applies to turns that start later; a new
   * `acceptTimeoutSeconds` applies to waiting `@auto` acceptances too (one already past it lapses at
   * once, after settingsChanged); a raised cap or auto-fill switched on grants at once. A new
   * `requestCooldownSeconds` applies to cool-downs that start later, 0 frees everyone. Emits
   * those, then settingsChanged. Returns the settings.
   */
  setSettings(actorId: string, partial: Partial<StageSettings>): StageSettings {
    this.actor(actorId, 'acceptStageRequests');
    const next = { ...this.#settings, ...validateSettings(partial) };
    const changed = SETTING_KEYS.filter((k) => next[k] !== this.#settings[k]);
    if (changed.length === 0) return this.settings;
    this.#settings = next;
    if (next.requestCooldownSeconds === 0) this.cooldowns.clear();
    if (next.slotSeconds === null) {
      for (const userId of this.timetable.slotUsers()) {
        this.timetable.endSlot(userId);
        this.enqueue('slotChanged', { userId, endsAt: null });
      }
    } else {
      for (const m of this.byId.values()) if (m.status === 'ON_STAGE' && !this.timetable.slot(m.id)) this.startSlot(m);
    }
    this.settle();
    this.enqueue('settingsChanged', { settings: this.settings, changed, by: actorId });
    this.commit();
    return this.settings;
  }

  /** Epoch ms when the turn of `userId` ends, or `undefined` (no slot). */
  slotEndsAt(userId: string): number | undefined {
    return this.timetable.slot(userId)?.endsAt;
  }

  /**
   * Lengthen a turn by `seconds` (needs `acceptStageRequests`, or the backend): emits slotChanged with
   * `by`; a new warning comes before the new end. Refused: bad seconds → INVALID_REQUEST; unknown →
   * NOT_FOUND; no running slot → INVALID_STATE. Returns the new end.
   */
  extendSlot(actorId: string, userId: string, seconds: number): number {
    this.actor(actorId, 'acceptStageRequests');
    wholeNumber('seconds', seconds);
    const m = this.self(userId);
    const slot = this.timetable.slot(m.id);
    if (!slot) throw refuse('INVALID_STATE', `${userId} has no stage slot running`);
    const next = extendedSlot(slot, seconds, this.now());
    this.timetable.setSlot(m.id, next);
    this.enqueue('slotChanged', { userId, endsAt: next.endsAt, by: actorId });
    this.commit();
    return next.endsAt;
  }

  /** Milliseconds before `userId` may `requestAccess` again; 0 when not cooling down. */
  cooldownLeftMs(userId: string): number {
    return this.cooldowns.leftMs(userId, this.now);
  }

  /**
   * Act on every deadline due at `now()`, oldest first, each as its own action: a slot warning
   * (stageSlotEnding), a slot end (ON_STAGE → as after a kick, reason 'slot-ended', by `@auto`; the
   * cool-down starts), an `@auto` acceptance lapsing (ACCEPTED → OFF_STAGE, reason 'accept-timeout').
   * Each may let auto-fill grant the next request. Calling it early or twice is harmless.
   */
  tick(): void {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (let due = this.nextDue(); due && due.at <= this.now(); due = this.nextDue()) {
        this.fire(due);
        this.commit();
      }
    } finally {
      this.ticking = false;
    }
    this.rearm();
  }

  /**
   * A member's name and preset changed (a reconnect with a newly minted token). Applies the new
   * preset's consequences at once, each done by BACKEND_ACTOR (the token's issuer):
   * - ON_STAGE or ACCEPTED: kept while the new preset lets them be there: they may join directly
   *   (ALLOWED, or the room is OPEN) or a host let them in (grant/invite). Otherwise → OFF_STAGE
   *   as a kick by BACKEND_ACTOR (statusChanged reason 'preset', then `removed`).
   * - REQUESTED: a preset that may join directly → ACCEPTED (the request is moot); a NOT_ALLOWED
   *   preset → OFF_STAGE (`requestRejected` {reason 'denied'} by BACKEND_ACTOR); else kept.
   * - OFF_STAGE: a preset that may join directly → ACCEPTED.
   * The same preset again (a token refresh, a plain reconnect) changes no status. A name change of
   * a pending requester changes the pending list (requestsChanged). Unknown id → NOT_FOUND.
   * Returns the member afterwards.
   */
  updateMember(userId: string, update: { name: string; preset: Preset }): Readonly<StageMember> {
    const m = this.self(userId);
    if (m.status === REQUESTED && m.name !== update.name) this.requestsDirty = true;
    const presetChanged = !samePreset(m.preset, update.preset);
    m.name = update.name;
    m.preset = update.preset;
    if (!presetChanged) return this.commitWith(this.snapshot(m));
    const direct = mayJoinDirectly(m.preset, this.#mode);
    if (m.status === 'ON_STAGE' || m.status === ACCEPTED) {
      if (!direct && !m.granted) {
        this.transition(m, 'OFF_STAGE', 'preset', BACKEND_ACTOR);
        this.enqueue('removed', { userId: m.id, by: BACKEND_ACTOR });
      }
    } else if (direct) {
      this.transition(m, ACCEPTED, 'preset', BACKEND_ACTOR);
    } else if (m.status === REQUESTED && m.preset.stageAccess === 'NOT_ALLOWED') {
      this.transition(m, 'OFF_STAGE', 'preset', BACKEND_ACTOR);
      this.enqueue('requestRejected', { userId: m.id, by: BACKEND_ACTOR, reason: 'denied' });
    }
    // still on stage: a turn is for non-hosts only (a promoted speaker's turn ends, a demoted host's starts)
    if (m.status === 'ON_STAGE') {
      if (isHost(m.preset)) {
        if (this.timetable.endSlot(m.id)) this.enqueue('slotChanged', { userId: m.id, endsAt: null });
      } else if (this.timetable.slot(m.id) === undefined) this.startSlot(m);
    }
    const updated = this.snapshot(m);
    this.commit();
    return updated;
  }

  // ---- helpers ----

  /** The member acting on themselves, or NOT_FOUND. */
  private self(userId: string): MemberRecord {
    const m = this.byId.get(userId);
    if (!m) throw refuse('NOT_FOUND', `Unknown participant ${String(userId)}`);
    return m;
  }

  /** Check that `actorId` (a member, or BACKEND_ACTOR) holds `permission`: NOT_FOUND or FORBIDDEN. */
  private actor(actorId: string, permission: 'acceptStageRequests' | 'kickParticipant'): void {
    if (actorId === BACKEND_ACTOR) return;
    const m = this.self(actorId);
    if (!m.preset[permission]) throw refuse('FORBIDDEN', `${actorId} lacks the ${permission} permission`);
  }

  /** Run a batch action: actor checked first, then each distinct user once, each with a result entry. */
  private batch(
    actorId: string,
    permission: 'acceptStageRequests' | 'kickParticipant',
    userIds: string[],
    step: BatchStep,
  ): BatchResult {
    this.actor(actorId, permission);
    if (!Array.isArray(userIds)) throw refuse('INVALID_REQUEST', 'userIds must be an array');
    const results = new Map<string, BatchResult[string]>();
    for (const userId of userIds) {
      if (results.has(userId)) continue;
      const m = this.byId.get(userId);
      const refusal = m ? step(m) : { code: 'NOT_FOUND' as const, message: `Unknown participant ${String(userId)}` };
      if (refusal === undefined) results.set(userId, { ok: true, status: (m as MemberRecord).status });
      else if (typeof refusal === 'object') results.set(userId, { ok: false, ...refusal });
      else results.set(userId, { ok: false, code: 'INVALID_STATE', message: refusal });
    }
    this.commit();
    return Object.fromEntries(results);
  }

  /**
   * Change one member's status and queue statusChanged. Keeps in step what hangs on a status: the
   * request time, the grant, the `@auto` acceptance, the slot (started on joining, ended on leaving)
   * and pending unmute requests (ended on leaving the stage).
   */
  private transition(m: MemberRecord, to: StageStatus, reason: StageChangeReason, actorId?: string): void {
    const from = m.status;
    if (from === to) return;
    m.status = to;
    if (to === REQUESTED) {
      m.requestedAt = this.now();
      m.requestSeq = ++this.requestSeq;
    } else {
      delete m.requestedAt;
      delete m.toldPosition;
    }
    if (to === 'OFF_STAGE' || from === 'ON_STAGE') m.granted = false;
    if (from === REQUESTED || to === REQUESTED) this.requestsDirty = true;
    if (from === ACCEPTED) this.timetable.dropAutoAccept(m.id);
    if (from === 'ON_STAGE') {
      this.timetable.endSlot(m.id);
      this.holds.dropRequests(m.id);
    }
    const by = actorId !== undefined && actorId !== m.id ? { by: actorId } : {};
    this.enqueue('statusChanged', { userId: m.id, from, to, reason, ...by });
    if (to === 'ON_STAGE') this.startSlot(m);
  }

  /** REQUESTED/OFF_STAGE → ACCEPTED by `actorId` (a host, the backend or `@auto`). */
  private accept(m: MemberRecord, actorId: string): void {
    const invited = m.status === 'OFF_STAGE';
    this.transition(m, ACCEPTED, 'grant', actorId);
    m.granted = true;
    if (actorId === AUTO_ACTOR) this.timetable.autoAccept(m.id, this.now());
    this.enqueue('requestApproved', { userId: m.id, by: actorId, invited });
  }

  /** Forget a member who leaves the room: off stage first if on it, request dropped, holds and timers gone. */
  private forget(m: MemberRecord, reason: 'leave-room' | 'removed-from-room', actorId?: string): void {
    if (m.status === 'ON_STAGE') this.transition(m, 'OFF_STAGE', reason, actorId);
    if (m.status === REQUESTED) this.requestsDirty = true;
    this.byId.delete(m.id);
    this.holds.forget(m.id);
    this.timetable.forget(m.id);
  }

  /** Start the turn of a non-host who is on stage, if slots are on. */
  private startSlot(m: MemberRecord): void {
    const seconds = this.#settings.slotSeconds;
    if (seconds === null || isHost(m.preset)) return;
    const slot = newSlot(this.now(), seconds);
    this.timetable.setSlot(m.id, slot);
    this.enqueue('slotChanged', { userId: m.id, endsAt: slot.endsAt });
  }

  private startCooldown(userId: string): void {
    this.cooldowns.start(userId, this.now, this.#settings.requestCooldownSeconds);
  }

  /** Non-hosts for whom `pred` holds. */
  private count(pred: (m: MemberRecord) => boolean): number {
    let n = 0;
    for (const m of this.byId.values()) if (!isHost(m.preset) && pred(m)) n++;
    return n;
  }

  /**
   * Auto-fill: while non-hosts ON_STAGE + ACCEPTED by a grant are fewer than `stageCap` (no cap: no
   * limit), grant the oldest pending request as `@auto`. Pending hosts take no seat.
   */
  private fill(): void {
    const { autoFill, stageCap } = this.#settings;
    if (!autoFill) return;
    const queue = this.queue();
    if (queue.length === 0) return;
    let free =
      stageCap === null
        ? Infinity
        : stageCap - this.count((m) => m.status === 'ON_STAGE' || (m.status === ACCEPTED && m.granted));
    for (const m of queue) {
      const seat = !isHost(m.preset);
      if (seat && free <= 0) continue;
      this.accept(m, AUTO_ACTOR);
      if (seat) free--;
    }
  }

  /** The earliest pending deadline. */
  private nextDue(): Due | undefined {
    return this.timetable.next(this.#settings.acceptTimeoutSeconds * 1000);
  }

  /** Act on one deadline. Always consumes it, so `tick()` terminates. */
  private fire(due: Due): void {
    const m = this.byId.get(due.userId);
    if (due.kind === 'slot-warning') {
      const slot = this.timetable.slot(due.userId);
      if (!slot) return;
      slot.warned = true;
      this.enqueue('stageSlotEnding', { userId: due.userId, endsAt: slot.endsAt });
    } else if (due.kind === 'slot-end') {
      this.timetable.endSlot(due.userId);
      if (m?.status !== 'ON_STAGE') return;
      this.transition(m, restingStatus(m.preset, this.#mode), 'slot-ended', AUTO_ACTOR);
      this.startCooldown(m.id);
    } else {
      this.timetable.dropAutoAccept(due.userId);
      if (m?.status === ACCEPTED && !mayJoinDirectly(m.preset, this.#mode))
        this.transition(m, 'OFF_STAGE', 'accept-timeout', AUTO_ACTOR);
    }
  }

  /** Keep one wake-up armed at the next deadline (when a scheduler was given; not while ticking). */
  private rearm(): void {
    if (!this.ticking) this.alarm.set(this.nextDeadline, () => this.tick());
  }

  /** The pending requests, oldest first. */
  private queue(): MemberRecord[] {
    return [...this.byId.values()].filter((m) => m.status === REQUESTED).sort(byRequestOrder);
  }

  private placeOf(m: MemberRecord): QueuePosition {
    const queue = this.queue();
    return { position: queue.indexOf(m) + 1, queueLength: queue.length };
  }

  /** Auto-fill, then (if the pending list changed) requestsChanged and requestPositionsChanged. */
  private settle(): void {
    this.fill();
    if (!this.requestsDirty) return;
    this.requestsDirty = false;
    const queue = this.queue();
    this.enqueue('requestsChanged', queue.map(toAccessRequest));
    const changed: Array<{ userId: string; position: number }> = [];
    queue.forEach((m, i) => {
      if (m.toldPosition !== undefined && m.toldPosition !== i + 1) changed.push({ userId: m.id, position: i + 1 });
      m.toldPosition = i + 1;
    });
    if (changed.length > 0 || queue.length !== this.lastQueueLength)
      this.enqueue('requestPositionsChanged', { queueLength: queue.length, changed });
    this.lastQueueLength = queue.length;
  }

  /**
   * End of an action: settle, deliver everything queued, then act on any deadline the action made
   * due at once (a shortened acceptance time-out) and re-arm the wake-up: after every action,
   * nothing is overdue.
   */
  private commit(): void {
    this.settle();
    this.events.flush();
    if (this.ticking) return;
    const due = this.nextDue();
    if (due && due.at <= this.now()) this.tick();
    else this.rearm();
  }

  /** `commit()`, returning the status the action produced (a listener may change it again meanwhile). */
  private commitWith<T>(status: T): T {
    this.commit();
    return status;
  }

  private enqueue<E extends EventName>(event: E, payload: Parameters<StageEvents[E]>[0]): void {
    this.events.enqueue(event, payload);
  }

  /**
   * Everything the rules decide from, as plain JSON (cluster mode keeps it in Redis): Part 1's
   * members with their queue order, and Part 2's holds, bans, running cool-downs and deadlines
   * (slot ends and warnings, `@auto` acceptances) as absolute epoch ms, so a stage continued
   * elsewhere ends each turn when it would have ended here.
   */
  toState(): StageState {
    return {
      mode: this.#mode,
      settings: { ...this.#settings },
      requestSeq: this.requestSeq,
      members: [...this.byId.values()].map((m) => ({ ...m })),
      holds: this.holds.toJSON(),
      bans: [...this.bans],
      cooldowns: this.cooldowns.toJSON(this.now),
      ...this.timetable.toJSON(),
      lastQueueLength: this.lastQueueLength,
    };
  }

  /**
   * A stage continuing from `toState()` (another node took the room over); emits nothing. A
   * deadline that passed meanwhile is acted on at the first wake-up (with a scheduler: at once,
   * after the caller registered its listeners), not here.
   */
  static fromState(
    state: StageState,
    opts: Omit<NonNullable<ConstructorParameters<typeof Stage>[0]>, 'mode' | 'settings'> = {},
  ): Stage {
    const stage = new Stage({ ...opts, mode: state.mode, settings: state.settings });
    stage.requestSeq = state.requestSeq;
    for (const m of state.members) stage.byId.set(m.id, { ...(m as unknown as MemberRecord) });
    stage.holds.load(state.holds ?? []);
    for (const userId of state.bans ?? []) stage.bans.add(userId);
    stage.cooldowns.load(state.cooldowns ?? []);
    stage.timetable.load({ slots: state.slots ?? [], autoAccepted: state.autoAccepted ?? [] });
    stage.lastQueueLength = state.lastQueueLength ?? stage.queue().length;
    stage.rearm();
    return stage;
  }

  private snapshot(m: MemberRecord): Readonly<StageMember> {
    const s: StageMember = { id: m.id, name: m.name, preset: m.preset, status: m.status };
    if (m.requestedAt !== undefined) s.requestedAt = m.requestedAt;
    const slot = this.timetable.slot(m.id);
    if (slot) s.slotEndsAt = slot.endsAt;
    return s;
  }
}

/**
 * A stage's state as JSON (`Stage.toState`): member records with their queue order, and the Part 2
 * state. Times are epoch ms. The Part 2 fields are optional: a state written without them (an
 * older node) restores with none.
 */
export interface StageState extends Partial<TimetableState> {
  mode: StageMode;
  settings: StageSettings;
  requestSeq: number;
  members: (StageMember & Record<string, unknown>)[];
  /** Held sources per member, and the held sources they asked to unmute. */
  holds?: HoldsState;
  /** Banned user ids, in ban order. */
  bans?: string[];
  /** Running request cool-downs: `[userId, endsAt]` (a settings change applies to later ones). */
  cooldowns?: [string, number][];
  /** The pending-list length last told (`requestPositionsChanged`). */
  lastQueueLength?: number;
}
