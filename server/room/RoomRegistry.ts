/**
 * The rooms of one server. Rooms are created by the HTTP API (or, with `autoCreate`, by the
 * first valid token that names them) and placed on the least loaded mediasoup worker.
 */
import { randomUUID } from 'node:crypto';
import { StagegateError } from '../../shared/errors.js';
import type { RoomSettings, StageMode } from '../../shared/stage.js';
import type { Logger } from '../logger.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import { Room, type RoomChannel, type RoomState, type RtcOptions } from './Room.js';
import type { AuditTrail } from '../audit/AuditTrail.js';

export interface RoomRegistryOptions {
  pool: WorkerPool;
  channelFor: (roomId: string) => RoomChannel;
  rtc: RtcOptions;
  log: Logger;
  /** Create a room on first connection with a valid token for it (demo mode). */
  autoCreate: boolean;
  reconnectGraceMs?: number;
  /** Consumers a router of a room carries before its viewers go to another worker (config). */
  maxConsumersPerRouter: number;
  /** Cluster mode (server/cluster/): claims a new room id cluster-wide, hears of created and deleted rooms. */
  cluster?: {
    claim(roomId: string): Promise<void>;
    created(room: Room): void;
    deleted(roomId: string): void;
  };
  /** Where every room's audit records go. */
  audit?: AuditTrail;
  /** A room with no participant closes after this long (0: never). */
  emptyRoomCloseMs?: number;
}

export class RoomRegistry {
  readonly #rooms = new Map<string, Room>();
  readonly #pending = new Map<string, Promise<Room>>();

  /** When each room was first seen empty by the sweep (deleted once someone is in it). */
  readonly #emptySince = new Map<string, number>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(readonly opts: RoomRegistryOptions) {
    const ms = opts.emptyRoomCloseMs ?? 0;
    if (ms > 0) {
      // checks a few times per period: a room closes between ms and ms * 1.25 after it emptied
      this.#sweep = setInterval(() => this.closeEmpty(), Math.min(60_000, Math.max(50, ms / 4)));
      this.#sweep.unref();
    }
  }

  /**
   * Closes the rooms that have had no participant (connected or within their reconnect grace
   * period) for `emptyRoomCloseMs`. Runs on a timer; `now` for tests.
   */
  closeEmpty(now = Date.now()): void {
    const ms = this.opts.emptyRoomCloseMs ?? 0;
    if (ms <= 0) return;
    for (const room of this.#rooms.values()) {
      if (room.closed) continue;
      if (room.participants.size > 0) {
        this.#emptySince.delete(room.id);
        continue;
      }
      const since = this.#emptySince.get(room.id);
      if (since === undefined) this.#emptySince.set(room.id, now);
      else if (now - since >= ms) {
        this.opts.log.info({ roomId: room.id, emptyMs: now - since }, 'closing an empty room');
        room.close('room-closed');
      }
    }
  }

  get(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  list(): Room[] {
    return [...this.#rooms.values()];
  }

  /**
   * Creates a room (settings: `audience` `hidden` by default; `restore`: continue from a state,
   * cluster mode); an id already in use is refused with INVALID_STATE.
   */
  async create(
    roomId: string = randomUUID(),
    mode: StageMode = 'REQUEST',
    settings?: Partial<RoomSettings>,
    restore?: RoomState,
  ): Promise<Room> {
    if (this.#rooms.has(roomId) || this.#pending.has(roomId)) {
      throw new StagegateError('INVALID_STATE', `room ${roomId} exists already`);
    }
    const { pool, channelFor, rtc, log, reconnectGraceMs, maxConsumersPerRouter, cluster } = this.opts;
    // cluster-wide: the id is free and this node owns it from now on (else INVALID_STATE)
    if (cluster && !restore) await cluster.claim(roomId);
    const worker = pool.acquire();
    const channel = channelFor(roomId);
    const creating = Room.create({
      restore,
      id: roomId,
      mode,
      worker,
      pool,
      maxConsumersPerRouter,
      channel,
      rtc,
      log,
      reconnectGraceMs,
      settings,
      ...(this.opts.audit ? { audit: (entry) => this.opts.audit!.record(roomId, entry) } : {}),
    });
    this.#pending.set(roomId, creating);
    try {
      const room = await creating;
      this.#rooms.set(roomId, room);
      this.opts.audit?.record(roomId, {
        actor: '@backend',
        action: 'room.created',
        to: mode,
        details: { settings: room.settings, instanceId: room.instanceId },
      });
      room.onClose(() => {
        this.opts.audit?.record(roomId, { actor: '@backend', action: 'room.closed' });
        this.#rooms.delete(roomId);
        this.#emptySince.delete(roomId);
        pool.release(room.worker);
      });
      log.info({ roomId, mode, settings: room.settings, workerPid: worker.pid, restored: !!restore }, 'room created');
      cluster?.created(room);
      return room;
    } catch (err) {
      pool.release(worker);
      throw err;
    } finally {
      this.#pending.delete(roomId);
    }
  }

  /**
   * The room a verified token names: existing, being created, or (autoCreate) new. A token bound
   * to a room instance (`roomInstance`) is refused (UNAUTHORIZED) unless that very instance is
   * live: a room deleted and created again with the same id refuses the old room's tokens, and
   * autoCreate never re-creates a deleted room from one.
   */
  async forToken(roomId: string, roomInstance?: string): Promise<Room> {
    const room = this.#rooms.get(roomId) ?? (await this.#pending.get(roomId));
    if (room && (roomInstance === undefined || room.instanceId === roomInstance)) return room;
    if (roomInstance !== undefined) {
      throw new StagegateError('UNAUTHORIZED', `the token is for an earlier room ${roomId}, which was deleted`);
    }
    if (!this.opts.autoCreate) throw new StagegateError('NOT_FOUND', `no room ${roomId}`);
    return this.create(roomId);
  }

  /**
   * A worker died: move each room whose origin was there to a live worker (stage state is kept).
   * Rooms with only an edge router there reset just those viewers, by themselves (RoomMedia).
   */
  async onWorkerDied(dead: { pid: number }): Promise<void> {
    const { pool, log } = this.opts;
    const moving = this.list().filter((room) => room.worker.pid === dead.pid && !room.closed);
    await Promise.all(
      moving.map(async (room) => {
        try {
          await room.moveTo(pool.acquire());
        } catch (err) {
          log.error({ err, roomId: room.id }, 'could not move the room to a live worker; closing it');
          room.close('room-closed');
        }
      }),
    );
  }

  close(roomId: string): void {
    const room = this.#rooms.get(roomId);
    if (!room) throw new StagegateError('NOT_FOUND', `no room ${roomId}`);
    room.close('room-closed');
    this.opts.cluster?.deleted(roomId);
  }

  closeAll(reason: 'room-closed' | 'server-shutdown'): void {
    clearInterval(this.#sweep);
    for (const room of this.#rooms.values()) room.close(reason);
  }
}
