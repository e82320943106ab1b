/**
 * Churn soak against a real server and a real mediasoup worker: 200 cycles (4 concurrent loops
 * × 50) of a viewer connecting, requesting, being granted, joining the stage, publishing audio,
 * another viewer consuming it, the host kicking the speaker, and both disconnecting.
 * reconnectGraceMs is 0, so a disconnect leaves the room at once.
 *
 * Asserted afterwards: the worker holds no transport, producer or consumer (router.dump()); only
 * the host is left in the room, the stage and socket.io; file descriptors of this process and of
 * the worker, and the heap, are back near where they started (fds ≤ +15, worker fds ≤ +5,
 * heap ≤ +40 MB). The figures are printed on one line.
 */
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Room } from '../../server/room/Room.js';
import {
  connectRaw,
  DTLS,
  joinRaw,
  rtpParameters,
  startServer,
  until,
  type RawClient,
  type TestServer,
} from '../helpers/server.js';

const LOOPS = 4;
const CYCLES_PER_LOOP = Number(process.env.SOAK_CYCLES_PER_LOOP ?? 50);
const MB = 1024 * 1024;

let server: TestServer;
let room: Room;
let host: RawClient;

/** A real gc() if the runtime lets us have one (it is not exposed by default). */
const gc: (() => void) | undefined = (() => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
}

const fdCount = (pid: number | 'self') => fs.readdirSync(`/proc/${pid}/fd`).length;

beforeAll(async () => {
  server = await startServer({
    config: { reconnectGraceMs: 0, requestsPerSecond: 100_000, stageActionsPerSecond: 10_000 },
  });
  room = await server.sg.rooms.create('soak');
  host = await connectRaw(server.url, { token: await server.token('host', 'host', room.id) });
  await joinRaw(host);
});
afterAll(async () => {
  host?.close();
  await server?.close();
});

async function connect(userId: string): Promise<RawClient> {
  const c = await connectRaw(server.url, { token: await server.token(userId, 'viewer', room.id) });
  await joinRaw(c);
  return c;
}

/** One churn cycle; everything it created is gone when it returns. */
async function cycle(loop: number, i: number): Promise<void> {
  const speakerId = `v-${loop}-${i}`;
  const audienceId = `a-${loop}-${i}`;
  const [speaker, audience] = await Promise.all([connect(speakerId), connect(audienceId)]);
  try {
    expect((await speaker.request('stage.requestAccess')).status).toBe('REQUESTED_TO_JOIN_STAGE');
    const granted = await host.request('stage.grantAccess', { userIds: [speakerId] });
    expect(granted.results[speakerId]).toEqual({ ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' });
    expect((await speaker.request('stage.join')).status).toBe('ON_STAGE');
    const send = await speaker.request('createTransport', { direction: 'send' });
    await speaker.request('connectTransport', { transportId: send.id, dtlsParameters: DTLS });
    const { id: producerId } = await speaker.request('produce', {
      transportId: send.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio', 100_000 + loop * 1000 + i),
    });

    await audience.request('createTransport', { direction: 'recv' });
    const consumer = await audience.request('consume', { producerId });
    await audience.request('resumeConsumer', { consumerId: consumer.id });

    const consumerClosed = audience.next('consumerClosed');
    const kicked = await host.request('stage.kick', { userIds: [speakerId] });
    expect(kicked.results[speakerId]).toEqual({ ok: true, status: 'OFF_STAGE' });
    expect(await consumerClosed).toEqual({ consumerId: consumer.id, producerId });
  } finally {
    speaker.close();
    audience.close();
  }
  await until(
    () => !room.participants.has(speakerId) && !room.participants.has(audienceId),
    5000,
    `${speakerId} to leave`,
  );
}

describe('churn soak', () => {
  it(`runs ${LOOPS * CYCLES_PER_LOOP} connect → stage → publish → consume → kick → disconnect cycles and leaks nothing`, async () => {
    // one warm-up cycle: lazily created things (codecs, socket.io, worker ports) exist before the start figures
    await cycle(-1, 0);
    host.received.splice(0);
    await settle();
    const start = {
      fds: fdCount('self'),
      workerFds: fdCount(room.worker.pid),
      heap: process.memoryUsage().heapUsed,
    };
    const t0 = performance.now();

    await Promise.all(
      Array.from({ length: LOOPS }, async (_, loop) => {
        for (let i = 0; i < CYCLES_PER_LOOP; i++) await cycle(loop, i);
      }),
    );
    const durationS = (performance.now() - t0) / 1000;

    // ---- nothing left in the worker, the room, the stage, socket.io
    await until(async () => (await room.router.dump()).transportIds.length === 0, 5000, 'transports to close');
    const dump = await room.router.dump();
    expect(dump.transportIds).toEqual([]);
    expect(dump.mapProducerIdConsumerIds).toEqual([]);
    expect(dump.mapConsumerIdProducerId).toEqual([]);
    expect([...room.participants.keys()]).toEqual(['host']);
    const h = room.participants.get('host')!;
    expect([h.transports.size, h.producers.size, h.consumers.size]).toEqual([0, 0, 0]);
    expect(room.stage.members().map((m) => m.id)).toEqual(['host']);
    expect(room.stage.getAccessRequests('host')).toEqual([]);
    expect(server.sg.io.sockets.sockets.size).toBe(1);
    expect(server.sg.rooms.list()).toHaveLength(1);

    // ---- resources back near the start (closing sockets and fds can lag a little: poll)
    host.received.splice(0);
    await until(
      () => fdCount('self') <= start.fds + 15 && fdCount(room.worker.pid) <= start.workerFds + 5,
      5000,
      'file descriptors to be released',
    ).catch(() => undefined);
    await settle();
    const end = {
      fds: fdCount('self'),
      workerFds: fdCount(room.worker.pid),
      heap: process.memoryUsage().heapUsed,
    };
    console.log(
      `soak: cycles=${LOOPS * CYCLES_PER_LOOP} fds ${start.fds}→${end.fds} worker-fds ${start.workerFds}→${end.workerFds} ` +
        `heapMB ${(start.heap / MB).toFixed(1)}→${(end.heap / MB).toFixed(1)} duration ${durationS.toFixed(1)} s` +
        `${gc ? '' : ' (no gc available)'}`,
    );
    expect(end.fds).toBeLessThanOrEqual(start.fds + 15);
    expect(end.workerFds).toBeLessThanOrEqual(start.workerFds + 5);
    expect(end.heap).toBeLessThanOrEqual(start.heap + 40 * MB);

    // ---- and the room still works
    const late = await connect('late');
    expect((await late.request('stage.requestAccess')).status).toBe('REQUESTED_TO_JOIN_STAGE');
    late.close();
    await until(() => !room.participants.has('late'), 3000, 'late to leave');
  });
});
