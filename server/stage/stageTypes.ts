/**
 * The public types of Stage (its members, change reasons and events), apart from the class as
 * mediasoup keeps `*Types.ts` beside each class. Stage.ts re-exports them.
 */
import type { AccessRequest, MediaSource, Preset, StageMode, StageSettings, StageStatus } from '../../shared/stage.js';

export interface StageMember {
  id: string;
  name: string;
  preset: Preset;
  status: StageStatus;
  requestedAt?: number;
  /** ON_STAGE non-hosts while `slotSeconds` is set: epoch ms when their turn ends. */
  slotEndsAt?: number;
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
  /** The turn (`slotSeconds`) ended: the same transition as a kick, by `@auto`. */
  | 'slot-ended'
  /** An `@auto` acceptance was not used within `acceptTimeoutSeconds`: ACCEPTED → OFF_STAGE, by `@auto`. */
  | 'accept-timeout'
  /** `removeFromRoom`: ON_STAGE → OFF_STAGE just before the member is forgotten. */
  | 'removed-from-room'
  /** The member's preset changed (a new token): see `Stage.updateMember`. */
  | 'preset';

/** Events, emitted synchronously, in order, after the state has changed. */
export interface StageEvents {
  /** A member's status changed. `by` = the acting user id (or `@backend`, `@auto`) when someone else caused it. */
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
  /** A request (or an invite when the user had not requested) was accepted by `by` (`@auto`: auto-fill). */
  requestApproved: (e: { userId: string; by: string; invited: boolean }) => void;
  /** A pending request was rejected: by a host's denyAccess (`by` set) or by a switch to INVITE mode (reason 'mode'). */
  requestRejected: (e: { userId: string; by?: string; reason: 'denied' | 'mode' }) => void;
  /** A member was kicked off stage by `by`. */
  removed: (e: { userId: string; by: string }) => void;
  modeChanged: (e: { mode: StageMode; by: string }) => void;
  /**
   * The pending list changed: its new length, and the members whose position changed (not the new
   * requester, whose `requestAccess` answer carries its position). The room sends
   * `stageRequestPosition` to each listed member at once; telling the others only the new length
   * (at most once a second) is the room's throttling, not the Stage's.
   */
  requestPositionsChanged: (e: { queueLength: number; changed: Array<{ userId: string; position: number }> }) => void;
  /** `by` held these sources of `userId` (only the newly held ones). */
  mutedByHost: (e: { userId: string; by: string; sources: MediaSource[] }) => void;
  /** The owner of a held source asks the hosts to allow it again. */
  unmuteRequested: (e: { userId: string; source: MediaSource }) => void;
  /** `by` lifted the holds on these sources of `userId` (only those that were held); the owner may resume. */
  unmuteAllowed: (e: { userId: string; by: string; sources: MediaSource[] }) => void;
  /** `by` removed `userId` from the room (the member is already forgotten); `banned`: the id is banned. */
  removedFromRoom: (e: { userId: string; by: string; banned: boolean }) => void;
  /** The backend banned `userId`, who was not in the room (a member is banned by `removeFromRoom`). */
  banned: (e: { userId: string; by: string }) => void;
  /** The backend lifted the ban on `userId`. */
  unbanned: (e: { userId: string; by: string }) => void;
  /** Settings changed: the full new settings and the names of those that changed. */
  settingsChanged: (e: { settings: StageSettings; changed: (keyof StageSettings)[]; by: string }) => void;
  /** A member's turn got an end (`endsAt`, on joining the stage or when slots were switched on), was
   *  extended (`by` set), or lost its end because slots were switched off (`endsAt: null`). */
  slotChanged: (e: { userId: string; endsAt: number | null; by?: string }) => void;
  /** The warning before a turn ends (min(30 s, slot/4) before `endsAt`). */
  stageSlotEnding: (e: { userId: string; endsAt: number }) => void;
}

export type EventName = keyof StageEvents;
