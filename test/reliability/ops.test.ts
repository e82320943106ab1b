/**
 * Operations, against a real server and a real mediasoup worker: /healthz, the Prometheus
 * /metrics, graceful shutdown, and the structured (pino JSON) logs of stage actions.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
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

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Every sample of one metric in Prometheus text format. */
function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the sample with exactly these labels (undefined when there is none). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return samples(text, name).find((s) => JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

describe('health and metrics', () => {
  let server: TestServer;
  let room: Room;
  const clients: RawClient[] = [];
  const scrape = async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    return res.text();
  };
  const connect = async (userId: string, preset: 'host' | 'speaker' | 'viewer') => {
    const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
    clients.push(c);
    await joinRaw(c);
    return c;
  };

  beforeAll(async () => {
    server = await startServer();
    room = await server.sg.rooms.create('ops');
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  it('/healthz answers 200 with the live worker count', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', workers: 1, rooms: 1 });
  });

  it('/metrics follows rooms, stage statuses, producers, consumers, worker CPU and stage actions', async () => {
    let text = await scrape();
    expect(metric(text, 'stagegate_rooms')).toBe(1);
    expect(metric(text, 'stagegate_participants', { stage_status: 'ON_STAGE' })).toBe(0);
    expect(metric(text, 'stagegate_producers', { kind: 'audio' })).toBe(0);
    expect(metric(text, 'stagegate_consumers')).toBe(0);

    const host = await connect('host', 'host');
    const speaker = await connect('speaker', 'speaker');
    const viewer = await connect('viewer', 'viewer');
    await viewer.request('stage.requestAccess');
    expect(await viewer.ack('stage.grantAccess', { userIds: ['viewer'] })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    await speaker.request('stage.join');

    text = await scrape();
    expect(metric(text, 'stagegate_participants', { stage_status: 'ON_STAGE' })).toBe(1);
    expect(metric(text, 'stagegate_participants', { stage_status: 'REQUESTED_TO_JOIN_STAGE' })).toBe(1);
    expect(metric(text, 'stagegate_participants', { stage_status: 'ACCEPTED_TO_JOIN_STAGE' })).toBe(1); // the host
    expect(metric(text, 'stagegate_participants', { stage_status: 'OFF_STAGE' })).toBe(0);
    expect(metric(text, 'stagegate_stage_actions_total', { action: 'requestAccess', result: 'ok' })).toBe(1);
    expect(metric(text, 'stagegate_stage_actions_total', { action: 'grantAccess', result: 'FORBIDDEN' })).toBe(1);
    expect(metric(text, 'stagegate_stage_actions_total', { action: 'join', result: 'ok' })).toBe(1);

    const send = await speaker.request('createTransport', { direction: 'send' });
    await speaker.request('connectTransport', { transportId: send.id, dtlsParameters: DTLS });
    const { id: producerId } = await speaker.request('produce', {
      transportId: send.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    await viewer.request('createTransport', { direction: 'recv' });
    await viewer.request('consume', { producerId });

    text = await scrape();
    expect(metric(text, 'stagegate_producers', { kind: 'audio' })).toBe(1);
    expect(metric(text, 'stagegate_producers', { kind: 'video' })).toBe(0);
    expect(metric(text, 'stagegate_consumers')).toBe(1);
    expect(metric(text, 'stagegate_requests_total', { method: 'produce', outcome: 'ok' })).toBe(1);
    const cpu = samples(text, 'stagegate_worker_cpu_seconds');
    expect(cpu).toHaveLength(1);
    expect(cpu[0]!.labels).toEqual({ pid: String(room.worker.pid) });
    expect(cpu[0]!.value).toBeGreaterThanOrEqual(0);
    expect(text).toMatch(/^stagegate_process_\w+/m); // default process metrics, prefixed

    // a kick closes the producer and its consumer: the gauges follow
    await host.request('stage.kick', { userIds: ['speaker'] });
    text = await scrape();
    expect(metric(text, 'stagegate_producers', { kind: 'audio' })).toBe(0);
    expect(metric(text, 'stagegate_consumers')).toBe(0);
    expect(metric(text, 'stagegate_participants', { stage_status: 'ON_STAGE' })).toBe(0);
    expect(metric(text, 'stagegate_stage_actions_total', { action: 'kick', result: 'ok' })).toBe(1);
  });
});

describe('graceful shutdown', () => {
  it('close() says goodbye {reason: server-shutdown} to every participant, disconnects them and closes the workers', async () => {
    const server = await startServer();
    const room = await server.sg.rooms.create('shutdown');
    const connect = async (userId: string, preset: 'host' | 'speaker' | 'viewer') => {
      const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
      await joinRaw(c);
      return c;
    };
    const host = await connect('host', 'host');
    const speaker = await connect('speaker', 'speaker');
    const viewer = await connect('viewer', 'viewer');
    await speaker.request('stage.join');
    const send = await speaker.request('createTransport', { direction: 'send' });
    await speaker.request('connectTransport', { transportId: send.id, dtlsParameters: DTLS });
    const { id: producerId } = await speaker.request('produce', {
      transportId: send.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    await viewer.request('createTransport', { direction: 'recv' });
    await viewer.request('consume', { producerId });

    const all = [host, speaker, viewer];
    const order = all.map(() => [] as string[]);
    const disconnected = all.map(
      (c, i) =>
        new Promise<string>((resolve) =>
          c.socket.once('disconnect', (reason) => {
            order[i]!.push('disconnect');
            resolve(reason);
          }),
        ),
    );
    all.forEach((c, i) => c.socket.on('goodbye', () => order[i]!.push('goodbye')));
    const goodbyes = all.map((c) => c.next('goodbye', 5000));
    const workerPids = server.sg.pool.workers.map((w) => w.pid);

    await server.sg.close();
    for (const g of goodbyes) expect(await g).toEqual({ reason: 'server-shutdown' });
    // disconnect(true) closes the connection itself: the client may see either reason
    for (const d of disconnected) expect(await d).toMatch(/^(io server disconnect|transport close)$/);
    for (const o of order) expect(o).toEqual(['goodbye', 'disconnect']);
    expect(all.every((c) => !c.socket.connected)).toBe(true);

    expect(server.sg.pool.workers.length).toBeGreaterThan(0);
    expect(server.sg.pool.workers.every((w) => w.closed)).toBe(true);
    const gone = (pid: number) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    await until(() => workerPids.every(gone), 5000, 'the worker processes to exit');
    expect(room.closed).toBe(true);
    expect(server.sg.rooms.list()).toEqual([]);
    expect(server.sg.httpServer.listening).toBe(false);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    await expect(server.sg.close()).resolves.toBeUndefined(); // idempotent
    for (const c of all) c.close();
  });

  it('close() says goodbye to a connection that has not joined a room yet, too', async () => {
    const server = await startServer();
    const room = await server.sg.rooms.create('shutdown-early');
    const early = await connectRaw(server.url, { token: await server.token('early', 'viewer', room.id) });
    const disconnected = new Promise<string>((resolve) => early.socket.once('disconnect', resolve));
    await server.sg.close();
    expect(await disconnected).toMatch(/^(io server disconnect|transport close)$/);
    await until(() => early.received.some((n) => n.name === 'goodbye'), 1000, 'a goodbye').catch(() => undefined);
    expect(early.received).toEqual([{ name: 'goodbye', data: { reason: 'server-shutdown' } }]);
    early.close();
  });
});

describe('structured logs', () => {
  it('logs each stage action as JSON carrying roomId, userId and the from/to status', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        cb();
      },
    });
    const server = await startServer({ extra: { logger: pino({ level: 'info' }, stream) } });
    try {
      const room = await server.sg.rooms.create('logs');
      const connect = async (userId: string, preset: 'host' | 'viewer') => {
        const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
        await joinRaw(c);
        return c;
      };
      const host = await connect('host', 'host');
      const viewer = await connect('viewer', 'viewer');
      await viewer.request('stage.requestAccess');
      await host.request('stage.grantAccess', { userIds: ['viewer'] });
      await viewer.request('stage.join');
      await host.request('stage.kick', { userIds: ['viewer'] });
      expect(await viewer.ack('stage.kick', { userIds: ['host'] })).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });

      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>); // every line is JSON
      for (const e of entries)
        expect(e).toMatchObject({ level: expect.any(Number), time: expect.any(Number), msg: expect.any(String) });
      const changes = entries.filter((e) => e.msg === 'stage status changed' && e.userId === 'viewer');
      expect(changes).toEqual([
        expect.objectContaining({
          roomId: 'logs',
          userId: 'viewer',
          from: 'OFF_STAGE',
          to: 'REQUESTED_TO_JOIN_STAGE',
          reason: 'request',
        }),
        expect.objectContaining({
          roomId: 'logs',
          userId: 'viewer',
          from: 'REQUESTED_TO_JOIN_STAGE',
          to: 'ACCEPTED_TO_JOIN_STAGE',
          reason: 'grant',
          by: 'host',
        }),
        expect.objectContaining({
          roomId: 'logs',
          userId: 'viewer',
          from: 'ACCEPTED_TO_JOIN_STAGE',
          to: 'ON_STAGE',
          reason: 'join',
        }),
        expect.objectContaining({
          roomId: 'logs',
          userId: 'viewer',
          from: 'ON_STAGE',
          to: 'OFF_STAGE',
          reason: 'kick',
          by: 'host',
        }),
      ]);
      // a refused action is logged with who, where, what and why
      expect(entries).toContainEqual(
        expect.objectContaining({
          roomId: 'logs',
          userId: 'viewer',
          method: 'stage.kick',
          code: 'FORBIDDEN',
          msg: '<== request refused',
        }),
      );
    } finally {
      await server.close();
    }
  });
});
