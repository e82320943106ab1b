/**
 * Tells clients what the stage did, with the STAGE.md event names: the participant concerned,
 * the hosts (acceptStageRequests, one socket.io room: one emit), or everyone who can see the
 * participant (`Audience`: in a `hidden` room an audience member's status goes to the hosts
 * only). Media gating is not here: Room closes the producers in its own listener, registered
 * first, so nobody hears a stage exit before it took effect.
 *
 * Part 2: holds go to their owner and the hosts; unmute requests to the hosts; slot ends (on
 * stage people only, whom everyone sees) to everyone, their warning to the owner and the hosts;
 * queue positions to each requester alone (`QueueTeller`), never to anyone else.
 */
import type { NotificationName, Notifications } from '../../shared/protocol.js';
import type { Logger } from '../logger.js';
import { BACKEND_ACTOR, type Stage } from '../stage/Stage.js';
import type { Audience } from './Audience.js';
import type { Participant } from './Participant.js';
import type { RoomChannel } from './Room.js';

/** The shortest time between two queue-length-only `stageRequestPosition` notices of one room. */
export const QUEUE_LENGTH_INTERVAL_MS = 1000;

export function forwardStageEvents(
  stage: Stage,
  participants: ReadonlyMap<string, Participant>,
  channel: RoomChannel,
  audience: Audience,
  log: Logger,
): QueueTeller {
  const toUser = <N extends NotificationName>(userId: string, name: N, data: Notifications[N]) =>
    participants.get(userId)?.session.notify(name, data);
  const toHosts = <N extends NotificationName>(name: N, data: Notifications[N], exceptUserId?: string) =>
    channel.toGroup('hosts', name, data, exceptUserId);
  /** To `userId` and the hosts, once each (a host owner is not told twice). */
  const toOwnerAndHosts = <N extends NotificationName>(userId: string, name: N, data: Notifications[N]) => {
    toUser(userId, name, data);
    toHosts(name, data, userId);
  };

  stage.on('statusChanged', ({ userId, from, to, reason, by }) => {
    log.info({ userId, from, to, reason, by }, 'stage status changed');
    // A member's first status is in their joinRoom snapshot and everyone's participantJoined.
    if (reason === 'join-room') return;
    toUser(userId, 'stageStatusUpdate', by ? { old: from, new: to, by } : { old: from, new: to });
    const p = participants.get(userId);
    if (p) audience.statusChanged(p, from, to, reason === 'leave-room' || reason === 'removed-from-room');
  });
  stage.on('requestsChanged', (requests) => toHosts('stageAccessRequestUpdate', { requests }));
  stage.on('newRequest', (request) => toHosts('newStageRequest', { request }));
  stage.on('requestApproved', ({ userId, by, invited }) => {
    toUser(userId, 'stageAccessRequestAccepted', { by, invited });
    toHosts('stageRequestApproved', { userId, by, invited });
  });
  stage.on('requestRejected', (e) => {
    toUser(e.userId, 'stageRequestRejected', e);
    toHosts('stageRequestRejected', e, e.userId);
  });
  stage.on('removed', ({ userId, by }) => toUser(userId, 'removedFromStage', { by }));
  stage.on('modeChanged', ({ mode, by }) => channel.toAll('stageModeUpdate', { mode, by }));
  stage.on('mutedByHost', (e) => toOwnerAndHosts(e.userId, 'mutedByHost', e));
  stage.on('unmuteRequested', (e) => toHosts('unmuteRequested', e, e.userId));
  stage.on('unmuteAllowed', (e) => toOwnerAndHosts(e.userId, 'unmuteAllowed', e));
  stage.on('removedFromRoom', (e) => {
    log.info(e, 'removed from the room');
    toHosts('participantRemoved', e, e.userId);
  });
  // slots run only while ON_STAGE: a stage person, whom everyone sees
  stage.on('slotChanged', (e) => channel.toAll('stageSlotUpdate', e));
  stage.on('stageSlotEnding', (e) => toOwnerAndHosts(e.userId, 'stageSlotEnding', e));
  const queue = new QueueTeller(stage, participants);
  stage.on('requestPositionsChanged', (e) => queue.changed(e));
  return queue;
}

/**
 * `stageRequestPosition` to each requester, and to nobody else: at once to those whose position
 * changed; a change of the queue length alone reaches the others at most once a second (one
 * timer per room; the numbers are read when it fires).
 */
export class QueueTeller {
  /** What each requester was last told. */
  readonly #told = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #sentAt = -Infinity;
  #closed = false;

  constructor(
    private readonly stage: Stage,
    private readonly participants: ReadonlyMap<string, Participant>,
    private readonly intervalMs = QUEUE_LENGTH_INTERVAL_MS,
  ) {}

  /** `userId`'s request was answered with this place (the answer tells it: no notice needed). */
  answered(userId: string, place: { position?: number; queueLength?: number }): void {
    if (place.position !== undefined) this.#told.set(userId, `${place.position}/${place.queueLength}`);
  }

  changed(e: { queueLength: number; changed: Array<{ userId: string; position: number }> }): void {
    for (const { userId, position } of e.changed) this.#tell(userId, position, e.queueLength);
    if (this.#timer || this.#closed) return;
    const delay = Math.max(0, this.#sentAt + this.intervalMs - performance.now());
    this.#timer = setTimeout(() => this.#flush(), delay);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    this.#sentAt = performance.now();
    const queue = this.stage.getAccessRequests(BACKEND_ACTOR);
    const waiting = new Set(queue.map((r) => r.userId));
    for (const userId of this.#told.keys()) if (!waiting.has(userId)) this.#told.delete(userId);
    queue.forEach((r, i) => this.#tell(r.userId, i + 1, queue.length));
  }

  #tell(userId: string, position: number, queueLength: number): void {
    const key = `${position}/${queueLength}`;
    if (this.#told.get(userId) === key) return;
    this.#told.set(userId, key);
    this.participants.get(userId)?.session.notify('stageRequestPosition', { position, queueLength });
  }
}
