/**
 * The HTTP API for the application's backend (Authorization: Bearer <API secret>): rooms,
 * participant tokens, and moderation without a browser. Every body is validated with a strict
 * schema; every error is `{ error: { code, message } }` with a matching HTTP status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { displayNameSchema } from '../auth/names.js';
import { StagegateError, type ErrorCode } from '../../shared/errors.js';
import { LIMITS, roomSettingsSchema } from '../../shared/protocol.js';
import { MEDIA_SOURCES, STAGE_MODES } from '../../shared/stage.js';
import type { AuditTrail } from '../audit/AuditTrail.js';
import { idSchema, presetInputSchema, type TokenService } from '../auth/tokens.js';
import type { Logger } from '../logger.js';
import type { Room } from '../room/Room.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';
import { BACKEND_ACTOR } from '../stage/Stage.js';
import { HttpError, requireJson } from './guard.js';

export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  INVALID_STATE: 409,
  STAGE_DISABLED: 409,
  STAGE_FULL: 409,
  COOLING_DOWN: 429,
  BANNED: 403,
  RATE_LIMITED: 429,
  UNSUPPORTED: 422,
  INTERNAL: 500,
  TIMEOUT: 504,
  DISCONNECTED: 503,
};

const id = idSchema;
const userIds = z.strictObject({ userIds: z.array(z.string().min(1).max(LIMITS.idLength)).max(LIMITS.batchSize) });
const schemas = {
  createRoom: z.strictObject({
    id: id.optional(),
    mode: z.enum(STAGE_MODES).optional(),
    settings: roomSettingsSchema.optional(),
  }),
  mintToken: z.strictObject({
    userId: id.optional(),
    name: displayNameSchema(100),
    preset: presetInputSchema,
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .optional(),
  }),
  userIds,
  setMode: z.strictObject({ mode: z.enum(STAGE_MODES) }),
  settings: roomSettingsSchema,
  holds: userIds.extend({ sources: z.array(z.enum(MEDIA_SOURCES)).min(1).max(MEDIA_SOURCES.length) }),
  remove: userIds.extend({ ban: z.boolean().optional() }),
  auditQuery: z.strictObject({
    after: z.coerce.number().int().min(0).optional(),
    limit: z.coerce.number().int().min(1).max(500).optional(),
  }),
};

export interface ApiDeps {
  rooms: RoomRegistry;
  tokens: TokenService;
  apiSecret: string;
  log: Logger;
  audit?: AuditTrail;
}

type Json = Record<string, unknown> | unknown[];
type Route = (req: IncomingMessage, params: string[], body: () => Promise<unknown>) => Promise<[number, Json?]>;

export function roomSummary(room: Room) {
  return {
    id: room.id,
    mode: room.stage.mode,
    settings: room.settings,
    createdAt: new Date(room.createdAt).toISOString(),
    participants: room.participants.size,
    onStage: room.stage.members().filter((m) => m.status === 'ON_STAGE').length,
    audienceCount: room.audience.count(),
  };
}

export function roomDetails(room: Room) {
  return {
    ...roomSummary(room),
    participants: [...room.participants.values()].map((p) => room.info(p)),
    requests: room.stage.getAccessRequests(BACKEND_ACTOR),
    /** Where the media is: each router's worker pid and counts, each participant's routers. */
    media: room.media.placement(),
  };
}

/** Returns a request handler for /api/*; it answers `false` for paths it does not own. */
export function createApi({ rooms, tokens, apiSecret, log, audit }: ApiDeps) {
  const room = (roomId: string | undefined) => {
    const r = roomId ? rooms.get(roomId) : undefined;
    if (!r) throw new StagegateError('NOT_FOUND', `no room ${roomId}`);
    return r;
  };
  const routes: [method: string, pattern: RegExp, route: Route][] = [
    ['GET', /^\/api\/rooms$/, async () => [200, { rooms: rooms.list().map(roomSummary) }]],
    [
      'POST',
      /^\/api\/rooms$/,
      async (_req, _p, body) => {
        const { id: roomId, mode, settings } = parse(schemas.createRoom, await body());
        return [201, roomSummary(await rooms.create(roomId, mode, settings))];
      },
    ],
    ['GET', /^\/api\/rooms\/([^/]+)$/, async (_r, [rid]) => [200, roomDetails(room(rid))]],
    [
      'DELETE',
      /^\/api\/rooms\/([^/]+)$/,
      async (_r, [rid]) => {
        rooms.close(room(rid).id);
        return [204];
      },
    ],
    [
      'POST',
      /^\/api\/rooms\/([^/]+)\/tokens$/,
      async (_r, [rid], body) => {
        const r = room(rid);
        const t = parse(schemas.mintToken, await body());
        const userId = t.userId ?? randomUUID();
        const ttl = t.ttlSeconds ?? 6 * 3600;
        const claims = { userId, name: t.name, roomId: r.id, preset: t.preset, roomInstance: r.instanceId };
        const token = await tokens.mint(claims, ttl);
        return [201, { token, userId, roomId: r.id, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() }];
      },
    ],
    ...(['grant', 'deny', 'kick'] as const).map((action): [string, RegExp, Route] => [
      'POST',
      new RegExp(`^/api/rooms/([^/]+)/stage/${action}$`),
      async (_r, [rid], body) => {
        const r = room(rid);
        const { userIds: ids } = parse(schemas.userIds, await body());
        const stage = r.stage;
        const results =
          action === 'grant'
            ? stage.grantAccess(BACKEND_ACTOR, ids)
            : action === 'deny'
              ? stage.denyAccess(BACKEND_ACTOR, ids)
              : stage.kick(BACKEND_ACTOR, ids);
        log.info({ roomId: r.id, action, userIds: ids, by: BACKEND_ACTOR }, 'stage action via API');
        return [200, { results }];
      },
    ]),
    [
      'PUT',
      /^\/api\/rooms\/([^/]+)\/stage\/mode$/,
      async (_r, [rid], body) => {
        const r = room(rid);
        const { mode } = parse(schemas.setMode, await body());
        return [200, { mode: r.stage.setMode(BACKEND_ACTOR, mode) }];
      },
    ],
    [
      'PATCH',
      /^\/api\/rooms\/([^/]+)\/settings$/,
      async (_r, [rid], body) => {
        const r = room(rid);
        const change = parse(schemas.settings, await body());
        return [200, { settings: r.setSettings(BACKEND_ACTOR, change) }];
      },
    ],
    ...(['mute', 'allow-unmute'] as const).map((action): [string, RegExp, Route] => [
      'POST',
      new RegExp(`^/api/rooms/([^/]+)/stage/${action}$`),
      async (_r, [rid], body) => {
        const r = room(rid);
        const { userIds: ids, sources } = parse(schemas.holds, await body());
        const results =
          action === 'mute'
            ? r.stage.mute(BACKEND_ACTOR, ids, sources)
            : r.stage.allowUnmute(BACKEND_ACTOR, ids, sources);
        return [200, { results }];
      },
    ]),
    [
      'POST',
      /^\/api\/rooms\/([^/]+)\/stage\/remove$/,
      async (_r, [rid], body) => {
        const r = room(rid);
        const { userIds: ids, ban } = parse(schemas.remove, await body());
        return [200, { results: r.removeFromRoom(BACKEND_ACTOR, ids, ban === undefined ? {} : { ban }) }];
      },
    ],
    ['GET', /^\/api\/rooms\/([^/]+)\/bans$/, async (_r, [rid]) => [200, { bans: room(rid).stage.bannedUsers() }]],
    [
      'POST',
      /^\/api\/rooms\/([^/]+)\/bans\/([^/]+)$/,
      async (_r, [rid, uid]) => {
        const r = room(rid);
        const userId = parse(id, uid);
        const removed = r.stage.has(userId) ? r.removeFromRoom(BACKEND_ACTOR, [userId], { ban: true }) : undefined;
        if (!removed) r.stage.ban(BACKEND_ACTOR, userId);
        return [200, { userId, banned: true, removed: removed !== undefined }];
      },
    ],
    [
      'DELETE',
      /^\/api\/rooms\/([^/]+)\/bans\/([^/]+)$/,
      async (_r, [rid, uid]) => {
        room(rid).stage.unban(BACKEND_ACTOR, uid!);
        return [204];
      },
    ],
    [
      'GET',
      /^\/api\/rooms\/([^/]+)\/audit$/,
      async (req, [rid]) => {
        if (!audit || (!rooms.get(rid!) && !audit.has(rid!))) throw new StagegateError('NOT_FOUND', `no room ${rid}`);
        const query = Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams);
        const { after, limit } = parse(schemas.auditQuery, query);
        return [200, audit.list(rid!, after, limit)];
      },
    ],
  ];

  return async function handleApi(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!path.startsWith('/api/')) return false;
    try {
      if (!authorized(req.headers.authorization, apiSecret)) {
        throw new StagegateError('UNAUTHORIZED', 'Authorization: Bearer <API secret> required');
      }
      const match = routes
        .map(([m, pattern, route]) => ({ m, route, params: pattern.exec(path) }))
        .filter((x) => x.params);
      const hit = match.find((x) => x.m === req.method);
      if (!hit) {
        throw match.length
          ? new StagegateError('INVALID_REQUEST', `${req.method} not allowed on ${path}`)
          : new StagegateError('NOT_FOUND', `no route ${path}`);
      }
      const params = hit.params!.slice(1).map(decodePathPart);
      const [status, json] = await hit.route(req, params, () => readJson(req));
      sendJson(res, status, json);
    } catch (err) {
      sendError(res, err, log);
    }
    return true;
  };
}

function authorized(header: string | undefined, secret: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(secret);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
  throw new StagegateError('INVALID_REQUEST', `${issue?.message ?? 'invalid body'}${where}`);
}

/** A path segment, percent-decoded; a malformed encoding is the client's error, not ours. */
function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new StagegateError('INVALID_REQUEST', 'malformed percent-encoding in the path');
  }
}

/**
 * Reads a JSON body (empty: `{}`). Refuses another Content-Type (415) before reading, and a body
 * over LIMITS.maxMessageBytes (413) without reading the rest: the error answer then closes the
 * connection (see sendError), so the unread bytes are never taken for the next request.
 */
export function readJson(req: IncomingMessage): Promise<unknown> {
  requireJson(req);
  const limit = LIMITS.maxMessageBytes;
  const tooLarge = () => new HttpError(413, `body over ${limit} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err: StagegateError | undefined, value?: unknown) => {
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.pause();
      settle(tooLarge());
    };
    const onEnd = () => {
      if (size === 0) return settle(undefined, {});
      try {
        settle(undefined, JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        settle(new StagegateError('INVALID_REQUEST', 'body is not valid JSON'));
      }
    };
    const onError = () => settle(new StagegateError('INVALID_REQUEST', 'request body aborted'));
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

export function sendJson(res: ServerResponse, status: number, json?: Json): void {
  if (json === undefined) {
    res.writeHead(status).end();
    return;
  }
  const body = JSON.stringify(json);
  res
    .writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    })
    .end(body);
}

/**
 * Answers `{ error: { code, message } }`. A body too large was not read to its end: that answer
 * closes the connection, else the unread bytes would be parsed as the next request. (Node reads
 * and drops the unread rest of other refused bodies itself, keeping the connection usable.)
 */
export function sendError(res: ServerResponse, err: unknown, log: Logger): void {
  const e =
    err instanceof StagegateError
      ? err
      : (log.error({ err }, 'HTTP handler failed'), new StagegateError('INTERNAL', 'internal error'));
  if (e instanceof HttpError && e.status === 413) res.setHeader('connection', 'close');
  sendJson(res, e instanceof HttpError ? e.status : HTTP_STATUS[e.code], { error: e.toJSON() });
}
