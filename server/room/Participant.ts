/**
 * One authenticated user in a room and the mediasoup objects they own. Identity and preset come
 * from the verified token only.
 *
 * Close cascade (as mediasoup's own): closing a transport closes its producers and consumers;
 * each object removes itself from the maps here through its own 'close' path, so nothing is
 * left behind and every close is idempotent.
 */
import type { types as ms } from 'mediasoup';
import type { ProducerInfo } from '../../shared/protocol.js';
import type { MediaSource, Preset } from '../../shared/stage.js';
import type { Logger } from '../logger.js';

export interface StagedProducer {
  producer: ms.Producer;
  source: MediaSource;
}

/** The socket-facing side of a participant: how the room talks to them. */
export interface ParticipantSession {
  readonly id: string;
  /** Cluster mode: the node the connection is on, when another than the room's (its media node). */
  readonly node?: string | undefined;
  notify(name: string, data: unknown): void;
  /**
   * Start receiving the room's broadcasts (called once the participant is in the room); `host`:
   * also those for acceptStageRequests holders (the audience of a `hidden` room, requests).
   */
  subscribe(opts: { host: boolean }): void;
  disconnect(): void;
}

export class Participant {
  readonly transports = new Map<string, ms.Transport>();
  readonly producers = new Map<string, StagedProducer>();
  readonly consumers = new Map<string, ms.Consumer>();
  /** Sources whose producer the worker is creating right now, with the transport it is created on (see Room.produce). */
  readonly producingSources = new Map<MediaSource, ms.Transport>();
  /** Producers this participant's consumer of is being created, with the receive transport (see Room.consume). */
  readonly consumingProducers = new Map<string, ms.Transport>();
  rtpCapabilities: ms.RtpCapabilities | undefined;
  sendTransportId: string | undefined;
  recvTransportId: string | undefined;
  /** Incremented every time the participant leaves ON_STAGE: a produce started in an older epoch must not survive. */
  stageEpoch = 0;
  /** False between a dropped connection and a reconnect (or the end of the grace period). */
  connected = true;
  graceTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    /** From the token of the current connection (a reconnect with a new token changes them). */
    public name: string,
    public preset: Preset,
    public session: ParticipantSession,
    readonly log: Logger,
  ) {}

  producerInfos(): ProducerInfo[] {
    return [...this.producers.values()].map(({ producer, source }) => ({
      id: producer.id,
      userId: this.id,
      kind: producer.kind,
      source,
      paused: producer.paused,
    }));
  }

  /** Closes every producer; returns what was closed (the room tells everyone). */
  closeProducers(): StagedProducer[] {
    const closed = [...this.producers.values()];
    for (const { producer } of closed) producer.close();
    this.producers.clear();
    return closed;
  }

  /** Closes the send transport (and with it any producer left). */
  closeSendTransport(): void {
    if (!this.sendTransportId) return;
    this.transports.get(this.sendTransportId)?.close();
    this.transports.delete(this.sendTransportId);
    this.sendTransportId = undefined;
  }

  /** Closes every mediasoup object of this participant. Idempotent. */
  closeMedia(): void {
    this.closeProducers();
    for (const t of this.transports.values()) t.close();
    this.transports.clear();
    this.consumers.clear();
    this.sendTransportId = undefined;
    this.recvTransportId = undefined;
  }
}
