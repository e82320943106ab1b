/**
 * One webinar: a mediasoup Router, the stage state machine, and the participants.
 *
 * Media gating lives here and nowhere else:
 * - `createTransport('send')` only while ACCEPTED_TO_JOIN_STAGE or ON_STAGE;
 * - `produce` only while ON_STAGE, for a kind read from the RTP parameters and a source the
 *   preset allows; a producer whose creation finishes after its owner left the stage is closed;
 * - every transition away from ON_STAGE (leave, kick, disconnect, mode) closes the owner's
 *   producers right in the stage listener, which closes their consumers in the worker; every
 *   receiver is told.
 *
 * Who is told about whom follows the room's `audience` setting (`Audience`): in a `hidden` room
 * the audience is seen one by one only by the hosts; everyone else sees the stage and a count.
 */
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
import {
  DEFAULT_ROOM_SETTINGS,
  type MediaSource,
  type RoomSettings,
  type StageMode,
  type StageStatus,
} from '../../shared/stage.js';
import type { Logger } from '../logger.js';
import type { VerifiedToken } from '../auth/tokens.js';
import { Stage, type StageChangeReason } from '../stage/Stage.js';
import { MEDIA_CODECS, SOCKET_BUFFER_BYTES, kindOfRtp, workerRefusal } from '../media/rtp.js';
import { Audience, type GroupChannel } from './Audience.js';
import { Participant, type ParticipantSession, type StagedProducer } from './Participant.js';
import { forwardStageEvents } from './stageEvents.js';

export interface RtcOptions {
  listenIp: string;
  announcedAddress?: string | undefined;
}

/** How the room reaches every participant, or a group of them, at once (socket.io rooms in production). */
export interface RoomChannel extends GroupChannel {
  toAll<N extends NotificationName>(name: N, data: Notifications[N], exceptUserId?: string): void;
}

const CLOSE_REASON: Partial<Record<StageChangeReason, ProducerCloseReason>> = {
  kick: 'kicked',
  'leave-room': 'disconnected',
};

export class Room {
  readonly stage: Stage;
  readonly participants = new Map<string, Participant>();
  /** Who sees whom, the room settings, and the audience count. */
  readonly audience: Audience;
  readonly createdAt = Date.now();
  /** producer id → owner, for consume(). */
  readonly #owners = new Map<string, Participant>();
  readonly #closeListeners: (() => void)[] = [];
  #closed = false;

  private constructor(
    readonly id: string,
    public worker: ms.Worker,
    public router: ms.Router,
    readonly channel: RoomChannel,
    readonly rtc: RtcOptions,
    readonly log: Logger,
    mode: StageMode,
    /** How long a dropped participant keeps their place (stage status, queue position). */
    readonly reconnectGraceMs: number,
    settings: RoomSettings,
  ) {
    this.stage = new Stage({ mode, onListenerError: (err) => log.error({ err }, 'stage listener failed') });
    this.audience = new Audience(settings, this.participants, this.stage, channel, (p) => this.info(p), log);
    this.#gateMedia();
    forwardStageEvents(this.stage, this.participants, channel, this.audience, log);
  }

  static async create(opts: {
    id: string;
    mode?: StageMode;
    worker: ms.Worker;
    channel: RoomChannel;
    rtc: RtcOptions;
    log: Logger;
    reconnectGraceMs?: number;
    settings?: Partial<RoomSettings> | undefined;
  }): Promise<Room> {
    const router = await opts.worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    const log = opts.log.child({ roomId: opts.id });
    const { id, worker, channel, rtc, mode = 'REQUEST', reconnectGraceMs = 15_000 } = opts;
    const settings = { ...DEFAULT_ROOM_SETTINGS, ...opts.settings };
    return new Room(id, worker, router, channel, rtc, log, mode, reconnectGraceMs, settings);
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
   */
  join(session: ParticipantSession, who: VerifiedToken, rtpCapabilities: ms.RtpCapabilities): RoomSnapshot {
    this.#assertOpen();
    let p = this.participants.get(who.userId);
    if (p) {
      const old = p.session;
      this.#dropMedia(p, 'disconnected'); // its notices go to the old connection
      p.session = session; // before disconnecting the old one, whose disconnect then is ignored
      if (p.connected) {
        old.notify('goodbye', { reason: 'replaced' });
        old.disconnect();
      }
      clearTimeout(p.graceTimer);
      p.connected = true;
      p.log.info({ status: this.statusOf(p.id) }, 'rejoined room');
    } else {
      p = new Participant(who.userId, who.name, who.preset, session, this.log.child({ userId: who.userId }));
      this.participants.set(p.id, p);
      this.stage.add({ id: p.id, name: p.name, preset: p.preset });
      p.log.info({ preset: p.preset.name, status: this.statusOf(p.id) }, 'joined room');
      const group = this.audience.groupFor(this.audience.isStage(p));
      this.channel.toGroup(group, 'participantJoined', { participant: this.info(p) }, p.id);
      this.audience.changed();
    }
    p.rtpCapabilities = rtpCapabilities;
    session.subscribe({ host: p.preset.acceptStageRequests });
    const viewer = p;
    return {
      roomId: this.id,
      self: { id: p.id, name: p.name, preset: p.preset, stageStatus: this.statusOf(p.id) },
      // in a hidden room, the stage people only (unless a host)
      participants: [...this.participants.values()]
        .filter((o) => o !== viewer && this.audience.sees(viewer, o))
        .map((o) => this.info(o)),
      mode: this.stage.mode,
      requests: p.preset.acceptStageRequests ? this.stage.getAccessRequests(p.id) : [],
      settings: this.audience.settings,
      audienceCount: this.audience.announcedCount(), // the current one follows within a second
    };
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
   * Moves the room to a live worker after its worker died: a new router, every participant's
   * media dropped (the worker took it), and every client told to set its media up again.
   * Stage state is untouched.
   */
  async moveTo(worker: ms.Worker): Promise<void> {
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
    if (this.#closed) return void router.close();
    this.worker = worker;
    this.router = router;
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
    const seenByAll = this.audience.isStage(p);
    this.stage.remove(userId); // ON_STAGE → OFF_STAGE: the listener closes the producers
    p.closeMedia();
    this.participants.delete(userId);
    p.log.info('left room');
    this.channel.toGroup(this.audience.groupFor(seenByAll), 'participantLeft', { userId });
    this.audience.changed();
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
    if (direction === 'send')
      this.#assertMayPublish(p, ['ACCEPTED_TO_JOIN_STAGE', 'ON_STAGE'], 'create a send transport');
    const { listenIp, announcedAddress } = this.rtc;
    const buffers = { recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES };
    const listen = announcedAddress ? { ip: listenIp, announcedAddress, ...buffers } : { ip: listenIp, ...buffers };
    const transport = await this.router.createWebRtcTransport({
      listenInfos: [
        { protocol: 'udp', ...listen },
        { protocol: 'tcp', ...listen },
      ],
      preferUdp: true,
      appData: { userId: p.id, direction },
    });
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
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
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
    if (!p.rtpCapabilities || !this.router.canConsume({ producerId, rtpCapabilities: p.rtpCapabilities })) {
      throw new StagegateError('UNSUPPORTED', 'your RTP capabilities cannot receive this producer');
    }
    const consumer = await transport.consume({
      producerId,
      rtpCapabilities: p.rtpCapabilities,
      paused: true,
      appData: { userId: p.id },
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
    this.audience.close();
    for (const p of this.participants.values()) {
      clearTimeout(p.graceTimer);
      p.session.notify('goodbye', { reason });
      p.closeMedia();
      p.session.disconnect();
    }
    this.participants.clear();
    this.#owners.clear();
    this.router.close();
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
