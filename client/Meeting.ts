/**
 * One joined meeting: the room state as this participant sees it, kept current from the
 * server's notifications, plus the media that follows it. Create it with `joinMeeting()`.
 *
 * The client follows, the server decides: nothing here changes a status or the mode except a
 * notification (or, after a reconnect, the server's snapshot); the actions are requests
 * (`meeting.stage`), answered by notifications first and then by the ack.
 *
 * An unexpected drop of the connection (network, server restart: anything but `leave()`, a server
 * `goodbye`, or the server disconnecting the socket itself) is ridden out: `reconnecting`, then a
 * new connection with the same token, `joinRoom` again, the differences with the snapshot emitted,
 * media rebuilt, `reconnected` (see `JoinMeetingOptions.reconnectTimeoutMs` and `Reconnector`).
 *
 * After `leave()` or a final disconnect (`disconnected` event, once) the meeting is dead: its
 * transports, producers and consumers are closed, the tracks the client created are stopped,
 * and no more events are emitted. A new meeting needs a new `joinMeeting()`.
 */
import type { StagegateError } from '../shared/errors.js';
import type { Notifications, RequestData, RoomSnapshot } from '../shared/protocol.js';
import type { AccessRequest, Preset, RoomSettings, StageMode, StageStatus } from '../shared/stage.js';
import { stagegateError, toStagegateError } from './errors.js';
import type { MediaSession } from './MediaSession.js';
import { MeetingStage } from './MeetingStage.js';
import { Publisher } from './Publisher.js';
import { Reconnector } from './Reconnector.js';
import { Roster } from './Roster.js';
import type { Signaling } from './Signaling.js';
import { Subscriber } from './Subscriber.js';
import { TypedEmitter, type Listener } from './TypedEmitter.js';
import type {
  ConnectionState,
  DisconnectReason,
  JoinMeetingOptions,
  LocalProducerInfo,
  LocalTracks,
  MeetingEvents,
  RemoteParticipant,
  SelfInfo,
  StageEvents,
} from './types.js';

interface MutableSelf {
  id: string;
  name: string;
  preset: Preset;
  stageStatus: StageStatus;
}

/** Stage notifications passed through unchanged to `meeting.stage` listeners. */
/**
 * Replaced at build time by Vite's `define`: `true` in test builds (vitest, the browser tests'
 * bundle), `false` in the shipped demo pages, whose minifier then drops the test hooks. Where it
 * is not defined at all (tsx, an app's own bundler) there are no test hooks either.
 */
declare const __STAGEGATE_TEST_HOOKS__: boolean | undefined;

const STAGE_PASS_THROUGH = [
  'newStageRequest',
  'stageAccessRequestAccepted',
  'stageRequestApproved',
  'stageRequestRejected',
  'removedFromStage',
  'mutedByHost',
  'unmuteRequested',
  'unmuteAllowed',
  'participantRemoved',
  'stageSlotUpdate',
  'stageSlotEnding',
  'stageRequestPosition',
] as const satisfies readonly (keyof StageEvents & keyof Notifications)[];

/** socket.io reasons for a disconnect that was meant: no reconnect. */
const DELIBERATE = new Set(['io server disconnect', 'io client disconnect']);

export const DEFAULT_RECONNECT_TIMEOUT_MS = 15_000;

export class Meeting {
  readonly roomId: string;
  readonly stage: MeetingStage;
  readonly #self: MutableSelf;
  #mode: StageMode;
  #settings: RoomSettings;
  #audienceCount: number;
  /** The pending requests as last told (acceptStageRequests holders), to reconcile. */
  #requests: AccessRequest[];
  readonly #events = new TypedEmitter<MeetingEvents>();
  readonly #stageEvents = new TypedEmitter<StageEvents>();
  readonly #roster: Roster;
  readonly #signaling: Signaling;
  readonly #media: MediaSession;
  readonly #publisher: Publisher;
  readonly #subscriber: Subscriber;
  readonly #reconnectTimeoutMs: number;
  #recvReady: Promise<unknown>;
  #leaving: Promise<void> | undefined;
  readonly #unsubscribe: Array<() => void> = [];
  #goodbye: Notifications['goodbye']['reason'] | undefined;
  #state: ConnectionState = 'connected';
  #reconnector: Reconnector | undefined;
  #activeSpeaker: string | undefined;

  /** @internal Use `joinMeeting()`. Notifications must be held on `signaling` until this returns. */
  constructor(signaling: Signaling, media: MediaSession, snapshot: RoomSnapshot, options: JoinMeetingOptions) {
    this.#signaling = signaling;
    this.#media = media;
    this.roomId = snapshot.roomId;
    this.#self = { ...snapshot.self };
    this.#mode = snapshot.mode;
    this.#settings = snapshot.settings;
    this.#audienceCount = snapshot.audienceCount;
    this.#requests = snapshot.requests;
    this.#reconnectTimeoutMs = Math.max(0, options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS);
    this.#roster = new Roster({
      selfId: snapshot.self.id,
      subscriber: () => this.#subscriber,
      events: this.#events,
      stageEvents: this.#stageEvents,
    });
    this.#publisher = new Publisher({
      media,
      preset: () => this.#self.preset,
      status: () => this.#self.stageStatus,
      tracks: options.tracks,
      previewTracks: options.previewTracks,
      prepareSendTransport: options.prepareSendTransport ?? true,
      onError: (error) => this.#mediaError(error, 'publish'),
    });
    this.#recvReady = this.#createRecvTransport();
    this.#subscriber = new Subscriber({
      media,
      ready: () => this.#recvReady,
      onAdded: (e) => this.#state !== 'disconnected' && this.#roster.trackAdded(e),
      onRemoved: (e) => this.#state !== 'disconnected' && this.#roster.trackRemoved(e),
      onError: (error, producerId) => this.#mediaError(error, 'consume', producerId),
    });
    this.stage = new MeetingStage(
      {
        status: () => this.#self.stageStatus,
        selfId: () => this.#self.id,
        mode: () => this.#mode,
        connectionState: () => this.#state,
        whenConnected: () => this.#whenConnected(),
      },
      signaling,
      this.#publisher,
      this.#stageEvents,
      { held: snapshot.self.held ?? [], slotEndsAt: snapshot.self.slotEndsAt },
    );

    for (const p of snapshot.participants) this.#roster.joined(p, false);
    this.#wire();
    this.#publisher.follow(this.#self.stageStatus);
  }

  /**
   * @internal Resolves when the recv transport exists, the snapshot's producers were consumed,
   * and the initial status was followed (send transport prepared, or republished when the
   * server kept us ON_STAGE across a reconnect). Only the recv transport is fatal: the rest is
   * reported through `mediaError`.
   */
  async ready(): Promise<void> {
    await this.#recvReady;
    await Promise.all([this.#subscriber.whenIdle(), this.#publisher.settled().catch(() => undefined)]);
  }

  /**
   * The token the meeting presents when it reconnects: the one it joined with, then the latest
   * one the server handed over (`tokenRefreshed`) before the previous one expired. Store it if
   * your app rejoins by itself (e.g. after a page reload).
   */
  get token(): string {
    return this.#signaling.token;
  }

  /** The local participant (kept current). */
  get self(): SelfInfo {
    return this.#self;
  }

  /**
   * Every other participant this participant can see, by id (kept current; the local one is
   * `self`). In a room whose `audience` setting is `hidden`, a participant without
   * acceptStageRequests sees only the stage people (hosts, ACCEPTED_TO_JOIN_STAGE, ON_STAGE):
   * someone moving between audience and stage comes and goes with `participantJoined` /
   * `participantLeft`. The audience is counted in `audienceCount`.
   */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#roster.participants;
  }

  /** How many participants are in the audience (not stage people), this one included if so. */
  get audienceCount(): number {
    return this.#audienceCount;
  }

  /** The room's settings (`audience`: `hidden` or `visible`). Change them with `stage.setSettings()`. */
  get settings(): Readonly<RoomSettings> {
    return this.#settings;
  }

  /** The tracks this participant publishes right now, by kind. */
  get localTracks(): Readonly<LocalTracks> {
    return this.#publisher.localTracks;
  }

  /** This participant's live producers, by producer id. */
  get producers(): ReadonlyMap<string, LocalProducerInfo> {
    return this.#publisher.producers;
  }

  /** The on-stage participant who speaks the loudest, as last told by the server (may be self). */
  get activeSpeaker(): string | undefined {
    return this.#activeSpeaker;
  }

  /**
   * The size a received video is shown at, in CSS pixels (multiplied by devicePixelRatio here):
   * the server sends the simulcast layer that fits. Call again when it changes (ResizeObserver).
   */
  setVideoSize(producerId: string, size: { width: number; height: number }): void {
    const dpr = globalThis.devicePixelRatio || 1;
    const px = (v: number) => Math.min(16_384, Math.max(0, Math.round(v * dpr)));
    this.#subscriber.setPreferences(producerId, { width: px(size.width), height: px(size.height) });
  }

  /**
   * Whether a received video is visible at all (IntersectionObserver, a hidden tab or tile): a
   * hidden one is paused on the server, so no bytes are sent for it, until it is visible again.
   */
  setVideoVisible(producerId: string, visible: boolean): void {
    this.#subscriber.setPreferences(producerId, { visible });
  }

  /**
   * Size (CSS pixels) and visibility for every received video not yet consumed, until the app
   * sets its own with `setVideoSize` / `setVideoVisible`: a small size starts new videos on the
   * lowest simulcast layer; `visible: false` keeps them paused on the server until shown.
   */
  setDefaultVideoPreferences(prefs: { width?: number; height?: number; visible?: boolean }): void {
    const dpr = globalThis.devicePixelRatio || 1;
    const px = (v: number | undefined) =>
      v === undefined ? undefined : Math.min(16_384, Math.max(0, Math.round(v * dpr)));
    const out: { width?: number; height?: number; visible?: boolean } = {};
    if (prefs.width !== undefined) out.width = px(prefs.width)!;
    if (prefs.height !== undefined) out.height = px(prefs.height)!;
    if (prefs.visible !== undefined) out.visible = prefs.visible;
    this.#subscriber.setDefaultPreferences(out);
  }

  /**
   * Tell the meeting that the tracks `previewTracks` answers changed (the preview opened, or
   * another camera was picked): while ACCEPTED_TO_JOIN_STAGE it negotiates the camera's sender
   * for them ahead, so `stage.join()` only asks the server for the producer. Nothing otherwise.
   */
  previewChanged(): void {
    this.#publisher.previewChanged();
  }

  /** False once left or disconnected for good; still true while reconnecting (see `connectionState`). */
  get connected(): boolean {
    return this.#state !== 'disconnected';
  }

  /** 'connected', 'reconnecting' (between `reconnecting` and `reconnected`), or 'disconnected'. */
  get connectionState(): ConnectionState {
    return this.#state;
  }

  on<K extends keyof MeetingEvents>(event: K, listener: Listener<MeetingEvents[K]>): this {
    this.#events.on(event, listener);
    return this;
  }

  off<K extends keyof MeetingEvents>(event: K, listener: Listener<MeetingEvents[K]>): this {
    this.#events.off(event, listener);
    return this;
  }

  once<K extends keyof MeetingEvents>(event: K, listener: Listener<MeetingEvents[K]>): this {
    this.#events.once(event, listener);
    return this;
  }

  /**
   * Leave the meeting: tell the server (`leaveRoom`, best effort, at most 2 s: a bare
   * disconnect would keep the participant's place for the reconnect grace period), stop the
   * tracks the client created, close producers, consumers and transports, disconnect. Emits
   * `disconnected` {reason:'left'}. Idempotent. While reconnecting it stops trying (the server
   * then keeps the place until its grace period ends).
   */
  leave(): Promise<void> {
    this.#leaving ??= (async () => {
      this.#reconnector?.cancel();
      if (this.#state === 'connected') await this.#leaveRoom();
      this.#teardown('left');
    })();
    return this.#leaving;
  }

  /**
   * Switch to a new token of the same user (say the backend promoted or demoted them): the
   * meeting reconnects with it at once (`reconnecting`, `reconnected`), the server applies its
   * name and preset, and the differences are emitted (`selfUpdated`, stage events). Resolves on
   * `reconnected`; rejects with the reason the meeting ended if it could not come back (e.g.
   * UNAUTHORIZED for an expired token), with INVALID_REQUEST for a token of another user, and
   * with DISCONNECTED when not connected. With `reconnectTimeoutMs: 0` it ends the meeting
   * instead (nothing may reconnect then).
   */
  useToken(token: string): Promise<void> {
    if (this.#state !== 'connected' || this.#leaving) {
      return Promise.reject(stagegateError('DISCONNECTED', 'useToken: not connected'));
    }
    try {
      this.#signaling.setToken(token);
    } catch (err) {
      return Promise.reject(toStagegateError(err));
    }
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        this.#events.off('reconnected', done).off('disconnected', failed);
        resolve();
      };
      const failed = ({ reason, error }: MeetingEvents['disconnected']) => {
        this.#events.off('reconnected', done).off('disconnected', failed);
        reject(error ?? stagegateError('DISCONNECTED', `useToken: the meeting ended (${String(reason)})`));
      };
      this.#events.on('reconnected', done).on('disconnected', failed);
      this.#signaling.cycle();
    });
  }

  /**
   * @internal Test builds only (see `__STAGEGATE_TEST_HOOKS__`): drops the connection as a
   * network failure would (the WebSocket closes under socket.io, no goodbye: reason 'transport
   * close' on both ends). The meeting reconnects as after a real drop.
   */
  declare __dropConnectionForTests?: () => void;

  static {
    if (typeof __STAGEGATE_TEST_HOOKS__ !== 'undefined' && __STAGEGATE_TEST_HOOKS__) {
      Meeting.prototype.__dropConnectionForTests = function (this: Meeting) {
        this.#signaling.dropTransportForTests!();
      };
    }
  }

  // ------------------------------------------------------------------ notifications
  #wire(): void {
    const s = this.#signaling;
    const on = <N extends keyof Notifications>(name: N, fn: (data: Notifications[N]) => void) =>
      this.#unsubscribe.push(s.on(name, (data) => this.#state !== 'disconnected' && fn(data)));
    const roster = this.#roster;

    on('participantJoined', ({ participant }) => roster.joined(participant, true));
    on('participantLeft', ({ userId }) => roster.left(userId));
    on('participantUpdated', (data) => roster.updated(data));
    on('tokenRefreshed', (data) => {
      this.#signaling.setToken(data.token);
      this.#events.emit('tokenRefreshed', data);
    });
    on('stageStatusUpdate', (data) => this.#setStatus(data));
    on('peerStageStatusUpdate', (data) => {
      roster.setStatus(data.userId, data.new);
      this.#stageEvents.emit('peerStageStatusUpdate', data);
    });
    on('stageModeUpdate', (data) => {
      this.#mode = data.mode;
      this.#stageEvents.emit('stageModeUpdate', data);
    });
    on('audienceCount', ({ count }) => this.#setAudienceCount(count));
    on('roomSettingsUpdate', (data) => {
      this.#settings = data.settings;
      this.#events.emit('roomSettingsUpdate', data);
    });
    on('stageAccessRequestUpdate', (data) => {
      this.#requests = data.requests;
      this.#stageEvents.emit('stageAccessRequestUpdate', data);
    });
    on('stageSlotUpdate', ({ userId, endsAt }) => roster.setSlot(userId, endsAt)); // before the pass-through
    for (const name of STAGE_PASS_THROUGH) {
      on(name, (data) => this.#stageEvents.emit(name, data as never));
    }
    on('newProducer', ({ producer }) => roster.addProducer(producer));
    on('producerClosed', ({ producerId, userId }) => roster.removeProducer(userId, producerId));
    on('producerPaused', ({ producerId, userId }) => roster.setPaused(userId, producerId, true));
    on('producerResumed', ({ producerId, userId }) => roster.setPaused(userId, producerId, false));
    on('consumerClosed', ({ producerId }) => this.#subscriber.remove(producerId));
    on('producerClosedByServer', (data) => {
      this.#publisher.closedByServer(data.producerId, data.reason);
      this.#events.emit('producerClosedByServer', data);
    });
    on('mediaReset', () => this.#resetMedia());
    on('activeSpeaker', (data) => {
      this.#activeSpeaker = data.userId;
      this.#events.emit('activeSpeaker', data);
    });
    on('consumerScore', (data) => {
      const participantId = roster.producers().find((i) => i.id === data.producerId)?.userId;
      if (participantId) this.#events.emit('consumerScore', { ...data, participantId });
    });
    on('producerScore', (data) => this.#events.emit('producerScore', data));
    on('goodbye', ({ reason }) => {
      this.#goodbye = reason;
    });
    this.#unsubscribe.push(s.onDisconnect((reason) => this.#onDisconnect(reason)));
  }

  #setStatus(data: StageEvents['stageStatusUpdate']): void {
    this.#self.stageStatus = data.new;
    this.#publisher.follow(data.new);
    this.#stageEvents.emit('stageStatusUpdate', data);
  }

  #setAudienceCount(count: number, reconciled = false): void {
    if (count === this.#audienceCount) return;
    this.#audienceCount = count;
    this.#events.emit('audienceCount', reconciled ? { count, reconciled } : { count });
  }

  #mediaError(error: StagegateError, during: 'publish' | 'consume', producerId?: string): void {
    // A request cut off by a drop: the drop itself is reported (reconnecting / disconnected).
    if (this.#state === 'disconnected' || error.code === 'DISCONNECTED') return;
    this.#events.emit('mediaError', producerId ? { error, during, producerId } : { error, during });
  }

  #createRecvTransport(): Promise<unknown> {
    const ready = this.#media.createRecvTransport();
    // joinMeeting and reconnects await it; a later one (mediaReset) reports its failure itself.
    ready.catch(() => undefined);
    return ready;
  }

  /**
   * The server's media is gone (worker death, or a reconnect): rebuild transports, receive and
   * publish again. `apply` (a reconnect's snapshot) re-adds the producers and may change the status.
   */
  #resetMedia(apply?: () => void): void {
    this.#subscriber.reset();
    // Before the send transport closes (which would drop the producers with their tracks): the
    // tracks are kept to publish again, by a follow-up that reads the status when it runs.
    this.#publisher.reset();
    this.#media.closeSendTransport();
    this.#media.closeRecvTransport();
    this.#recvReady = this.#createRecvTransport();
    this.#recvReady.catch((err: unknown) => this.#mediaError(toStagegateError(err), 'consume'));
    if (apply) apply();
    else for (const producer of this.#roster.producers()) this.#subscriber.add(producer);
  }

  // ------------------------------------------------------------------ reconnect
  #onDisconnect(reason: string): void {
    if (this.#state === 'disconnected' || this.#leaving) return; // leave() tears down itself
    const final = this.#goodbye ?? (DELIBERATE.has(reason) ? reason : undefined);
    if (final !== undefined || this.#reconnectTimeoutMs === 0) return this.#teardown(final ?? reason);
    // A drop during a reconnect attempt fails that attempt; the loop goes on.
    if (this.#state === 'reconnecting') return;
    this.#state = 'reconnecting';
    const reconnector: Reconnector = new Reconnector({
      timeoutMs: this.#reconnectTimeoutMs,
      onAttempt: (attempt) => this.#events.emit('reconnecting', { attempt }),
      attempt: (): Promise<void> => this.#resync(reconnector),
    });
    this.#reconnector = reconnector;
    void reconnector.run().then((result) => {
      if (this.#reconnector !== reconnector) return;
      this.#reconnector = undefined;
      if (result.ok) {
        this.#state = 'connected';
        this.#events.emit('reconnected', { attempt: result.attempt });
      } else if (!result.cancelled) {
        this.#teardown('connection-lost', result.error);
      }
    });
  }

  /** One reconnect attempt: new connection, join again, reconcile, media back. */
  async #resync(reconnector: Reconnector): Promise<void> {
    const s = this.#signaling;
    const abandoned = () => reconnector.cancelled || this.#state !== 'reconnecting';
    await s.reconnect(); // notifications are held until the snapshot is applied
    const { rtpCapabilities } = await s.request('getRouterRtpCapabilities');
    await this.#media.reload(rtpCapabilities);
    const recvCapabilities = this.#media.device.recvRtpCapabilities;
    const snapshot = await s.request('joinRoom', { rtpCapabilities: recvCapabilities as JoinData['rtpCapabilities'] });
    if (abandoned()) throw stagegateError('DISCONNECTED', 'reconnect abandoned');
    this.#reconcile(snapshot);
    this.stage.resync({ held: snapshot.self.held ?? [], slotEndsAt: snapshot.self.slotEndsAt });
    s.release();
    await this.#recvReady; // fatal for this attempt (the connection dropped again, most likely)
    await this.ready();
    // Synchronously from here to `reconnected`: no socket event can come in between.
    if (!s.connected) throw stagegateError('DISCONNECTED', 'the connection dropped again');
  }

  /** Applies the snapshot of a rejoin: every difference is emitted, media is rebuilt. */
  #reconcile(snapshot: RoomSnapshot): void {
    this.#resetMedia(() => {
      if (snapshot.mode !== this.#mode) {
        this.#mode = snapshot.mode;
        this.#stageEvents.emit('stageModeUpdate', { mode: snapshot.mode, by: '', reconciled: true });
      }
      if (JSON.stringify(snapshot.settings) !== JSON.stringify(this.#settings)) {
        this.#settings = snapshot.settings;
        this.#events.emit('roomSettingsUpdate', { settings: snapshot.settings, by: '', reconciled: true });
      }
      // the token we came back with may name us differently or grant other rights
      const { name, preset } = snapshot.self;
      if (name !== this.#self.name || JSON.stringify(preset) !== JSON.stringify(this.#self.preset)) {
        const old = { name: this.#self.name, preset: this.#self.preset };
        this.#self.name = name;
        this.#self.preset = preset;
        this.#events.emit('selfUpdated', { name, preset, old, reconciled: true });
      }
      // a demoted host sees no requests any more; a promoted one gets the list
      const requests = preset.acceptStageRequests ? snapshot.requests : [];
      if (JSON.stringify(requests) !== JSON.stringify(this.#requests)) {
        this.#requests = requests;
        this.#stageEvents.emit('stageAccessRequestUpdate', { requests, reconciled: true });
      }
      this.#roster.reconcile(snapshot.participants);
      this.#setAudienceCount(snapshot.audienceCount, true);
      const old = this.#self.stageStatus;
      if (snapshot.self.stageStatus !== old) {
        this.#setStatus({ old, new: snapshot.self.stageStatus, reconciled: true });
      }
    });
  }

  /** Resolves true once connected (at once if already), false if the meeting ends first. */
  #whenConnected(): Promise<boolean> {
    if (this.#state !== 'reconnecting') return Promise.resolve(this.#state === 'connected');
    return new Promise((resolve) => {
      const ok = () => settle(true);
      const ko = () => settle(false);
      const settle = (value: boolean) => {
        this.#events.off('reconnected', ok).off('disconnected', ko);
        resolve(value);
      };
      this.#events.on('reconnected', ok).on('disconnected', ko);
    });
  }

  async #leaveRoom(): Promise<void> {
    if (!this.#signaling.connected) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#signaling.request('leaveRoom').catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, LEAVE_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
  }

  #teardown(reason: DisconnectReason, error?: StagegateError): void {
    if (this.#state === 'disconnected') return;
    this.#state = 'disconnected';
    this.#reconnector?.cancel();
    this.#reconnector = undefined;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#publisher.close();
    this.#subscriber.close();
    this.#media.close();
    this.#signaling.close();
    this.#events.emit('disconnected', error ? { reason, error } : { reason });
  }
}

const LEAVE_TIMEOUT_MS = 2_000;
type JoinData = RequestData<'joinRoom'>;
