/**
 * Follows the local participant's stage status (the server decides; this only mirrors):
 *
 * - ACCEPTED_TO_JOIN_STAGE: prepare the send transport (unless disabled), so `join()` only produces;
 *   with a camera track already open (`previewTracks`, or a `tracks` object), also negotiate its
 *   sender ahead, sending nothing (`MediaSession.prepareProduce`): `join()` then only asks the
 *   server for the producer and hands the sender its track.
 * - ON_STAGE: get the tracks (the app's, or getUserMedia for the kinds the preset allows) and
 *   produce each, with source 'audio' / 'video'.
 * - leaving ON_STAGE: close the local producers at once (the server has closed its own) and stop
 *   the tracks the client created itself with getUserMedia. Tracks the app passed in (directly
 *   or from its `tracks` function) are never stopped: they are the app's.
 * - OFF_STAGE / REQUESTED_TO_JOIN_STAGE: close the send transport (the server closed it too).
 *
 * After a reset (the server's media is gone: `mediaReset`, or a reconnect), the tracks that were
 * published are carried over and published again as they are: no new getUserMedia, no call of the
 * app's `tracks` function; they are let go (stopped, if the client's) once the status says they
 * will not be published.
 *
 * Tear-down is synchronous, in the notification handler; build-up is async and serialized
 * (one `#sync` at a time, each reading the status current when it runs), and an epoch counter
 * makes a build-up that a tear-down overtook undo itself instead of leaking a producer.
 */
import type { types } from 'mediasoup-client';
import type { StagegateError } from '../shared/errors.js';
import type { MediaKind, ProducerCloseReason } from '../shared/protocol.js';
import type { MediaSource, Preset, StageStatus } from '../shared/stage.js';
import { stagegateError, toStagegateError } from './errors.js';
import type { MediaSession } from './MediaSession.js';
import type { AllowedKinds, LocalProducerInfo, LocalTracks, TracksOption } from './types.js';

export interface PublisherDeps {
  media: MediaSession;
  /** The current preset (a reconnect with a new token may change it). */
  preset: () => Preset;
  status: () => StageStatus;
  tracks?: TracksOption | undefined;
  /** The tracks open before going on stage (JoinMeetingOptions.previewTracks). */
  previewTracks?: (() => LocalTracks | undefined) | undefined;
  prepareSendTransport: boolean;
  onError: (error: StagegateError) => void;
}

interface Published extends LocalProducerInfo {
  producer: types.Producer;
}

/**
 * Video first: its first key frame is what a viewer waits for (encoder start plus the next camera
 * frame), so starting it ~30 ms earlier cuts stage-join-to-first-frame by about that much
 * (benchmark 1); audio follows a round trip later.
 */
const KINDS: readonly MediaKind[] = ['video', 'audio'];

export class Publisher {
  readonly #deps: PublisherDeps;
  readonly #producers = new Map<string, Published>();
  /** Tracks created here with getUserMedia: stopped when no longer published. */
  readonly #ownTracks = new Set<MediaStreamTrack>();
  /** Tracks published before a reset, to publish again (see `reset()`). */
  #carry: LocalTracks = {};
  /** Bumped on every tear-down: a build-up that started before must undo itself. */
  #epoch = 0;
  #tail: Promise<void> = Promise.resolve();
  #last: Promise<void> = Promise.resolve();
  #closed = false;
  /** Sources the participant paused: published again paused (a reconnect never unmutes anyone). */
  readonly #wantPaused = new Set<MediaSource>();

  constructor(deps: PublisherDeps) {
    this.#deps = deps;
  }

  /** Our live producers, by producer id. */
  get producers(): ReadonlyMap<string, LocalProducerInfo> {
    return this.#producers;
  }

  /** The camera and microphone tracks currently published, by kind (a screenshare is not one). */
  get localTracks(): Readonly<LocalTracks> {
    const tracks: LocalTracks = {};
    for (const p of this.#producers.values()) if (p.source === p.kind) tracks[p.kind] = p.track;
    return tracks;
  }

  /** Our producer of `source`, if published. */
  #bySource(source: MediaSource): Published | undefined {
    for (const p of this.#producers.values()) if (p.source === source) return p;
    return undefined;
  }

  /** Whether our producer of `source` is paused locally (`setPaused`); undefined when not published. */
  isPaused(source: MediaSource): boolean | undefined {
    return this.#bySource(source)?.producer.paused;
  }

  /**
   * Pause or resume sending `source` from here (the server side is paused by the caller's
   * `pauseProducer` request): a paused producer sends no RTP at all.
   */
  setPaused(source: MediaSource, paused: boolean): void {
    if (paused) this.#wantPaused.add(source);
    else this.#wantPaused.delete(source);
    const p = this.#bySource(source);
    if (!p) return;
    if (paused) p.producer.pause();
    else p.producer.resume();
  }

  /**
   * Sends another track for a published `source` (a device switch): the producer and every
   * consumer of it stay, so viewers keep receiving. The old track is released if it was ours.
   * Rejects NOT_FOUND when `source` is not published.
   */
  async replaceTrack(source: MediaSource, track: MediaStreamTrack): Promise<void> {
    const p = this.#bySource(source);
    if (!p) throw stagegateError('NOT_FOUND', `${source} is not published`);
    if (track.kind !== p.kind) throw stagegateError('INVALID_REQUEST', `the ${source} track must be ${p.kind}`);
    const old = p.track;
    try {
      await p.producer.replaceTrack({ track });
    } catch (err) {
      throw toStagegateError(err, `cannot switch the ${source} track`);
    }
    this.#producers.set(p.id, { ...p, track });
    if (old !== track) this.#release(old);
  }

  /**
   * Publishes a source beyond the camera and microphone (a screenshare) while ON_STAGE. The track
   * is the caller's (never stopped here); it is not published again after a reset. Resolves with
   * the producer; `unpublishSource` stops it.
   */
  async publishSource(track: MediaStreamTrack, source: MediaSource): Promise<LocalProducerInfo> {
    if (this.#bySource(source)) throw stagegateError('INVALID_STATE', `${source} is already published`);
    if (this.#deps.status() !== 'ON_STAGE') throw stagegateError('INVALID_STATE', 'not on stage');
    const epoch = this.#epoch;
    const producer = await this.#deps.media.produce(track, source);
    if (epoch !== this.#epoch || this.#closed) {
      producer.close();
      throw stagegateError('INVALID_STATE', 'left the stage while publishing');
    }
    const info: Published = { id: producer.id, kind: track.kind as MediaKind, source, track, producer };
    this.#producers.set(producer.id, info);
    producer.on('transportclose', () => {
      if (this.#producers.get(producer.id)?.producer === producer) this.#producers.delete(producer.id);
    });
    return info;
  }

  /** Stops publishing `source` (tells the server); nothing when it is not published. */
  async unpublishSource(source: MediaSource): Promise<void> {
    const p = this.#bySource(source);
    if (!p) return;
    this.#producers.delete(p.id);
    p.producer.close();
    this.#release(p.track);
    await this.#deps.media.closeProducer(p.id).catch(() => undefined); // gone already: fine
  }

  /** Mirror a status (call on every own status change, and once with the initial status). */
  follow(status: StageStatus): void {
    if (this.#closed) return;
    if (status !== 'ON_STAGE') {
      this.#deps.media.forgetPreparedRequest(); // a producer it made is gone with the stage
      this.#unpublish();
      this.#wantPaused.clear(); // a new turn on stage starts unmuted
    }
    if (status === 'OFF_STAGE' || status === 'REQUESTED_TO_JOIN_STAGE') this.#deps.media.closeSendTransport();
    this.#schedule();
  }

  /**
   * `stage.join` was just sent: send the prepared camera's request right behind it (see
   * `MediaSession.sendPrepared`), so its producer exists one round trip sooner.
   */
  joining(): void {
    if (this.#closed || this.#deps.status() !== 'ACCEPTED_TO_JOIN_STAGE') return;
    this.#deps.media.sendPrepared();
  }

  /** The app's preview tracks changed (`Meeting.previewChanged`): prepare the camera's sender for them. */
  previewChanged(): void {
    if (this.#closed || this.#deps.status() !== 'ACCEPTED_TO_JOIN_STAGE') return;
    this.#schedule();
  }

  /** Resolves when the latest follow-up has run; rejects with its error (used by `stage.join()`). */
  settled(): Promise<void> {
    return this.#last;
  }

  /**
   * The server closed one of our producers: close ours and release its track, unless the server's
   * transport went away under it (`transport-closed`: its worker died, `mediaReset` follows): then
   * the track is kept to publish again.
   */
  closedByServer(producerId: string, reason?: ProducerCloseReason): void {
    const p = this.#producers.get(producerId);
    if (!p) return;
    this.#producers.delete(producerId);
    const paused = p.producer.paused;
    p.producer.close();
    if (reason === 'transport-closed' && p.source === p.kind) this.#carry[p.kind] ??= p.track;
    else {
      if (paused) p.track.enabled = true; // as in #unpublish
      this.#release(p.track);
    }
  }

  /** Close every producer and stop our own tracks. Idempotent. The transports are MediaSession's. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unpublish();
  }

  /**
   * The server's media is gone (mediaReset): forget the producers and publish again according to
   * the current status. The caller has replaced the transports.
   */
  reset(): void {
    if (this.#closed) return;
    this.#unpublish(true);
    this.#schedule();
  }

  #schedule(): void {
    const run = this.#tail
      .then(() => this.#sync())
      .catch((err: unknown) => {
        throw toStagegateError(err);
      });
    this.#tail = run.catch(() => undefined);
    this.#last = run;
    run.catch((err: StagegateError) => this.#deps.onError(err));
  }

  async #sync(): Promise<void> {
    const status = this.#deps.status();
    if (status !== 'ON_STAGE') this.#dropCarry();
    if (this.#closed || (status !== 'ACCEPTED_TO_JOIN_STAGE' && status !== 'ON_STAGE')) return;
    const epoch = this.#epoch;
    try {
      if (status === 'ON_STAGE') await this.#publish(epoch);
      else if (this.#deps.prepareSendTransport) {
        await this.#deps.media.ensureSendTransport();
        await this.#prepare(epoch);
      }
    } catch (err) {
      // The status moved on meanwhile: the server refused for that reason, nothing to report.
      if (this.#closed || epoch !== this.#epoch || this.#deps.status() !== status) return;
      throw err;
    }
  }

  /**
   * ACCEPTED: negotiate the camera's sender ahead when its track is already open. Best effort: if
   * it fails, `join()` publishes the usual way (and reports what fails then).
   */
  async #prepare(epoch: number): Promise<void> {
    const { media } = this.#deps;
    if (this.#deps.preset().media.video !== 'ALLOWED' || !media.canProduce('video')) return;
    const option = this.#deps.tracks;
    const track = (this.#deps.previewTracks ?? (() => (typeof option === 'object' ? option : undefined)))()?.video;
    if (!track || track.kind !== 'video' || track.readyState !== 'live') return;
    const prepared = media.prepared;
    if (prepared?.layout === media.layoutFor(track, 'video')) return;
    if (prepared) await media.cancelPrepared(); // another camera, other layers: negotiate anew
    try {
      await media.prepareProduce(track, 'video');
    } catch {
      return;
    }
    if (epoch !== this.#epoch || this.#closed || this.#deps.status() !== 'ACCEPTED_TO_JOIN_STAGE') {
      void media.cancelPrepared();
    }
  }

  async #publish(epoch: number): Promise<void> {
    const { media } = this.#deps;
    const preset = this.#deps.preset();
    const published = new Set([...this.#producers.values()].filter((p) => p.source === p.kind).map((p) => p.kind));
    const wanted: AllowedKinds = { audio: false, video: false };
    for (const kind of KINDS) {
      wanted[kind] = preset.media[kind] === 'ALLOWED' && media.canProduce(kind) && !published.has(kind);
    }
    if (!wanted.audio && !wanted.video) return;
    // The transport and the tracks in parallel: both are needed, neither needs the other.
    const [transport, acquired] = await Promise.allSettled([media.ensureSendTransport(), this.#acquire(wanted)]);
    if (acquired.status === 'rejected') {
      // no camera after all: a producer its request made ahead (right behind stage.join) goes too
      if (media.prepared) await media.cancelPrepared();
      throw acquired.reason;
    }
    const tracks = acquired.value;
    if (transport.status === 'rejected') {
      for (const kind of KINDS) if (tracks[kind]) this.#release(tracks[kind]);
      throw transport.reason;
    }
    const fresh = KINDS.map((kind) => tracks[kind]).filter((t): t is MediaStreamTrack => !!t);
    // The sender prepared at ACCEPTED publishes the camera if it fits this track; else it goes
    // first (a held one would block every other produce of the transport).
    const prepared = media.prepared;
    const video = tracks.video;
    const usePrepared =
      !!prepared &&
      wanted.video &&
      video?.kind === 'video' &&
      prepared.source === 'video' &&
      prepared.layout === media.layoutFor(video, 'video');
    if (prepared && !usePrepared) await media.cancelPrepared();
    try {
      for (const kind of KINDS) {
        const track = tracks[kind];
        if (!track || !wanted[kind]) continue;
        if (track.kind !== kind) throw stagegateError('INVALID_REQUEST', `the ${kind} track is a ${track.kind} track`);
        if (epoch !== this.#epoch || this.#closed) break;
        const producer =
          kind === 'video' && usePrepared ? await media.producePrepared(track) : await media.produce(track, kind);
        if (epoch !== this.#epoch || this.#closed) {
          producer.close(); // the server dropped it (or will refuse it): do not keep a ghost
          break;
        }
        this.#producers.set(producer.id, { id: producer.id, kind, source: kind, track, producer });
        producer.on('transportclose', () => {
          if (this.#producers.get(producer.id)?.producer === producer) this.#producers.delete(producer.id);
        });
        if (this.#wantPaused.has(kind)) {
          producer.pause();
          await media.pauseProducer(producer.id).catch(() => undefined);
        }
      }
    } finally {
      for (const track of fresh) if (!this.#isPublished(track)) this.#release(track);
    }
  }

  /** The tracks for the wanted kinds: the app's, or getUserMedia's (then owned here). */
  async #acquire(wanted: AllowedKinds): Promise<LocalTracks> {
    const carried: LocalTracks = {};
    const missing: AllowedKinds = { ...wanted };
    for (const kind of KINDS) {
      const track = this.#carry[kind];
      if (wanted[kind] && track && track.readyState !== 'ended') {
        carried[kind] = track;
        missing[kind] = false;
      }
    }
    for (const kind of KINDS) if (carried[kind]) this.#carry[kind] = undefined;
    this.#dropCarry(); // what is not taken over here is not published any more
    if (!missing.audio && !missing.video) return carried;
    try {
      return { ...(await this.#acquireNew(missing)), ...carried };
    } catch (err) {
      for (const kind of KINDS) if (carried[kind]) this.#release(carried[kind]);
      throw err;
    }
  }

  async #acquireNew(wanted: AllowedKinds): Promise<LocalTracks> {
    const option = this.#deps.tracks;
    if (typeof option === 'function') return option({ ...wanted });
    if (option)
      return { audio: wanted.audio ? option.audio : undefined, video: wanted.video ? option.video : undefined };
    const gum = globalThis.navigator?.mediaDevices?.getUserMedia?.bind(globalThis.navigator.mediaDevices);
    if (!gum) throw stagegateError('UNSUPPORTED', 'getUserMedia is not available here: pass `tracks` to joinMeeting');
    let stream: MediaStream;
    try {
      stream = await gum({ audio: wanted.audio, video: wanted.video });
    } catch (err) {
      throw toStagegateError(err, 'getUserMedia failed');
    }
    const tracks: LocalTracks = {};
    for (const track of stream.getTracks()) {
      this.#ownTracks.add(track);
      if ((track.kind === 'audio' || track.kind === 'video') && !tracks[track.kind]) tracks[track.kind] = track;
      else this.#release(track);
    }
    return tracks;
  }

  #isPublished(track: MediaStreamTrack): boolean {
    return [...this.#producers.values()].some((p) => p.track === track);
  }

  /** Stops a track if the client created it and nothing publishes it any more. */
  #release(track: MediaStreamTrack): void {
    if (!this.#ownTracks.has(track) || this.#isPublished(track)) return;
    if (this.#carry.audio === track || this.#carry.video === track) return;
    this.#ownTracks.delete(track);
    track.stop();
  }

  /** Closes every producer; their tracks are released, or carried over to the next publish (`keep`). */
  #unpublish(keep = false): void {
    this.#epoch++;
    const closed = [...this.#producers.values()];
    this.#producers.clear();
    for (const p of closed) {
      const paused = p.producer.paused;
      p.producer.close();
      // pausing disabled the track: give it back enabled (a new turn starts unmuted), unless it
      // is published again after a reset, still muted
      if (paused && !keep) p.track.enabled = true;
    }
    if (keep) {
      for (const p of closed) if (p.source === p.kind) this.#carry[p.kind] ??= p.track;
      return;
    }
    this.#carry = {};
    for (const track of [...this.#ownTracks]) this.#release(track);
  }

  /** Let go of the carried-over tracks that were not taken by a publish. */
  #dropCarry(): void {
    const carried = KINDS.map((kind) => this.#carry[kind]);
    this.#carry = {};
    for (const track of carried) if (track) this.#release(track);
  }
}
