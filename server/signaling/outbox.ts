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
 *
 * A broadcast goes to the whole room, to its hosts (acceptStageRequests holders, a socket.io room
 * of their own), or to everyone else (the room except the hosts): in a `hidden` room the audience
 * is told to hosts only. One turn's items keep their order for every recipient: hosts get the
 * `all` and `hosts` items, the others the `all` and `others` items, each as one frame.
 *
 * A notification that carries a whole state (the pending request list) supersedes the one of the
 * same name queued earlier in the turn for the same recipients: 500 requests in one turn send
 * the hosts one list, not 500 lists of up to 500 entries.
 */
import type { BroadcastOperator, DefaultEventsMap, Server } from 'socket.io';
import type { RoomGroup } from '../room/Audience.js';
import type { BatchItem, NotificationName, Notifications } from '../../shared/protocol.js';

/** Notifications whose data is a whole state: only the newest one of a turn is sent. */
const WHOLE_STATE = new Set<NotificationName>(['stageAccessRequestUpdate']);

interface Queued {
  /** Items in order; `undefined` where a newer whole state superseded one. */
  items: (BatchItem | undefined)[];
  groups: RoomGroup[];
  /** `name group except` → index of the whole-state item queued last. */
  latest: Map<string, number>;
}

export class Outbox {
  readonly #io: Server;
  readonly #byRoom = new Map<string, Queued>();
  readonly #acks: (() => void)[] = [];
  #scheduled = false;

  constructor(io: Server) {
    this.#io = io;
  }

  /** Queues a notification to everyone in the room except `exceptUserId`. */
  broadcast<N extends NotificationName>(roomId: string, name: N, data: Notifications[N], exceptUserId?: string): void {
    this.broadcastTo(roomId, 'all', name, data, exceptUserId);
  }

  /** Queues a notification to `group` of the room, except `exceptUserId`. */
  broadcastTo<N extends NotificationName>(
    roomId: string,
    group: RoomGroup,
    name: N,
    data: Notifications[N],
    exceptUserId?: string,
  ): void {
    let queued = this.#byRoom.get(roomId);
    if (!queued) this.#byRoom.set(roomId, (queued = { items: [], groups: [], latest: new Map() }));
    // (a correlated name/data pair; TypeScript cannot follow the generic into the union)
    const item = (exceptUserId === undefined ? [name, data] : [name, data, exceptUserId]) as BatchItem;
    if (WHOLE_STATE.has(name)) {
      const key = `${name} ${group} ${exceptUserId ?? ''}`;
      const previous = queued.latest.get(key);
      if (previous !== undefined) queued.items[previous] = undefined;
      queued.latest.set(key, queued.items.length);
    }
    queued.items.push(item);
    queued.groups.push(group);
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
    for (const [roomId, { items, groups }] of this.#byRoom) {
      const live = (i: number) => items[i] !== undefined;
      if (groups.every((g) => g === 'all')) {
        this.#emit(this.#io.to(roomKey(roomId)), roomId, items.filter((_, i) => live(i)) as BatchItem[]);
      } else {
        const hosts = items.filter((_, i) => live(i) && groups[i] !== 'others') as BatchItem[];
        const others = items.filter((_, i) => live(i) && groups[i] !== 'hosts') as BatchItem[];
        if (hosts.length > 0) this.#emit(this.#io.to(hostsKey(roomId)), roomId, hosts);
        if (others.length > 0) this.#emit(this.#io.to(roomKey(roomId)).except(hostsKey(roomId)), roomId, others);
      }
    }
    this.#byRoom.clear();
    for (const send of this.#acks.splice(0)) send();
  }

  #emit(to: BroadcastOperator<DefaultEventsMap, unknown>, roomId: string, items: BatchItem[]): void {
    if (items.length === 0) return;
    if (items.length === 1) {
      const [name, data, except] = items[0]!;
      (except === undefined ? to : to.except(userKey(roomId, except))).emit(name, data);
    } else {
      to.emit('batch', { items });
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }
}

/** socket.io rooms: every joined socket of a Stagegate room, its hosts, and each user's own socket. */
export const roomKey = (roomId: string) => `room:${roomId}`;
export const hostsKey = (roomId: string) => `hosts:${roomId}`;
export const userKey = (roomId: string, userId: string) => `user:${roomId}:${userId}`;
