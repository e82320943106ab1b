/**
 * Demo mode (on by default for local webinars): the landing page creates rooms and gets tokens
 * without the backend API. A room's host link carries a per-room host key; anyone with the
 * viewer link joins as a viewer. Turn it off (STAGEGATE_DEMO=false) when a backend mints tokens.
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
import type { Logger } from '../logger.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';
import { parse, readJson, sendError, sendJson } from './api.js';

const createRoom = z.strictObject({
  mode: z.enum(STAGE_MODES).optional(),
  audience: z.enum(AUDIENCE_VISIBILITIES).optional(),
});
const endRoom = z.strictObject({ hostKey: z.string().max(64) });
const getToken = z.strictObject({
  roomId: z.string().min(1).max(128),
  name: displayNameSchema(60),
  role: z.enum(['host', 'viewer']),
  hostKey: z.string().max(64).optional(),
});

export function createDemoRoutes({
  rooms,
  tokens,
  log,
  roomsPerMinute = 30,
}: {
  rooms: RoomRegistry;
  tokens: TokenService;
  log: Logger;
  /** Rooms one client address may create per minute. */
  roomsPerMinute?: number;
}) {
  /** The rooms these routes created: room id → host key and room instance. */
  const demoRooms = new Map<string, { hostKey: string; instanceId: string }>();
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
    if (req.method !== 'POST' || (path !== '/demo/rooms' && path !== '/demo/tokens')) return false;
    try {
      if (path === '/demo/rooms') {
        allowCreate(req.socket.remoteAddress ?? 'unknown');
        const { mode, audience } = parse(createRoom, await readJson(req));
        const room = await rooms.create(randomUUID().slice(0, 8), mode, audience ? { audience } : undefined);
        const hostKey = randomBytes(12).toString('base64url');
        demoRooms.set(room.id, { hostKey, instanceId: room.instanceId });
        room.onClose(() => demoRooms.delete(room.id));
        sendJson(res, 201, {
          roomId: room.id,
          hostKey,
          hostPath: `/host.html?room=${room.id}&key=${hostKey}`,
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
        const userId = `${t.role}-${randomUUID().slice(0, 8)}`;
        const claims = { userId, name: t.name, roomId: t.roomId, preset: t.role, roomInstance: demoRoom.instanceId };
        const token = await tokens.mint(claims);
        log.info({ roomId: t.roomId, userId, role: t.role }, 'demo token minted');
        sendJson(res, 201, { token, userId, roomId: t.roomId });
      }
    } catch (err) {
      sendError(res, err, log);
    }
    return true;
  };
}
