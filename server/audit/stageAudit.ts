/** Audit records for what the Stage did: every status change with its cause, mode, settings, holds, removals, slots. */
import { AUTO_ACTOR, type Stage } from '../stage/Stage.js';
import type { AuditEntry } from './AuditTrail.js';

export function auditStage(stage: Stage, record: (entry: AuditEntry) => void): void {
  let mode = stage.mode;
  stage.on('statusChanged', ({ userId, from, to, reason, by }) => {
    // a member's first status is in their participant.joined record
    if (reason !== 'join-room')
      record({ actor: by ?? userId, action: 'stage.status', target: userId, from, to, reason });
  });
  stage.on('modeChanged', ({ mode: to, by }) => {
    record({ actor: by, action: 'stage.mode', from: mode, to });
    mode = to;
  });
  stage.on('settingsChanged', ({ settings, changed, by }) =>
    record({ actor: by, action: 'settings.changed', details: { changed, settings } }),
  );
  stage.on('mutedByHost', ({ userId, by, sources }) =>
    record({ actor: by, action: 'media.held', target: userId, details: { sources } }),
  );
  stage.on('unmuteRequested', ({ userId, source }) =>
    record({ actor: userId, action: 'media.unmuteRequested', target: userId, details: { sources: [source] } }),
  );
  stage.on('unmuteAllowed', ({ userId, by, sources }) =>
    record({ actor: by, action: 'media.unmuteAllowed', target: userId, details: { sources } }),
  );
  stage.on('removedFromRoom', ({ userId, by, banned }) =>
    record({ actor: by, action: 'participant.removed', target: userId, ...(banned ? { reason: 'banned' } : {}) }),
  );
  stage.on('banned', ({ userId, by }) =>
    record({ actor: by, action: 'participant.banned', target: userId, reason: 'banned' }),
  );
  stage.on('unbanned', ({ userId, by }) => record({ actor: by, action: 'participant.unbanned', target: userId }));
  stage.on('slotChanged', ({ userId, endsAt, by }) =>
    record({ actor: by ?? AUTO_ACTOR, action: 'stage.slot', target: userId, details: { endsAt } }),
  );
}
