/**
 * Pure rules of the stage state machine (../../../shared/STAGE.md is the contract).
 * No state here: Stage.ts owns the members and the events.
 */
import type { AccessRequest, Preset, StageMode, StageStatus } from '../../shared/stage.js';
import { STAGE_MODES } from '../../shared/stage.js';
import { StagegateError } from '../../shared/errors.js';
import type { ErrorCode, StagegateErrorDetails } from '../../shared/errors.js';

/** True when the member may `join()` without anyone's approval: preset ALLOWED, or the room is OPEN. */
export function mayJoinDirectly(preset: Preset, mode: StageMode): boolean {
  return preset.stageAccess === 'ALLOWED' || mode === 'OPEN';
}

/** The status of a member who is not on stage and has no pending request or grant. */
export function restingStatus(preset: Preset, mode: StageMode): StageStatus {
  return mayJoinDirectly(preset, mode) ? 'ACCEPTED_TO_JOIN_STAGE' : 'OFF_STAGE';
}

/** The status after leaving (or being kicked) from ON_STAGE or ACCEPTED, or `undefined` when nothing would change. */
export function statusAfterLeave(status: StageStatus, preset: Preset, mode: StageMode): StageStatus | undefined {
  if (status === 'ON_STAGE') return restingStatus(preset, mode);
  if (status === 'ACCEPTED_TO_JOIN_STAGE' && !mayJoinDirectly(preset, mode)) return 'OFF_STAGE';
  return undefined;
}

/** What a switch of the room to `mode` does to one member who is not on stage. */
export type ModeEffect =
  | { kind: 'none' }
  /** OFF_STAGE → ACCEPTED (switch to OPEN). */
  | { kind: 'open' }
  /** REQUESTED → ACCEPTED: the pending request is approved (switch to OPEN). */
  | { kind: 'approve' }
  /** REQUESTED → OFF_STAGE: the pending request is rejected (switch to INVITE). */
  | { kind: 'reject' }
  /** ACCEPTED only because the room was OPEN → OFF_STAGE (switch away from OPEN). */
  | { kind: 'revoke' };

/** Decide what a switch to `mode` does to a member (`granted`: a host let them in). ON_STAGE members are never touched. */
export function modeEffect(status: StageStatus, preset: Preset, granted: boolean, mode: StageMode): ModeEffect {
  if (status === 'ON_STAGE') return { kind: 'none' };
  if (mayJoinDirectly(preset, mode)) {
    if (status === 'REQUESTED_TO_JOIN_STAGE') return { kind: 'approve' };
    if (status === 'OFF_STAGE') return { kind: 'open' };
    return { kind: 'none' };
  }
  if (status === 'REQUESTED_TO_JOIN_STAGE' && mode === 'INVITE') return { kind: 'reject' };
  if (status === 'ACCEPTED_TO_JOIN_STAGE' && !granted) return { kind: 'revoke' };
  return { kind: 'none' };
}

/** Whether two presets grant exactly the same (the name counts too: it is shown to others). */
export function samePreset(a: Preset, b: Preset): boolean {
  return (
    a.name === b.name &&
    a.stageAccess === b.stageAccess &&
    a.acceptStageRequests === b.acceptStageRequests &&
    a.kickParticipant === b.kickParticipant &&
    (Object.keys(a.media) as (keyof Preset['media'])[]).every((k) => a.media[k] === b.media[k])
  );
}

/** Runtime guard for values that came over the wire. */
export function isStageMode(value: unknown): value is StageMode {
  return typeof value === 'string' && (STAGE_MODES as readonly string[]).includes(value);
}

/** Pending-list order: oldest `requestedAt` first, ties by request order (`seq`). */
export function byRequestOrder(
  a: { requestedAt?: number; requestSeq: number },
  b: { requestedAt?: number; requestSeq: number },
): number {
  return (a.requestedAt ?? 0) - (b.requestedAt ?? 0) || a.requestSeq - b.requestSeq;
}

/** Copy a pending member into the shape hosts see. */
export function toAccessRequest(m: { id: string; name: string; requestedAt?: number }): AccessRequest {
  return { userId: m.id, name: m.name, requestedAt: m.requestedAt ?? 0 };
}

/** Shorthand for the one error type. */
export function refuse(code: ErrorCode, message: string, details?: StagegateErrorDetails): StagegateError {
  return new StagegateError(code, message, details);
}

/** A status in words, for error messages. */
export function describeStatus(status: StageStatus): string {
  if (status === 'ON_STAGE') return 'on stage';
  if (status === 'ACCEPTED_TO_JOIN_STAGE') return 'accepted to join the stage';
  if (status === 'REQUESTED_TO_JOIN_STAGE') return 'waiting for a decision';
  return 'off stage';
}
