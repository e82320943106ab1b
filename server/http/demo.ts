/**
 * Demo mode (on by default for local webinars): the landing page creates rooms and gets tokens
 * without the backend API. A room's host link carries a per-room host key, its speaker link a
 * speaker key; anyone with the viewer link joins as a viewer. Turn it off (STAGEGATE_DEMO=false)
 * when a backend mints tokens.
 *
 * For a demo room these routes are its backend: with the host key, the host console reads the
 * room's audit trail, its bans and holds, and unbans (the contract lets only the backend unban).
 * Tokens are minted only for rooms these routes created (not for the backend's rooms), bound to
 * that room instance: once the room is deleted they no longer open (nor re-create) it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { StagegateError } from '../../shared/errors.js';
import { AUDIENCE_VISIBILITIES, STAGE_MODES } from '../../shared/stage.js';
import { displayNameSchema } from '../auth/names.js';
import type { TokenService } from '../auth/tokens.js';
import type { AuditTrail } from '../audit/AuditTrail.js';
import { BACKEND_ACTOR } from '../stage/Stage.js';
import type { Logger } from '../logger.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';
import { parse, readJson, sendError, sendJson } from './api.js';

const createRoom = z.strictObject({
  mode: z.enum(STAGE_MODES).optional(),
  audience: z.enum(AUDIENCE_VISIBILITIES).optional(),
});
const endRoom = z.strictObject({ hostKey: z.string().max(64) });
const readAudit = z.strictObject({
  hostKey: z.string().max(64),
  after: z.number().int().min(0).optional(),
  limit: z.number().int().min(1).max(500).optional(),
});
const unban = z.strictObject({ hostKey: z.string().max(64), userId: z.string().min(1).max(128) });
const getToken = z.strictObject({
  roomId: z.string().min(1).max(128),
  name: displayNameSchema(60),
  role: z.enum(['host', 'speaker', 'viewer']),
  hostKey: z.string().max(64).optional(),
  speakerKey: z.string().max(64).optional(),
});

export function createDemoRoutes({
  rooms,
  tokens,
  log,
  audit,
  roomsPerMinute = 30,
}: {
  rooms: RoomRegistry;
  tokens: TokenService;
  log: Logger;
  /** The audit trail the host console reads (`POST /demo/rooms/ID/audit`). */
  audit?: AuditTrail;
  /** Rooms one client address may create per minute. */
  roomsPerMinute?: number;
}) {
  /** The rooms these routes created: room id → keys, room instance, and the names of the tokens minted. */
  const demoRooms = new Map<
    string,
    { hostKey: string; speakerKey: string; instanceId: string; names: Map<string, string> }
  >();
  /** Per client address: when it created its rooms of the last minute. */
  const created = new Map<string, number[]>();

  function allowCreate(address: string): void {
    const now = Date.now();
    const recent = (created.get(address) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= roomsPerMinute) {
      created.set(address, recent);
      const retry = Math.ceil((60_000 - (now - recent[0]!)) / 1000);
      throw new StagegateError('RATE_LIMITED', `too many rooms created from this address; try again in ${retry} s`);
    }
    recent.push(now);
    created.set(address, recent);
    if (created.size > 10_000) for (const [a, ts] of created) if (now - ts[ts.length - 1]! >= 60_000) created.delete(a);
  }

  return async function handleDemo(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0]!;
    // GET /demo/rooms/ID: does this demo room exist (the pages check a link before asking for a name)
    const check = /^\/demo\/rooms\/([^/]{1,128})$/.exec(path);
    if (req.method === 'GET' && check) {
      let id = '';
      try {
        id = decodeURIComponent(check[1]!);
      } catch {
        // not an id of ours
      }
      const demoRoom = demoRooms.get(id);
      const room = rooms.get(id);
      if (!demoRoom || room?.instanceId !== demoRoom.instanceId) {
        sendError(res, new StagegateError('NOT_FOUND', `no webinar ${id || check[1]!}`), log);
      } else sendJson(res, 200, { roomId: id, mode: room.stage.mode });
      return true;
    }
    // POST /demo/rooms/ID/end { hostKey }: the host ends the webinar for everyone (the room closes)
    const end = /^\/demo\/rooms\/([^/]{1,128})\/end$/.exec(path);
    if (req.method === 'POST' && end) {
      try {
        const { hostKey } = parse(endRoom, await readJson(req));
        const id = end[1]!;
        const demoRoom = demoRooms.get(id);
        if (!demoRoom || rooms.get(id)?.instanceId !== demoRoom.instanceId) {
          throw new StagegateError('NOT_FOUND', `no demo room ${id}`);
        }
        if (hostKey !== demoRoom.hostKey)
          throw new StagegateError('FORBIDDEN', 'only the host link may end the webinar');
        rooms.close(id);
        log.info({ roomId: id }, 'demo room ended by its host');
        sendJson(res, 200, { roomId: id, closed: true });
      } catch (err) {
        sendError(res, err, log);
      }
      return true;
    }
    // POST /demo/rooms/ID/(audit|moderation|unban) { hostKey, ... }: the host console's backend reads
    const hostRead = /^\/demo\/rooms\/([^/]{1,128})\/(audit|moderation|unban)$/.exec(path);
    if (req.method === 'POST' && hostRead) {
      try {
        const body = await readJson(req);
        const id = hostRead[1]!;
        const what = hostRead[2]!;
        const key = (body as { hostKey?: unknown } | null)?.hostKey;
        const demoRoom = demoRooms.get(id);
        const room = rooms.get(id);
        if (!demoRoom || room?.instanceId !== demoRoom.instanceId) {
          throw new StagegateError('NOT_FOUND', `no demo room ${id}`);
        }
        if (typeof key !== 'string' || key !== demoRoom.hostKey) {
          throw new StagegateError('FORBIDDEN', 'only the host link may read or change this');
        }
        const names = (ids: Iterable<string>) =>
          Object.fromEntries([...ids].flatMap((u) => (demoRoom.names.has(u) ? [[u, demoRoom.names.get(u)!]] : [])));
        if (what === 'audit') {
          const { after, limit } = parse(readAudit, body);
          if (!audit) throw new StagegateError('NOT_FOUND', 'no audit trail');
          const page = audit.list(id, after ?? 0, limit ?? 100);
          const ids = page.records.flatMap((r) => [r.actor, ...(r.target ? [r.target] : [])]);
          sendJson(res, 200, { ...page, names: names(ids) });
        } else if (what === 'moderation') {
          parse(endRoom, body);
          const bans = room.stage.bannedUsers();
          const holds: Record<string, { held: string[]; unmuteRequested: string[] }> = {};
          for (const uid of room.participants.keys()) {
            const h = room.stage.holdsOf(uid);
            if (h.held.length) holds[uid] = h;
          }
          sendJson(res, 200, {
            bans,
            holds,
            names: names(bans),
            speakerPath: `/viewer.html?room=${id}&speaker=${demoRoom.speakerKey}`,
          });
        } else {
          const { userId } = parse(unban, body);
          room.stage.unban(BACKEND_ACTOR, userId);
          log.info({ roomId: id, userId }, 'demo room: the host unbanned a user');
          sendJson(res, 200, { userId, banned: false });
        }
      } catch (err) {
        sendError(res, err, log);
      }
      return true;
    }
    if (req.method !== 'POST' || (path !== '/demo/rooms' && path !== '/demo/tokens')) return false;
    try {
      if (path === '/demo/rooms') {
        allowCreate(req.socket.remoteAddress ?? 'unknown');
        const { mode, audience } = parse(createRoom, await readJson(req));
        const room = await rooms.create(randomUUID().slice(0, 8), mode, audience ? { audience } : undefined);
        const hostKey = randomBytes(12).toString('base64url');
        const speakerKey = randomBytes(12).toString('base64url');
        demoRooms.set(room.id, { hostKey, speakerKey, instanceId: room.instanceId, names: new Map() });
        room.onClose(() => demoRooms.delete(room.id));
        sendJson(res, 201, {
          roomId: room.id,
          hostKey,
          speakerKey,
          hostPath: `/host.html?room=${room.id}&key=${hostKey}`,
          speakerPath: `/viewer.html?room=${room.id}&speaker=${speakerKey}`,
          viewerPath: `/viewer.html?room=${room.id}`,
        });
      } else {
        const t = parse(getToken, await readJson(req));
        const demoRoom = demoRooms.get(t.roomId);
        if (!demoRoom || rooms.get(t.roomId)?.instanceId !== demoRoom.instanceId) {
          throw new StagegateError('NOT_FOUND', `no demo room ${t.roomId}`);
        }
        if (t.role === 'host' && t.hostKey !== demoRoom.hostKey) {
          throw new StagegateError('FORBIDDEN', 'the host link is not valid for this room');
        }
        if (t.role === 'speaker' && t.speakerKey !== demoRoom.speakerKey) {
          throw new StagegateError('FORBIDDEN', 'the speaker link is not valid for this room');
        }
        const userId = `${t.role}-${randomUUID().slice(0, 8)}`;
        const claims = { userId, name: t.name, roomId: t.roomId, preset: t.role, roomInstance: demoRoom.instanceId };
        const token = await tokens.mint(claims);
        if (demoRoom.names.size < 100_000) demoRoom.names.set(userId, t.name);
        log.info({ roomId: t.roomId, userId, role: t.role }, 'demo token minted');
        sendJson(res, 201, { token, userId, roomId: t.roomId });
      }
    } catch (err) {
      sendError(res, err, log);
    }
    return true;
  };
}
