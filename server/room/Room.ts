/**
 * One webinar: the stage state machine, the participants, and its media plane (RoomMedia: the
 * routers on the process's workers, placement and pipes, in server/media/).
 *
 * Media gating lives here and nowhere else:
 * - `createTransport('send')` only while ACCEPTED_TO_JOIN_STAGE or ON_STAGE;
 * - `produce` only while ON_STAGE, for a kind read from the RTP parameters and a source the
 *   preset allows; a producer whose creation finishes after its owner left the stage is closed;
 * - every transition away from ON_STAGE (leave, kick, disconnect, mode) closes the owner's
 *   producers right in the stage listener, which closes their consumers in the worker; every
 *   receiver is told.
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
import type { MediaSource, StageMode, StageStatus } from '../../shared/stage.js';
import type { Logger } from '../logger.js';
import type { VerifiedToken } from '../auth/tokens.js';
import { BACKEND_ACTOR, Stage, type StageChangeReason, type StageState } from '../stage/Stage.js';
import { samePreset } from '../stage/stageRules.js';
import { kindOfRtp, workerRefusal } from '../media/rtp.js';
import { RoomMedia, type RtcOptions, type TransportFactory } from '../media/RoomMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import { Participant, type ParticipantSession, type StagedProducer } from './Participant.js';
import { forwardStageEvents } from './stageEvents.js';

export type { RtcOptions } from '../media/RoomMedia.js';

/** How the room reaches every participant at once (socket.io rooms in production). */
export interface RoomChannel {
  toAll<N extends NotificationName>(name: N, data: Notifications[N], exceptUserId?: string): void;
}

/** A room's state as JSON (`Room.toState`). */
export interface RoomState {
  id: string;
  instanceId: string;
  createdAt: number;
  stage: StageState;
}

/** The session of a member restored from state, until they reconnect. */
const DETACHED: ParticipantSession = { id: 'detached', notify() {}, subscribe() {}, disconnect() {} };

const CLOSE_REASON: Partial<Record<StageChangeReason, ProducerCloseReason>> = {
  kick: 'kicked',
  preset: 'kicked',
  'leave-room': 'disconnected',
};

export class Room {
  readonly stage: Stage;
  readonly participants = new Map<string, Participant>();
  readonly createdAt: number;
  /** This room instance: tokens carry it, so a room created again with the same id refuses the old ones. */
  readonly instanceId: string;
  /** producer id → owner, for consume(). */
  readonly #owners = new Map<string, Participant>();
  readonly #closeListeners: (() => void)[] = [];
  #closed = false;

  private constructor(
    readonly id: string,
    readonly media: RoomMedia,
    readonly channel: RoomChannel,
    readonly log: Logger,
    mode: StageMode,
    /** How long a dropped participant keeps their place (stage status, queue position). */
    readonly reconnectGraceMs: number,
    restored?: RoomState,
  ) {
    const onListenerError = (err: unknown) => log.error({ err }, 'stage listener failed');
    this.stage = restored ? Stage.fromState(restored.stage, { onListenerError }) : new Stage({ mode, onListenerError });
    this.instanceId = restored?.instanceId ?? randomUUID();
    this.createdAt = restored?.createdAt ?? Date.now();
    this.#gateMedia();
    forwardStageEvents(this.stage, this.participants, channel, log);
    media.onEdgeLost((transportIds) => this.#edgeLost(transportIds));
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
    return { id: this.id, instanceId: this.instanceId, createdAt: this.createdAt, stage: this.stage.toState() };
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
    /** Continue from this state (cluster mode: the room's previous node died). */
    restore?: RoomState;
  }): Promise<Room> {
    const log = opts.log.child({ roomId: opts.id });
    const { id, worker, pool, channel, rtc, maxConsumersPerRouter, mode = 'REQUEST', reconnectGraceMs = 15_000 } = opts;
    const media = await RoomMedia.create(worker, { pool, rtc, maxConsumersPerRouter, log });
    return new Room(id, media, channel, log, mode, reconnectGraceMs, opts.restore);
  }

  /** The origin router: every producer is there, and its RTP capabilities are every router's. */
  get router(): ms.Router {
    return this.media.router;
  }

  /** The origin router's worker (the registry moves the room when it dies). */
  get worker(): ms.Worker {
    return this.media.worker;
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
      p.name = who.name;
      p.preset = who.preset;
    } else {
      p = new Participant(who.userId, who.name, who.preset, session, this.log.child({ userId: who.userId }));
      this.participants.set(p.id, p);
      this.stage.add({ id: p.id, name: p.name, preset: p.preset });
      p.log.info({ preset: p.preset.name, status: this.statusOf(p.id) }, 'joined room');
      this.channel.toAll('participantJoined', { participant: this.info(p) }, p.id);
    }
    p.rtpCapabilities = rtpCapabilities;
    session.subscribe();
    const snapshot: RoomSnapshot = {
      roomId: this.id,
      self: { id: p.id, name: p.name, preset: p.preset, stageStatus: this.statusOf(p.id) },
      participants: [...this.participants.values()].filter((o) => o !== p).map((o) => this.info(o)),
      mode: this.stage.mode,
      requests: p.preset.acceptStageRequests ? this.stage.getAccessRequests(BACKEND_ACTOR) : [],
    };
    if (identityChanged) this.#applyIdentity(p);
    return snapshot;
  }

  /**
   * The participant's name or preset changed (already set on `p`): everyone who sees them is told
   * (`participantUpdated`), then the stage applies the new preset (lost rights are gone at once;
   * off stage as if kicked by `@backend` when the preset no longer lets them be there; see
   * `Stage.updateMember`). Host-only notifications follow `p.preset`, so a demoted host gets
   * none from here on. No producer of the old connection is left (`join` dropped its media);
   * one still being created is refused by `produce` if the new preset forbids its source.
   */
  #applyIdentity(p: Participant): void {
    p.log.info({ name: p.name, preset: p.preset.name }, 'identity updated from the new token');
    this.channel.toAll('participantUpdated', { userId: p.id, name: p.name, presetName: p.preset.name }, p.id);
    this.stage.updateMember(p.id, { name: p.name, preset: p.preset });
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
    if (this.reconnectGraceMs <= 0) return this.leave(userId);
    p.log.info({ graceMs: this.reconnectGraceMs }, 'connection lost, keeping the place');
    p.graceTimer = setTimeout(() => this.leave(userId), this.reconnectGraceMs);
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
  leave(userId: string): void {
    const p = this.participants.get(userId);
    if (!p) return;
    clearTimeout(p.graceTimer);
    this.stage.remove(userId); // ON_STAGE → OFF_STAGE: the listener closes the producers
    p.closeMedia();
    this.participants.delete(userId);
    p.log.info('left room');
    this.channel.toAll('participantLeft', { userId });
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
    };
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
    const transport = await this.media.createTransport({ userId: p.id, direction }, make);
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
    // one producer per source, counting those still being created (two calls may race)
    if (p.producingSources.has(source) || [...p.producers.values()].some((sp) => sp.source === source)) {
      throw new StagegateError('INVALID_STATE', `already producing ${source}`);
    }

    const epoch = p.stageEpoch;
    p.producingSources.add(source);
    const producer = await transport
      .produce({ kind, rtpParameters: req.rtpParameters, appData: { userId: p.id, source } })
      .catch((err: unknown) => Promise.reject(workerRefusal(err)))
      .finally(() => p.producingSources.delete(source));
    // Gating, second half: a kick, leave or disconnect during the await bumped the epoch.
    if (epoch !== p.stageEpoch || producer.closed || this.participants.get(p.id) !== p) {
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
    p.log.info({ producerId: producer.id, kind, source }, 'producer created');
    this.channel.toAll('newProducer', { producer: p.producerInfos().find((i) => i.id === producer.id)! }, p.id);
    return { id: producer.id, source };
  }

  closeProducer(p: Participant, producerId: string): void {
    const staged = this.#ownProducer(p, producerId);
    staged.producer.close();
    this.#dropProducer(p, staged, 'closed');
  }

  async setProducerPaused(p: Participant, producerId: string, paused: boolean): Promise<void> {
    const { producer } = this.#ownProducer(p, producerId);
    if (paused) await producer.pause();
    else await producer.resume();
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
    // On an edge router, this pipes the producer there first (one pipe per producer and edge).
    await this.media.prepareConsume(transport, staged.producer, p.rtpCapabilities);
    if (staged.producer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
    const consumer = await transport
      .consume({ producerId, rtpCapabilities: p.rtpCapabilities, paused: true, appData: { userId: p.id } })
      .catch((err: unknown) => {
        // its pipe (on an edge) or the producer closed during the call
        if (staged.producer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
        throw err;
      });
    if (consumer.closed) throw new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
    p.consumers.set(consumer.id, consumer);
    consumer.on('transportclose', () => p.consumers.delete(consumer.id));
    consumer.on('producerclose', () => {
      p.consumers.delete(consumer.id);
      p.session.notify('consumerClosed', { consumerId: consumer.id, producerId });
    });
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
    await consumer.resume();
    if (consumer.kind === 'video') await consumer.requestKeyFrame();
  }

  // ------------------------------------------------------------------ lifecycle
  close(reason: 'room-closed' | 'server-shutdown' = 'room-closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.participants.values()) {
      clearTimeout(p.graceTimer);
      p.session.notify('goodbye', { reason });
      p.closeMedia();
      p.session.disconnect();
    }
    this.participants.clear();
    this.#owners.clear();
    this.media.close();
    this.log.info({ reason }, 'room closed');
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  // ------------------------------------------------------------------ internals
  /** Media gating: every exit from ON_STAGE closes the producers right here, before anyone is told. */
  #gateMedia(): void {
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
