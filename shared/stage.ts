/**
 * Stage vocabulary shared by server and client (../STAGE.md is the contract).
 */

export const STAGE_STATUSES = ['OFF_STAGE', 'REQUESTED_TO_JOIN_STAGE', 'ACCEPTED_TO_JOIN_STAGE', 'ON_STAGE'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];

export const STAGE_MODES = ['OPEN', 'REQUEST', 'INVITE'] as const;
/** OPEN: everyone may join directly. REQUEST (default): request, host decides. INVITE: hosts invite only. */
export type StageMode = (typeof STAGE_MODES)[number];

/**
 * Room setting `audience`: `hidden` (default; a webinar): the audience (participants who are not
 * stage people) is seen one by one only by acceptStageRequests holders, everyone else gets a
 * count. `visible` (a meeting): everyone sees everyone.
 */
export const AUDIENCE_VISIBILITIES = ['hidden', 'visible'] as const;
export type AudienceVisibility = (typeof AUDIENCE_VISIBILITIES)[number];

/**
 * Room settings, changed live by acceptStageRequests holders and the backend: the Stage's
 * settings (STAGE.md Part 2: seats, auto-fill, slots, cool-down, and `audience`), one object.
 */
export type RoomSettings = StageSettings;

/**
 * Stage people: holders of acceptStageRequests, and anyone ACCEPTED_TO_JOIN_STAGE or ON_STAGE.
 * Everyone sees them. Everyone else is the audience.
 */
export function isStagePerson(preset: Pick<Preset, 'acceptStageRequests'>, status: StageStatus): boolean {
  return preset.acceptStageRequests || status === 'ACCEPTED_TO_JOIN_STAGE' || status === 'ON_STAGE';
}

export const STAGE_ACCESS = ['ALLOWED', 'CAN_REQUEST', 'NOT_ALLOWED'] as const;
export type StageAccess = (typeof STAGE_ACCESS)[number];

export type MediaPermission = 'ALLOWED' | 'NOT_ALLOWED';

/** A media source a participant can publish. The server derives audio/video from RTP parameters. */
export const MEDIA_SOURCES = ['audio', 'video', 'screenshare'] as const;
export type MediaSource = (typeof MEDIA_SOURCES)[number];

/** Permissions granted by a participant's token, enforced by the server. */
export interface Preset {
  name: string;
  stageAccess: StageAccess;
  /** May list requests, grantAccess, denyAccess, and change the stage mode. */
  acceptStageRequests: boolean;
  /** May kick others off stage. */
  kickParticipant: boolean;
  media: Record<MediaSource, MediaPermission>;
}

export const PRESETS = {
  host: {
    name: 'host',
    stageAccess: 'ALLOWED',
    acceptStageRequests: true,
    kickParticipant: true,
    media: { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'ALLOWED' },
  },
  speaker: {
    name: 'speaker',
    stageAccess: 'ALLOWED',
    acceptStageRequests: false,
    kickParticipant: false,
    media: { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'NOT_ALLOWED' },
  },
  viewer: {
    name: 'viewer',
    stageAccess: 'CAN_REQUEST',
    acceptStageRequests: false,
    kickParticipant: false,
    media: { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'NOT_ALLOWED' },
  },
} as const satisfies Record<string, Preset>;
export type PresetName = keyof typeof PRESETS;

/** A pending request, as hosts see it (oldest first). */
export interface AccessRequest {
  userId: string;
  name: string;
  /** Epoch milliseconds. */
  requestedAt: number;
}

/** Per-user outcome of a batch action (grantAccess, denyAccess, kick). */
export type BatchResult = Record<
  string,
  { ok: true; status: StageStatus } | { ok: false; code: import('./errors.js').ErrorCode; message: string }
>;

/** Who sees the audience (OFF_STAGE and REQUESTED participants): only hosts (`hidden`) or everyone (`visible`). */
export const AUDIENCES = ['hidden', 'visible'] as const;
export type Audience = (typeof AUDIENCES)[number];

/** Room settings of STAGE.md Part 2 ("Seats, time and the queue"), changed live with `setSettings`. */
export interface StageSettings {
  /** At most this many participants ON_STAGE, not counting `acceptStageRequests` holders; `null`: no cap. */
  stageCap: number | null;
  /** Grant the oldest pending request (actor `@auto`) while a seat is free. Needs `stageCap`. */
  autoFill: boolean;
  /** An `@auto` acceptance lapses back to OFF_STAGE when the user has not joined within this time. */
  acceptTimeoutSeconds: number;
  /** A non-host's turn on stage lasts this long from `join()`; `null`: no limit. */
  slotSeconds: number | null;
  /** After a deny, kick or slot end, `requestAccess` is refused COOLING_DOWN for this long; 0: never. */
  requestCooldownSeconds: number;
  /** Who sees the audience (stored here; the room applies it). */
  audience: Audience;
}

/** The defaults keep Part 1's behaviour. */
export const DEFAULT_STAGE_SETTINGS: Readonly<StageSettings> = Object.freeze({
  stageCap: null,
  autoFill: false,
  acceptTimeoutSeconds: 60,
  slotSeconds: null,
  requestCooldownSeconds: 0,
  audience: 'hidden',
});

export const DEFAULT_ROOM_SETTINGS: Readonly<RoomSettings> = DEFAULT_STAGE_SETTINGS;

/** A pending request's place in the queue: `position` 1 is next; `queueLength` counts every pending request. */
export interface QueuePosition {
  position: number;
  queueLength: number;
}

/** The answer to `requestAccess`: the new status, and the queue place when the request is pending. */
export type RequestAccessAnswer = { status: StageStatus } & Partial<QueuePosition>;
