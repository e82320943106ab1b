/**
 * `meeting.stage`: the stage actions of STAGE.md as promises, and the stage events.
 *
 * Every method sends one request; a refusal rejects with `StagegateError` carrying the server's
 * code (FORBIDDEN, INVALID_STATE, NOT_FOUND, STAGE_DISABLED...) and changes nothing. Statuses
 * and the mode are only ever changed by the server's notifications, which the server sends
 * before it acks: when a method resolves, `status` and `mode` already show its effect.
 */
import type { AccessRequest, BatchResult, StageMode, StageStatus } from '../shared/stage.js';
import type { Publisher } from './Publisher.js';
import type { Signaling } from './Signaling.js';
import { TypedEmitter, type Listener } from './TypedEmitter.js';
import type { StageEvents } from './types.js';

/** What the stage reads from its meeting. */
export interface StageHost {
  status(): StageStatus;
  mode(): StageMode;
}

export class MeetingStage {
  /** @internal Created by the meeting, which emits the server's stage notifications through `events`. */
  constructor(
    private readonly host: StageHost,
    private readonly signaling: Signaling,
    private readonly publisher: Publisher,
    private readonly events: TypedEmitter<StageEvents>,
  ) {}

  /** The local participant's stage status. */
  get status(): StageStatus {
    return this.host.status();
  }

  /** The room's stage mode. */
  get mode(): StageMode {
    return this.host.mode();
  }

  on<K extends keyof StageEvents>(event: K, listener: Listener<StageEvents[K]>): this {
    this.events.on(event, listener);
    return this;
  }

  off<K extends keyof StageEvents>(event: K, listener: Listener<StageEvents[K]>): this {
    this.events.off(event, listener);
    return this;
  }

  once<K extends keyof StageEvents>(event: K, listener: Listener<StageEvents[K]>): this {
    this.events.once(event, listener);
    return this;
  }

  /** Pending requests, oldest first (needs acceptStageRequests). */
  async getAccessRequests(): Promise<AccessRequest[]> {
    return (await this.signaling.request('stage.getAccessRequests')).requests;
  }

  /**
   * Ask to join the stage. Resolves with the new status: REQUESTED_TO_JOIN_STAGE, or
   * ACCEPTED_TO_JOIN_STAGE for a caller who may join directly (preset ALLOWED, or OPEN mode).
   */
  async requestAccess(): Promise<StageStatus> {
    return (await this.signaling.request('stage.requestAccess')).status;
  }

  /** Withdraw a pending request. */
  async cancelRequestAccess(): Promise<StageStatus> {
    return (await this.signaling.request('stage.cancelRequestAccess')).status;
  }

  /** Accept requests, or invite users who did not request (needs acceptStageRequests). Per-user results. */
  async grantAccess(userIds: string[]): Promise<BatchResult> {
    return (await this.signaling.request('stage.grantAccess', { userIds })).results;
  }

  /** Reject pending requests (needs acceptStageRequests). Per-user results. */
  async denyAccess(userIds: string[]): Promise<BatchResult> {
    return (await this.signaling.request('stage.denyAccess', { userIds })).results;
  }

  /**
   * Go on stage. Resolves once the server accepted AND the local tracks are published; rejects
   * if either fails (the status may then be ON_STAGE with fewer producers than wanted: see the
   * `mediaError` event, and `leave()` to step down).
   */
  async join(): Promise<void> {
    await this.signaling.request('stage.join');
    await this.publisher.settled();
  }

  /** Leave the stage, or decline an invite / an accepted request. Local producers are closed when it resolves. */
  async leave(): Promise<void> {
    await this.signaling.request('stage.leave');
    await this.publisher.settled().catch(() => undefined);
  }

  /** Take users off stage (needs kickParticipant). Per-user results. */
  async kick(userIds: string[]): Promise<BatchResult> {
    return (await this.signaling.request('stage.kick', { userIds })).results;
  }

  /** Change the room's stage mode (needs acceptStageRequests). Resolves with the mode now in force. */
  async setMode(mode: StageMode): Promise<StageMode> {
    return (await this.signaling.request('stage.setMode', { mode })).mode;
  }
}
