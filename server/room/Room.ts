/**
 * One webinar: the stage state machine, the participants, and its media plane (RoomMedia: the
 * routers on the process's workers, placement and pipes, in server/media/).
 *
 * Media gating lives here and nowhere else:
 * - `createTransport('send')` only while ACCEPTED_TO_JOIN_STAGE or ON_STAGE;
 * - `produce` only while ON_STAGE, for a kind read from the RTP parameters and a source the
 *   preset allows; a producer whose creation finishes after its owner left the stage, or after
 *   its transport closed (a drop, a replacing connection), is closed;
 * - `consume`: one consumer per (participant, producer);
 * - every transition away from ON_STAGE (leave, kick, disconnect, mode) closes the owner's
 *   producers right in the stage listener, which closes their consumers in the worker; every
 *   receiver is told.
 *
 * Who is told about whom follows the room's `audience` setting (`Audience`): in a `hidden` room
 * the audience is seen one by one only by the hosts; everyone else sees the stage and a count.
 */
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type {
  ConsumerOptions,
  MediaKind,
  NotificationName,
  Notifications,
  ParticipantInfo,
  ProducerCloseReason,
  RoomSnapshot,
  TransportOptions,
} from '../../shared/protocol.js';
import type { BatchResult } from '../../shared/stage.js';
import {
  DEFAULT_ROOM_SETTINGS,
  type MediaSource,
  type Preset,
  type RoomSettings,
  type StageMode,
  type StageStatus,
} from '../../shared/stage.js';
import type { Logger } from '../logger.js';
import type { VerifiedToken } from '../auth/tokens.js';
import { BACKEND_ACTOR, Stage, type StageChangeReason, type StageState } from '../stage/Stage.js';
import { realScheduler } from '../stage/clock.js';
import type { AuditEntry } from '../audit/AuditTrail.js';
import { auditStage } from '../audit/stageAudit.js';
import { samePreset } from '../stage/stageRules.js';
import { layerForSize, layersOf, Throttle } from '../media/layers.js';
import { kindOfRtp, producerOptions, workerRefusal } from '../media/rtp.js';
import { RoomMedia, type RtcOptions, type TransportFactory } from '../media/RoomMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import { Audience, type GroupChannel } from './Audience.js';
import { Participant, type ParticipantSession, type StagedProducer } from './Participant.js';
import { forwardStageEvents, type QueueTeller } from './stageEvents.js';

export type { RtcOptions } from '../media/RoomMedia.js';

/** How the room reaches every participant, or a group of them, at once (socket.io rooms in production). */
export interface RoomChannel extends GroupChannel {
  toAll<N extends NotificationName>(name: N, data: Notifications[N], exceptUserId?: string): void;
}

/** Consumer priority in its transport's bitrate allocation: screenshare before cameras (default 1). */
const SCREENSHARE_PRIORITY = 10;
/** Score notifications per consumer or producer at most this often. */
const SCORE_INTERVAL_MS = 1_000;

/** What the server keeps on a consumer's appData: who asked for what (see setConsumerPreferences). */
type ConsumerState = {
  userId: string;
  /** The client called resumeConsumer (consumers are created paused until then). */
  clientResumed: boolean;
  /** The client's tile is hidden: paused on the server whatever else says. */
  hidden: boolean;
  /**
   * Simulcast: the layers the viewer wants, while the consumer starts on the lowest one (its key
   * frame is the smallest, so the first frame shows sooner); set once the first layer is sent.
   */
  wanted?: ms.ConsumerLayers;
};

/** A room's state as JSON (`Room.toState`). */
export interface RoomState {
  id: string;
  instanceId: string;
  createdAt: number;
  stage: StageState;
  /** Room settings (who sees whom). */
  settings: RoomSettings;
  /** Cluster mode: the id the room's next audit record gets (a takeover continues the numbering). */
  auditNext?: number;
}

/** The session of a member restored from state, until they reconnect. */
const DETACHED: ParticipantSession = { id: 'detached', notify() {}, subscribe() {}, disconnect() {} };

const CLOSE_REASON: Partial<Record<StageChangeReason, ProducerCloseReason>> = {
  kick: 'kicked',
  preset: 'kicked',
  'leave-room': 'disconnected',
  'slot-ended': 'slot-ended',
  'removed-from-room': 'removed-from-room',
};

export class Room {
  readonly stage: Stage;
  readonly participants = new Map<string, Participant>();
  /** Who sees whom, the room settings, and the audience count. */
  readonly audience: Audience;
  /** Queue positions to each requester. */
  readonly queue: QueueTeller;
  readonly createdAt: number;
  /** This room instance: tokens carry it, so a room created again with the same id refuses the old ones. */
  readonly instanceId: string;
  /** producer id → owner, for consume(). */
  readonly #owners = new Map<string, Participant>();
  readonly #closeListeners: (() => void)[] = [];
  readonly #consumerScores = new Throttle<{ p: Participant; data: Notifications['consumerScore'] }>(
    SCORE_INTERVAL_MS,
    (_, { p, data }) => p.session.notify('consumerScore', data),
  );
  readonly #producerScores = new Throttle<{ p: Participant; data: Notifications['producerScore'] }>(
    SCORE_INTERVAL_MS,
    (_, { p, data }) => p.session.notify('producerScore', data),
  );
  /** The last dominant speaker (its producer may have closed since). */
  #activeSpeaker: Notifications['activeSpeaker'] | undefined;
  #closed = false;
  /** While `removeFromRoom` runs: each target's status before it (who saw them is told they left). */
  #removing = new Map<string, StageStatus>();

  private constructor(
    readonly id: string,
    readonly media: RoomMedia,
    readonly channel: RoomChannel,
    readonly log: Logger,
    mode: StageMode,
    /** How long a dropped participant keeps their place (stage status, queue position). */
    readonly reconnectGraceMs: number,
    settings: RoomSettings,
    restored?: RoomState,
    /** Where the room's audit records go (the server's AuditTrail). */
    readonly audit: (entry: AuditEntry) => void = () => {},
  ) {
    const stageOptions = {
      mode,
      settings,
      // a closed room's deadlines do nothing
      schedule: (at: number, wake: () => void) => realScheduler()(at, () => !this.#closed && wake()),
      onListenerError: (err: unknown) => log.error({ err }, 'stage listener failed'),
    };
    this.stage = restored ? Stage.fromState(restored.stage, stageOptions) : new Stage(stageOptions);
    this.instanceId = restored?.instanceId ?? randomUUID();
    this.createdAt = restored?.createdAt ?? Date.now();
    // first: a stage change is recorded before what it causes (producers closed...)
    auditStage(this.stage, (entry) => this.audit(entry));
    this.audience = new Audience(this.participants, this.stage, channel, (p) => this.info(p), log);
    this.#gateMedia();
    this.queue = forwardStageEvents(this.stage, this.participants, channel, this.audience, log);
    this.stage.on('removedFromRoom', ({ userId }) => this.#removed(userId));
    media.onEdgeLost((transportIds) => this.#edgeLost(transportIds));
    media.onDominantSpeaker((producer) => {
      const owner = this.#owners.get(producer.id);
      if (!owner) return;
      this.#activeSpeaker = { userId: owner.id, producerId: producer.id };
      this.channel.toAll('activeSpeaker', this.#activeSpeaker);
    });
    // Taken over from a node that died: every member is as if their connection had just dropped.
    for (const m of restored ? this.stage.members() : []) {
      const p = new Participant(m.id, m.name, m.preset, DETACHED, log.child({ userId: m.id }));
      this.participants.set(p.id, p);
      p.connected = false;
      p.graceTimer = setTimeout(() => this.leave(p.id), reconnectGraceMs);
      p.graceTimer.unref();
    }
  }

  /** The room's state as JSON, enough for `Room.create({ restore })` on another node. */
  toState(): RoomState {
    return {
      id: this.id,
      instanceId: this.instanceId,
      createdAt: this.createdAt,
      stage: this.stage.toState(),
      settings: this.audience.settings,
    };
  }

  static async create(opts: {
    id: string;
    mode?: StageMode;
    /** The origin's worker; edges go on the pool's other workers. */
    worker: ms.Worker;
    pool: WorkerPool;
    /** Consumers per router before a receive transport goes to another worker (RoomMedia). */
    maxConsumersPerRouter: number;
    channel: RoomChannel;
    rtc: RtcOptions;
    log: Logger;
    reconnectGraceMs?: number;
    settings?: Partial<RoomSettings> | undefined;
    /** Continue from this state (cluster mode: the room's previous node died). */
    restore?: RoomState;
    audit?: (entry: AuditEntry) => void;
  }): Promise<Room> {
    const log = opts.log.child({ roomId: opts.id });
    const { id, worker, pool, channel, rtc, maxConsumersPerRouter, mode = 'REQUEST', reconnectGraceMs = 15_000 } = opts;
    const settings = { ...DEFAULT_ROOM_SETTINGS, ...opts.settings };
    const media = await RoomMedia.create(worker, { pool, rtc, maxConsumersPerRouter, log });
    return new Room(id, media, channel, log, mode, reconnectGraceMs, settings, opts.restore, opts.audit);
  }

  /** The origin router: every producer is there, and its RTP capabilities are every router's. */
  get router(): ms.Router {
    return this.media.router;
  }

  /** The origin router's worker (the registry moves the room when it dies). */
  get worker(): ms.Worker {
    return this.media.worker;
  }

  get settings(): RoomSettings {
    return this.audience.settings;
  }

  /** Changes room settings (acceptStageRequests holders, or `@backend`); everyone is told. */
  setSettings(actorId: string, change: Partial<RoomSettings>): RoomSettings {
    this.#assertOpen();
    return this.audience.update(actorId, change);
  }

  /** Called once when the room closes. */
  onClose(listener: () => void): void {
    this.#closeListeners.push(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ------------------------------------------------------------------ membership
  /**
   * Adds the token's user. The same user again (a reconnect within the grace period, or a second
   * connection, which replaces the first and tells it why) keeps their stage status and queue
   * position; their old media is closed and the client publishes again by itself.
   *
   * Name and preset are the new token's, at once (see `#applyIdentity`): the snapshot shows the
   * new identity with the status as it was, and the changes the new preset causes follow as
   * notifications (held by the client until it applied the snapshot).
   */
  join(session: ParticipantSession, who: VerifiedToken, rtpCapabilities: ms.RtpCapabilities): RoomSnapshot {
    this.#assertOpen();
    if (this.stage.isBanned(who.userId)) throw new StagegateError('BANNED', `${who.userId} is banned from this room`);
    let p = this.participants.get(who.userId);
    let identityChanged = false;
    if (p) {
      identityChanged = p.name !== who.name || !samePreset(p.preset, who.preset);
      const old = p.session;
      this.#dropMedia(p, 'disconnected'); // its notices go to the old connection
      p.session = session; // before disconnecting the old one, whose disconnect then is ignored
      if (p.connected) {
        old.notify('goodbye', { reason: 'replaced' });
        old.disconnect();
      }
      clearTimeout(p.graceTimer);
      p.connected = true;
      p.log.info({ status: this.statusOf(p.id), preset: who.preset.name }, 'rejoined room');
    } else {
      p = new Participant(who.userId, who.name, who.preset, session, this.log.child({ userId: who.userId }));
      this.participants.set(p.id, p);
      this.stage.add({ id: p.id, name: p.name, preset: p.preset });
      p.log.info({ preset: p.preset.name, status: this.statusOf(p.id) }, 'joined room');
      this.audit({
        actor: p.id,
        action: 'participant.joined',
        to: this.statusOf(p.id),
        details: { name: p.name, preset: p.preset.name },
      });
      const group = this.audience.groupFor(this.audience.isStage(p));
      this.channel.toGroup(group, 'participantJoined', { participant: this.info(p) }, p.id);
      this.audience.changed();
    }
    p.rtpCapabilities = rtpCapabilities;
    // a changed identity (a new token) counts at once for the connection's own view
    const preset = who.preset;
    session.subscribe({ host: preset.acceptStageRequests });
    const viewer = p;
    // who speaks now (the client holds notifications until it applied the snapshot)
    if (this.#activeSpeaker && this.#owners.has(this.#activeSpeaker.producerId)) {
      session.notify('activeSpeaker', this.#activeSpeaker);
    }
    const snapshot: RoomSnapshot = {
      roomId: this.id,
      self: {
        id: p.id,
        name: who.name,
        preset,
        stageStatus: this.statusOf(p.id),
        held: this.stage.holdsOf(p.id).held,
        ...this.#slotOf(p.id),
      },
      // in a hidden room, the stage people only (unless a host)
      participants: [...this.participants.values()]
        .filter((o) => o !== viewer && this.audience.sees(preset, o))
        .map((o) => this.info(o)),
      mode: this.stage.mode,
      requests: preset.acceptStageRequests ? this.stage.getAccessRequests(BACKEND_ACTOR) : [],
      settings: this.audience.settings,
      audienceCount: this.audience.announcedCount(), // the current one follows within a second
    };
    if (identityChanged) this.#applyIdentity(p, { name: who.name, preset: who.preset });
    return snapshot;
  }

  /**
   * The participant's name or preset changed (a new token). The stage applies the new preset
   * first (lost rights are gone at once; off stage as if kicked by `@backend` when the preset no
   * longer lets them be there; see `Stage.updateMember`): its status events go out under the old
   * identity, who sees what unchanged. Then `p` takes the new identity and those who see them are
   * told (`participantUpdated`); in a hidden room a participant the new preset makes a stage
   * person (or no longer one) appears to (or leaves) the others' roster. Host-only notifications
   * follow the connection's subscription, made with the new preset. No producer of the old
   * connection is left (`join` dropped its media); one still being created is refused by
   * `produce` if the new preset forbids its source.
   */
  #applyIdentity(p: Participant, next: { name: string; preset: Preset }): void {
    p.log.info({ name: next.name, preset: next.preset.name }, 'identity updated from the new token');
    p.name = next.name; // an arrival the status change causes shows the new name, never the old one
    this.stage.updateMember(p.id, next);
    const wasStage = this.audience.isStage(p);
    p.preset = next.preset;
    this.audience.identityChanged(p, wasStage);
  }

  /**
   * The connection of `session` dropped. Its producers close at once (nobody hears a ghost);
   * the participant keeps their stage status and queue position for the grace period.
   */
  disconnected(userId: string, session: ParticipantSession): void {
    const p = this.participants.get(userId);
    if (!p || p.session !== session) return; // replaced by a newer connection already
    p.connected = false;
    this.#dropMedia(p, 'disconnected');
    if (this.reconnectGraceMs <= 0) return this.leave(userId, 'connection-lost');
    p.log.info({ graceMs: this.reconnectGraceMs }, 'connection lost, keeping the place');
    p.graceTimer = setTimeout(() => this.leave(userId, 'connection-lost'), this.reconnectGraceMs);
    p.graceTimer.unref();
  }

  /**
   * Moves the room to a live worker after its origin's worker died: a new origin router (every
   * other router of the room closed too), every participant's media dropped, and every client
   * told to set its media up again. Stage state is untouched.
   */
  async moveTo(worker: ms.Worker): Promise<void> {
    await this.media.moveOrigin(worker);
    if (this.#closed) return;
    for (const p of this.participants.values()) this.#dropMedia(p, 'transport-closed');
    this.log.warn({ workerPid: worker.pid }, 'room moved to another mediasoup worker');
    for (const p of this.participants.values())
      if (p.connected) p.session.notify('mediaReset', { reason: 'worker-died' });
  }

  /** The user left the room (or disconnected): stage cascade first, then every media object. */
  leave(userId: string, reason: 'left' | 'connection-lost' = 'left'): void {
    const p = this.participants.get(userId);
    if (!p) return;
    this.audit({ actor: p.id, action: 'participant.left', reason });
    clearTimeout(p.graceTimer);
    const seenByAll = this.audience.isStage(p);
    this.stage.remove(userId); // ON_STAGE → OFF_STAGE: the listener closes the producers
    p.closeMedia();
    this.participants.delete(userId);
    p.log.info('left room');
    this.channel.toGroup(this.audience.groupFor(seenByAll), 'participantLeft', { userId });
    this.audience.changed();
  }

  /**
   * Removes users from the room at once (needs kickParticipant, or `@backend`): off stage (their
   * producers closed, reason 'removed-from-room'), told `goodbye { reason: 'removed-from-room' }`
   * and disconnected, their place forgotten (no grace period); `ban`: their id is refused until
   * the backend unbans it. Per-user results as the other batch actions.
   */
  removeFromRoom(actorId: string, userIds: string[], opts: { ban?: boolean } = {}): BatchResult {
    this.#assertOpen();
    this.#removing = new Map(userIds.flatMap((id) => (this.stage.has(id) ? [[id, this.statusOf(id)]] : [])));
    try {
      return this.stage.removeFromRoom(actorId, userIds, opts);
    } finally {
      this.#removing.clear();
    }
  }

  statusOf(userId: string): StageStatus {
    const m = this.stage.get(userId);
    if (!m) throw new StagegateError('NOT_FOUND', `no participant ${userId} in this room`);
    return m.status;
  }

  info(p: Participant): ParticipantInfo {
    return {
      id: p.id,
      name: p.name,
      presetName: p.preset.name,
      stageStatus: this.statusOf(p.id),
      producers: p.producerInfos(),
      ...this.#slotOf(p.id),
    };
  }

  #slotOf(userId: string): { slotEndsAt?: number } {
    const endsAt = this.stage.slotEndsAt(userId);
    return endsAt === undefined ? {} : { slotEndsAt: endsAt };
  }

  // ------------------------------------------------------------------ transports
  async createTransport(p: Participant, direction: 'send' | 'recv'): Promise<TransportOptions> {
    const transport = (await this.openTransport(p, direction)) as ms.WebRtcTransport;
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  /**
   * Gating and placement of a transport, made by `make` (default: a WebRtcTransport) on the
   * router the media plane chose; it replaces the participant's previous one of that direction.
   * The hook for transports the protocol does not create (the fan-out benchmark's PlainTransports).
   */
  async openTransport(p: Participant, direction: 'send' | 'recv', make?: TransportFactory): Promise<ms.Transport> {
    this.#assertOpen();
    if (direction === 'send')
      this.#assertMayPublish(p, ['ACCEPTED_TO_JOIN_STAGE', 'ON_STAGE'], 'create a send transport');
    // cluster mode: a transport goes on the node the participant's socket is on
    const node = p.session.node;
    const transport = await this.media.createTransport({ userId: p.id, direction, ...(node && { node }) }, make);
    // The participant may have left, or left the stage, while the worker created it.
    const stillAllowed =
      this.participants.get(p.id) === p &&
      (direction === 'recv' || ['ACCEPTED_TO_JOIN_STAGE', 'ON_STAGE'].includes(this.statusOf(p.id)));
    if (!stillAllowed) {
      transport.close();
      throw new StagegateError('INVALID_STATE', 'the stage status changed while the transport was created');
    }
    const previousId = direction === 'send' ? p.sendTransportId : p.recvTransportId;
    if (previousId) {
      p.transports.get(previousId)?.close();
      p.transports.delete(previousId);
    }
    p.transports.set(transport.id, transport);
    if (direction === 'send') p.sendTransportId = transport.id;
    else p.recvTransportId = transport.id;
    return transport;
  }

  async connectTransport(p: Participant, transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
    const transport = p.transports.get(transportId);
    if (!transport) throw new StagegateError('NOT_FOUND', `no transport ${transportId}`);
    // dtlsState stays 'new' until ICE/DTLS start, so the first call is remembered instead
    if (transport.appData.connectCalled) throw new StagegateError('INVALID_STATE', 'transport already connected');
    transport.appData.connectCalled = true;
    try {
      await transport.connect({ dtlsParameters });
    } catch (err) {
      transport.appData.connectCalled = false;
      throw workerRefusal(err);
    }
  }

  // ------------------------------------------------------------------ producers
  async produce(
    p: Participant,
    req: { transportId: string; kind: MediaKind; rtpParameters: ms.RtpParameters; source?: MediaSource | undefined },
  ): Promise<{ id: string; source: MediaSource }> {
    const kind = kindOfRtp(req.rtpParameters);
    if (kind !== req.kind) {
      throw new StagegateError(
        'INVALID_REQUEST',
        `rtpParameters carry ${kind ?? 'mixed or unknown'} media, not ${req.kind}`,
      );
    }
    const source = req.source ?? kind;
    if ((kind === 'audio') !== (source === 'audio')) {
      throw new StagegateError('INVALID_REQUEST', `source ${source} does not fit ${kind} media`);
    }
    this.#assertMayPublish(p, ['ON_STAGE'], 'produce');
    if (p.preset.media[source] !== 'ALLOWED') {
      throw new StagegateError('FORBIDDEN', `preset ${p.preset.name} does not allow ${source}`);
    }
    const transport = p.sendTransportId === req.transportId ? p.transports.get(req.transportId) : undefined;
    if (!transport) throw new StagegateError('NOT_FOUND', `no send transport ${req.transportId}`);
    // One producer per source, counting those still being created (two calls may race). A
    // reservation counts only while its transport lives: one made on a connection that dropped
    // or was replaced must not block the new connection's produce.
    if (
      p.producingSources.get(source)?.closed === false ||
      [...p.producers.values()].some((sp) => sp.source === source)
    ) {
      throw new StagegateError('INVALID_STATE', `already producing ${source}`);
    }

    const epoch = p.stageEpoch;
    p.producingSources.set(source, transport);
    const producer = await transport
      .produce({ kind, rtpParameters: req.rtpParameters, appData: { userId: p.id, source }, ...producerOptions(kind) })
      .catch((err: unknown) => Promise.reject(workerRefusal(err)))
      .finally(() => {
        if (p.producingSources.get(source) === transport) p.producingSources.delete(source);
      });
    // A host holds this source (now, or since the call started): it starts paused, before anyone hears of it.
    if (this.stage.isHeld(p.id, source)) await producer.pause().catch(() => undefined);
    // Gating, second half: a kick or leave during the await bumped the epoch. A drop or a
    // replacing connection keeps the participant ON_STAGE but closed this transport: the worker
    // dropped the producer with it, while mediasoup's Node side still calls it open.
    if (
      epoch !== p.stageEpoch ||
      producer.closed ||
      transport.closed ||
      p.sendTransportId !== transport.id ||
      this.participants.get(p.id) !== p
    ) {
      producer.close();
      throw new StagegateError('INVALID_STATE', 'left the stage while the producer was created');
    }
    // ... or a new token's preset took the source away meanwhile
    if (p.preset.media[source] !== 'ALLOWED') {
      producer.close();
      throw new StagegateError('FORBIDDEN', `preset ${p.preset.name} no longer allows ${source}`);
    }
    const staged: StagedProducer = { producer, source };
    p.producers.set(producer.id, staged);
    this.#owners.set(producer.id, p);
    producer.on('transportclose', () => this.#dropProducer(p, staged, 'transport-closed'));
    producer.on('score', (scores) => {
      // the best stream's: a simulcast layer the browser chose not to send is not a bad uplink
      const score = scores.reduce((best, s) => Math.max(best, s.score), 0);
      this.#producerScores.push(producer.id, { p, data: { producerId: producer.id, score } });
    });
    producer.observer.once('close', () => this.#producerScores.drop(producer.id));
    if (kind === 'audio') {
      this.media.observeSpeaker(producer).catch((err: unknown) => p.log.warn({ err }, 'active speaker observer'));
    }
    p.log.info({ producerId: producer.id, kind, source }, 'producer created');
    this.audit({
      actor: p.id,
      action: 'producer.created',
      target: p.id,
      details: { producerId: producer.id, kind, source, paused: producer.paused },
    });
    this.channel.toAll('newProducer', { producer: p.producerInfos().find((i) => i.id === producer.id)! }, p.id);
    return { id: producer.id, source };
  }

  closeProducer(p: Participant, producerId: string): void {
    const staged = this.#ownProducer(p, producerId);
    staged.producer.close();
    this.#dropProducer(p, staged, 'closed');
  }

  async setProducerPaused(p: Participant, producerId: string, paused: boolean): Promise<void> {
    const { producer, source } = this.#ownProducer(p, producerId);
    if (!paused && this.stage.isHeld(p.id, source))
      throw new StagegateError('FORBIDDEN', `the host muted your ${source}: ask to unmute first`);
    if (paused) await producer.pause();
    else {
      await producer.resume();
      // a host muted it while the resume was under way: the hold wins
      if (this.stage.isHeld(p.id, source)) {
        await producer.pause();
        throw new StagegateError('FORBIDDEN', `the host muted your ${source}: ask to unmute first`);
      }
    }
    this.channel.toAll(paused ? 'producerPaused' : 'producerResumed', { producerId, userId: p.id }, p.id);
  }

  // ------------------------------------------------------------------ consumers
  async consume(p: Participant, producerId: string): Promise<ConsumerOptions> {
    const owner = this.#owners.get(producerId);
    const staged = owner?.producers.get(producerId);
    if (!owner || !staged) throw new StagegateError('NOT_FOUND', `no producer ${producerId}`);
    if (owner === p) throw new StagegateError('INVALID_REQUEST', 'cannot consume your own producer');
    const transport = p.recvTransportId ? p.transports.get(p.recvTransportId) : undefined;
    if (!transport) throw new StagegateError('INVALID_STATE', 'create a recv transport first');
    if (!p.rtpCapabilities) throw new StagegateError('UNSUPPORTED', 'no RTP capabilities to receive with');
    // One consumer per (participant, producer), counting those being created (calls may race).
    if (
      p.consumingProducers.get(producerId)?.closed === false ||
      [...p.consumers.values()].some((c) => c.producerId === producerId)
    ) {
      throw new StagegateError('INVALID_STATE', `already consuming producer ${producerId}`);
    }
    p.consumingProducers.set(producerId, transport);
    const rtpCapabilities = p.rtpCapabilities;
    const appData: ConsumerState = { userId: p.id, clientResumed: false, hidden: false };
    const consumer = await (async () => {
      // On an edge router, this pipes the producer there first (one pipe per producer and edge).
      await this.media.prepareConsume(transport, staged.producer, rtpCapabilities);
      if (staged.producer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
      // A simulcast consumer starts on its lowest spatial layer (see #startLow), set right here:
      // one worker round trip less before the viewer's ack.
      const start = staged.producer.type === 'simulcast' ? { preferredLayers: { spatialLayer: 0 } } : {};
      return transport
        .consume({ producerId, rtpCapabilities, paused: true, appData, ...start })
        .catch((err: unknown) => {
          // its pipe (on an edge) or the producer closed during the call
          if (staged.producer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
          throw err;
        });
    })().finally(() => {
      if (p.consumingProducers.get(producerId) === transport) p.consumingProducers.delete(producerId);
    });
    if (consumer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
    if (transport.closed || p.recvTransportId !== transport.id) {
      consumer.close();
      throw new StagegateError('INVALID_STATE', 'the receive transport closed while the consumer was created');
    }
    p.consumers.set(consumer.id, consumer);
    consumer.on('transportclose', () => p.consumers.delete(consumer.id));
    consumer.on('producerclose', () => {
      p.consumers.delete(consumer.id);
      p.session.notify('consumerClosed', { consumerId: consumer.id, producerId });
    });
    this.#watchConsumer(p, consumer, producerId);
    if (consumer.type === 'simulcast') this.#startLow(consumer, appData);
    if (staged.source === 'screenshare') await consumer.setPriority(SCREENSHARE_PRIORITY);
    return {
      id: consumer.id,
      producerId,
      userId: owner.id,
      kind: consumer.kind,
      source: staged.source,
      rtpParameters: consumer.rtpParameters,
    };
  }

  /** The client is ready: start sending, with a key frame so video shows at once. */
  async resumeConsumer(p: Participant, consumerId: string): Promise<void> {
    const consumer = p.consumers.get(consumerId);
    if (!consumer) throw new StagegateError('NOT_FOUND', `no consumer ${consumerId}`);
    const state = consumer.appData as unknown as ConsumerState;
    state.clientResumed = true;
    if (state.hidden) return; // its tile is hidden: it starts when shown
    await this.#start(consumer);
  }

  /**
   * How the receiver shows one of its video consumers. A size sets the preferred spatial layer
   * (layerForSize; the top temporal layer); `visible: false` pauses the consumer on the server
   * (no bytes) until `visible: true`. That pause is the receiver's own: it is independent of the
   * producer being paused by its owner (mediasoup keeps both), and a consumer not yet resumed by
   * the client (created paused) stays paused until resumeConsumer.
   */
  async setConsumerPreferences(
    p: Participant,
    req: { consumerId: string; width?: number | undefined; height?: number | undefined; visible?: boolean | undefined },
  ): Promise<{ spatialLayer: number; paused: boolean }> {
    const consumer = p.consumers.get(req.consumerId);
    if (!consumer) throw new StagegateError('NOT_FOUND', `no consumer ${req.consumerId} of yours`);
    if (consumer.kind !== 'video') throw new StagegateError('INVALID_REQUEST', 'only video consumers have a size');
    if (req.width === undefined && req.height === undefined && req.visible === undefined) {
      throw new StagegateError('INVALID_REQUEST', 'give a width, a height or visible');
    }
    const state = consumer.appData as unknown as ConsumerState;
    const layers = layersOf(consumer);
    // Everything decided before the first await, and the worker calls issued in order: a
    // resumeConsumer sent right after this request (the client does not wait) sees `hidden`,
    // and reaches the worker after the preferred layers.
    const show = req.visible !== undefined && req.visible === state.hidden ? req.visible : undefined;
    if (show !== undefined) state.hidden = !show;
    const work: Promise<void>[] = [];
    if ((req.width !== undefined || req.height !== undefined) && layers.spatial > 1) {
      const wanted = {
        spatialLayer: layerForSize(layers.spatial, req.width ?? 0, req.height ?? 0),
        temporalLayer: layers.temporal - 1,
      };
      if (state.wanted)
        state.wanted = wanted; // still starting on the lowest layer
      else work.push(consumer.setPreferredLayers(wanted));
    }
    if (show === false) work.push(consumer.pause());
    else if (show === true && state.clientResumed) work.push(this.#start(consumer));
    await Promise.all(work);
    const spatialLayer = (state.wanted ?? consumer.preferredLayers)?.spatialLayer ?? 0;
    return { spatialLayer, paused: consumer.paused };
  }

  /**
   * A simulcast consumer starts on its lowest spatial layer (created so: `preferredLayers` in
   * consume); the first time it sends a layer, it moves to the one the viewer wants (the top one
   * until told otherwise): mediasoup switches at the higher layer's next key frame, with no gap.
   */
  #startLow(consumer: ms.Consumer, state: ConsumerState): void {
    const { spatial, temporal } = layersOf(consumer);
    if (spatial < 2) return;
    state.wanted = { spatialLayer: spatial - 1, temporalLayer: temporal - 1 };
    const raise = (layers?: ms.ConsumerLayers) => {
      if (!layers || !state.wanted || consumer.closed) return;
      consumer.off('layerschange', raise);
      const wanted = state.wanted;
      state.wanted = undefined;
      consumer.setPreferredLayers(wanted).catch(() => undefined); // closed meanwhile
    };
    consumer.on('layerschange', raise);
  }

  /** Starts sending a consumer, with a key frame so video shows at once. */
  async #start(consumer: ms.Consumer): Promise<void> {
    await consumer.resume();
    if (consumer.kind === 'video') await consumer.requestKeyFrame();
  }

  /** Quality reports of a consumer to its receiver, throttled. */
  #watchConsumer(p: Participant, consumer: ms.Consumer, producerId: string): void {
    const report = () => {
      const { score, producerScore } = consumer.score;
      const spatialLayer = consumer.currentLayers?.spatialLayer;
      const data: Notifications['consumerScore'] = { consumerId: consumer.id, producerId, score, producerScore };
      if (spatialLayer !== undefined) data.spatialLayer = spatialLayer;
      this.#consumerScores.push(consumer.id, { p, data });
    };
    consumer.on('score', report);
    consumer.on('layerschange', report);
    consumer.observer.once('close', () => this.#consumerScores.drop(consumer.id));
  }

  // ------------------------------------------------------------------ lifecycle
  close(reason: 'room-closed' | 'server-shutdown' = 'room-closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.audience.close();
    this.queue.close();
    for (const p of this.participants.values()) {
      clearTimeout(p.graceTimer);
      p.session.notify('goodbye', { reason });
      p.closeMedia();
      p.session.disconnect();
    }
    this.participants.clear();
    this.#owners.clear();
    this.#consumerScores.clear();
    this.#producerScores.clear();
    this.media.close();
    this.log.info({ reason }, 'room closed');
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  // ------------------------------------------------------------------ internals
  /** Media gating: every exit from ON_STAGE closes the producers right here, before anyone is told. */
  #gateMedia(): void {
    // A held source is paused on the server at once; only its owner can resume it, once allowed.
    this.stage.on('mutedByHost', ({ userId, sources }) => {
      const p = this.participants.get(userId);
      if (!p) return;
      for (const staged of p.producers.values()) {
        if (!sources.includes(staged.source) || staged.producer.paused) continue;
        const { producer } = staged;
        producer.pause().then(
          () => {
            if (!producer.closed) this.channel.toAll('producerPaused', { producerId: producer.id, userId: p.id }, p.id);
          },
          (err: unknown) => p.log.warn({ err, producerId: producer.id }, 'pausing a held producer failed'),
        );
      }
    });
    this.stage.on('statusChanged', ({ userId, from, to, reason }) => {
      const p = this.participants.get(userId);
      if (!p || reason === 'join-room') return;
      if (from === 'ON_STAGE' && to !== 'ON_STAGE') {
        p.stageEpoch++;
        const why = CLOSE_REASON[reason] ?? 'left-stage';
        for (const staged of p.closeProducers()) this.#dropProducer(p, staged, why);
      }
      if (to === 'OFF_STAGE' || to === 'REQUESTED_TO_JOIN_STAGE') p.closeSendTransport();
    });
  }

  /**
   * `removeFromRoom` took `userId` out of the stage (their producers closed in the statusChanged
   * listener): close their media, tell them why, disconnect them, and tell those who saw them.
   */
  #removed(userId: string): void {
    const p = this.participants.get(userId);
    if (!p) return;
    const was = this.#removing.get(userId) ?? 'OFF_STAGE';
    clearTimeout(p.graceTimer);
    this.#dropMedia(p, 'removed-from-room');
    this.participants.delete(userId);
    p.log.info('removed from the room');
    if (p.connected) {
      p.session.notify('goodbye', { reason: 'removed-from-room' });
      p.session.disconnect();
    }
    p.connected = false;
    this.channel.toGroup(this.audience.groupFor(this.audience.isStage(p, was)), 'participantLeft', { userId });
    this.audience.changed();
  }

  /**
   * An edge worker died with these transports: their owners lose all their media, as with a dead
   * origin, and are told to set it up again (a new receive transport goes to a live router).
   */
  #edgeLost(transportIds: Set<string>): void {
    for (const p of this.participants.values()) {
      if (![...p.transports.keys()].some((id) => transportIds.has(id))) continue;
      this.#dropMedia(p, 'transport-closed');
      p.log.warn('media reset: the worker of the recv transport died');
      if (p.connected) p.session.notify('mediaReset', { reason: 'worker-died' });
    }
  }

  /** Closes every media object of `p`, telling everyone about the producers. */
  #dropMedia(p: Participant, reason: ProducerCloseReason): void {
    for (const staged of p.closeProducers()) this.#dropProducer(p, staged, reason);
    p.closeMedia();
  }

  /** Forgets a producer that is closed (or closing) and tells everyone. Idempotent. */
  #dropProducer(p: Participant, staged: StagedProducer, reason: ProducerCloseReason): void {
    const { producer } = staged;
    if (!this.#owners.delete(producer.id)) return;
    p.producers.delete(producer.id);
    p.log.info({ producerId: producer.id, reason }, 'producer closed');
    this.audit({
      actor: reason === 'closed' ? p.id : '@server',
      action: 'producer.closed',
      target: p.id,
      reason,
      details: { producerId: producer.id, source: staged.source },
    });
    this.channel.toAll('producerClosed', { producerId: producer.id, userId: p.id, reason }, p.id);
    if (reason !== 'closed') p.session.notify('producerClosedByServer', { producerId: producer.id, reason });
  }

  #ownProducer(p: Participant, producerId: string): StagedProducer {
    const staged = p.producers.get(producerId);
    if (!staged) throw new StagegateError('NOT_FOUND', `no producer ${producerId} of yours`);
    return staged;
  }

  #assertMayPublish(p: Participant, allowed: StageStatus[], what: string): void {
    const status = this.statusOf(p.id);
    if (!allowed.includes(status)) {
      throw new StagegateError('INVALID_STATE', `cannot ${what} while ${status} (needs ${allowed.join(' or ')})`);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StagegateError('NOT_FOUND', `room ${this.id} is closed`);
  }
}
