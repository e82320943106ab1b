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
const getToken = z.strictObject({
  roomId: z.string().min(1).max(128),
  name: displayNameSchema(60),
  role: z.enum(['host', 'viewer']),
  hostKey: z.string().max(64).optional(),
});

export function createDemoRoutes({ rooms, tokens, log }: { rooms: RoomRegistry; tokens: TokenService; log: Logger }) {
  /** The rooms these routes created: room id → host key and room instance. */
  const demoRooms = new Map<string, { hostKey: string; instanceId: string }>();

  return async function handleDemo(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'POST' || (path !== '/demo/rooms' && path !== '/demo/tokens')) return false;
    try {
      if (path === '/demo/rooms') {
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
