/**
 * Room broadcasts, coalesced per event-loop turn.
 *
 * Every stage action tells the whole room (peerStageStatusUpdate, participantJoined...). Sent one
 * by one, each is a WebSocket frame and a syscall per socket: 500 requests at once in a room of
 * 1,000 cost 500,000 writes, and a grant of 100 cost 100 writes per socket (benchmark 4). Here
 * broadcasts queue up and leave at the end of the turn (setImmediate) as one `batch` frame per
 * socket; a single one leaves as a plain event.
 *
 * Acks queue behind them, so a client still gets an action's broadcasts before its ack, as when
 * they were sent at once. Notifications to one participant are not queued: their order relative
 * to the room's batch may change, never among themselves.
 */
import type { Server } from 'socket.io';
import type { BatchItem, NotificationName, Notifications } from '../../shared/protocol.js';

export class Outbox {
  readonly #io: Server;
  readonly #byRoom = new Map<string, BatchItem[]>();
  readonly #acks: (() => void)[] = [];
  #scheduled = false;

  constructor(io: Server) {
    this.#io = io;
  }

  /** Queues a notification to everyone in the room except `exceptUserId`. */
  broadcast<N extends NotificationName>(roomId: string, name: N, data: Notifications[N], exceptUserId?: string): void {
    let items = this.#byRoom.get(roomId);
    if (!items) this.#byRoom.set(roomId, (items = []));
    // (a correlated name/data pair; TypeScript cannot follow the generic into the union)
    const item = (exceptUserId === undefined ? [name, data] : [name, data, exceptUserId]) as BatchItem;
    items.push(item);
    this.#schedule();
  }

  /** Runs `send` after the broadcasts queued so far have left. */
  ack(send: () => void): void {
    if (this.#byRoom.size === 0 && this.#acks.length === 0) return send();
    this.#acks.push(send);
    this.#schedule();
  }

  /** Sends everything queued now. */
  flush(): void {
    this.#scheduled = false;
    for (const [roomId, items] of this.#byRoom) {
      const to = this.#io.to(roomKey(roomId));
      if (items.length === 1) {
        const [name, data, except] = items[0]!;
        (except === undefined ? to : to.except(userKey(roomId, except))).emit(name, data);
      } else {
        to.emit('batch', { items });
      }
    }
    this.#byRoom.clear();
    for (const send of this.#acks.splice(0)) send();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }
}

/** socket.io rooms: every joined socket of a Stagegate room, and each user's own socket. */
export const roomKey = (roomId: string) => `room:${roomId}`;
export const userKey = (roomId: string, userId: string) => `user:${roomId}:${userId}`;
