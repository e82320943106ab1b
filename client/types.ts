/**
 * Public types of the thin client. Wire payloads come from shared/protocol.ts unchanged.
 */
import type { StagegateError } from '../shared/errors.js';
import type { MediaKind, Notifications, ProducerInfo } from '../shared/protocol.js';
import type { MediaSource, Preset, StageStatus } from '../shared/stage.js';
import type { HandlerFactory } from './MediaSession.js';
import type { SocketConnectOptions } from './Signaling.js';

/** What the participant publishes when ON_STAGE. */
export interface LocalTracks {
  audio?: MediaStreamTrack | undefined;
  video?: MediaStreamTrack | undefined;
}

/** The kinds this participant may publish (preset media permissions and device support). */
export interface AllowedKinds {
  audio: boolean;
  video: boolean;
}

/**
 * Either fixed tracks (reused every time the participant goes ON_STAGE), or a function called
 * each time the participant goes ON_STAGE with the kinds it may publish. Tracks given either way
 * belong to the app: the client never stops them.
 */
export type TracksOption = LocalTracks | ((allowed: AllowedKinds) => Promise<LocalTracks>);

export interface JoinMeetingOptions {
  /**
   * Server base URL, e.g. http://127.0.0.1:3000 (or a load balancer's); or several nodes of a
   * cluster, tried in turn when one is unreachable.
   */
  url: string | readonly string[];
  /** Participant token (JWT) from the server's API. */
  token: string;
  /** Optional; the server refuses the connection (UNAUTHORIZED) if it does not match the token's room. */
  roomId?: string | undefined;
  /**
   * What to publish when ON_STAGE. Default: `getUserMedia` for the kinds the preset allows,
   * called lazily each time the participant goes ON_STAGE; those tracks are the client's and it
   * stops them when the participant leaves the stage.
   */
  tracks?: TracksOption | undefined;
  /**
   * The tracks already open before going on stage (a preview's), or undefined when none is.
   * Called at ACCEPTED_TO_JOIN_STAGE (with `prepareSendTransport`): the client then negotiates the
   * camera's sender ahead, with no track on it (nothing is encoded or sent, no producer exists),
   * so `stage.join()` only asks for the producer and hands the sender its track: the first frame
   * reaches viewers sooner. The track published is still the one `tracks` gives at ON_STAGE.
   * Default: the `tracks` object, when `tracks` is one.
   */
  previewTracks?: (() => LocalTracks | undefined) | undefined;
  /**
   * Publish the camera as simulcast: three layers from a 1280x720 track (320, 640, 1280 wide),
   * two from 640x480, each with three temporal layers (L1T3), so every viewer gets the layer
   * that fits its tile and downlink. Default true; false sends one stream.
   */
  simulcast?: boolean | undefined;
  /** mediasoup-client handler factory, e.g. `FakeHandler.createFactory(fakeParameters)` in Node. */
  handlerFactory?: HandlerFactory | undefined;
  /**
   * socket.io-client options, merged over `{ transports: ['websocket'], reconnection: false, forceNew: true }`.
   * Leave `reconnection` off: the meeting reconnects by itself (`reconnectTimeoutMs`).
   */
  socketOptions?: SocketConnectOptions | undefined;
  /** Per request; default 10 000 ms. */
  requestTimeoutMs?: number | undefined;
  /**
   * Create the send transport as soon as the status is ACCEPTED_TO_JOIN_STAGE, so `join()` only
   * has to produce. Default true; false saves a server transport per idle ACCEPTED participant.
   */
  prepareSendTransport?: boolean | undefined;
  /**
   * How long to keep trying to reconnect after the connection dropped unexpectedly, in ms,
   * before giving up (`disconnected` {reason: 'connection-lost'}). Default 15 000, the server's
   * default reconnect grace period (past it the server has forgotten the participant's place).
   * 0 disables reconnection: a drop ends the meeting with socket.io's reason, as before.
   */
  reconnectTimeoutMs?: number | undefined;
}

/**
 * `connected`: live. `reconnecting`: the connection dropped and the meeting is getting it back
 * (stage actions reject with DISCONNECTED meanwhile). `disconnected`: over, for good.
 */
export type ConnectionState = 'connected' | 'reconnecting' | 'disconnected';

/** The local participant. */
export interface SelfInfo {
  readonly id: string;
  readonly name: string;
  readonly preset: Preset;
  readonly stageStatus: StageStatus;
}

/** Another participant of the room, as this client sees them (kept current from notifications). */
export interface RemoteParticipant {
  readonly id: string;
  readonly name: string;
  readonly presetName: string;
  readonly stageStatus: StageStatus;
  /** Their live producers (non-empty only while ON_STAGE). */
  readonly producers: readonly ProducerInfo[];
  /** ON_STAGE with a stage slot: epoch ms when their turn ends (`stageSlotUpdate`). */
  readonly slotEndsAt?: number;
  /** The tracks received from them, by source (set on `trackAdded`, removed on `trackRemoved`). */
  readonly tracks: Readonly<Partial<Record<MediaSource, MediaStreamTrack>>>;
}

/** One of our own producers. */
export interface LocalProducerInfo {
  readonly id: string;
  readonly kind: MediaKind;
  readonly source: MediaSource;
  readonly track: MediaStreamTrack;
}

export interface TrackAddedEvent {
  participantId: string;
  producerId: string;
  kind: MediaKind;
  source: MediaSource;
  track: MediaStreamTrack;
}

export interface TrackRemovedEvent {
  participantId: string;
  producerId: string;
  kind: MediaKind;
  source: MediaSource;
}

/**
 * Why the meeting ended: a server `goodbye` reason, `left` (meeting.leave()), `connection-lost`
 * (the connection dropped and reconnecting failed or timed out), or socket.io's own disconnect
 * reason (e.g. 'io server disconnect'; or 'transport close' when reconnection is disabled).
 */
export type DisconnectReason = Notifications['goodbye']['reason'] | 'left' | 'connection-lost' | (string & {});

export interface MeetingEvents {
  participantJoined: { participant: RemoteParticipant } & Reconciled;
  participantLeft: { userId: string; participant: RemoteParticipant } & Reconciled;
  /** Another participant reconnected with a new token that changed their name or preset (`old`: before). */
  participantUpdated: { participant: RemoteParticipant; old: { name: string; presetName: string } } & Reconciled;
  /**
   * We came back (reconnect) with a token that names us differently or grants another preset:
   * `self` shows it already; stage changes it causes follow as stage events. Always `reconciled`.
   */
  selfUpdated: { name: string; preset: Preset; old: { name: string; preset: Preset } } & Reconciled;
  /**
   * The server handed over a fresh token before the current one expires (`expiresAt`: epoch
   * seconds). The meeting uses it for its reconnects by itself (`meeting.token`).
   */
  tokenRefreshed: Notifications['tokenRefreshed'];
  trackAdded: TrackAddedEvent;
  trackRemoved: TrackRemovedEvent;
  /** The server closed one of our producers (the local one is closed too). */
  producerClosedByServer: Notifications['producerClosedByServer'];
  /**
   * Sent once; nothing works after it. `error`: with `connection-lost`, the last reconnect
   * attempt's failure (DISCONNECTED, TIMEOUT, or the server's refusal such as UNAUTHORIZED).
   */
  disconnected: { reason: DisconnectReason; error?: StagegateError };
  /**
   * The connection dropped unexpectedly; attempt number `attempt` (1, 2, ...) to get it back
   * starts now. Emitted before each attempt. Received tracks stay as they are (frozen) until
   * `reconnected`; `connectionState` is 'reconnecting'.
   */
  reconnecting: { attempt: number };
  /**
   * Back in the room on a new connection, reconciled with the server's state: the differences
   * were emitted (participantJoined / participantLeft, stage events with `reconciled: true`),
   * every received track was replaced (trackRemoved for the old, trackAdded for the new: new
   * MediaStreamTrack objects), and when ON_STAGE the local tracks are published again.
   */
  reconnected: { attempt: number };
  /**
   * Following the stage status failed in the background (publishing after ON_STAGE, or
   * receiving a producer). `stage.join()` also rejects with the publish error.
   */
  mediaError: { error: StagegateError; during: 'publish' | 'consume'; producerId?: string };
  /**
   * The number of participants in the audience changed (`meeting.audienceCount`). The server
   * sends it at most once a second.
   */
  audienceCount: { count: number } & Reconciled;
  /** The room's settings changed (`meeting.settings`); `by` is '' when reconciled. */
  roomSettingsUpdate: Notifications['roomSettingsUpdate'] & Reconciled;
  /** The on-stage participant speaking the loudest changed (also `meeting.activeSpeaker`). */
  activeSpeaker: Notifications['activeSpeaker'];
  /**
   * How well one received track arrives (0..10; `producerScore`: the sender's uplink, `score`:
   * the path to us) and which simulcast layer we get; at most once a second per track.
   */
  consumerScore: Notifications['consumerScore'] & { participantId: string };
  /** How well the server receives one of our producers (0..10), at most once a second. */
  producerScore: Notifications['producerScore'];
}

/**
 * Marks an event the client made up after a reconnect from a difference between what it knew and
 * the server's snapshot (the change happened while it was away; who made it is unknown: `by` is
 * absent, or '' where the protocol requires it).
 */
export interface Reconciled {
  reconciled?: true;
}

/** `meeting.stage` events: the payloads are the protocol notifications' data. */
export interface StageEvents {
  stageStatusUpdate: Notifications['stageStatusUpdate'] & Reconciled;
  stageAccessRequestUpdate: Notifications['stageAccessRequestUpdate'] & Reconciled;
  newStageRequest: Notifications['newStageRequest'];
  stageAccessRequestAccepted: Notifications['stageAccessRequestAccepted'];
  stageRequestApproved: Notifications['stageRequestApproved'];
  stageRequestRejected: Notifications['stageRequestRejected'];
  removedFromStage: Notifications['removedFromStage'];
  peerStageStatusUpdate: Notifications['peerStageStatusUpdate'] & Reconciled;
  stageModeUpdate: Notifications['stageModeUpdate'] & Reconciled;
  /** A host held sources of `userId` (us: `meeting.stage.held`; to the owner and the hosts). */
  mutedByHost: Notifications['mutedByHost'];
  /** To hosts: the owner of a held source asks to have it allowed. */
  unmuteRequested: Notifications['unmuteRequested'];
  /** Holds lifted (to the owner and the hosts): the owner may resume the source. */
  unmuteAllowed: Notifications['unmuteAllowed'];
  /** To hosts: someone was removed from the room (`banned`: their id is refused). */
  participantRemoved: Notifications['participantRemoved'];
  /** A stage slot's end changed (`null`: none any more); ours is `meeting.stage.slotEndsAt`. */
  stageSlotUpdate: Notifications['stageSlotUpdate'];
  /** A slot ends soon (to the participant and the hosts). */
  stageSlotEnding: Notifications['stageSlotEnding'];
  /** Our place in the queue while our request is pending (`meeting.stage.position`/`queueLength`). */
  stageRequestPosition: Notifications['stageRequestPosition'];
}
