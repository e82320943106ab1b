/**
 * Demo rooms: `POST /demo/rooms` rate limited per client address (typed 429), the room check the
 * pages make before asking for a name (`GET /demo/rooms/ID`), and empty rooms closing by
 * themselves after STAGEGATE_EMPTY_ROOM_CLOSE_SECONDS (here a fraction of a second).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Room } from '../../server/room/Room.js';
import { connectRaw, joinRaw, startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({
    demo: true,
    config: { demoRoomsPerMinute: 3, reconnectGraceMs: 0 },
  });
});
afterAll(() => t?.close());

/** A JSON POST to `base` (a test's own server, or the file's). */
async function postTo(base: string, path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
}
const post = (path: string, body: unknown) => postTo(t.url, path, body);

describe('demo rooms', () => {
  it('POST /demo/rooms: 3 per minute from one address, then 429 RATE_LIMITED; the rooms made still work', async () => {
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await post('/demo/rooms', {}));
    expect(made.map((r) => r.status)).toEqual([201, 201, 201]);
    const refused = await post('/demo/rooms', {});
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: 'RATE_LIMITED' });
    expect(t.sg.rooms.list().length).toBeLessThanOrEqual(3);
    const token = await post('/demo/tokens', { roomId: made[0]!.body.roomId, name: 'Ada', role: 'viewer' });
    expect(token.status).toBe(201);
  });

  it('GET /demo/rooms/ID: 200 for a live demo room, typed 404 otherwise; empty rooms close by themselves', async () => {
    // its own server: the close period must outlast creating the rooms and joining one, even on a
    // loaded machine, and the polls below wait only as long as the closing takes
    const s = await startServer({ demo: true, config: { emptyRoomCloseSeconds: 3, reconnectGraceMs: 0 } });
    try {
      const rooms: Room[] = [];
      for (let i = 0; i < 3; i++) {
        const made = await postTo(s.url, '/demo/rooms', {});
        rooms.push(s.sg.rooms.get(made.body.roomId as string)!);
      }
      const occupied = rooms[0]!;
      const ada = await connectRaw(s.url, { token: await s.token('ada', 'viewer', occupied.id) });
      await joinRaw(ada);

      const ok = await fetch(`${s.url}/demo/rooms/${occupied.id}`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ roomId: occupied.id, mode: 'REQUEST' });
      const missing = await fetch(`${s.url}/demo/rooms/nope1234`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');

      // the empty ones close within the period (+ a sweep); the occupied one stays
      await expect.poll(() => rooms.slice(1).every((r) => r.closed)).toBe(true);
      expect(occupied.closed).toBe(false);
      expect((await fetch(`${s.url}/demo/rooms/${rooms[1]!.id}`)).status).toBe(404);
      // once its last participant leaves, it closes too
      ada.close();
      await expect.poll(() => occupied.closed).toBe(true);
      expect(s.sg.rooms.list()).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe('POST /demo/rooms/ID/end', () => {
  it('the host key ends the room for everyone; no key or a wrong one (a viewer) is refused and changes nothing', async () => {
    const s = await startServer({ demo: true });
    try {
      const post = (path: string, body: unknown) => postTo(s.url, path, body);
      const room = (await post('/demo/rooms', {})).body as unknown as { roomId: string; hostKey: string };
      const { token } = (await post('/demo/tokens', { roomId: room.roomId, name: 'Vi', role: 'viewer' })).body as {
        token: string;
      };
      const viewer = await connectRaw(s.url, { token });
      await joinRaw(viewer);
      const wrong = await post(`/demo/rooms/${room.roomId}/end`, { hostKey: 'not-the-key' });
      expect(wrong.status).toBe(403);
      expect(wrong.body.error).toMatchObject({ code: 'FORBIDDEN' });
      expect((await post(`/demo/rooms/${room.roomId}/end`, {})).status).toBe(400);
      expect(s.sg.rooms.get(room.roomId)?.closed).toBe(false);
      expect((await post('/demo/rooms/nope/end', { hostKey: room.hostKey })).status).toBe(404);

      const bye = viewer.next('goodbye');
      const ok = await post(`/demo/rooms/${room.roomId}/end`, { hostKey: room.hostKey });
      expect(ok.status).toBe(200);
      expect(await bye).toMatchObject({ reason: 'room-closed' });
      expect(s.sg.rooms.get(room.roomId)).toBeUndefined();
      // its links stop working
      const again = await post('/demo/tokens', { roomId: room.roomId, name: 'Vi', role: 'viewer' });
      expect(again.status).toBe(404);
      viewer.close();
    } finally {
      await s.close();
    }
  });
});

describe('demo rooms: speaker links and the host console’s backend routes', () => {
  it('a speaker link mints a speaker token; audit, moderation and unban need the host key', async () => {
    const s = await startServer({ demo: true });
    try {
      const post = (path: string, body: unknown) => postTo(s.url, path, body);
      const room = (await post('/demo/rooms', {})).body as unknown as {
        roomId: string;
        hostKey: string;
        speakerKey: string;
        speakerPath: string;
      };
      expect(room.speakerPath).toBe(`/viewer.html?room=${room.roomId}&speaker=${room.speakerKey}`);
      expect(room.speakerKey).not.toBe(room.hostKey);
      // a speaker token needs the speaker key (the host key is not it)
      const base = { roomId: room.roomId, name: 'Sam', role: 'speaker' };
      expect((await post('/demo/tokens', base)).body.error).toMatchObject({ code: 'FORBIDDEN' });
      expect((await post('/demo/tokens', { ...base, speakerKey: room.hostKey })).status).toBe(403);
      const sam = await post('/demo/tokens', { ...base, speakerKey: room.speakerKey });
      expect(sam.status).toBe(201);
      const samClient = await connectRaw(s.url, { token: sam.body.token as string });
      const snapshot = (await joinRaw(samClient)) as { self: { preset: { name: string } } };
      expect(snapshot.self.preset.name).toBe('speaker');

      // the host's reads: refused without the host key (a viewer has none), 404 for another room
      for (const route of ['audit', 'moderation', 'unban']) {
        const path = `/demo/rooms/${room.roomId}/${route}`;
        expect((await post(path, {})).status).toBe(403);
        expect((await post(path, { hostKey: room.speakerKey, userId: 'x' })).body.error).toMatchObject({
          code: 'FORBIDDEN',
        });
        expect((await post(`/demo/rooms/nope/${route}`, { hostKey: room.hostKey, userId: 'x' })).status).toBe(404);
      }
      const audit = await post(`/demo/rooms/${room.roomId}/audit`, { hostKey: room.hostKey });
      expect(audit.status).toBe(200);
      const records = audit.body.records as Array<{ action: string; actor: string }>;
      expect(records.map((r) => r.action)).toEqual(['room.created', 'participant.joined']);
      expect(audit.body.names).toEqual({ [sam.body.userId as string]: 'Sam' });

      // a ban (by the backend here) shows in moderation; the host key unbans; unbanning twice is refused
      const server = s.sg.rooms.get(room.roomId)!;
      server.removeFromRoom('@backend', [sam.body.userId as string], { ban: true });
      const mod = await post(`/demo/rooms/${room.roomId}/moderation`, { hostKey: room.hostKey });
      expect(mod.body).toMatchObject({ bans: [sam.body.userId], names: { [sam.body.userId as string]: 'Sam' } });
      expect(
        (await post(`/demo/rooms/${room.roomId}/unban`, { hostKey: 'wrong', userId: sam.body.userId })).status,
      ).toBe(403);
      expect(server.stage.isBanned(sam.body.userId as string)).toBe(true);
      const un = await post(`/demo/rooms/${room.roomId}/unban`, { hostKey: room.hostKey, userId: sam.body.userId });
      expect(un.status).toBe(200);
      expect(server.stage.isBanned(sam.body.userId as string)).toBe(false);
      const twice = await post(`/demo/rooms/${room.roomId}/unban`, { hostKey: room.hostKey, userId: sam.body.userId });
      expect(twice.body.error).toMatchObject({ code: 'INVALID_STATE' });
      samClient.close();
    } finally {
      await s.close();
    }
  });
});
