/**
 * One joined meeting: the room state as this participant sees it, kept current from the
 * server's notifications, plus the media that follows it. Create it with `joinMeeting()`.
 *
 * The client follows, the server decides: nothing here changes a status or the mode except a
 * notification; the actions are requests (`meeting.stage`), answered by notifications first and
 * then by the ack.
 *
 * After `leave()` or a disconnect (`disconnected` event, once) the meeting is dead: its
 * transports, producers and consumers are closed, the tracks the client created are stopped,
 * and no more events are emitted. A new meeting needs a new `joinMeeting()`.
 */
import type { StagegateError } from '../shared/errors.js';
import type { Notifications, ProducerInfo, RoomSnapshot } from '../shared/protocol.js';
import type { Preset, StageMode, StageStatus } from '../shared/stage.js';
import { toStagegateError } from './errors.js';
import type { MediaSession } from './MediaSession.js';
import { MeetingStage } from './MeetingStage.js';
import { Publisher } from './Publisher.js';
import type { Signaling } from './Signaling.js';
import { Subscriber } from './Subscriber.js';
import { TypedEmitter, type Listener } from './TypedEmitter.js';
import type {
  DisconnectReason,
  JoinMeetingOptions,
  LocalProducerInfo,
  LocalTracks,
  MeetingEvents,
  RemoteParticipant,
  SelfInfo,
  StageEvents,
  TrackAddedEvent,
  TrackRemovedEvent,
} from './types.js';

interface MutableSelf {
  id: string;
  name: string;
  preset: Preset;
  stageStatus: StageStatus;
}

interface MutableParticipant {
  id: string;
  name: string;
  presetName: string;
  stageStatus: StageStatus;
  producers: ProducerInfo[];
  tracks: Partial<Record<ProducerInfo['source'], MediaStreamTrack>>;
}

/** Stage notifications passed through unchanged to `meeting.stage` listeners. */
const STAGE_PASS_THROUGH = [
  'stageAccessRequestUpdate',
  'newStageRequest',
  'stageAccessRequestAccepted',
  'stageRequestApproved',
  'stageRequestRejected',
  'removedFromStage',
] as const satisfies readonly (keyof StageEvents & keyof Notifications)[];

export class Meeting {
  readonly roomId: string;
  readonly stage: MeetingStage;
  readonly #self: MutableSelf;
  #mode: StageMode;
  readonly #participants = new Map<string, MutableParticipant>();
  /** producer id → the track `trackAdded` handed out, to clear `participant.tracks` precisely. */
  readonly #received = new Map<string, MediaStreamTrack>();
  readonly #events = new TypedEmitter<MeetingEvents>();
  readonly #stageEvents = new TypedEmitter<StageEvents>();
  readonly #signaling: Signaling;
  readonly #media: MediaSession;
  readonly #publisher: Publisher;
  readonly #subscriber: Subscriber;
  #recvReady: Promise<unknown>;
  #leaving: Promise<void> | undefined;
  readonly #unsubscribe: Array<() => void> = [];
  #goodbye: Notifications['goodbye']['reason'] | undefined;
  #closed = false;

  /** @internal Use `joinMeeting()`. Notifications must be held on `signaling` until this returns. */
  constructor(signaling: Signaling, media: MediaSession, snapshot: RoomSnapshot, options: JoinMeetingOptions) {
    this.#signaling = signaling;
    this.#media = media;
    this.roomId = snapshot.roomId;
    this.#self = { ...snapshot.self };
    this.#mode = snapshot.mode;
    this.#publisher = new Publisher({
      media,
      preset: snapshot.self.preset,
      status: () => this.#self.stageStatus,
      tracks: options.tracks,
      prepareSendTransport: options.prepareSendTransport ?? true,
      onError: (error) => this.#mediaError(error, 'publish'),
    });
    this.#recvReady = this.#createRecvTransport();
    this.#subscriber = new Subscriber({
      media,
      ready: () => this.#recvReady,
      onAdded: (e) => this.#trackAdded(e),
      onRemoved: (e) => this.#trackRemoved(e),
      onError: (error, producerId) => this.#mediaError(error, 'consume', producerId),
    });
    this.stage = new MeetingStage(
      { status: () => this.#self.stageStatus, mode: () => this.#mode },
      signaling,
      this.#publisher,
      this.#stageEvents,
    );

    for (const p of snapshot.participants) this.#upsert(p);
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

  /** The local participant (kept current). */
  get self(): SelfInfo {
    return this.#self;
  }

  /** Every other participant of the room, by id (kept current; the local one is `self`). */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#participants;
  }

  /** The tracks this participant publishes right now, by kind. */
  get localTracks(): Readonly<LocalTracks> {
    return this.#publisher.localTracks;
  }

  /** This participant's live producers, by producer id. */
  get producers(): ReadonlyMap<string, LocalProducerInfo> {
    return this.#publisher.producers;
  }

  /** False once left or disconnected. */
  get connected(): boolean {
    return !this.#closed;
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
   * `disconnected` {reason:'left'}. Idempotent.
   */
  leave(): Promise<void> {
    this.#leaving ??= (async () => {
      if (!this.#closed) await this.#leaveRoom();
      this.#teardown('left');
    })();
    return this.#leaving;
  }

  // ------------------------------------------------------------------ notifications
  #wire(): void {
    const s = this.#signaling;
    const on = <N extends keyof Notifications>(name: N, fn: (data: Notifications[N]) => void) =>
      this.#unsubscribe.push(s.on(name, (data) => !this.#closed && fn(data)));

    on('participantJoined', ({ participant }) => {
      const known = this.#participants.has(participant.id);
      const p = this.#upsert(participant);
      if (!known) this.#events.emit('participantJoined', { participant: p });
    });
    on('participantLeft', ({ userId }) => {
      const p = this.#participants.get(userId);
      this.#subscriber.removeOwner(userId);
      if (!p) return;
      this.#participants.delete(userId);
      this.#events.emit('participantLeft', { userId, participant: p });
    });
    on('stageStatusUpdate', (data) => {
      this.#self.stageStatus = data.new;
      this.#publisher.follow(data.new);
      this.#stageEvents.emit('stageStatusUpdate', data);
    });
    on('peerStageStatusUpdate', (data) => {
      const p = this.#participants.get(data.userId);
      if (p) p.stageStatus = data.new;
      this.#stageEvents.emit('peerStageStatusUpdate', data);
    });
    on('stageModeUpdate', (data) => {
      this.#mode = data.mode;
      this.#stageEvents.emit('stageModeUpdate', data);
    });
    for (const name of STAGE_PASS_THROUGH) {
      on(name, (data) => this.#stageEvents.emit(name, data as never));
    }
    on('newProducer', ({ producer }) => this.#addProducer(producer));
    on('producerClosed', ({ producerId, userId }) => {
      const p = this.#participants.get(userId);
      if (p) p.producers = p.producers.filter((i) => i.id !== producerId);
      this.#subscriber.remove(producerId);
    });
    on('producerPaused', ({ producerId, userId }) => this.#setPaused(userId, producerId, true));
    on('producerResumed', ({ producerId, userId }) => this.#setPaused(userId, producerId, false));
    on('consumerClosed', ({ producerId }) => this.#subscriber.remove(producerId));
    on('producerClosedByServer', (data) => {
      this.#publisher.closedByServer(data.producerId);
      this.#events.emit('producerClosedByServer', data);
    });
    on('mediaReset', () => this.#resetMedia());
    on('goodbye', ({ reason }) => {
      this.#goodbye = reason;
    });
    this.#unsubscribe.push(s.onDisconnect((reason) => this.#teardown(this.#goodbye ?? reason)));
  }

  #upsert(info: RemoteParticipantInfo): MutableParticipant {
    const existing = this.#participants.get(info.id);
    const p: MutableParticipant = existing ?? { ...info, producers: [], tracks: {} };
    p.name = info.name;
    p.presetName = info.presetName;
    p.stageStatus = info.stageStatus;
    this.#participants.set(p.id, p);
    for (const producer of info.producers) this.#addProducer(producer);
    return p;
  }

  #addProducer(producer: ProducerInfo): void {
    if (producer.userId === this.#self.id) return;
    const p = this.#participants.get(producer.userId);
    if (p && !p.producers.some((i) => i.id === producer.id)) p.producers = [...p.producers, { ...producer }];
    this.#subscriber.add(producer);
  }

  #setPaused(userId: string, producerId: string, paused: boolean): void {
    const p = this.#participants.get(userId);
    if (p) p.producers = p.producers.map((i) => (i.id === producerId ? { ...i, paused } : i));
  }

  #trackAdded(e: TrackAddedEvent): void {
    if (this.#closed) return;
    this.#received.set(e.producerId, e.track);
    const p = this.#participants.get(e.participantId);
    if (p) p.tracks[e.source] = e.track;
    this.#events.emit('trackAdded', e);
  }

  #trackRemoved(e: TrackRemovedEvent): void {
    if (this.#closed) return;
    const track = this.#received.get(e.producerId);
    this.#received.delete(e.producerId);
    const p = this.#participants.get(e.participantId);
    if (p && track && p.tracks[e.source] === track) delete p.tracks[e.source];
    this.#events.emit('trackRemoved', e);
  }

  #mediaError(error: StagegateError, during: 'publish' | 'consume', producerId?: string): void {
    if (this.#closed) return;
    this.#events.emit('mediaError', producerId ? { error, during, producerId } : { error, during });
  }

  #createRecvTransport(): Promise<unknown> {
    const ready = this.#media.createRecvTransport();
    // joinMeeting awaits the first one; a later one (mediaReset) reports its failure itself.
    ready.catch(() => undefined);
    return ready;
  }

  /** The room moved to another mediasoup worker: rebuild transports, receive and publish again. */
  #resetMedia(): void {
    this.#subscriber.reset();
    this.#media.closeSendTransport();
    this.#media.closeRecvTransport();
    this.#recvReady = this.#createRecvTransport();
    this.#recvReady.catch((err: unknown) => this.#mediaError(toStagegateError(err), 'consume'));
    for (const p of this.#participants.values()) for (const producer of p.producers) this.#subscriber.add(producer);
    this.#publisher.reset();
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

  #teardown(reason: DisconnectReason): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#publisher.close();
    this.#subscriber.close();
    this.#media.close();
    this.#signaling.close();
    this.#events.emit('disconnected', { reason });
  }
}

type RemoteParticipantInfo = RoomSnapshot['participants'][number];

const LEAVE_TIMEOUT_MS = 2_000;
