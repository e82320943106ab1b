/**
 * Media moderation holds (STAGE.md Part 2, "Media moderation"): which sources of which member a
 * host has held, and which held sources their owner asked to have allowed again. Pure state,
 * no events: Stage.ts checks permissions, calls these and tells listeners.
 */
import { MEDIA_SOURCES } from '../../shared/stage.js';
import type { MediaSource } from '../../shared/stage.js';
import { refuse } from './stageRules.js';

/** Runtime guard for a source that came over the wire. */
export function isMediaSource(value: unknown): value is MediaSource {
  return typeof value === 'string' && (MEDIA_SOURCES as readonly string[]).includes(value);
}

/** A non-empty list of known sources, deduplicated, in MEDIA_SOURCES order; else INVALID_REQUEST. */
export function parseSources(sources: unknown): MediaSource[] {
  if (!Array.isArray(sources) || sources.length === 0)
    throw refuse('INVALID_REQUEST', 'sources must be a non-empty array');
  for (const s of sources) {
    if (!isMediaSource(s)) throw refuse('INVALID_REQUEST', `unknown media source ${String(s)}`);
  }
  return MEDIA_SOURCES.filter((s) => sources.includes(s));
}

/** Holds as JSON: per member, the held sources and those of them they asked to unmute. */
export type HoldsState = { userId: string; held: MediaSource[]; asked: MediaSource[] }[];

export class Holds {
  /** userId → held sources. An entry exists only while non-empty. */
  private readonly held = new Map<string, Set<MediaSource>>();
  /** userId → held sources whose owner asked to unmute. Always a subset of `held`. */
  private readonly asked = new Map<string, Set<MediaSource>>();

  isHeld(userId: string, source: MediaSource): boolean {
    return this.held.get(userId)?.has(source) ?? false;
  }

  isAsked(userId: string, source: MediaSource): boolean {
    return this.asked.get(userId)?.has(source) ?? false;
  }

  /** The held sources of `userId`, in MEDIA_SOURCES order. */
  heldOf(userId: string): MediaSource[] {
    return ordered(this.held.get(userId));
  }

  /** The held sources `userId` asked to unmute, in MEDIA_SOURCES order. */
  askedOf(userId: string): MediaSource[] {
    return ordered(this.asked.get(userId));
  }

  /** Hold `sources`; returns those that were not held before. */
  hold(userId: string, sources: readonly MediaSource[]): MediaSource[] {
    const set = this.held.get(userId) ?? new Set<MediaSource>();
    const added = sources.filter((s) => !set.has(s));
    for (const s of added) set.add(s);
    if (set.size > 0) this.held.set(userId, set);
    return added;
  }

  /** Lift the holds on `sources` (and any unmute request for them); returns those that were held. */
  lift(userId: string, sources: readonly MediaSource[]): MediaSource[] {
    const set = this.held.get(userId);
    if (!set) return [];
    const lifted = sources.filter((s) => set.has(s));
    for (const s of lifted) {
      set.delete(s);
      this.asked.get(userId)?.delete(s);
    }
    this.prune(userId);
    return lifted;
  }

  /** Record that the owner asked to unmute a held source. */
  ask(userId: string, source: MediaSource): void {
    const set = this.asked.get(userId) ?? new Set<MediaSource>();
    set.add(source);
    this.asked.set(userId, set);
  }

  /** End every pending unmute request of `userId` (they left the stage); the holds stay. */
  dropRequests(userId: string): void {
    this.asked.delete(userId);
  }

  /** Forget everything about `userId` (they left the room). */
  forget(userId: string): void {
    this.held.delete(userId);
    this.asked.delete(userId);
  }

  /** Every member's holds, as JSON (`Stage.toState`). */
  toJSON(): HoldsState {
    return [...this.held.keys()].map((userId) => ({
      userId,
      held: this.heldOf(userId),
      asked: this.askedOf(userId),
    }));
  }

  /** Adds the holds of `toJSON()` (a takeover); unknown sources are dropped, asks kept only on held sources. */
  load(state: HoldsState): void {
    for (const { userId, held, asked } of state) {
      this.hold(userId, held.filter(isMediaSource));
      for (const s of asked) if (this.isHeld(userId, s)) this.ask(userId, s);
    }
  }

  private prune(userId: string): void {
    if (this.held.get(userId)?.size === 0) this.held.delete(userId);
    if (this.asked.get(userId)?.size === 0) this.asked.delete(userId);
  }
}

function ordered(set: ReadonlySet<MediaSource> | undefined): MediaSource[] {
  return set ? MEDIA_SOURCES.filter((s) => set.has(s)) : [];
}
