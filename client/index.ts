/**
 * Stagegate thin client: join a webinar room, follow the stage, publish and receive media.
 *
 * ```ts
 * const meeting = await joinMeeting({ url, token });
 * meeting.stage.on('stageStatusUpdate', ({ new: status }) => render(status));
 * meeting.on('trackAdded', ({ participantId, track }) => attach(participantId, track));
 * await meeting.stage.requestAccess();
 * ```
 */
export { joinMeeting } from './joinMeeting.js';
export { Meeting, DEFAULT_RECONNECT_TIMEOUT_MS } from './Meeting.js';
export { MeetingStage } from './MeetingStage.js';
export { Signaling, DEFAULT_REQUEST_TIMEOUT_MS } from './Signaling.js';
export type { SignalingOptions, SocketConnectOptions, RequestArgs } from './Signaling.js';
export { TypedEmitter } from './TypedEmitter.js';
export type { Listener } from './TypedEmitter.js';
export type { HandlerFactory } from './MediaSession.js';
export type * from './types.js';
export { StagegateError, isErrorCode, ERROR_CODES, type ErrorCode } from '../shared/errors.js';
export type {
  AccessRequest,
  AudienceVisibility,
  BatchResult,
  MediaSource,
  Preset,
  RoomSettings,
  StageMode,
  StageStatus,
} from '../shared/stage.js';
export type { MediaKind, Notifications, ParticipantInfo, ProducerInfo, RoomSnapshot } from '../shared/protocol.js';
