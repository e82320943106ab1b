/**
 * Who sees whom in a room (STAGE.md Part 2, "Audience: who sees whom").
 *
 * - Stage people (acceptStageRequests holders, ACCEPTED_TO_JOIN_STAGE, ON_STAGE) are seen by
 *   everyone: their arrival, departure and status changes go to the whole room.
 * - The audience (everyone else) is seen one by one only by the hosts (acceptStageRequests
 *   holders) when the room's `audience` setting is `hidden`; what concerns an audience member
 *   goes to the hosts (and to that member, on their own socket), so one viewer's action costs
 *   notifications to the hosts and to them, not to the whole room. Everyone gets the size of the
 *   audience as `audienceCount`, at most once a second and only when it changed.
 * - `visible`: everyone sees everyone, as in STAGE.md Part 1.
 *
 * Moving between audience and stage in a `hidden` room makes the participant appear to
 * (`participantJoined`) or disappear from (`participantLeft`) the roster of those who are not
 * hosts; hosts get the `peerStageStatusUpdate` they always get.
 */
import type { NotificationName, Notifications, ParticipantInfo } from '../../shared/protocol.js';
import { isStagePerson, type Preset, type RoomSettings, type StageStatus } from '../../shared/stage.js';
import type { Logger } from '../logger.js';
import type { Stage } from '../stage/Stage.js';
import type { Participant } from './Participant.js';

/** Who in a room a broadcast is for: everyone, the hosts, or everyone but the hosts. */
export type RoomGroup = 'all' | 'hosts' | 'others';

/** How the room reaches groups of participants at once (socket.io rooms in production). */
export interface GroupChannel {
  toGroup<N extends NotificationName>(group: RoomGroup, name: N, data: Notifications[N], exceptUserId?: string): void;
  /** Calls `fn` once what was queued so far has been sent (broadcasts may be coalesced until then). */
  afterSent?(fn: () => void): void;
}

/** The shortest time between two `audienceCount` notifications of one room. */
export const AUDIENCE_COUNT_INTERVAL_MS = 1000;

export class Audience {
  /** The count last sent, and when it left (queued, then updated once actually sent); the timer of the next one. */
  #sentCount: number | undefined;
  #sentAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly participants: ReadonlyMap<string, Participant>,
    private readonly stage: Stage,
    private readonly channel: GroupChannel,
    private readonly info: (p: Participant) => ParticipantInfo,
    private readonly log: Logger,
    private readonly intervalMs = AUDIENCE_COUNT_INTERVAL_MS,
  ) {
    // The room settings are the Stage's (one object): everyone is told each change.
    stage.on('settingsChanged', ({ settings, changed, by }) => this.#settingsChanged(settings, changed, by));
  }

  get settings(): RoomSettings {
    return this.stage.settings;
  }

  get hidden(): boolean {
    return this.stage.settings.audience === 'hidden';
  }

  /** Whether `p` is a stage person (at `status`, default their current one). */
  isStage(p: Participant, status: StageStatus | undefined = this.stage.get(p.id)?.status): boolean {
    return status !== undefined && isStagePerson(p.preset, status);
  }

  /** Whether a viewer with `viewerPreset` sees `p` one by one. */
  sees(viewerPreset: Preset, p: Participant): boolean {
    return !this.hidden || viewerPreset.acceptStageRequests || this.isStage(p);
  }

  /**
   * `p`'s name or preset changed (already set on `p`; `wasStage` under the old preset): those who
   * see `p` get `participantUpdated`; in a hidden room, a change between audience and stage
   * person makes `p` appear to or disappear from the others' roster.
   */
  identityChanged(p: Participant, wasStage: boolean): void {
    const is = this.isStage(p);
    const update = { userId: p.id, name: p.name, presetName: p.preset.name };
    if (!this.hidden || (wasStage && is)) {
      this.channel.toGroup('all', 'participantUpdated', update, p.id);
    } else {
      this.channel.toGroup('hosts', 'participantUpdated', update, p.id);
      if (!wasStage && is) this.channel.toGroup('others', 'participantJoined', { participant: this.info(p) }, p.id);
      if (wasStage && !is) this.channel.toGroup('others', 'participantLeft', { userId: p.id }, p.id);
    }
    if (wasStage !== is) this.changed();
  }

  /** Who is told about `p` (arrival, departure, status) while `p` is (or was) `stage` or not. */
  groupFor(stage: boolean): RoomGroup {
    return !this.hidden || stage ? 'all' : 'hosts';
  }

  /**
   * The count everyone was last told (the current count before the first one was sent). A
   * newcomer's snapshot carries this one, not the current count: if the count comes back to it
   * within the second, nothing more is sent, and a newcomer told the momentary count would keep
   * a number nobody else has.
   */
  announcedCount(): number {
    return this.#sentCount ?? this.count();
  }

  /** The audience: participants (connected or within their grace period) who are not stage people. */
  count(): number {
    let n = 0;
    for (const p of this.participants.values()) if (!this.isStage(p)) n++;
    return n;
  }

  /**
   * `p`'s status changed from `from` to `to` (not a room join): tells everyone who sees
   * them, and in a `hidden` room makes them appear to or disappear from the others' roster.
   */
  statusChanged(p: Participant, from: StageStatus, to: StageStatus, leavingRoom = false): void {
    const was = this.isStage(p, from);
    // leaving the room: still seen as they were until participantLeft (Room.leave) follows
    const is = leavingRoom ? was : this.isStage(p, to);
    const update = { userId: p.id, old: from, new: to };
    if (!this.hidden || (was && is)) {
      this.channel.toGroup('all', 'peerStageStatusUpdate', update, p.id);
    } else {
      this.channel.toGroup('hosts', 'peerStageStatusUpdate', update, p.id);
      if (!was && is) this.channel.toGroup('others', 'participantJoined', { participant: this.info(p) }, p.id);
      if (was && !is) this.channel.toGroup('others', 'participantLeft', { userId: p.id }, p.id);
    }
    if (was !== is) this.changed();
  }

  /**
   * Changes settings (acceptStageRequests holders and the backend; `Stage.setSettings` checks the
   * actor and the values, and applies seats, slots and cool-downs). Returns the settings now in force.
   */
  update(actorId: string, change: Partial<RoomSettings>): RoomSettings {
    return this.stage.setSettings(actorId, change);
  }

  /**
   * Everyone is told the new settings; switching `audience` shows or hides the audience in the
   * rosters of those who are not hosts.
   */
  #settingsChanged(settings: RoomSettings, changed: (keyof RoomSettings)[], by: string): void {
    this.log.info({ settings, changed, by }, 'room settings changed');
    this.channel.toGroup('all', 'roomSettingsUpdate', { settings, by });
    if (!changed.includes('audience')) return;
    for (const p of this.participants.values()) {
      if (this.isStage(p)) continue;
      if (this.hidden) this.channel.toGroup('others', 'participantLeft', { userId: p.id }, p.id);
      else this.channel.toGroup('others', 'participantJoined', { participant: this.info(p) }, p.id);
    }
  }

  /**
   * The audience may have changed size: send `audienceCount` to everyone, at most once per
   * interval and only if it differs from the last one sent. Every change until then is coalesced
   * into one per-room timer; the count is taken when it fires.
   */
  changed(): void {
    if (this.#timer || this.#closed) return;
    const delay = Math.max(0, this.#sentAt + this.intervalMs - performance.now());
    this.#timer = setTimeout(() => this.#sendCount(), delay);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #sendCount(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    // the last one may have left later than it was queued (a busy turn): a full interval on the wire
    const wait = this.#sentAt + this.intervalMs - performance.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => this.#sendCount(), wait);
      this.#timer.unref();
      return;
    }
    const count = this.count();
    if (count === this.#sentCount) return;
    this.#sentCount = count;
    this.#sentAt = performance.now();
    this.channel.toGroup('all', 'audienceCount', { count });
    this.channel.afterSent?.(() => (this.#sentAt = performance.now()));
  }
}
