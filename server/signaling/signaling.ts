/**
 * socket.io wiring: token check at connection, then every request goes through `dispatch`:
 * parse (strict schema) → authorize (the handler's `needs`) → run → ack → log.
 */
import type { Server, Socket } from 'socket.io';
import { StagegateError, type ErrorCode } from '../../shared/errors.js';
import {
  requestSchemas,
  type Ack,
  type Notifications,
  type RequestMethod,
  type WireError,
} from '../../shared/protocol.js';
import type { TokenService, VerifiedToken } from '../auth/tokens.js';
import type { Logger } from '../logger.js';
import type { ParticipantSession } from '../room/Participant.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';
import type { Room } from '../room/Room.js';
import { handlers, type ConnectionContext } from './handlers.js';
import { hostsKey, roomKey, userKey, type Outbox } from './outbox.js';
import { TokenBucket } from './rateLimit.js';

export { hostsKey, roomKey, userKey } from './outbox.js';

const METHODS = new Set<string>(Object.keys(handlers));
/** A connection's token is refreshed at this share of its remaining life. */
const REFRESH_AT = 0.8;
const MIN_REFRESH_MS = 500;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface SignalingDeps {
  io: Server;
  rooms: RoomRegistry;
  tokens: TokenService;
  log: Logger;
  limits: { requestsPerSecond: number; stageActionsPerSecond: number };
  /** Room broadcasts and acks leave through it (coalesced per event-loop turn). */
  outbox: Outbox;
  /** Called after every request with its outcome ('ok' or the error code), for metrics. */
  onRequest?: (method: RequestMethod, outcome: string) => void;
}

/**
 * One client connection as the request loop sees it: a socket.io socket on this node, or (cluster
 * mode) a socket on another node whose requests arrive over Redis (server/cluster/).
 */
export interface Connection {
  readonly id: string;
  /** Cluster mode: the node the socket is on, when another than this one. */
  readonly node?: string | undefined;
  readonly connected: boolean;
  emit(name: string, data: unknown): void;
  /** Joins socket.io rooms (roomKey/userKey), which reach the client from any node. */
  join(keys: string[]): void;
  disconnect(): void;
  onAny(listener: (event: string, ...args: unknown[]) => void): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
}

export interface SocketData {
  token: VerifiedToken;
  room: Room;
}

/** Cluster mode: where a connection's room lives (server/cluster/Cluster.ts). */
export interface SignalingRouter {
  /** Resolves the local room, or `undefined` when the socket was handed to the room's owner node. */
  route(socket: Socket, token: VerifiedToken, rawToken: unknown): Promise<Room | undefined>;
  /** Called before each ack: e.g. the room's state is written to Redis first. */
  settle(room: Room): Promise<void>;
}

export function attachSignaling(deps: SignalingDeps & { router?: SignalingRouter }): void {
  const { io, tokens, rooms, log, router } = deps;
  io.use((socket, next) => {
    authenticate(socket, tokens, rooms, router).then(
      (data) => {
        socket.data = data;
        next();
      },
      (err: unknown) => {
        const wire = toWireError(err, log);
        log.info({ code: wire.code, reason: wire.message }, 'connection refused');
        next(Object.assign(new Error(wire.message), { data: wire }));
      },
    );
  });

  io.on('connection', (socket: Socket) => {
    const data = socket.data as SocketData | { proxied: true };
    if ('proxied' in data) return; // served by the room's owner node
    serveConnection(socketConnection(socket), data, deps, router);
  });
}

export function socketConnection(socket: Socket): Connection {
  return {
    id: socket.id,
    get connected() {
      return socket.connected;
    },
    emit: (name, data) => void socket.emit(name, data),
    join: (keys) => void socket.join(keys),
    disconnect: () => void socket.disconnect(true),
    onAny: (listener) => void socket.onAny(listener),
    on: (event, listener) => void socket.on(event, listener),
  };
}

/** The request loop of one connection: token refresh, rate limits, dispatch, disconnect. */
export function serveConnection(
  socket: Connection,
  { token, room }: SocketData,
  { log, limits, outbox, onRequest, tokens }: SignalingDeps,
  router?: SignalingRouter,
): void {
  const clog = log.child({ roomId: room.id, userId: token.userId, socketId: socket.id });
  const session: ParticipantSession = {
    id: socket.id,
    node: socket.node,
    notify: (name, data) => socket.emit(name, data),
    subscribe: ({ host }) =>
      socket.join([roomKey(room.id), userKey(room.id, token.userId), ...(host ? [hostsKey(room.id)] : [])]),
    disconnect: () => socket.disconnect(),
  };
  // A connected session outlives its token: a fresh one is handed over before expiry.
  let current = token;
  let refreshTimer: NodeJS.Timeout | undefined;
  const refresh = async (): Promise<Notifications['tokenRefreshed']> => {
    const fresh = await tokens.refresh(current);
    current = { ...current, issuedAt: Math.floor(Date.now() / 1000), expiresAt: fresh.expiresAt };
    scheduleRefresh();
    return fresh;
  };
  const scheduleRefresh = () => {
    clearTimeout(refreshTimer);
    if (!socket.connected) return;
    const delay = Math.min(
      MAX_TIMER_MS,
      Math.max(MIN_REFRESH_MS, REFRESH_AT * (current.expiresAt * 1000 - Date.now())),
    );
    refreshTimer = setTimeout(() => {
      refresh().then(
        (fresh) => socket.emit('tokenRefreshed', fresh),
        (err: unknown) => clog.error({ err }, 'token refresh failed'),
      );
    }, delay);
    refreshTimer.unref();
  };
  scheduleRefresh();
  const ctx: ConnectionContext = { token, room, session, refreshToken: refresh };

  const buckets: Buckets = {
    all: new TokenBucket(limits.requestsPerSecond, limits.requestsPerSecond * 2),
    stage: new TokenBucket(limits.stageActionsPerSecond, limits.stageActionsPerSecond * 4),
  };
  socket.onAny((event: string, ...args: unknown[]) => {
    if (METHODS.has(event)) return;
    const ack = args.at(-1);
    const answer = buckets.all.take()
      ? fail('INVALID_REQUEST', `unknown method ${String(event).slice(0, 64)}`)
      : fail('RATE_LIMITED', 'too many requests; slow down');
    if (typeof ack === 'function') ack(answer);
  });
  for (const method of METHODS as Set<RequestMethod>) {
    socket.on(
      method,
      (...args: unknown[]) =>
        void dispatch(method, args, ctx, clog, buckets, outbox, router).then((outcome) => onRequest?.(method, outcome)),
    );
  }
  socket.on('disconnect', (reason) => {
    clearTimeout(refreshTimer);
    clog.info({ reason }, 'disconnected');
    if (ctx.participant) room.disconnected(ctx.participant.id, session);
  });
}

async function authenticate(
  socket: Socket,
  tokens: TokenService,
  rooms: RoomRegistry,
  router: SignalingRouter | undefined,
): Promise<SocketData | { proxied: true }> {
  const token = await verifyAuth(socket.handshake.auth, tokens);
  // cluster mode: undefined when another node owns the room (it checks the ban in turn)
  const room = router
    ? await router.route(socket, token, (socket.handshake.auth as { token?: unknown }).token)
    : await rooms.forToken(token.roomId, token.roomInstance);
  if (!room) return { proxied: true };
  if (room.stage.isBanned(token.userId)) throw new StagegateError('BANNED', `${token.userId} is banned from this room`);
  return { token, room };
}

/** The handshake's token, verified, and the room it names (if the client named one). */
export async function verifyAuth(auth: unknown, tokens: TokenService): Promise<VerifiedToken> {
  const a = (typeof auth === 'object' && auth !== null ? auth : {}) as { token?: unknown; roomId?: unknown };
  const token = await tokens.verify(a.token);
  if (a.roomId !== undefined && a.roomId !== token.roomId) {
    throw new StagegateError('UNAUTHORIZED', 'the token is for another room');
  }
  return token;
}

async function dispatch(
  method: RequestMethod,
  args: unknown[],
  ctx: ConnectionContext,
  log: Logger,
  buckets: Buckets,
  outbox: Outbox,
  router?: SignalingRouter,
): Promise<string> {
  const ack = typeof args.at(-1) === 'function' ? (args.pop() as (a: Ack<unknown>) => void) : undefined;
  const started = performance.now();
  let reply: Ack<unknown>;
  try {
    if (!buckets.all.take() || (method.startsWith('stage.') && !buckets.stage.take())) {
      throw new StagegateError('RATE_LIMITED', `too many requests; slow down (${method})`);
    }
    if (!ack) throw new StagegateError('INVALID_REQUEST', 'requests need an ack callback');
    if (args.length > 1) throw new StagegateError('INVALID_REQUEST', 'one data argument expected');
    const parsed = requestSchemas[method].safeParse(args[0]);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      throw new StagegateError('INVALID_REQUEST', `${method}: ${issue?.message ?? 'invalid payload'}${where}`);
    }
    const handler = handlers[method];
    if (handler.needs === 'joined') {
      const p = ctx.participant;
      if (!p || p.session !== ctx.session || ctx.room.participants.get(p.id) !== p) {
        throw new StagegateError('INVALID_STATE', 'call joinRoom first');
      }
    }
    // The table is typed per method; here the data was parsed with this method's own schema.
    const run = handler.run as (c: ConnectionContext, d: unknown) => unknown;
    reply = { ok: true, data: await run(ctx, parsed.data) };
  } catch (err) {
    reply = { ok: false, error: toWireError(err, log) };
  }
  if (router) await router.settle(ctx.room);
  const ms = Math.round((performance.now() - started) * 100) / 100;
  if (reply.ok) log.debug({ method, ms }, '<== request ok');
  else log.info({ method, ms, code: reply.error.code, reason: reply.error.message }, '<== request refused');
  // behind the broadcasts this request caused, as if they had been sent at once
  if (ack) outbox.ack(() => ack(reply));
  return reply.ok ? 'ok' : reply.error.code;
}

interface Buckets {
  all: TokenBucket;
  stage: TokenBucket;
}

function fail(code: ErrorCode, message: string): Ack<never> {
  return { ok: false, error: { code, message } };
}

/** Any throw becomes a typed wire error; unexpected ones are logged and hidden. */
export function toWireError(err: unknown, log: Logger): WireError {
  const wire = wireErrorOf(err, log);
  // messages can echo client input (e.g. an unknown key): keep acks small
  return wire.message.length > 300 ? { ...wire, message: `${wire.message.slice(0, 300)}…` } : wire;
}

function wireErrorOf(err: unknown, log: Logger): WireError {
  if (err instanceof StagegateError) {
    const wire: WireError = err.toJSON();
    if (err.details?.retryAfterMs !== undefined) wire.retryAfterMs = err.details.retryAfterMs;
    return wire;
  }
  if (err instanceof TypeError) return { code: 'INVALID_REQUEST', message: err.message };
  // mediasoup's own error classes (not exported as values): matched by name.
  if (err instanceof Error && err.name === 'InvalidStateError') return { code: 'INVALID_STATE', message: err.message };
  if (err instanceof Error && err.name === 'UnsupportedError') return { code: 'UNSUPPORTED', message: err.message };
  log.error({ err }, 'unexpected error in a request');
  return { code: 'INTERNAL', message: 'internal error (logged on the server)' };
}
