/**
 * Test harness for the thin client: a real Stagegate server (socket.io on port 0, one real
 * mediasoup worker), clients with mediasoup-client's FakeHandler and fake tracks.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { FakeHandler } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';
import { FakeMediaStreamTrack } from 'fake-mediastreamtrack';
import type { Socket } from 'socket.io';
import { createStagegate, type ConfigInput, type Stagegate } from '../../server/index.js';
import type { Room } from '../../server/room/Room.js';
import {
  joinMeeting,
  type JoinMeetingOptions,
  type LocalTracks,
  type Meeting,
  type MeetingEvents,
  type MeetingStage,
  type Preset,
  type RoomSettings,
  type StageEvents,
  type StageMode,
} from '../../client/index.js';

export interface Harness {
  sg: Stagegate;
  url: string;
  /** A fresh room with a unique id (audience `hidden` unless `settings` say otherwise). */
  room(mode?: StageMode, settings?: Partial<RoomSettings>): Promise<Room>;
  /** Joins `room` as `userId` (display name = userId) with fake audio+video tracks unless given. */
  join(
    room: Room | string,
    userId: string,
    preset: 'host' | 'speaker' | 'viewer' | Preset,
    extra?: Partial<JoinMeetingOptions>,
  ): Promise<Meeting>;
  /** Leaves every meeting joined through `join` (afterEach). */
  leaveAll(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(config: ConfigInput = {}): Promise<Harness> {
  const sg = await createStagegate({
    useEnv: false,
    config: { port: 0, numWorkers: 1, logLevel: 'silent', ...config },
  });
  const { url } = await sg.listen();
  const meetings = new Set<Meeting>();
  let rooms = 0;
  const leaveAll = async () => {
    await Promise.all([...meetings].map((m) => m.leave()));
    meetings.clear();
  };
  return {
    sg,
    url,
    room: (mode = 'REQUEST', settings) => sg.rooms.create(`room-${++rooms}`, mode, settings),
    async join(room, userId, preset, extra = {}) {
      const roomId = typeof room === 'string' ? room : room.id;
      const token = await sg.tokens.mint({ userId, name: userId, roomId, preset });
      const meeting = await joinMeeting({
        url,
        token,
        roomId,
        handlerFactory: FakeHandler.createFactory(fakeParameters),
        socketOptions: { transports: ['websocket'] },
        tracks: fakeTracks(),
        ...extra,
      });
      meetings.add(meeting);
      return meeting;
    },
    leaveAll,
    async close() {
      await leaveAll();
      await sg.close();
    },
  };
}

export function fakeTrack(kind: 'audio' | 'video'): MediaStreamTrack {
  return new FakeMediaStreamTrack({ kind }) as unknown as MediaStreamTrack;
}

export function fakeTracks(): LocalTracks {
  return { audio: fakeTrack('audio'), video: fakeTrack('video') };
}

type EventsOf<T> = T extends Meeting ? MeetingEvents : T extends MeetingStage ? StageEvents : never;
interface Emitter {
  on(event: string, listener: (payload: unknown) => void): unknown;
  off(event: string, listener: (payload: unknown) => void): unknown;
}

/**
 * Resolves with the next `event` of `target` that passes `predicate`. Subscribe BEFORE the
 * action that causes it. Rejects after `timeoutMs` so a missing event fails the test quickly.
 */
export function waitFor<T extends Meeting | MeetingStage, K extends keyof EventsOf<T> & string>(
  target: T,
  event: K,
  predicate: (payload: EventsOf<T>[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<EventsOf<T>[K]> {
  return collect(target, event, 1, predicate, timeoutMs).then(([first]) => first!);
}

/** Resolves with the next `count` events of `target` that pass `predicate`, in order. */
export function collect<T extends Meeting | MeetingStage, K extends keyof EventsOf<T> & string>(
  target: T,
  event: K,
  count: number,
  predicate: (payload: EventsOf<T>[K]) => boolean = () => true,
  timeoutMs = 5_000,
): Promise<EventsOf<T>[K][]> {
  const emitter = target as unknown as Emitter;
  return new Promise((resolve, reject) => {
    const seen: EventsOf<T>[K][] = [];
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out waiting for ${count} "${event}" event(s); got ${seen.length}`));
    }, timeoutMs);
    const listener = (payload: unknown) => {
      const p = payload as EventsOf<T>[K];
      if (!predicate(p)) return;
      seen.push(p);
      if (seen.length < count) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(seen);
    };
    emitter.on(event, listener);
  });
}

/** Server-side producer count of a participant (0 when gone). */
export function serverProducers(room: Room, userId: string): number {
  return room.participants.get(userId)?.producers.size ?? 0;
}

/** Faults injected on the server side of a harness, per user (see `installFaults`). */
export interface Faults {
  /** Holds `userId`'s new connections (after the token check) until the returned function is called. */
  gate(userId: string): () => void;
  /** Breaks `userId`'s connection (no goodbye: 'transport close' for the client) when a request
   * matching `when` arrives, once, before the server handles it. */
  dropOn(userId: string, when: (method: string) => boolean): void;
  /** Opens every gate and forgets every drop (afterEach). */
  clear(): void;
}

export function installFaults(h: Harness): Faults {
  const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
  const drops = new Map<string, (method: string) => boolean>();
  h.sg.io.use((socket: Socket, next) => {
    const userId = (socket.data as { token?: { userId: string } }).token?.userId;
    const gate = userId === undefined ? undefined : gates.get(userId);
    if (gate) void gate.promise.then(() => next());
    else next();
  });
  h.sg.io.on('connection', (socket: Socket) => {
    const userId = (socket.data as { token: { userId: string } }).token.userId;
    socket.use(([event], next) => {
      const when = drops.get(userId);
      if (!when?.(String(event))) return next();
      drops.delete(userId);
      socket.conn.close();
    });
  });
  return {
    gate(userId) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gates.set(userId, { promise, open });
      return () => {
        gates.delete(userId);
        open();
      };
    },
    dropOn: (userId, when) => void drops.set(userId, when),
    clear() {
      for (const { open } of gates.values()) open();
      gates.clear();
      drops.clear();
    },
  };
}

const RECORDED_MEETING_EVENTS = [
  'participantJoined',
  'participantLeft',
  'trackAdded',
  'trackRemoved',
  'disconnected',
  'reconnecting',
  'reconnected',
  'mediaError',
] as const satisfies readonly (keyof MeetingEvents)[];
const RECORDED_STAGE_EVENTS = [
  'stageStatusUpdate',
  'peerStageStatusUpdate',
  'stageModeUpdate',
  'stageAccessRequestUpdate',
] as const satisfies readonly (keyof StageEvents)[];

export type EventLog = Array<[string, Record<string, unknown>]>;

/** Records the events of `m` (and the main ones of `m.stage`), in order, as [name, payload]. */
export function record(m: Meeting): EventLog {
  const log: EventLog = [];
  for (const name of RECORDED_MEETING_EVENTS) m.on(name, (e) => log.push([name, e as Record<string, unknown>]));
  for (const name of RECORDED_STAGE_EVENTS) {
    m.stage.on(name, (e: StageEvents[typeof name]) => log.push([name, e as unknown as Record<string, unknown>]));
  }
  return log;
}

export const names = (log: EventLog): string[] => log.map(([n]) => n);

/** The file's harness and its fault injector: live bindings set by `useHarness`. */
export let h: Harness;
export let faults: Faults;

/** Registers the file's hooks: a harness with `config` and faults; everyone leaves and faults clear after each test. */
export function useHarness(config: ConfigInput = {}): void {
  beforeAll(async () => {
    h = await startHarness(config);
    faults = installFaults(h);
  });
  afterEach(async () => {
    faults.clear();
    await h.leaveAll();
  });
  afterAll(() => h.close());
}
