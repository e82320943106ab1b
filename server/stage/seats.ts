/**
 * Seats, time and the queue (STAGE.md Part 2): the pure arithmetic of stage slots and request
 * cool-downs. No events and no timers: Stage.ts decides when these apply and tells listeners.
 */
import type { Preset } from '../../shared/stage.js';

/** The actor of what the room's settings do by themselves: auto-fill grants, lapsed acceptances, ended slots. */
export const AUTO_ACTOR = '@auto';

/** Longest warning before a slot ends; shorter slots are warned at a quarter of their length. */
export const MAX_SLOT_WARNING_MS = 30_000;

/** A host (holder of `acceptStageRequests`) takes no seat, has no slot and is never auto-granted a seat. */
export function isHost(preset: Preset): boolean {
  return preset.acceptStageRequests;
}

/** One non-host's turn on stage. */
export interface Slot {
  /** Epoch ms when the server moves them off stage. */
  endsAt: number;
  /** How long before `endsAt` the warning is due: min(30 s, slot length / 4), fixed when the turn starts. */
  leadMs: number;
  /** The warning for the current `endsAt` was given. */
  warned: boolean;
}

/** A turn of `slotSeconds` starting at `now`. */
export function newSlot(now: number, slotSeconds: number): Slot {
  const ms = slotSeconds * 1000;
  return { endsAt: now + ms, leadMs: Math.min(MAX_SLOT_WARNING_MS, ms / 4), warned: false };
}

/** When the warning of `slot` is due. */
export function slotWarningAt(slot: Slot): number {
  return slot.endsAt - slot.leadMs;
}

/** The slot `seconds` longer; warned again later if its new warning time is still ahead. */
export function extendedSlot(slot: Slot, seconds: number, now: number): Slot {
  const next = { ...slot, endsAt: slot.endsAt + seconds * 1000 };
  next.warned = slot.warned && slotWarningAt(next) <= now;
  return next;
}

/**
 * Request cool-downs per user id, kept across leaving and rejoining the room (else a reconnect would
 * skip them). Stores when the cool-down started; its length is the room's current
 * `requestCooldownSeconds`, so lowering the setting (to 0) frees everyone at once.
 */
export class Cooldowns {
  /** `userId` → when its cool-down ends (fixed when it starts: a later settings change applies to later ones). */
  private readonly until = new Map<string, number>();

  /**
   * Start a cool-down for `userId` (nothing when the setting is 0). Expired entries are dropped.
   * `now` is read only when needed: with the default settings the clock is never read here.
   */
  start(userId: string, clock: () => number, seconds: number): void {
    if (seconds <= 0) return;
    const now = clock();
    for (const [id, end] of this.until) if (end <= now) this.until.delete(id);
    this.until.set(userId, now + seconds * 1000);
  }

  /** The running cool-downs as `[userId, endsAt]` (`Stage.toState`); expired ones are left out. */
  toJSON(clock: () => number): [string, number][] {
    if (this.until.size === 0) return [];
    const now = clock();
    return [...this.until].filter(([, end]) => end > now);
  }

  /** Adds the cool-downs of `toJSON()` (a takeover). */
  load(entries: readonly (readonly [string, number])[]): void {
    for (const [userId, end] of entries) this.until.set(userId, end);
  }

  /** Ends every cool-down (the setting switched to 0). */
  clear(): void {
    this.until.clear();
  }

  /** Milliseconds left before `userId` may request again; 0 when free (the clock is read only for a cooling user). */
  leftMs(userId: string, clock: () => number): number {
    const end = this.until.get(userId);
    if (end === undefined) return 0;
    const left = end - clock();
    if (left > 0) return left;
    this.until.delete(userId);
    return 0;
  }
}

/** A deadline the Stage acts on in `tick()`. */
export interface Due {
  at: number;
  kind: 'slot-warning' | 'slot-end' | 'accept-timeout';
  userId: string;
}

/** The deadlines as JSON: absolute epoch ms, so another node continues the same turns. */
export interface TimetableState {
  slots: ({ userId: string } & Slot)[];
  /** `[userId, when @auto accepted them]`. */
  autoAccepted: [string, number][];
}

/**
 * Everything with a deadline: the turns of non-hosts on stage and the acceptances made by `@auto`
 * (which lapse). Small (about `stageCap` entries), so scanning it for the next deadline is cheap.
 */
export class Timetable {
  /** userId → the turn of an ON_STAGE non-host (only while `slotSeconds` is set). */
  private readonly slots = new Map<string, Slot>();
  /** userId → when `@auto` accepted them; dropped when they leave ACCEPTED. */
  private readonly autoAccepted = new Map<string, number>();

  slot(userId: string): Slot | undefined {
    return this.slots.get(userId);
  }

  setSlot(userId: string, slot: Slot): void {
    this.slots.set(userId, slot);
  }

  /** End a turn; true when there was one. */
  endSlot(userId: string): boolean {
    return this.slots.delete(userId);
  }

  /** The users with a running turn. */
  slotUsers(): string[] {
    return [...this.slots.keys()];
  }

  autoAccept(userId: string, at: number): void {
    this.autoAccepted.set(userId, at);
  }

  dropAutoAccept(userId: string): void {
    this.autoAccepted.delete(userId);
  }

  forget(userId: string): void {
    this.slots.delete(userId);
    this.autoAccepted.delete(userId);
  }

  /** The turns and `@auto` acceptances with their absolute times (`Stage.toState`). */
  toJSON(): TimetableState {
    return {
      slots: [...this.slots].map(([userId, slot]) => ({ userId, ...slot })),
      autoAccepted: [...this.autoAccepted],
    };
  }

  /** Adds the deadlines of `toJSON()` (a takeover): the same epoch times, so turns go on where they were. */
  load(state: TimetableState): void {
    for (const { userId, endsAt, leadMs, warned } of state.slots) this.slots.set(userId, { endsAt, leadMs, warned });
    for (const [userId, at] of state.autoAccepted) this.autoAccepted.set(userId, at);
  }

  /** The earliest deadline; an `@auto` acceptance lapses `acceptTimeoutMs` after it was made. */
  next(acceptTimeoutMs: number): Due | undefined {
    let best: Due | undefined;
    const consider = (at: number, kind: Due['kind'], userId: string): void => {
      if (!best || at < best.at) best = { at, kind, userId };
    };
    for (const [userId, slot] of this.slots) {
      if (slot.warned) consider(slot.endsAt, 'slot-end', userId);
      else consider(slotWarningAt(slot), 'slot-warning', userId);
    }
    for (const [userId, at] of this.autoAccepted) consider(at + acceptTimeoutMs, 'accept-timeout', userId);
    return best;
  }
}
