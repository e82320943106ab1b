/**
 * Tells clients what the stage did, with the STAGE.md event names: the participant concerned,
 * the hosts (acceptStageRequests, one socket.io room: one emit), or everyone who can see the
 * participant (`Audience`: in a `hidden` room an audience member's status goes to the hosts
 * only). Media gating is not here: Room closes the producers in its own listener, registered
 * first, so nobody hears a stage exit before it took effect.
 */
import type { NotificationName, Notifications } from '../../shared/protocol.js';
import type { Logger } from '../logger.js';
import type { Stage } from '../stage/Stage.js';
import type { Audience } from './Audience.js';
import type { Participant } from './Participant.js';
import type { RoomChannel } from './Room.js';

export function forwardStageEvents(
  stage: Stage,
  participants: ReadonlyMap<string, Participant>,
  channel: RoomChannel,
  audience: Audience,
  log: Logger,
): void {
  const toUser = <N extends NotificationName>(userId: string, name: N, data: Notifications[N]) =>
    participants.get(userId)?.session.notify(name, data);
  const toHosts = <N extends NotificationName>(name: N, data: Notifications[N], exceptUserId?: string) =>
    channel.toGroup('hosts', name, data, exceptUserId);

  stage.on('statusChanged', ({ userId, from, to, reason, by }) => {
    log.info({ userId, from, to, reason, by }, 'stage status changed');
    // A member's first status is in their joinRoom snapshot and everyone's participantJoined.
    if (reason === 'join-room') return;
    toUser(userId, 'stageStatusUpdate', by ? { old: from, new: to, by } : { old: from, new: to });
    const p = participants.get(userId);
    if (p) audience.statusChanged(p, from, to, reason === 'leave-room');
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
}
