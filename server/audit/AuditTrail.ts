/**
 * The audit trail (STAGE.md Part 2, "Audit trail and webhooks"): one record per effective change
 * of a room, `id` increasing per room (from 1), kept in memory with a bound per room (the oldest
 * go first), readable page by page (`list`), and handed to the webhook sender as it is made.
 * A refused action makes no record: records come from what actually changed (the Stage's events,
 * the room's joins, leaves and producers).
 */

/** One audit record. `actor`: a user id, `@backend` (the HTTP API), `@auto` (the Stage's own deadlines and auto-fill) or `@server`. */
export interface AuditRecord {
  /** Increasing per room, from 1, without gaps. */
  id: number;
  /** ISO 8601 time of the change. */
  at: string;
  roomId: string;
  actor: string;
  action: AuditAction;
  /** The user the change is about (when not the actor alone). */
  target?: string;
  from?: string;
  to?: string;
  /** Why: the stage change reason, the producer close reason, `banned`... */
  reason?: string;
  details?: Record<string, unknown>;
}

export type AuditAction =
  | 'room.created'
  | 'room.closed'
  | 'participant.joined'
  | 'participant.left'
  | 'participant.removed'
  | 'participant.banned'
  | 'participant.unbanned'
  | 'stage.status'
  | 'stage.mode'
  | 'stage.slot'
  | 'settings.changed'
  | 'media.held'
  | 'media.unmuteRequested'
  | 'media.unmuteAllowed'
  | 'producer.created'
  | 'producer.closed';

/** What a room reports; the trail adds `id`, `at` and `roomId`. */
export type AuditEntry = Omit<AuditRecord, 'id' | 'at' | 'roomId'>;

/** Records kept per room by default (the oldest are dropped beyond it; webhooks still got them). */
export const DEFAULT_AUDIT_RECORDS_PER_ROOM = 5000;
/** How long a closed room's trail stays readable (unless the room is created again meanwhile). */
export const CLOSED_ROOM_RETENTION_MS = 3_600_000;
/** The largest page of `list`. */
export const MAX_AUDIT_PAGE = 500;

export class AuditTrail {
  readonly #rooms = new Map<string, { next: number; records: AuditRecord[] }>();
  readonly #listeners: ((record: AuditRecord) => void)[] = [];

  constructor(
    private readonly perRoom = DEFAULT_AUDIT_RECORDS_PER_ROOM,
    private readonly now: () => number = Date.now,
    private readonly closedRetentionMs = CLOSED_ROOM_RETENTION_MS,
  ) {}

  /** Calls `listener` with every new record, in order (the webhook sender). */
  onRecord(listener: (record: AuditRecord) => void): void {
    this.#listeners.push(listener);
  }

  record(roomId: string, entry: AuditEntry): AuditRecord {
    let room = this.#rooms.get(roomId);
    if (!room) this.#rooms.set(roomId, (room = { next: 1, records: [] }));
    const record: AuditRecord = { id: room.next++, at: new Date(this.now()).toISOString(), roomId, ...entry };
    room.records.push(record);
    if (room.records.length > this.perRoom) room.records.splice(0, room.records.length - this.perRoom);
    for (const l of this.#listeners) l(record);
    if (entry.action === 'room.closed') {
      const trail = room;
      const timer = setTimeout(() => {
        // forgotten only if nothing happened since (a room created again with this id keeps it)
        if (this.#rooms.get(roomId) === trail && trail.records.at(-1) === record) this.#rooms.delete(roomId);
      }, this.closedRetentionMs);
      timer.unref();
    }
    return record;
  }

  /** Records of `roomId` with `id > after`, oldest first, at most `limit`; `next`: the `after` of the next page. */
  list(roomId: string, after = 0, limit = 100): { records: AuditRecord[]; next: number | null } {
    const all = this.#rooms.get(roomId)?.records ?? [];
    const n = Math.max(1, Math.min(MAX_AUDIT_PAGE, limit));
    const start = all.findIndex((r) => r.id > after);
    const records = start < 0 ? [] : all.slice(start, start + n);
    const more = start >= 0 && start + n < all.length;
    return { records, next: more ? records.at(-1)!.id : null };
  }

  /** The id the next record of `roomId` gets, or `undefined` when the room has no trail here. */
  nextId(roomId: string): number | undefined {
    return this.#rooms.get(roomId)?.next;
  }

  /**
   * Numbers the next records of `roomId` from `next` on, when that is ahead of this trail (cluster
   * mode: this node took the room over; the previous node's records stay with it).
   */
  continueFrom(roomId: string, next: number): void {
    if (!Number.isInteger(next) || next < 1) return;
    const room = this.#rooms.get(roomId);
    if (!room) this.#rooms.set(roomId, { next, records: [] });
    else if (room.next < next) room.next = next;
  }

  /** Whether any record of `roomId` is kept (a closed room's trail stays readable until `forget`). */
  has(roomId: string): boolean {
    return this.#rooms.has(roomId);
  }

  /** Drops a room's trail (a room created again with the same id keeps counting ids up, unless forgotten). */
  forget(roomId: string): void {
    this.#rooms.delete(roomId);
  }
}
