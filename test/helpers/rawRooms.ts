/**
 * The lifecycle most raw-socket server tests share: one real server for the file, a fresh room
 * per test, every raw client closed and the room closed after each test.
 *
 * `server` and `room` are live ESM bindings: a test file imports them and sees the current
 * values (vitest gives each test file its own module graph, so files never share them).
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Room } from '../../server/room/Room.js';
import type { TokenClaims } from '../../server/auth/tokens.js';
import type { ConfigInput } from '../../server/config.js';
import type { RoomSettings, StageMode } from '../../shared/stage.js';
import { connectRaw, joinRaw, startServer, type RawClient, type TestServer } from './server.js';

export let server: TestServer;
export let room: Room;
/** Every raw client a test opened: closed after each test. */
export const clients: RawClient[] = [];

let prefix = 'room';

/** Registers the file's hooks: a server started with `config` before all tests, cleanup after each. */
export function useRawRooms(config: ConfigInput = {}, opts: { prefix?: string; demo?: boolean } = {}): void {
  prefix = opts.prefix ?? prefix;
  beforeAll(async () => {
    server = await startServer({ config, demo: opts.demo ?? false });
  });
  afterAll(() => server.close());
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    if (room && !room.closed) room.close();
  });
}

/** A new room with a random id, which becomes `room`. */
export async function freshRoom(mode: StageMode = 'REQUEST', settings?: Partial<RoomSettings>): Promise<Room> {
  room = await server.sg.rooms.create(`${prefix}-${Math.random().toString(36).slice(2, 8)}`, mode, settings);
  return room;
}

/** Makes `r` the test's `room` (closed after the test); returns it. */
export function adoptRoom(r: Room): Room {
  room = r;
  return r;
}

/** A raw client of `room` with a token for `userId` as `preset`, joined unless told not to. */
export async function connectTo(
  userId: string,
  preset: TokenClaims['preset'],
  opts: { join?: boolean } = {},
): Promise<RawClient> {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
  clients.push(c);
  if (opts.join ?? true) await joinRaw(c);
  return c;
}
