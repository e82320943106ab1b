/**
 * Receives every on-stage producer: `consume` → local consumer → `resumeConsumer` (the server
 * creates consumers paused) → `trackAdded`. A close (`producerClosed`, `consumerClosed`, the
 * owner leaving) closes the local consumer → `trackRemoved` (only if `trackAdded` was emitted).
 *
 * Work is serialized per producer: the close of a producer whose consume is in flight runs after
 * it, and the in-flight consume checks the `closed` flag at every step, so no consumer leaks and
 * no `trackAdded` follows a `trackRemoved`.
 */
import type { types } from 'mediasoup-client';
import type { StagegateError } from '../shared/errors.js';
import type { ProducerInfo } from '../shared/protocol.js';
import { toStagegateError } from './errors.js';
import type { MediaSession, VideoPreferences } from './MediaSession.js';
import type { TrackAddedEvent, TrackRemovedEvent } from './types.js';

export interface SubscriberDeps {
  media: MediaSession;
  /** Resolves once the (current) recv transport exists. */
  ready: () => Promise<unknown>;
  onAdded: (e: TrackAddedEvent) => void;
  onRemoved: (e: TrackRemovedEvent) => void;
  onError: (error: StagegateError, producerId: string) => void;
}

interface Entry {
  readonly info: ProducerInfo;
  closed: boolean;
  consumer: types.Consumer | undefined;
  /** `trackAdded` was emitted: `trackRemoved` is owed. */
  added: boolean;
  tail: Promise<void>;
  /** The preferences last sent for this consumer (JSON), to skip repeats. */
  sent: string;
}

export class Subscriber {
  readonly #deps: SubscriberDeps;
  readonly #entries = new Map<string, Entry>();
  /** Producers already closed: a late (replayed) `newProducer` for one of them is ignored. */
  readonly #gone = new Set<string>();
  /** Consumers being closed by `reset()`, by producer id: a new consume of the same producer waits. */
  readonly #closing = new Map<string, Promise<void>>();
  /** How the app shows each producer's video (size, visibility), by producer id; kept across resets. */
  readonly #prefs = new Map<string, VideoPreferences>();
  /** Preferences of every video that has none of its own yet (see `setDefaultPreferences`). */
  #defaults: VideoPreferences = {};
  #closed = false;

  constructor(deps: SubscriberDeps) {
    this.#deps = deps;
  }

  /** Start receiving a producer. Idempotent. */
  add(info: ProducerInfo): void {
    if (this.#closed || this.#entries.has(info.id) || this.#gone.has(info.id)) return;
    // After a reset the same producer may come back (its owner kept it): trackRemoved of the old
    // consumer comes before trackAdded of the new one.
    const tail = this.#closing.get(info.id) ?? Promise.resolve();
    const entry: Entry = { info, closed: false, consumer: undefined, added: false, tail, sent: '' };
    this.#entries.set(info.id, entry);
    this.#run(entry, () => this.#consume(entry));
  }

  /**
   * How the app shows a producer's video: merged into what was set before, sent to the server
   * for its consumer now, or right after the consumer is created (before it is resumed, so a
   * hidden tile never starts). Sizes in device pixels.
   */
  setPreferences(producerId: string, prefs: VideoPreferences): void {
    if (this.#closed || this.#gone.has(producerId)) return;
    const merged = { ...this.#prefs.get(producerId), ...prefs };
    this.#prefs.set(producerId, merged);
    const entry = this.#entries.get(producerId);
    if (entry && !entry.closed && entry.info.kind === 'video') this.#run(entry, () => this.#sendPreferences(entry));
  }

  /**
   * Preferences for every video consumer created from now on, under its own (`setPreferences`):
   * e.g. a small size, so a new video starts on the lowest simulcast layer until its tile is
   * measured, or `visible: false` for an app that shows nothing until it decides to.
   */
  setDefaultPreferences(prefs: VideoPreferences): void {
    this.#defaults = { ...prefs };
  }

  /** The id of our consumer of a producer, once created. */
  consumerIdOf(producerId: string): string | undefined {
    return this.#entries.get(producerId)?.consumer?.id;
  }

  /** Stop receiving a producer (it closed, or our consumer of it closed). Idempotent. */
  remove(producerId: string): void {
    this.#gone.add(producerId);
    this.#prefs.delete(producerId);
    const entry = this.#entries.get(producerId);
    if (!entry || entry.closed) return;
    entry.closed = true;
    this.#run(entry, () => this.#close(entry));
  }

  /** Stop receiving every producer of a participant. */
  removeOwner(userId: string): void {
    for (const entry of [...this.#entries.values()]) if (entry.info.userId === userId) this.remove(entry.info.id);
  }

  /** Resolves when the work queued so far has run (errors are reported, not thrown). */
  async whenIdle(): Promise<void> {
    await Promise.all([...this.#entries.values()].map((e) => e.tail));
  }

  /**
   * The server's media is gone (mediaReset, reconnect): close every local consumer, with `trackRemoved` for
   * those that were added, and forget them. Call `add` again for what is still on stage.
   */
  reset(): void {
    if (this.#closed) return;
    for (const entry of [...this.#entries.values()]) {
      this.#entries.delete(entry.info.id);
      entry.closed = true;
      this.#run(entry, () => this.#close(entry));
      const closing = entry.tail;
      this.#closing.set(entry.info.id, closing);
      void closing.then(() => {
        if (this.#closing.get(entry.info.id) === closing) this.#closing.delete(entry.info.id);
      });
    }
  }

  /** Close every consumer without events (the meeting is over). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      entry.closed = true;
      entry.consumer?.close();
    }
    this.#entries.clear();
  }

  #run(entry: Entry, task: () => Promise<void>): void {
    entry.tail = entry.tail.then(task).catch((err: unknown) => this.#report(entry, err));
  }

  #report(entry: Entry, err: unknown): void {
    // A consume that a close overtook fails with NOT_FOUND: expected, not an error.
    if (!entry.closed && !this.#closed) this.#deps.onError(toStagegateError(err), entry.info.id);
  }

  async #consume(entry: Entry): Promise<void> {
    const { media } = this.#deps;
    await this.#deps.ready();
    if (entry.closed) return;
    const { consumer } = await media.consume(entry.info.id);
    entry.consumer = consumer;
    // Closed meanwhile: the close task queued behind this one closes the consumer.
    if (entry.closed) return;
    consumer.on('transportclose', () => {
      if (!entry.closed) this.remove(entry.info.id);
    });
    // Not awaited: the server applies it before the resume that follows on the same socket.
    if (entry.info.kind === 'video') this.#sendPreferences(entry).catch((err: unknown) => this.#report(entry, err));
    await media.resumeConsumer(consumer.id);
    if (entry.closed) return;
    entry.added = true;
    const { userId, id, kind, source } = entry.info;
    this.#deps.onAdded({ participantId: userId, producerId: id, kind, source, track: consumer.track });
  }

  async #sendPreferences(entry: Entry): Promise<void> {
    const prefs = { ...this.#defaults, ...this.#prefs.get(entry.info.id) };
    if (Object.keys(prefs).length === 0 || !entry.consumer || entry.closed) return;
    const json = JSON.stringify(prefs);
    if (json === entry.sent) return;
    entry.sent = json;
    await this.#deps.media.setConsumerPreferences(entry.consumer.id, prefs);
  }

  async #close(entry: Entry): Promise<void> {
    entry.consumer?.close();
    if (this.#entries.get(entry.info.id) === entry) this.#entries.delete(entry.info.id);
    if (!entry.added || this.#closed) return;
    entry.added = false;
    const { userId, id, kind, source } = entry.info;
    this.#deps.onRemoved({ participantId: userId, producerId: id, kind, source });
  }
}
