/**
 * `meeting.stage`: the stage actions of STAGE.md as promises, and the stage events.
 *
 * Every method sends one request; a refusal rejects with `StagegateError` carrying the server's
 * code (FORBIDDEN, INVALID_STATE, NOT_FOUND, STAGE_DISABLED...) and changes nothing. Statuses
 * and the mode are only ever changed by the server's notifications, which the server sends
 * before it acks: when a method resolves, `status` and `mode` already show its effect.
 *
 * While the meeting is reconnecting every method rejects at once with DISCONNECTED (nothing is
 * queued: after `reconnected` the app decides again, on the reconciled state). A request in
 * flight when the connection drops rejects with DISCONNECTED too; the server may or may not have
 * applied it, and the reconnect tells which (`stageStatusUpdate` with `reconciled: true` if the
 * status is not the one the client knew). `join()` is the exception: it rides out the reconnect.
 */
import { StagegateError } from '../shared/errors.js';
import type { RequestMethod, Responses } from '../shared/protocol.js';
import type { AccessRequest, BatchResult, MediaSource, RoomSettings, StageMode, StageStatus } from '../shared/stage.js';
import type { Publisher } from './Publisher.js';
import type { RequestArgs, Signaling } from './Signaling.js';
import { TypedEmitter, type Listener } from './TypedEmitter.js';
import type { ConnectionState, StageEvents } from './types.js';

/** What the stage reads from its meeting. */
export interface StageHost {
  status(): StageStatus;
  selfId(): string;
  mode(): StageMode;
  connectionState(): ConnectionState;
  /** Resolves true once connected (at once if already), false if the meeting ends first. */
  whenConnected(): Promise<boolean>;
}

export class MeetingStage {
  #position: number | undefined;
  #queueLength: number | undefined;
  #held = new Set<MediaSource>();
  #slotEndsAt: number | undefined;

  /** @internal Created by the meeting, which emits the server's stage notifications through `events`. */
  constructor(
    private readonly host: StageHost,
    private readonly signaling: Signaling,
    private readonly publisher: Publisher,
    private readonly events: TypedEmitter<StageEvents>,
    initial: { held: MediaSource[]; slotEndsAt?: number | undefined },
  ) {
    this.resync(initial);
    // registered first: the state is up to date when the app's listeners run
    events.on('stageRequestPosition', ({ position, queueLength }) => {
      this.#position = position;
      this.#queueLength = queueLength;
    });
    events.on('stageStatusUpdate', (e) => {
      if (e.new !== 'REQUESTED_TO_JOIN_STAGE') this.#position = this.#queueLength = undefined;
      if (e.new !== 'ON_STAGE') this.#slotEndsAt = undefined;
    });
    events.on('mutedByHost', (e) => {
      if (e.userId !== host.selfId()) return;
      for (const s of e.sources) {
        this.#held.add(s);
        // paused here too (no uplink), and still paused when allowed: the owner resumes
        this.publisher.setPaused(s, true);
      }
    });
    events.on('unmuteAllowed', (e) => {
      if (e.userId === host.selfId()) for (const s of e.sources) this.#held.delete(s);
    });
    events.on('stageSlotUpdate', (e) => {
      if (e.userId === host.selfId()) this.#slotEndsAt = e.endsAt ?? undefined;
    });
  }

  /** @internal After a reconnect: our holds and slot as the server's snapshot has them. */
  resync(state: { held: MediaSource[]; slotEndsAt?: number | undefined }): void {
    this.#held = new Set(state.held);
    this.#slotEndsAt = state.slotEndsAt;
    if (this.host.status() !== 'REQUESTED_TO_JOIN_STAGE') this.#position = this.#queueLength = undefined;
  }

  /** Our place in the queue (1 is next) while our request is pending; else undefined. */
  get position(): number | undefined {
    return this.#position;
  }

  /** How many requests are pending, as last told to us while ours is pending; else undefined. */
  get queueLength(): number | undefined {
    return this.#queueLength;
  }

  /** Our sources a host holds: resuming them is refused (FORBIDDEN) until a host allows it. */
  get held(): readonly MediaSource[] {
    return [...this.#held];
  }

  /** Epoch ms when our turn on stage ends (a room with `slotSeconds`), or undefined. */
  get slotEndsAt(): number | undefined {
    return this.#slotEndsAt;
  }

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
    return (await this.#request('stage.getAccessRequests')).requests;
  }

  /**
   * Ask to join the stage. Resolves with the new status: REQUESTED_TO_JOIN_STAGE, or
   * ACCEPTED_TO_JOIN_STAGE for a caller who may join directly (preset ALLOWED, or OPEN mode).
   */
  async requestAccess(): Promise<StageStatus> {
    const answer = await this.#request('stage.requestAccess');
    if (answer.position !== undefined && answer.status === 'REQUESTED_TO_JOIN_STAGE') {
      this.#position = answer.position;
      this.#queueLength = answer.queueLength;
    }
    return answer.status;
  }

  /** Withdraw a pending request. */
  async cancelRequestAccess(): Promise<StageStatus> {
    return (await this.#request('stage.cancelRequestAccess')).status;
  }

  /** Accept requests, or invite users who did not request (needs acceptStageRequests). Per-user results. */
  async grantAccess(userIds: string[]): Promise<BatchResult> {
    return (await this.#request('stage.grantAccess', { userIds })).results;
  }

  /** Reject pending requests (needs acceptStageRequests). Per-user results. */
  async denyAccess(userIds: string[]): Promise<BatchResult> {
    return (await this.#request('stage.denyAccess', { userIds })).results;
  }

  /**
   * Go on stage. Resolves once the server accepted AND the local tracks are published; rejects
   * if either fails (the status may then be ON_STAGE with fewer producers than wanted: see the
   * `mediaError` event, and `leave()` to step down).
   *
   * A drop of the connection during `join()` does not decide it: it waits for the reconnect, then
   * resolves if the server's snapshot says ON_STAGE (and the tracks were published again), and
   * rejects with DISCONNECTED if not (the server never got the request: call `join()` again) or
   * if the meeting could not reconnect.
   */
  async join(): Promise<void> {
    this.#assertConnected('stage.join');
    try {
      const joined = this.signaling.request('stage.join');
      this.publisher.joining(); // the prepared camera's produce, right behind it on the socket
      await joined;
    } catch (err) {
      if (!(await this.#onStageAfterDrop(err))) throw err;
    }
    try {
      await this.publisher.settled();
    } catch (err) {
      if (!(await this.#onStageAfterDrop(err))) throw err;
      await this.publisher.settled(); // the publish that followed the reconnect
    }
  }

  /** Leave the stage, or decline an invite / an accepted request. Local producers are closed when it resolves. */
  async leave(): Promise<void> {
    await this.#request('stage.leave');
    await this.publisher.settled().catch(() => undefined);
  }

  /** Take users off stage (needs kickParticipant). Per-user results. */
  async kick(userIds: string[]): Promise<BatchResult> {
    return (await this.#request('stage.kick', { userIds })).results;
  }

  /** Change the room's stage mode (needs acceptStageRequests). Resolves with the mode now in force. */
  async setMode(mode: StageMode): Promise<StageMode> {
    return (await this.#request('stage.setMode', { mode })).mode;
  }

  /**
   * Change room settings (needs acceptStageRequests), e.g. `{ audience: 'visible' }`. Resolves
   * with the settings now in force; everyone gets `roomSettingsUpdate`.
   */
  async setSettings(change: Partial<RoomSettings>): Promise<RoomSettings> {
    return (await this.#request('stage.setSettings', change)).settings;
  }

  /** Hold (mute) these sources of these users on the server (needs kickParticipant). Per-user results. */
  async mute(userIds: string[], sources: MediaSource[]): Promise<BatchResult> {
    return (await this.#request('stage.mute', { userIds, sources })).results;
  }

  /** Ask the hosts to allow a held source of ours again (`unmuteAllowed` answers). */
  async requestUnmute(source: MediaSource): Promise<void> {
    await this.#request('stage.requestUnmute', { source });
  }

  /** Lift holds (needs kickParticipant); the owners resume by themselves. Per-user results. */
  async allowUnmute(userIds: string[], sources: MediaSource[]): Promise<BatchResult> {
    return (await this.#request('stage.allowUnmute', { userIds, sources })).results;
  }

  /** Remove users from the room (needs kickParticipant); `ban`: refused until the backend unbans. */
  async removeFromRoom(userIds: string[], opts: { ban?: boolean } = {}): Promise<BatchResult> {
    const data = opts.ban === undefined ? { userIds } : { userIds, ban: opts.ban };
    return (await this.#request('stage.removeFromRoom', data)).results;
  }

  /**
   * Mute: pause our published `source` on the server (nobody receives it; their consumers get no
   * bytes) and here (the track is disabled), until `resumeSource`. Stays paused across a
   * reconnect. Rejects NOT_FOUND when the source is not published.
   */
  async pauseSource(source: MediaSource): Promise<void> {
    await this.#request('pauseProducer', { producerId: this.#producerOf(source) });
    this.publisher.setPaused(source, true);
  }

  /**
   * Unmute: resume our published `source`. Refused FORBIDDEN while a host holds it (`held`): ask
   * with `requestUnmute`, and resume after `unmuteAllowed`.
   */
  async resumeSource(source: MediaSource): Promise<void> {
    await this.#request('resumeProducer', { producerId: this.#producerOf(source) });
    this.publisher.setPaused(source, false);
  }

  /** Whether we paused our published `source` (`pauseSource`); undefined when it is not published. */
  isPaused(source: MediaSource): boolean | undefined {
    return this.publisher.isPaused(source);
  }

  /**
   * Switch the device of a published source (`'audio'`, `'video'`): the producer stays, viewers
   * keep receiving, now from `track` (the caller's: never stopped by the client).
   */
  async replaceTrack(source: MediaSource, track: MediaStreamTrack): Promise<void> {
    await this.publisher.replaceTrack(source, track);
  }

  /**
   * Share a screen while ON_STAGE: publishes `track` (e.g. from getDisplayMedia) as source
   * `'screenshare'` (refused FORBIDDEN unless the preset allows it). The track stays the
   * caller's; `stopScreenShare()` ends the share, leaving the stage ends it too.
   */
  async shareScreen(track: MediaStreamTrack): Promise<void> {
    this.#assertConnected('produce');
    await this.publisher.publishSource(track, 'screenshare');
  }

  /** Stop sharing the screen (nothing if not sharing). */
  async stopScreenShare(): Promise<void> {
    await this.publisher.unpublishSource('screenshare');
  }

  #producerOf(source: MediaSource): string {
    for (const p of this.publisher.producers.values()) if (p.source === source) return p.id;
    throw new StagegateError('NOT_FOUND', `${source} is not published`);
  }

  /** Lengthen a running stage slot by `seconds` (needs acceptStageRequests). Resolves with the new end. */
  async extendSlot(userId: string, seconds: number): Promise<number> {
    return (await this.#request('stage.extendSlot', { userId, seconds })).endsAt;
  }

  async #request<M extends RequestMethod>(method: M, ...args: RequestArgs<M>): Promise<Responses[M]> {
    this.#assertConnected(method);
    return this.signaling.request(method, ...args);
  }

  #assertConnected(method: RequestMethod): void {
    if (this.host.connectionState() === 'reconnecting') {
      throw new StagegateError('DISCONNECTED', `${method}: reconnecting; try again after "reconnected"`);
    }
  }

  /** `err` is the connection dropping, the meeting got it back, and the server has us ON_STAGE. */
  async #onStageAfterDrop(err: unknown): Promise<boolean> {
    const dropped = this.host.connectionState() !== 'connected' || (err as { code?: unknown })?.code === 'DISCONNECTED';
    if (!dropped || !(await this.host.whenConnected())) return false;
    return this.host.status() === 'ON_STAGE';
  }
}
