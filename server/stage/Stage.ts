/**
 * The pure stage state machine of one room: statuses, pending requests, grants and the stage mode.
 * No mediasoup, no sockets, no I/O: the room layer calls it and listens to its events.
 *
 * Guarantees:
 * - A refused action throws a `StagegateError`, changes nothing and emits nothing.
 * - Events are emitted synchronously after the state has changed, in the order the changes
 *   happened. Within one action: for each affected member `statusChanged` then that member's
 *   specific event (`newRequest`, `requestApproved`, `requestRejected`, `removed`); then at most
 *   one `requestsChanged` (only when the pending list changed); then `modeChanged`.
 * - A listener that calls back into the Stage is safe: its action's events are queued and
 *   delivered after the events already queued, so every listener sees changes in order.
 * - A throwing listener is reported through `onListenerError` (default console.error) and the
 *   others still run.
 */
import type { AccessRequest, BatchResult, Preset, StageMode, StageStatus } from '../../shared/stage.js';
import type { ErrorCode } from '../../shared/errors.js';
import {
  byRequestOrder,
  isStageMode,
  mayJoinDirectly,
  modeEffect,
  refuse,
  restingStatus,
  samePreset,
  statusAfterLeave,
  toAccessRequest,
  describeStatus,
} from './stageRules.js';
import { EventQueue } from './eventQueue.js';

export interface StageMember {
  id: string;
  name: string;
  preset: Preset;
  status: StageStatus;
  requestedAt?: number;
}

export type StageChangeReason =
  | 'join-room'
  | 'request'
  | 'cancel'
  | 'grant'
  | 'deny'
  | 'join'
  | 'leave'
  | 'kick'
  | 'mode'
  | 'leave-room'
  /** The member's preset changed (a new token): see `Stage.updateMember`. */
  | 'preset';

/** Events, emitted synchronously, in order, after the state has changed. */
export interface StageEvents {
  /** A member's status changed. `by` = the acting user id when someone else caused it. */
  statusChanged: (e: {
    userId: string;
    from: StageStatus;
    to: StageStatus;
    reason: StageChangeReason;
    by?: string;
  }) => void;
  /** The pending request list changed: the full list, oldest first. */
  requestsChanged: (requests: AccessRequest[]) => void;
  newRequest: (request: AccessRequest) => void;
  /** A request (or an invite when the user had not requested) was accepted by `by`. */
  requestApproved: (e: { userId: string; by: string; invited: boolean }) => void;
  /** A pending request was rejected: by a host's denyAccess (`by` set) or by a switch to INVITE mode (reason 'mode'). */
  requestRejected: (e: { userId: string; by?: string; reason: 'denied' | 'mode' }) => void;
  /** A member was kicked off stage by `by`. */
  removed: (e: { userId: string; by: string }) => void;
  modeChanged: (e: { mode: StageMode; by: string }) => void;
}

type EventName = keyof StageEvents;

/** Internal record: the public member plus what the rules need. */
interface MemberRecord extends StageMember {
  /** A host let them in (grant/invite, or a pending request approved by a switch to OPEN). Consumed on leaving. */
  granted: boolean;
  /** Order of the request, to break `requestedAt` ties. */
  requestSeq: number;
}

/** What one user of a batch action came to: `undefined` when applied, else the refusal message. */
type BatchStep = (m: MemberRecord) => string | undefined;

/**
 * The actor id of the application's backend (HTTP API with the API secret): holds every host
 * permission without being a member. No member can have this id (it fails the id pattern, and
 * `add` refuses it), so it cannot be spoofed.
 */
export const BACKEND_ACTOR = '@backend';

const REQUESTED: StageStatus = 'REQUESTED_TO_JOIN_STAGE';
const ACCEPTED: StageStatus = 'ACCEPTED_TO_JOIN_STAGE';

export class Stage {
  #mode: StageMode;
  private readonly now: () => number;
  private readonly events: EventQueue<StageEvents>;
  private readonly byId = new Map<string, MemberRecord>();
  private requestsDirty = false;
  private requestSeq = 0;

  constructor(
    opts: {
      mode?: StageMode;
      now?: () => number;
      onListenerError?: (error: unknown, event: EventName) => void;
    } = {},
  ) {
    const mode = opts.mode ?? 'REQUEST';
    if (!isStageMode(mode)) throw refuse('INVALID_REQUEST', `Unknown stage mode ${String(mode)}`);
    this.#mode = mode;
    this.now = opts.now ?? Date.now;
    this.events = new EventQueue<StageEvents>(
      opts.onListenerError ?? ((error, event) => console.error(`Stage: a ${event} listener threw`, error)),
    );
  }

  /** The room's current stage mode. */
  get mode(): StageMode {
    return this.#mode;
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
    return m && snapshot(m);
  }

  /** Snapshots of every member, in the order they were added. */
  members(): Readonly<StageMember>[] {
    return [...this.byId.values()].map(snapshot);
  }

  /**
   * Add a member on room join. Initial status: ACCEPTED_TO_JOIN_STAGE when they may join directly
   * (preset ALLOWED, or mode OPEN; emits statusChanged OFF_STAGE → ACCEPTED, reason 'join-room'),
   * else OFF_STAGE (emits nothing). Re-adding an existing id throws INVALID_STATE; BACKEND_ACTOR → INVALID_REQUEST.
   */
  add(member: { id: string; name: string; preset: Preset }): Readonly<StageMember> {
    if (member.id === BACKEND_ACTOR) throw refuse('INVALID_REQUEST', `${BACKEND_ACTOR} is reserved`);
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
    const added = snapshot(record);
    this.commit();
    return added;
  }

  /**
   * Remove a member (left the room / disconnected). If ON_STAGE, emits statusChanged to OFF_STAGE
   * (reason 'leave-room') first; a pending request is dropped (emits requestsChanged). Unknown id: no-op.
   */
  remove(userId: string): void {
    const m = this.byId.get(userId);
    if (!m) return;
    if (m.status === 'ON_STAGE') this.transition(m, 'OFF_STAGE', 'leave-room');
    if (m.status === REQUESTED) this.requestsDirty = true;
    this.byId.delete(userId);
    this.commit();
  }

  /**
   * Ask to join the stage. OFF_STAGE → REQUESTED (emits statusChanged, newRequest, requestsChanged).
   * A caller who may join directly goes to ACCEPTED; already ACCEPTED is a no-op success.
   * Refused: unknown → NOT_FOUND; REQUESTED or ON_STAGE → INVALID_STATE; INVITE mode → STAGE_DISABLED;
   * NOT_ALLOWED preset → FORBIDDEN. Returns the new status.
   */
  requestAccess(userId: string): StageStatus {
    const m = this.self(userId);
    if (m.status === REQUESTED) throw refuse('INVALID_STATE', `${userId} has already requested to join the stage`);
    if (m.status === 'ON_STAGE') throw refuse('INVALID_STATE', `${userId} is already on stage`);
    if (m.status === ACCEPTED) return ACCEPTED;
    if (mayJoinDirectly(m.preset, this.#mode)) {
      this.transition(m, ACCEPTED, 'request');
    } else {
      if (this.#mode === 'INVITE') throw refuse('STAGE_DISABLED', 'The stage is invite-only: requests are off');
      if (m.preset.stageAccess === 'NOT_ALLOWED')
        throw refuse('FORBIDDEN', `${userId} may not request to join the stage`);
      this.transition(m, REQUESTED, 'request');
      this.enqueue('newRequest', toAccessRequest(m));
    }
    return this.commitWith(m.status);
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
    return this.pending();
  }

  /**
   * Let users in (needs `acceptStageRequests`): REQUESTED → ACCEPTED (an approval) or OFF_STAGE → ACCEPTED
   * (an invite, in any mode and for any preset). Emits statusChanged + requestApproved per user.
   * Per user: unknown → NOT_FOUND, ACCEPTED/ON_STAGE → INVALID_STATE.
   */
  grantAccess(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'acceptStageRequests', userIds, (m) => {
      const from = m.status;
      if (from !== REQUESTED && from !== 'OFF_STAGE') return `${m.id} is already ${describeStatus(from)}`;
      this.transition(m, ACCEPTED, 'grant', actorId);
      m.granted = true;
      this.enqueue('requestApproved', { userId: m.id, by: actorId, invited: from === 'OFF_STAGE' });
      return undefined;
    });
  }

  /**
   * Reject pending requests (needs `acceptStageRequests`): REQUESTED → OFF_STAGE, emits statusChanged +
   * requestRejected {reason:'denied'}. The user may request again. Per user: others → INVALID_STATE.
   */
  denyAccess(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'acceptStageRequests', userIds, (m) => {
      if (m.status !== REQUESTED) return `${m.id} has no pending request`;
      this.transition(m, 'OFF_STAGE', 'deny', actorId);
      this.enqueue('requestRejected', { userId: m.id, by: actorId, reason: 'denied' });
      return undefined;
    });
  }

  /** Go on stage: ACCEPTED → ON_STAGE (in OPEN mode also from OFF_STAGE/REQUESTED). Otherwise INVALID_STATE. */
  join(userId: string): StageStatus {
    const m = this.self(userId);
    const fits = m.status === ACCEPTED || (this.#mode === 'OPEN' && m.status !== 'ON_STAGE');
    if (!fits) throw refuse('INVALID_STATE', `${userId} is ${describeStatus(m.status)}: cannot join the stage`);
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
   * Take users off stage (needs `kickParticipant`): as `leave()` for each, plus `removed {userId, by}`.
   * Per user: a target that would not change (e.g. OFF_STAGE, or ACCEPTED and may join directly) → INVALID_STATE.
   * Kicking oneself is allowed.
   */
  kick(actorId: string, userIds: string[]): BatchResult {
    return this.batch(actorId, 'kickParticipant', userIds, (m) => {
      const to = statusAfterLeave(m.status, m.preset, this.#mode);
      if (!to) return `${m.id} is ${describeStatus(m.status)}: nothing to remove`;
      this.transition(m, to, 'kick', actorId);
      this.enqueue('removed', { userId: m.id, by: actorId });
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
    this.queueRequestsChanged();
    this.enqueue('modeChanged', { mode, by: actorId });
    this.commit();
    return mode;
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
    if (!presetChanged) return this.commitWith(snapshot(m));
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
    const updated = snapshot(m);
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
      const refusal = m ? step(m) : `Unknown participant ${String(userId)}`;
      results.set(userId, refusal === undefined && m ? { ok: true, status: m.status } : failure(m, refusal));
    }
    this.commit();
    return Object.fromEntries(results);
  }

  /** Change one member's status and queue statusChanged. Keeps requestedAt and the grant in step. */
  private transition(m: MemberRecord, to: StageStatus, reason: StageChangeReason, actorId?: string): void {
    const from = m.status;
    if (from === to) return;
    m.status = to;
    if (to === REQUESTED) {
      m.requestedAt = this.now();
      m.requestSeq = ++this.requestSeq;
    } else {
      delete m.requestedAt;
    }
    if (to === 'OFF_STAGE' || from === 'ON_STAGE') m.granted = false;
    if (from === REQUESTED || to === REQUESTED) this.requestsDirty = true;
    const by = actorId !== undefined && actorId !== m.id ? { by: actorId } : {};
    this.enqueue('statusChanged', { userId: m.id, from, to, reason, ...by });
  }

  private pending(): AccessRequest[] {
    return [...this.byId.values()]
      .filter((m) => m.status === REQUESTED)
      .sort(byRequestOrder)
      .map(toAccessRequest);
  }

  private queueRequestsChanged(): void {
    if (!this.requestsDirty) return;
    this.requestsDirty = false;
    this.enqueue('requestsChanged', this.pending());
  }

  /** End of an action: queue requestsChanged if needed and deliver everything queued. */
  private commit(): void {
    this.queueRequestsChanged();
    this.events.flush();
  }

  /** `commit()`, returning the status the action produced (a listener may change it again meanwhile). */
  private commitWith<T>(status: T): T {
    this.commit();
    return status;
  }

  private enqueue<E extends EventName>(event: E, payload: Parameters<StageEvents[E]>[0]): void {
    this.events.enqueue(event, payload);
  }

  /** Everything the rules decide from, as plain JSON (cluster mode keeps it in Redis). */
  toState(): StageState {
    return {
      mode: this.#mode,
      requestSeq: this.requestSeq,
      members: [...this.byId.values()].map((m) => ({ ...m })),
    };
  }

  /** A stage continuing from `toState()` (another node took the room over); emits nothing. */
  static fromState(
    state: StageState,
    opts: { now?: () => number; onListenerError?: (error: unknown, event: EventName) => void } = {},
  ): Stage {
    const stage = new Stage({ ...opts, mode: state.mode });
    stage.requestSeq = state.requestSeq;
    for (const m of state.members) stage.byId.set(m.id, { ...(m as unknown as MemberRecord) });
    return stage;
  }
}

/** A stage's state as JSON (`Stage.toState`): member records with their queue order. */
export interface StageState {
  mode: StageMode;
  requestSeq: number;
  members: (StageMember & Record<string, unknown>)[];
}

function snapshot(m: MemberRecord): Readonly<StageMember> {
  const s: StageMember = { id: m.id, name: m.name, preset: m.preset, status: m.status };
  if (m.requestedAt !== undefined) s.requestedAt = m.requestedAt;
  return s;
}

function failure(m: MemberRecord | undefined, message: string | undefined): BatchResult[string] {
  const code: ErrorCode = m ? 'INVALID_STATE' : 'NOT_FOUND';
  return { ok: false, code, message: message ?? code };
}
