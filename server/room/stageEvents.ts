/**
 * Tells clients what the stage did, with the STAGE.md event names: the participant concerned,
 * the hosts (acceptStageRequests), or the whole room. Media gating is not here: Room closes the
 * producers in its own listener, registered first, so nobody hears a stage exit before it took
 * effect.
 */
import type { NotificationName, Notifications } from '../../shared/protocol.js';
import type { Logger } from '../logger.js';
import type { Stage } from '../stage/Stage.js';
import type { Participant } from './Participant.js';
import type { RoomChannel } from './Room.js';

export function forwardStageEvents(
  stage: Stage,
  participants: ReadonlyMap<string, Participant>,
  channel: RoomChannel,
  log: Logger,
): void {
  const hosts = () => [...participants.values()].filter((p) => p.preset.acceptStageRequests);
  const toUser = <N extends NotificationName>(userId: string, name: N, data: Notifications[N]) =>
    participants.get(userId)?.session.notify(name, data);
  const toHosts = <N extends NotificationName>(name: N, data: Notifications[N]) => {
    for (const h of hosts()) h.session.notify(name, data);
  };

  stage.on('statusChanged', ({ userId, from, to, reason, by }) => {
    log.info({ userId, from, to, reason, by }, 'stage status changed');
    // A member's first status is in their joinRoom snapshot and everyone's participantJoined.
    if (reason === 'join-room') return;
    toUser(userId, 'stageStatusUpdate', by ? { old: from, new: to, by } : { old: from, new: to });
    channel.toAll('peerStageStatusUpdate', { userId, old: from, new: to }, userId);
  });
  stage.on('requestsChanged', (requests) => toHosts('stageAccessRequestUpdate', { requests }));
  stage.on('newRequest', (request) => toHosts('newStageRequest', { request }));
  stage.on('requestApproved', ({ userId, by, invited }) => {
    toUser(userId, 'stageAccessRequestAccepted', { by, invited });
    toHosts('stageRequestApproved', { userId, by, invited });
  });
  stage.on('requestRejected', (e) => {
    toUser(e.userId, 'stageRequestRejected', e);
    for (const h of hosts()) if (h.id !== e.userId) h.session.notify('stageRequestRejected', e);
  });
  stage.on('removed', ({ userId, by }) => toUser(userId, 'removedFromStage', { by }));
  stage.on('modeChanged', ({ mode, by }) => channel.toAll('stageModeUpdate', { mode, by }));
}
