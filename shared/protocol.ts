/**
 * The wire contract between the Stagegate server and its clients (socket.io).
 *
 * - A request is a socket.io event whose name is the method, sent with an ack callback:
 *   `socket.emit(method, data, ack)`. The ack is always an {@link Ack}: `{ ok: true, data }` or
 *   `{ ok: false, error: { code, message } }`.
 * - A notification is a socket.io event from the server, named after its key in
 *   {@link Notifications}, with no ack.
 * - Every request payload is validated on the server with the strict schema in
 *   {@link requestSchemas} before any handler sees it.
 */
import { z } from 'zod';
import type { ErrorCode } from './errors.js';
import {
  AUDIENCE_VISIBILITIES,
  MEDIA_SOURCES,
  type QueuePosition,
  STAGE_MODES,
  type AccessRequest,
  type BatchResult,
  type MediaSource,
  type Preset,
  type RoomSettings,
  type StageMode,
  type StageStatus,
} from './stage.js';

// ------------------------------------------------------------------ limits
export const LIMITS = {
  /** Users in one batch action (grantAccess, denyAccess, kick). */
  batchSize: 100,
  idLength: 128,
  /** socket.io maxHttpBufferSize: larger messages are cut off by socket.io. */
  maxMessageBytes: 64 * 1024,
  /** Largest width or height a client may report for a video tile (setConsumerPreferences). */
  maxVideoDimension: 16_384,
} as const;

// ------------------------------------------------------------------ shared shapes
export type MediaKind = 'audio' | 'video';

/** A participant as everyone in the room sees them. */
export interface ParticipantInfo {
  id: string;
  name: string;
  presetName: string;
  stageStatus: StageStatus;
  /** The participant's live producers (only ever non-empty while ON_STAGE). */
  producers: ProducerInfo[];
  /** ON_STAGE with a stage slot (`slotSeconds`): epoch ms when their turn ends. */
  slotEndsAt?: number;
}

export interface ProducerInfo {
  id: string;
  userId: string;
  kind: MediaKind;
  source: MediaSource;
  paused: boolean;
}

/** What `joinRoom` answers: everything a client needs to render the room. */
export interface RoomSnapshot {
  roomId: string;
  self: {
    id: string;
    name: string;
    preset: Preset;
    stageStatus: StageStatus;
    /** Our sources a host holds (muted by the host). */
    held?: MediaSource[];
    /** ON_STAGE with a slot: epoch ms when our turn ends. */
    slotEndsAt?: number;
  };
  participants: ParticipantInfo[];
  mode: StageMode;
  /** Pending requests, only for acceptStageRequests holders (else empty). */
  requests: AccessRequest[];
  /** The room's settings (`audience`: who sees whom). */
  settings: RoomSettings;
  /**
   * How many participants are in the audience (not stage people), as last announced to the room
   * (`audienceCount` brings the current number within a second). In a `hidden` room a
   * participant without acceptStageRequests sees only stage people in `participants` and the
   * audience as this number.
   */
  audienceCount: number;
}

export interface TransportOptions {
  id: string;
  iceParameters: unknown;
  iceCandidates: unknown[];
  dtlsParameters: unknown;
}

export interface ConsumerOptions {
  id: string;
  producerId: string;
  userId: string;
  kind: MediaKind;
  source: MediaSource;
  rtpParameters: unknown;
}

// ------------------------------------------------------------------ request schemas
const id = z.string().min(1).max(LIMITS.idLength);
const userIds = z.array(id).max(LIMITS.batchSize);
const empty = z.strictObject({}).optional();
const sources = z.array(z.enum(MEDIA_SOURCES)).min(1).max(MEDIA_SOURCES.length);
/** A change of room settings: only the settings given change (ranges are checked by the Stage too). */
export const roomSettingsSchema = z.strictObject({
  audience: z.enum(AUDIENCE_VISIBILITIES).optional(),
  stageCap: z.number().int().min(0).max(10_000).nullable().optional(),
  autoFill: z.boolean().optional(),
  acceptTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
  slotSeconds: z.number().int().min(1).max(86_400).nullable().optional(),
  requestCooldownSeconds: z.number().int().min(0).max(86_400).optional(),
});
/** mediasoup's own objects: key fields checked here, full validation by mediasoup itself. */
const rtpCapabilities = z.looseObject({
  codecs: z.array(z.looseObject({ kind: z.enum(['audio', 'video']), mimeType: z.string().max(64) })).max(64),
  headerExtensions: z.array(z.looseObject({})).max(64).optional(),
});
const rtpParameters = z.looseObject({
  mid: z.string().max(64).optional(),
  codecs: z
    .array(z.looseObject({ mimeType: z.string().max(64), payloadType: z.number().int(), clockRate: z.number().int() }))
    .min(1)
    .max(16),
  headerExtensions: z.array(z.looseObject({})).max(32).optional(),
  encodings: z.array(z.looseObject({})).max(8).optional(),
  rtcp: z.looseObject({}).optional(),
});
const dtlsParameters = z.looseObject({
  role: z.enum(['auto', 'client', 'server']).optional(),
  fingerprints: z
    .array(z.looseObject({ algorithm: z.string().max(32), value: z.string().max(256) }))
    .min(1)
    .max(8),
});

export const requestSchemas = {
  getRouterRtpCapabilities: empty,
  joinRoom: z.strictObject({ rtpCapabilities }),
  /** A fresh token for this connection's identity (the server also sends one by itself: `tokenRefreshed`). */
  refreshToken: empty,
  /** Leave the room now (a dropped connection instead keeps the place for the grace period). */
  leaveRoom: empty,
  createTransport: z.strictObject({ direction: z.enum(['send', 'recv']) }),
  connectTransport: z.strictObject({ transportId: id, dtlsParameters }),
  produce: z.strictObject({
    transportId: id,
    /** The client's claim; the server checks it against the RTP parameters' codec. */
    kind: z.enum(['audio', 'video']),
    rtpParameters,
    /** Defaults to the kind ('audio' or 'video'); 'screenshare' only for video. */
    source: z.enum(MEDIA_SOURCES).optional(),
  }),
  closeProducer: z.strictObject({ producerId: id }),
  pauseProducer: z.strictObject({ producerId: id }),
  resumeProducer: z.strictObject({ producerId: id }),
  consume: z.strictObject({ producerId: id }),
  resumeConsumer: z.strictObject({ consumerId: id }),
  /**
   * How one of our video consumers is shown: its size in CSS pixels (the server picks the
   * simulcast layer that fits) and whether it is visible at all (hidden: paused on the server).
   */
  setConsumerPreferences: z.strictObject({
    consumerId: id,
    width: z.number().int().min(0).max(LIMITS.maxVideoDimension).optional(),
    height: z.number().int().min(0).max(LIMITS.maxVideoDimension).optional(),
    visible: z.boolean().optional(),
  }),
  'stage.requestAccess': empty,
  'stage.cancelRequestAccess': empty,
  'stage.getAccessRequests': empty,
  'stage.grantAccess': z.strictObject({ userIds }),
  'stage.denyAccess': z.strictObject({ userIds }),
  'stage.join': empty,
  'stage.leave': empty,
  'stage.kick': z.strictObject({ userIds }),
  'stage.setMode': z.strictObject({ mode: z.enum(STAGE_MODES) }),
  /** Change room settings (needs acceptStageRequests); everyone is told (`roomSettingsUpdate`). */
  'stage.setSettings': roomSettingsSchema,
  /** Hold these sources of these users (needs kickParticipant): paused on the server at once. */
  'stage.mute': z.strictObject({ userIds, sources }),
  /** Ask the hosts to allow a held source of yours again. */
  'stage.requestUnmute': z.strictObject({ source: z.enum(MEDIA_SOURCES) }),
  /** Lift holds (needs kickParticipant); the owner then resumes by themselves. */
  'stage.allowUnmute': z.strictObject({ userIds, sources }),
  /** Remove users from the room now (needs kickParticipant); `ban`: refuse them until the backend unbans. */
  'stage.removeFromRoom': z.strictObject({ userIds, ban: z.boolean().optional() }),
  /** Lengthen a running stage slot (needs acceptStageRequests). */
  'stage.extendSlot': z.strictObject({ userId: id, seconds: z.number().int().min(1).max(86_400) }),
} as const;

export type RequestMethod = keyof typeof requestSchemas;
export type RequestData<M extends RequestMethod> = z.input<(typeof requestSchemas)[M]>;

/** The data of each successful response. */
export interface Responses {
  getRouterRtpCapabilities: { rtpCapabilities: unknown };
  joinRoom: RoomSnapshot;
  refreshToken: { token: string; expiresAt: number };
  leaveRoom: Record<string, never>;
  createTransport: TransportOptions;
  connectTransport: Record<string, never>;
  produce: { id: string; source: MediaSource };
  closeProducer: Record<string, never>;
  pauseProducer: Record<string, never>;
  resumeProducer: Record<string, never>;
  consume: ConsumerOptions;
  resumeConsumer: Record<string, never>;
  /** The spatial layer now preferred (0 = lowest) and whether the server sends at all. */
  setConsumerPreferences: { spatialLayer: number; paused: boolean };
  /** `position`/`queueLength` while the request is pending (REQUESTED_TO_JOIN_STAGE). */
  'stage.requestAccess': { status: StageStatus } & Partial<QueuePosition>;
  'stage.cancelRequestAccess': { status: StageStatus };
  'stage.getAccessRequests': { requests: AccessRequest[] };
  'stage.grantAccess': { results: BatchResult };
  'stage.denyAccess': { results: BatchResult };
  'stage.join': { status: StageStatus };
  'stage.leave': { status: StageStatus };
  'stage.kick': { results: BatchResult };
  'stage.setMode': { mode: StageMode };
  'stage.setSettings': { settings: RoomSettings };
  'stage.mute': { results: BatchResult };
  'stage.requestUnmute': Record<string, never>;
  'stage.allowUnmute': { results: BatchResult };
  'stage.removeFromRoom': { results: BatchResult };
  'stage.extendSlot': { endsAt: number };
}
export type ResponseData<M extends RequestMethod> = Responses[M];

export interface WireError {
  code: ErrorCode;
  message: string;
  /** Machine-readable extras (COOLING_DOWN: `retryAfterMs`). */
  details?: { retryAfterMs?: number };
  /** COOLING_DOWN: milliseconds until the request may be made again (the same as `details.retryAfterMs`). */
  retryAfterMs?: number;
}
export type Ack<T> = { ok: true; data: T } | { ok: false; error: WireError };

// ------------------------------------------------------------------ notifications
/** Why a producer was closed on the server. */
export type ProducerCloseReason =
  | 'closed'
  | 'left-stage'
  | 'kicked'
  | 'disconnected'
  | 'transport-closed'
  /** The stage slot ended (closed exactly as a kick). */
  | 'slot-ended'
  /** The owner was removed from the room. */
  | 'removed-from-room';

export interface Notifications {
  /**
   * Someone came into view: joined the room, or (in a `hidden` room, to those without
   * acceptStageRequests) moved from the audience to the stage.
   */
  participantJoined: { participant: ParticipantInfo };
  /** Someone went out of view: left the room, or (`hidden` room) moved from the stage to the audience. */
  participantLeft: { userId: string };
  /**
   * To everyone who sees the participant (not to them): they reconnected with a new token that
   * changed their display name or preset. Their status changes, if any, follow as usual.
   */
  participantUpdated: { userId: string; name: string; presetName: string };
  /**
   * To this connection only: a fresh token for the same identity, sent before the current one
   * expires (at 80% of its remaining life); use it for the next reconnect. Also the answer of
   * `refreshToken`.
   */
  tokenRefreshed: { token: string; expiresAt: number };
  /** To the participant: their own status changed. */
  stageStatusUpdate: { old: StageStatus; new: StageStatus; by?: string };
  /** To everyone who can see that participant (in a `hidden` room: hosts only for the audience). */
  peerStageStatusUpdate: { userId: string; old: StageStatus; new: StageStatus };
  /** To acceptStageRequests holders: the full pending list, oldest first. */
  stageAccessRequestUpdate: { requests: AccessRequest[] };
  /** To acceptStageRequests holders. */
  newStageRequest: { request: AccessRequest };
  /** To the participant: a host accepted their request or invited them. */
  stageAccessRequestAccepted: { by: string; invited: boolean };
  /** To acceptStageRequests holders. */
  stageRequestApproved: { userId: string; by: string; invited: boolean };
  /** To the participant and the hosts. */
  stageRequestRejected: { userId: string; by?: string; reason: 'denied' | 'mode' };
  /** To the participant: they were kicked off stage. */
  removedFromStage: { by: string };
  /** To everyone. */
  stageModeUpdate: { mode: StageMode; by: string };
  /** To everyone: the room's settings changed (the full settings now in force). */
  roomSettingsUpdate: { settings: RoomSettings; by: string };
  /** To the owner and the hosts: `by` held these sources of `userId` (paused on the server; resume is refused). */
  mutedByHost: { userId: string; by: string; sources: MediaSource[] };
  /** To the hosts: the owner of a held source asks to have it allowed again. */
  unmuteRequested: { userId: string; source: MediaSource };
  /** To the owner and the hosts: the holds on these sources were lifted; the owner may resume. */
  unmuteAllowed: { userId: string; by: string; sources: MediaSource[] };
  /** To the hosts: `by` removed `userId` from the room (`banned`: their id is refused from now on). */
  participantRemoved: { userId: string; by: string; banned: boolean };
  /** To everyone who sees the participant (they are on stage): their slot end changed (`null`: no slot any more). */
  stageSlotUpdate: { userId: string; endsAt: number | null; by?: string };
  /** To the participant and the hosts: the slot of `userId` ends soon. */
  stageSlotEnding: { userId: string; endsAt: number };
  /**
   * To a requester only: their place in the queue. Sent at once when their position changed; a
   * change of the length alone at most once a second.
   */
  stageRequestPosition: QueuePosition;
  /**
   * To everyone: how many participants are in the audience now (see RoomSnapshot). Sent at most
   * once a second per room, and only when the number changed since the last one sent.
   */
  audienceCount: { count: number };
  /** To everyone: consume it with `consume`. */
  newProducer: { producer: ProducerInfo };
  /** To everyone: the producer is gone (and with it every consumer of it). */
  producerClosed: { producerId: string; userId: string; reason: ProducerCloseReason };
  producerPaused: { producerId: string; userId: string };
  producerResumed: { producerId: string; userId: string };
  /** To one receiver: its consumer was closed on the server. */
  consumerClosed: { consumerId: string; producerId: string };
  /** To the producer's owner: the server closed one of their producers. */
  producerClosedByServer: { producerId: string; reason: ProducerCloseReason };
  /**
   * The room's media moved to another mediasoup worker (the old one died): every transport,
   * producer and consumer is gone. Recreate transports, consume again, republish if ON_STAGE.
   */
  mediaReset: { reason: 'worker-died' };
  /**
   * To everyone: the on-stage participant speaking the loudest changed (mediasoup's
   * ActiveSpeakerObserver on the origin router). Sent when it changes, not repeated.
   */
  activeSpeaker: { userId: string; producerId: string };
  /**
   * To one receiver: how well one of its consumers is received (0..10, mediasoup's score: the
   * sender's uplink `producerScore`, the path to this receiver `score`), and the spatial layer
   * it gets. At most one per consumer per second.
   */
  consumerScore: {
    consumerId: string;
    producerId: string;
    score: number;
    producerScore: number;
    spatialLayer?: number;
  };
  /** To the producer's owner: how well the server receives it (0..10, worst encoding), at most once a second. */
  producerScore: { producerId: string; score: number };
  /** Sent right before the server disconnects this socket. */
  goodbye: { reason: 'replaced' | 'removed-from-room' | 'room-closed' | 'server-shutdown' };
}
export type NotificationName = keyof Notifications;

/**
 * One room notification inside a `batch`: name, data, and the user it is not meant for (the
 * one the event is about, who learns it otherwise). A client skips items whose third element
 * is its own user id.
 */
export type BatchItem = {
  [N in NotificationName]: [N, Notifications[N]] | [N, Notifications[N], string];
}[NotificationName];

/**
 * The server coalesces the room notifications of one event-loop turn into one `batch` event
 * (`{ items: BatchItem[] }`), delivered in order; a single one is sent as a plain event.
 */
export interface BatchNotification {
  items: BatchItem[];
}
