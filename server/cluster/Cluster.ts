/**
 * Cluster mode: one webinar served by several Stagegate nodes, with Redis as the only shared part.
 *
 * - **One owner per room.** The node that owns a room holds its Room (stage state machine,
 *   participants, media) under a lease in Redis (SET NX PX, renewed every third of the lease,
 *   released by compare-and-delete). It writes the room's state (`Room.toState`: statuses, queue
 *   with timestamps and order, mode, every member's preset; settings, holds and unmute asks,
 *   bans, cool-downs, slot and `@auto` acceptance deadlines as absolute times; the audit id) to
 *   Redis after every stage change and before the ack (or API answer) of the request that made
 *   it, fenced by the lease.
 * - **Any node takes connections.** A socket whose room another node owns is relayed: its
 *   requests go to the owner over Redis pub/sub (this node's channel, request ids, timeouts), the
 *   owner runs them through the very same request loop (`serveConnection`) and answers; what the
 *   owner sends to that participant or the room reaches the socket through socket.io's Redis
 *   adapter (the socket id, `roomKey` and `userKey` are socket.io rooms on every node). So order,
 *   refusals and who gets which event are the single-node code's.
 * - **Failure.** A node's heartbeat key expires with its lease. When an owner dies, its relayed
 *   sockets are closed by their nodes (the clients reconnect), and the first node that needs the
 *   room after the lease expired takes it and continues from the state in Redis: every member as
 *   if their connection had just dropped, with the reconnect grace period to come back. When an
 *   edge node dies, the owner drops its relayed connections (grace period as well).
 * - **HTTP API.** `/api/rooms/:id...` is relayed to the owner the same way; `/api/rooms` lists
 *   from Redis; `/api/nodes` lists the live nodes with their load.
 * - **Media** (RemoteMedia.ts): a participant's transports are on the node of its socket, driven
 *   by the owner over media RPCs on the same channels; producers are piped between nodes.
 *   `/api/node/media` shows this node's part.
 */
import os from 'node:os';
import { Readable } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Server, Socket } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { StagegateError } from '../../shared/errors.js';
import type { Ack, WireError } from '../../shared/protocol.js';
import type { TokenService, VerifiedToken } from '../auth/tokens.js';
import type { Logger } from '../logger.js';
import type { Room, RoomState } from '../room/Room.js';
import type { EventName } from '../stage/stageTypes.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';
import {
  serveConnection,
  toWireError,
  verifyAuth,
  type Connection,
  type SignalingDeps,
  type SignalingRouter,
} from '../signaling/signaling.js';
import { sendError, sendJson, readJson } from '../http/api.js';
import { roomKey } from '../signaling/outbox.js';
import type { RoomMedia } from '../media/RoomMedia.js';
import { connectRedis, keys, type Connections } from './redis.js';
import { RemoteMedia, type MediaRpc } from './RemoteMedia.js';

export interface ClusterOptions {
  redisUrl: string;
  nodeId?: string | undefined;
  publicUrl?: string | undefined;
  /** The address this node's WebRTC transports are reached at (reported with its load). */
  rtcAddress: string;
  leaseMs: number;
  log: Logger;
  /** The origins of the cluster's nodes' public URLs, on every heartbeat (pages of one node may talk to another). */
  onPeerOrigins?: (origins: string[]) => void;
}

/** Messages between nodes on their RPC channels. */
type Rpc =
  | { t: 'open'; sid: string; token: unknown; roomId: string }
  | { t: 'req'; sid: string; event: string; args: unknown[]; ack: boolean }
  | { t: 'close'; sid: string }
  | { t: 'http'; method: string; url: string; auth: string | undefined; body: unknown }
  | MediaRpc;
type Envelope =
  { id: string; from: string; body: Rpc } | { re: string; ok: boolean; data?: unknown; error?: WireError };

const RPC_TIMEOUT_MS = 5000;

export interface ClusterDeps extends SignalingDeps {
  rooms: RoomRegistry;
  tokens: TokenService;
  apiSecret: string;
  /** This node's own HTTP handling (for API requests relayed from other nodes). */
  httpHandler(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

export class Cluster implements SignalingRouter {
  readonly nodeId: string;
  publicUrl: string | undefined;
  readonly #redis: Connections;
  readonly #opts: ClusterOptions;
  readonly #log: Logger;
  #deps!: ClusterDeps;
  /** Participants' media on the node of their socket, producers piped between nodes (RemoteMedia.ts). */
  #media: RemoteMedia | undefined;
  #seq = 0;
  readonly #pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  /** Owner side: connections relayed from other nodes, by socket id. */
  readonly #remote = new Map<string, RemoteConnection>();
  /** Edge side: sockets relayed to a room's owner, by room. */
  readonly #relayed = new Map<string, { owner: string; sockets: Set<Socket> }>();
  /** Rooms this node owns: last state written. */
  readonly #owned = new Map<string, { written?: string; write?: Promise<void>; scheduled: boolean }>();
  #timer: NodeJS.Timeout | undefined;
  /** Shutting down (handed over or closing): no new connections, no more ticks. */
  #closed = false;
  #stopped = false;
  /** When Redis was last (re)connected: nodes and owners are judged dead only a lease later. */
  #readySince = Date.now();
  /** Every owned room's state is written again at the next tick (Redis reconnected). */
  #rewrite = false;
  #ticking = false;

  private constructor(opts: ClusterOptions, redis: Connections) {
    this.#opts = opts;
    this.#redis = redis;
    this.nodeId = opts.nodeId ?? `${os.hostname()}-${process.pid}`;
    this.publicUrl = opts.publicUrl;
    this.#log = opts.log.child({ nodeId: this.nodeId });
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    const redis = await connectRedis(opts.redisUrl, opts.log);
    const cluster = new Cluster(opts, redis);
    await redis.sub.subscribe(keys.rpc(cluster.nodeId));
    redis.sub.on('message', (channel: string, message: string) => {
      if (channel === keys.rpc(cluster.nodeId)) cluster.#onMessage(message);
    });
    // Redis came back (maybe empty): leases and state are written again at once
    redis.cmd.on('ready', () => {
      cluster.#readySince = Date.now();
      cluster.#rewrite = true; // writes may have failed while it was away
      void cluster.#tick();
    });
    await cluster.#tick();
    cluster.#timer = setInterval(() => void cluster.#tick(), Math.max(100, Math.floor(opts.leaseMs / 3)));
    cluster.#timer.unref();
    return cluster;
  }

  /** The registry's hooks (RoomRegistryOptions.cluster). */
  readonly registryHooks = {
    claim: async (roomId: string): Promise<void> => {
      const { cmd } = this.#redis;
      const taken = await this.#command(() => cmd.set(keys.owner(roomId), this.nodeId, 'PX', this.#opts.leaseMs, 'NX'));
      if (taken === 'OK' && !(await this.#command(() => cmd.exists(keys.state(roomId))))) return;
      if (taken === 'OK') await this.#command(() => cmd.releaseLease(keys.owner(roomId), this.nodeId));
      throw new StagegateError('INVALID_STATE', `room ${roomId} exists already`);
    },
    created: (room: Room): void => {
      this.#owned.set(room.id, { scheduled: false });
      // this node's media part of the room, made for an owner before, goes: the room is here now
      this.#media?.dropRoom(room.id);
      if (this.#media) room.media.remote = this.#media.forRoom(room.id, room.media);
      // every stage change is written, also those nobody is told of at once (a ban ahead, an unban)
      for (const event of STAGE_EVENTS) room.stage.on(event, () => this.changed(room.id));
      void this.#command(() => this.#redis.cmd.sadd(keys.rooms, room.id)).catch(() => {});
      this.changed(room.id);
      room.onClose(() => {
        const owned = this.#owned.get(room.id);
        this.#owned.delete(room.id);
        // after the last write: the state stays for the node that takes the room over
        void Promise.resolve(owned?.write)
          .then(() => this.#redis.cmd.releaseLease(keys.owner(room.id), this.nodeId))
          .catch(() => {});
      });
    },
    deleted: (roomId: string): void => {
      const { cmd } = this.#redis;
      void cmd
        .del(keys.state(roomId))
        .then(() => cmd.srem(keys.rooms, roomId))
        .catch((err: unknown) => this.#log.warn({ err, roomId }, 'could not delete the room from Redis'));
    },
  };

  /** Wires the cluster to this node's socket.io server and rooms (after both exist). */
  bind(deps: ClusterDeps): void {
    this.#deps = deps;
    const { pool, rtc, maxConsumersPerRouter } = deps.rooms.opts;
    this.#media = new RemoteMedia({
      nodeId: this.nodeId,
      bus: { request: (node, body) => this.#request(node, body), send: (node, body) => this.#send(node, body) },
      pool,
      rtc,
      maxConsumersPerRouter,
      log: this.#log,
    });
    deps.io.adapter(createAdapter(this.#redis.pub, this.#redis.sub, { requestsTimeout: 3000 }));
  }

  /** The media of this node's parts of other nodes' rooms (their routers are on this node's workers). */
  hostedMedia(): RoomMedia[] {
    return this.#media?.hostedMedia() ?? [];
  }

  get healthy(): boolean {
    return this.#redis.up;
  }

  /** Owner side: a room changed (a broadcast left): its state is written at the end of this turn. */
  changed(roomId: string): void {
    const owned = this.#owned.get(roomId);
    if (!owned || owned.scheduled) return;
    owned.scheduled = true;
    const previous = owned.write;
    owned.write = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => previous)
      .then(() => {
        owned.scheduled = false;
        return this.#writeState(roomId, owned);
      });
  }

  /** Before an ack: the state the request left is in Redis (or Redis is down: logged, acked anyway). */
  settle(room: Room): Promise<void> {
    this.changed(room.id);
    return this.#owned.get(room.id)?.write ?? Promise.resolve();
  }

  // ------------------------------------------------------------------ routing a connection
  async route(socket: Socket, token: VerifiedToken, rawToken: unknown): Promise<Room | undefined> {
    if (this.#closed) throw new StagegateError('INTERNAL', `node ${this.nodeId} is shutting down; try another`);
    const { rooms } = this.#deps;
    const roomId = token.roomId;
    const deadline = Date.now() + this.#opts.leaseMs * 2 + 2000;
    for (;;) {
      const owner = await this.#command(() => this.#redis.cmd.get(keys.owner(roomId)));
      if (owner === this.nodeId || (owner === null && rooms.get(roomId))) {
        return rooms.forToken(roomId, token.roomInstance);
      }
      if (owner !== null && (await this.#alive(owner))) {
        await this.#relay(socket, owner, rawToken, roomId);
        return undefined;
      }
      if (owner === null) {
        const room = await this.#takeOver(roomId);
        if (room === 'absent') return rooms.forToken(roomId, token.roomInstance); // NOT_FOUND, or demo auto-create
        if (room) return rooms.forToken(roomId, token.roomInstance);
      }
      if (Date.now() > deadline) {
        throw new StagegateError('INTERNAL', `the node of room ${roomId} is gone and nobody took the room over`);
      }
      await sleep(100);
    }
  }

  /**
   * The room has no owner: take it, continuing from its state in Redis. 'absent': no such room in
   * the cluster; undefined: another node was faster.
   */
  async #takeOver(roomId: string): Promise<Room | 'absent' | undefined> {
    const { cmd } = this.#redis;
    const json = await this.#command(() => cmd.get(keys.state(roomId)));
    if (json === null) return 'absent';
    const taken = await this.#command(() => cmd.set(keys.owner(roomId), this.nodeId, 'PX', this.#opts.leaseMs, 'NX'));
    if (taken !== 'OK') return undefined;
    // read again under the lease: the previous owner's last write is the one that counts
    const state = JSON.parse((await this.#command(() => cmd.get(keys.state(roomId)))) ?? json) as RoomState;
    this.#log.warn({ roomId, members: state.stage.members.length }, 'took the room over from Redis state');
    // the room's audit record ids go on from where the previous node was (no id is used twice)
    if (state.auditNext !== undefined) this.#deps.rooms.opts.audit?.continueFrom(roomId, state.auditNext);
    return this.#deps.rooms.create(roomId, state.stage.mode, state.settings, state);
  }

  /** Edge side: the socket's requests go to `owner`, which answers them. */
  async #relay(socket: Socket, owner: string, rawToken: unknown, roomId: string): Promise<void> {
    await this.#request(owner, { t: 'open', sid: socket.id, token: rawToken, roomId });
    let entry = this.#relayed.get(roomId);
    if (!entry || entry.owner !== owner) this.#relayed.set(roomId, (entry = { owner, sockets: new Set() }));
    entry.sockets.add(socket);
    socket.onAny((event: string, ...args: unknown[]) => {
      const ack = typeof args.at(-1) === 'function' ? (args.pop() as (a: Ack<unknown>) => void) : undefined;
      this.#request(owner, { t: 'req', sid: socket.id, event, args, ack: !!ack }).then(
        (reply) => ack?.(reply as Ack<unknown>),
        (err: unknown) => ack?.({ ok: false, error: toWireError(err, this.#log) }),
      );
    });
    socket.on('disconnect', () => {
      this.#relayed.get(roomId)?.sockets.delete(socket);
      this.#send(owner, { t: 'close', sid: socket.id });
    });
  }

  // ------------------------------------------------------------------ RPC
  #request(to: string, body: Rpc): Promise<unknown> {
    const id = `${this.nodeId}:${++this.#seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new StagegateError('INTERNAL', `node ${to} did not answer in ${RPC_TIMEOUT_MS} ms`));
      }, RPC_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#publish(to, { id, from: this.nodeId, body });
    });
  }

  #send(to: string, body: Rpc): void {
    this.#publish(to, { id: '', from: this.nodeId, body });
  }

  #publish(to: string, envelope: Envelope): void {
    // on the adapter's connection: after the broadcasts this node published before
    void this.#redis.pub.publish(keys.rpc(to), JSON.stringify(envelope));
  }

  #onMessage(message: string): void {
    let env: Envelope;
    try {
      env = JSON.parse(message) as Envelope;
    } catch {
      return;
    }
    if ('re' in env) {
      const waiting = this.#pending.get(env.re);
      if (!waiting) return;
      this.#pending.delete(env.re);
      if (env.ok) waiting.resolve(env.data);
      else waiting.reject(new StagegateError(env.error?.code ?? 'INTERNAL', env.error?.message ?? 'failed'));
      return;
    }
    const { id, from, body } = env;
    const answer = (ok: boolean, data?: unknown, error?: WireError) => {
      if (id) this.#publish(from, { re: id, ok, data, error });
    };
    this.#handle(from, body, (data) => answer(true, data)).then(
      (data) => {
        if (data !== KEEP) answer(true, data);
      },
      (err: unknown) => answer(false, undefined, toWireError(err, this.#log)),
    );
  }

  /** Owner side of the RPC. Answers with the value, or KEEP when `reply` answers later. */
  async #handle(from: string, body: Rpc, reply: (data: unknown) => void): Promise<unknown> {
    switch (body.t) {
      case 'open': {
        const token = await verifyAuth({ token: body.token, roomId: body.roomId }, this.#deps.tokens);
        if (!this.#owned.has(token.roomId))
          throw new StagegateError('INTERNAL', `not the node of room ${token.roomId}`);
        const room = await this.#deps.rooms.forToken(token.roomId, token.roomInstance);
        if (room.stage.isBanned(token.userId))
          throw new StagegateError('BANNED', `${token.userId} is banned from this room`);
        const conn = new RemoteConnection(body.sid, from, room.id, this.#deps.io);
        this.#remote.set(body.sid, conn);
        conn.on('disconnect', () => this.#remote.delete(body.sid));
        serveConnection(conn, { token, room }, this.#deps, this);
        return {};
      }
      case 'req': {
        const conn = this.#remote.get(body.sid);
        if (!conn) throw new StagegateError('INVALID_STATE', 'connection unknown to the room node; reconnect');
        conn.deliver(body.event, body.args, body.ack ? reply : undefined);
        return KEEP;
      }
      case 'close':
        this.#remote.get(body.sid)?.gone('transport close');
        return KEEP;
      case 'http':
        return this.#serveHttpLocally(body);
      default:
        if (!this.#media) throw new StagegateError('INTERNAL', 'node not ready');
        return this.#media.handle(from, body);
    }
  }

  // ------------------------------------------------------------------ HTTP
  /** Cluster routes and relaying; false: the local handlers answer. */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!path.startsWith('/api/')) return false;
    try {
      if (path === '/api/nodes' || (path === '/api/rooms' && req.method === 'GET')) {
        if (!this.#authorized(req.headers.authorization)) return false; // the API answers UNAUTHORIZED
        if (req.method !== 'GET') return false;
        sendJson(res, 200, path === '/api/nodes' ? { nodes: await this.nodes() } : { rooms: await this.#rooms() });
        return true;
      }
      if (path === '/api/node/media') {
        if (!this.#authorized(req.headers.authorization) || req.method !== 'GET') return false;
        const rooms = await this.#media?.describe();
        sendJson(res, 200, { nodeId: this.nodeId, rooms });
        return true;
      }
      const m = /^\/api\/rooms\/([^/]+)(\/.*)?$/.exec(path);
      if (!m) return false;
      const roomId = decodeURIComponent(m[1]!);
      for (let attempt = 0; attempt < 3; attempt++) {
        const owner = await this.#command(() => this.#redis.cmd.get(keys.owner(roomId)));
        if (owner === this.nodeId || (owner === null && this.#deps.rooms.get(roomId))) {
          if (req.method !== 'GET') this.#settleBeforeEnd(res, roomId);
          return false;
        }
        if (owner === null) {
          if ((await this.#takeOver(roomId)) === 'absent') return false; // NOT_FOUND locally
          continue;
        }
        if (!(await this.#alive(owner))) return false; // gone: the local answer (NOT_FOUND) until it expires
        const body = req.method === 'GET' || req.method === 'DELETE' ? {} : await readJson(req);
        const answer = (await this.#request(owner, {
          t: 'http',
          method: req.method ?? 'GET',
          url: req.url ?? '/',
          auth: req.headers.authorization,
          body,
        })) as { status: number; json?: Record<string, unknown> };
        sendJson(res, answer.status, answer.json);
        return true;
      }
      return false;
    } catch (err) {
      sendError(res, err, this.#log);
      return true;
    }
  }

  /**
   * Owner side: the answer to an API call about `roomId` leaves once the state it left is in Redis
   * (as a socket request's ack does), so a takeover right after it still has the change.
   */
  #settleBeforeEnd(res: ServerResponse, roomId: string): void {
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.end = ((...args: unknown[]) => {
      this.changed(roomId);
      void Promise.resolve(this.#owned.get(roomId)?.write).finally(() => end(...args));
      return res;
    }) as ServerResponse['end'];
  }

  async #serveHttpLocally(body: Extract<Rpc, { t: 'http' }>): Promise<unknown> {
    const payload = Buffer.from(JSON.stringify(body.body));
    const req = Object.assign(Readable.from(body.method === 'GET' || body.method === 'DELETE' ? [] : [payload]), {
      method: body.method,
      url: body.url,
      // already checked (origin, content type) by the relaying node's guard
      headers: { 'content-type': 'application/json', ...(body.auth ? { authorization: body.auth } : {}) },
    }) as unknown as IncomingMessage;
    return new Promise((resolve, reject) => {
      let status = 500;
      const res = {
        headersSent: false,
        writeHead(s: number) {
          status = s;
          return res;
        },
        end(text?: string) {
          resolve({ status, json: text ? (JSON.parse(text) as unknown) : undefined });
        },
      } as unknown as ServerResponse;
      this.#deps.httpHandler(req, res).then((handled) => {
        if (!handled) resolve({ status: 404, json: { error: { code: 'NOT_FOUND', message: 'not found' } } });
      }, reject);
    });
  }

  #authorized(header: string | undefined): boolean {
    const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
    const want = Buffer.from(this.#deps.apiSecret);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  /** The live nodes with their load (`GET /api/nodes`). */
  async nodes(): Promise<NodeInfo[]> {
    const { cmd } = this.#redis;
    const ids = await this.#command(() => cmd.smembers(keys.nodes));
    if (ids.length === 0) return [];
    const values = await this.#command(() => cmd.mget(ids.map(keys.node)));
    const dead = ids.filter((_, i) => values[i] === null);
    if (dead.length) void cmd.srem(keys.nodes, ...dead).catch(() => {});
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as NodeInfo);
  }

  async #rooms(): Promise<unknown[]> {
    const { cmd } = this.#redis;
    const ids = (await this.#command(() => cmd.smembers(keys.rooms))).sort();
    if (ids.length === 0) return [];
    const [states, owners] = await Promise.all([
      this.#command(() => cmd.mget(ids.map(keys.state))),
      this.#command(() => cmd.mget(ids.map(keys.owner))),
    ]);
    return ids.flatMap((id, i) => {
      if (!states[i]) return [];
      const s = JSON.parse(states[i]) as RoomState;
      return [
        {
          id,
          mode: s.stage.mode,
          createdAt: new Date(s.createdAt).toISOString(),
          participants: s.stage.members.length,
          onStage: s.stage.members.filter((m) => m.status === 'ON_STAGE').length,
          node: owners[i],
        },
      ];
    });
  }

  // ------------------------------------------------------------------ periodic work
  /** Heartbeat with load, lease renewals, dead owners and dead edges. */
  async #tick(): Promise<void> {
    if (this.#closed || this.#ticking || !this.#redis.up) return;
    this.#ticking = true;
    const rewrite = this.#rewrite;
    this.#rewrite = false;
    const { cmd } = this.#redis;
    const { rooms } = this.#deps ?? {};
    try {
      const info: NodeInfo = {
        nodeId: this.nodeId,
        publicUrl: this.publicUrl,
        rtcAddress: this.#opts.rtcAddress,
        rooms: this.#owned.size,
        participants: rooms ? rooms.list().reduce((n, r) => n + r.participants.size, 0) : 0,
        relayed: [...this.#relayed.values()].reduce((n, e) => n + e.sockets.size, 0),
        loadavg: os.loadavg()[0]!,
        updatedAt: new Date().toISOString(),
      };
      await cmd
        .multi()
        .set(keys.node(this.nodeId), JSON.stringify(info), 'PX', this.#opts.leaseMs)
        .sadd(keys.nodes, this.nodeId)
        .exec();
      if (this.#opts.onPeerOrigins) this.#opts.onPeerOrigins(originsOf(await this.nodes()));
      for (const [roomId, owned] of this.#owned) {
        const renewed = await cmd.renewLease(keys.owner(roomId), this.nodeId, this.#opts.leaseMs);
        if (renewed === 0) this.#relinquish(roomId);
        else if (renewed === 2 || rewrite) {
          // Redis lost the room (restarted empty): it is written again
          delete owned.written;
          void cmd.sadd(keys.rooms, roomId).catch(() => {});
          this.changed(roomId);
        }
      }
      // after a Redis restart (empty), every node and owner writes its keys again first
      if (Date.now() - this.#readySince < this.#opts.leaseMs) return;
      await this.#checkOwners();
      await this.#checkEdges();
    } catch (err) {
      if (rewrite) this.#rewrite = true;
      this.#log.debug({ err }, 'cluster tick failed (Redis unavailable?)');
    } finally {
      this.#ticking = false;
    }
  }

  /** Edge side: sockets relayed to an owner that died or lost the room reconnect (to be routed again). */
  async #checkOwners(): Promise<void> {
    for (const [roomId, entry] of this.#relayed) {
      const owner = await this.#redis.cmd.get(keys.owner(roomId));
      if (entry.sockets.size === 0) {
        this.#relayed.delete(roomId);
        continue;
      }
      if (owner === entry.owner && (await this.#alive(owner))) continue;
      this.#log.warn({ roomId, owner: entry.owner, now: owner }, "room's node gone: its relayed sockets reconnect");
      this.#relayed.delete(roomId);
      // a transport close (not a deliberate disconnect): the client reconnects by itself
      for (const socket of entry.sockets) socket.conn.close();
      this.#media?.dropRoom(roomId);
    }
    // this node's media parts of rooms whose owner died or changed; their sockets here reconnect
    // too (to be routed again and set their media up anew), as above
    for (const { roomId, owner } of this.#media?.hostedRooms() ?? []) {
      const now = await this.#redis.cmd.get(keys.owner(roomId));
      if (now === owner && (await this.#alive(owner))) continue;
      const relayed = this.#relayed.get(roomId);
      this.#relayed.delete(roomId);
      for (const socket of relayed?.sockets ?? []) socket.conn.close();
      this.#media?.dropRoom(roomId);
    }
  }

  /** Owner side: connections relayed by a node that died are dropped (the grace period starts). */
  async #checkEdges(): Promise<void> {
    const edges = new Set([...this.#remote.values()].map((c) => c.node));
    for (const node of this.#media?.nodes() ?? []) edges.add(node);
    for (const edge of edges) {
      if (await this.#alive(edge)) continue;
      this.#log.warn({ edge }, 'node gone: dropping the connections it relayed');
      for (const conn of [...this.#remote.values()]) if (conn.node === edge) conn.gone('node gone');
      this.#media?.nodeGone(edge);
    }
  }

  /**
   * Another node holds the room's lease now: this copy closes without a word to anyone (no
   * `goodbye`: the clients must come back), the sockets connected here reconnect (a transport
   * close) and are routed to the holder; sockets relayed here are dropped by their own nodes,
   * which see the new holder.
   */
  #relinquish(roomId: string): void {
    this.#log.error({ roomId }, 'lost the lease of a room this node held: closing it here');
    this.#owned.delete(roomId);
    const room = this.#deps.rooms.get(roomId);
    if (!room) return;
    for (const p of room.participants.values())
      p.session = { id: p.session.id, notify() {}, subscribe() {}, disconnect() {} };
    for (const conn of [...this.#remote.values()]) if (conn.roomId === roomId) conn.gone('room moved');
    for (const socket of this.#deps.io.of('/').sockets.values()) {
      if (socket.rooms.has(roomKey(roomId))) socket.conn.close();
    }
    room.close('room-closed');
  }

  async #writeState(roomId: string, owned: { written?: string }): Promise<void> {
    const room = this.#deps.rooms.get(roomId);
    if (!room || room.closed || !this.#owned.has(roomId)) return;
    const auditNext = this.#deps.rooms.opts.audit?.nextId(roomId);
    const json = JSON.stringify({ ...room.toState(), ...(auditNext !== undefined && { auditNext }) });
    if (json === owned.written) return;
    try {
      const ok = await this.#redis.cmd.writeState(keys.owner(roomId), keys.state(roomId), this.nodeId, json);
      if (ok === 1) owned.written = json;
      else this.#relinquish(roomId);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, roomId }, 'room state not written (Redis unavailable)');
    }
  }

  async #alive(nodeId: string): Promise<boolean> {
    if (nodeId === this.nodeId) return true;
    return (await this.#command(() => this.#redis.cmd.exists(keys.node(nodeId)))) === 1;
  }

  /** A Redis command; Redis unavailable → INTERNAL (the caller's request fails, nothing crashes). */
  async #command<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw new StagegateError('INTERNAL', `cluster store unavailable: ${(err as Error).message}`);
    }
  }

  /**
   * Shutdown without ending anyone's webinar: each owned room's last state is written and its
   * lease released, its participants are let go without a word (no `goodbye`), and every socket
   * here is closed as a network drop: the clients reconnect (to the next node of their list),
   * and the node that needs a room first takes it over from Redis.
   */
  async handOver(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const [roomId, owned] of [...this.#owned]) {
      const room = this.#deps.rooms.get(roomId);
      await owned.write;
      if (room) await this.#writeState(roomId, owned);
      this.#owned.delete(roomId);
      for (const p of room?.participants.values() ?? [])
        p.session = { id: p.session.id, notify() {}, subscribe() {}, disconnect() {} };
      for (const conn of [...this.#remote.values()]) if (conn.roomId === roomId) conn.gone('node shutting down');
      await this.#redis.cmd.releaseLease(keys.owner(roomId), this.nodeId).catch(() => 0);
      this.#log.info({ roomId }, 'room handed over (state in Redis, lease released)');
    }
    for (const socket of this.#deps.io.of('/').sockets.values()) socket.conn.close();
  }

  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#owned.values()].map((o) => o.write));
    await this.#redis.cmd.del(keys.node(this.nodeId)).catch(() => {});
    await this.#redis.close();
  }
}

export interface NodeInfo {
  nodeId: string;
  publicUrl: string | undefined;
  rtcAddress: string;
  /** Rooms this node owns. */
  rooms: number;
  participants: number;
  /** Sockets connected here whose room another node owns. */
  relayed: number;
  loadavg: number;
  updatedAt: string;
}

const KEEP = Symbol('keep');

/** Every Stage event (a compile error when one is missing): each makes the owner write the room's state. */
const STAGE_EVENTS = Object.keys({
  statusChanged: 1,
  requestsChanged: 1,
  newRequest: 1,
  requestApproved: 1,
  requestRejected: 1,
  removed: 1,
  modeChanged: 1,
  requestPositionsChanged: 1,
  mutedByHost: 1,
  unmuteRequested: 1,
  unmuteAllowed: 1,
  removedFromRoom: 1,
  banned: 1,
  unbanned: 1,
  settingsChanged: 1,
  slotChanged: 1,
  stageSlotEnding: 1,
} satisfies Record<EventName, 1>) as EventName[];

/**
 * Owner side: a socket connected to another node. What the request loop sends it goes through the
 * socket.io adapter (the socket id is a room on every node); requests come over the RPC channel.
 */
class RemoteConnection implements Connection {
  readonly #listeners = new Map<string, ((...args: unknown[]) => void)[]>();
  readonly #any: ((event: string, ...args: unknown[]) => void)[] = [];
  #connected = true;

  constructor(
    readonly id: string,
    readonly node: string,
    readonly roomId: string,
    readonly io: Server,
  ) {}

  get connected(): boolean {
    return this.#connected;
  }

  emit(name: string, data: unknown): void {
    this.io.to(this.id).emit(name, data);
  }

  join(rooms: string[]): void {
    this.io.in(this.id).socketsJoin(rooms);
  }

  disconnect(): void {
    this.io.in(this.id).disconnectSockets(true);
    this.gone('server namespace disconnect');
  }

  onAny(listener: (event: string, ...args: unknown[]) => void): void {
    this.#any.push(listener);
  }

  on(event: string, listener: (...args: unknown[]) => void): void {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener);
    this.#listeners.set(event, list);
  }

  deliver(event: string, args: unknown[], ack: ((data: unknown) => void) | undefined): void {
    if (!this.#connected || event === 'disconnect') return;
    const all = ack ? [...args, ack] : args;
    for (const l of this.#any) l(event, ...all);
    for (const l of this.#listeners.get(event) ?? []) l(...all);
  }

  gone(reason: string): void {
    if (!this.#connected) return;
    this.#connected = false;
    for (const l of this.#listeners.get('disconnect') ?? []) l(reason);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The origins of the nodes' public URLs (a malformed one is left out). */
function originsOf(nodes: NodeInfo[]): string[] {
  return nodes.flatMap((n) => {
    try {
      return n.publicUrl ? [new URL(n.publicUrl).origin] : [];
    } catch {
      return [];
    }
  });
}
