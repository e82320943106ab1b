/**
 * The other participants of a meeting as this client sees them: kept current from the server's
 * notifications, and reconciled with a snapshot after a reconnect. Their producers are handed to
 * the Subscriber; the tracks it receives are recorded on each participant (`tracks`).
 */
import type { ParticipantInfo, ProducerInfo } from '../shared/protocol.js';
import type { StageStatus } from '../shared/stage.js';
import type { Subscriber } from './Subscriber.js';
import type { TypedEmitter } from './TypedEmitter.js';
import type { MeetingEvents, RemoteParticipant, StageEvents, TrackAddedEvent, TrackRemovedEvent } from './types.js';

interface MutableParticipant {
  id: string;
  name: string;
  presetName: string;
  stageStatus: StageStatus;
  producers: ProducerInfo[];
  tracks: Partial<Record<ProducerInfo['source'], MediaStreamTrack>>;
  slotEndsAt?: number;
}

export interface RosterDeps {
  selfId: string;
  subscriber: () => Subscriber;
  events: TypedEmitter<MeetingEvents>;
  stageEvents: TypedEmitter<StageEvents>;
}

export class Roster {
  readonly #deps: RosterDeps;
  readonly #participants = new Map<string, MutableParticipant>();
  /** producer id → the track `trackAdded` handed out, to clear `participant.tracks` precisely. */
  readonly #received = new Map<string, MediaStreamTrack>();

  constructor(deps: RosterDeps) {
    this.#deps = deps;
  }

  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#participants;
  }

  /** `participantJoined` (also a participant of the initial snapshot: no event then). */
  joined(info: ParticipantInfo, emit: boolean): void {
    const known = this.#participants.has(info.id);
    const p = this.#upsert(info);
    if (!known && emit) this.#deps.events.emit('participantJoined', { participant: p });
  }

  left(userId: string, reconciled = false): void {
    const p = this.#participants.get(userId);
    this.#deps.subscriber().removeOwner(userId);
    if (!p) return;
    this.#participants.delete(userId);
    this.#deps.events.emit(
      'participantLeft',
      reconciled ? { userId, participant: p, reconciled } : { userId, participant: p },
    );
  }

  /** `participantUpdated`: their new token changed their name or preset. */
  updated(
    { userId, name, presetName }: { userId: string; name: string; presetName: string },
    reconciled = false,
  ): void {
    const p = this.#participants.get(userId);
    if (!p || (p.name === name && p.presetName === presetName)) return;
    const old = { name: p.name, presetName: p.presetName };
    p.name = name;
    p.presetName = presetName;
    this.#deps.events.emit(
      'participantUpdated',
      reconciled ? { participant: p, old, reconciled } : { participant: p, old },
    );
  }

  setStatus(userId: string, status: StageStatus): void {
    const p = this.#participants.get(userId);
    if (!p) return;
    p.stageStatus = status;
    if (status !== 'ON_STAGE') delete p.slotEndsAt;
  }

  /** `stageSlotUpdate`: the end of their turn on stage (`null`: none). */
  setSlot(userId: string, endsAt: number | null): void {
    const p = this.#participants.get(userId);
    if (!p) return;
    if (endsAt === null) delete p.slotEndsAt;
    else p.slotEndsAt = endsAt;
  }

  addProducer(producer: ProducerInfo): void {
    if (producer.userId === this.#deps.selfId) return;
    const p = this.#participants.get(producer.userId);
    if (p && !p.producers.some((i) => i.id === producer.id)) p.producers = [...p.producers, { ...producer }];
    this.#deps.subscriber().add(producer);
  }

  removeProducer(userId: string, producerId: string): void {
    const p = this.#participants.get(userId);
    if (p) p.producers = p.producers.filter((i) => i.id !== producerId);
    this.#deps.subscriber().remove(producerId);
  }

  setPaused(userId: string, producerId: string, paused: boolean): void {
    const p = this.#participants.get(userId);
    if (p) p.producers = p.producers.map((i) => (i.id === producerId ? { ...i, paused } : i));
  }

  /** Every producer known, to receive them again (mediaReset). */
  producers(): ProducerInfo[] {
    return [...this.#participants.values()].flatMap((p) => p.producers);
  }

  /**
   * After a reconnect: make the roster the snapshot's, emitting the differences (participantLeft,
   * participantJoined, participantUpdated, peerStageStatusUpdate, all `reconciled`). The caller has reset the
   * Subscriber: every producer of the snapshot is received anew.
   */
  reconcile(participants: readonly ParticipantInfo[]): void {
    const { events, stageEvents } = this.#deps;
    const current = new Set(participants.map((p) => p.id));
    for (const id of [...this.#participants.keys()]) if (!current.has(id)) this.left(id, true);
    for (const info of participants) {
      const known = this.#participants.get(info.id);
      const old = known?.stageStatus;
      if (known) known.producers = [];
      if (known) this.updated({ userId: info.id, name: info.name, presetName: info.presetName }, true);
      const p = this.#upsert(info);
      if (!known) events.emit('participantJoined', { participant: p, reconciled: true });
      else if (old !== info.stageStatus && old) {
        stageEvents.emit('peerStageStatusUpdate', { userId: p.id, old, new: info.stageStatus, reconciled: true });
      }
    }
  }

  trackAdded(e: TrackAddedEvent): void {
    this.#received.set(e.producerId, e.track);
    const p = this.#participants.get(e.participantId);
    if (p) p.tracks[e.source] = e.track;
    this.#deps.events.emit('trackAdded', e);
  }

  trackRemoved(e: TrackRemovedEvent): void {
    const track = this.#received.get(e.producerId);
    this.#received.delete(e.producerId);
    const p = this.#participants.get(e.participantId);
    if (p && track && p.tracks[e.source] === track) delete p.tracks[e.source];
    this.#deps.events.emit('trackRemoved', e);
  }

  #upsert(info: ParticipantInfo): MutableParticipant {
    const existing = this.#participants.get(info.id);
    const p: MutableParticipant = existing ?? { ...info, producers: [], tracks: {} };
    p.name = info.name;
    p.presetName = info.presetName;
    p.stageStatus = info.stageStatus;
    if (info.slotEndsAt === undefined) delete p.slotEndsAt;
    else p.slotEndsAt = info.slotEndsAt;
    this.#participants.set(p.id, p);
    for (const producer of info.producers) this.addProducer(producer);
    return p;
  }
}
