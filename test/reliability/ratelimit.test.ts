/**
 * Rate limits, per connection, against a real server and a real mediasoup worker (the default
 * limits: 100 requests/s with a 2 s burst, 5 stage actions/s with a 4 s burst).
 *
 * Asserted: a viewer flooding requestAccess/cancelRequestAccess is mostly answered RATE_LIMITED,
 * and what got through stays within burst + rate × elapsed; every flood request is answered; the
 * host's grantAccess/kick/setMode during the flood are answered and never RATE_LIMITED (latency
 * p50/max printed); the stage ends consistent (server, the viewer's own view, the host's list);
 * after a pause the viewer can act again. Batches over LIMITS.batchSize are refused
 * INVALID_REQUEST. More than requestsPerSecond × 2 cheap requests in a burst get RATE_LIMITED,
 * requests for unknown methods included.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ack, StageStatus } from '../../shared/index.js';
import { LIMITS, type RequestMethod } from '../../shared/protocol.js';
import type { Room } from '../../server/room/Room.js';
import { connectRaw, joinRaw, startServer, until, type RawClient, type TestServer } from '../helpers/server.js';

const RPS = 100;
const STAGE_RPS = 5;
const STAGE_BURST = STAGE_RPS * 4;
const RPS_BURST = RPS * 2;

let server: TestServer;
let room: Room;
const clients: RawClient[] = [];

beforeAll(async () => {
  server = await startServer({
    config: { requestsPerSecond: RPS, stageActionsPerSecond: STAGE_RPS, reconnectGraceMs: 0 },
  });
});
afterAll(() => server.close());
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  if (room && !room.closed) room.close();
});

async function client(userId: string, preset: 'host' | 'speaker' | 'viewer', join = true): Promise<RawClient> {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, room.id) });
  clients.push(c);
  if (join) await joinRaw(c);
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const code = (a: Ack<unknown>) => (a.ok ? 'ok' : a.error.code);
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

describe('stage action flood', () => {
  it('rate-limits a viewer flooding requestAccess/cancelRequestAccess; the host still acts; the stage stays consistent', async () => {
    room = await server.sg.rooms.create('rl-flood');
    const host = await client('host', 'host');
    const spammer = await client('spammer', 'viewer');
    await client('guest', 'viewer'); // the host invites and kicks them during the flood

    // ---- the flood: 10 requests every 5 ms for at least 1 s (so the bucket refills during it),
    // at least 300, and until 100 ms after the host is done
    const flood: Promise<{ method: RequestMethod; code: string; at: number }>[] = [];
    let hostDone = Infinity;
    const floodStarted = performance.now();
    const flooding = (async () => {
      const more = () => performance.now() < Math.max(hostDone + 100, floodStarted + 1000) || flood.length < 300;
      while (more() && flood.length < 3000) {
        for (let i = 0; i < 10; i++) {
          const method = flood.length % 2 ? 'stage.cancelRequestAccess' : 'stage.requestAccess';
          flood.push(spammer.ack(method).then((a) => ({ method, code: code(a), at: performance.now() })));
        }
        await sleep(5);
      }
    })();

    // ---- meanwhile the host invites, kicks and switches modes (12 stage actions: within its own burst)
    await until(() => flood.length >= 50, 2000, 'the flood to start');
    const hostActions: { method: string; code: string; ms: number }[] = [];
    const timed = async (method: RequestMethod, data: unknown) => {
      const t0 = performance.now();
      const a = await host.ack(method, data);
      hostActions.push({ method, code: code(a), ms: performance.now() - t0 });
      return a;
    };
    for (let round = 0; round < 3; round++) {
      await timed('stage.grantAccess', { userIds: ['guest'] });
      await timed('stage.kick', { userIds: ['guest'] });
      await timed('stage.setMode', { mode: 'INVITE' });
      await timed('stage.setMode', { mode: 'REQUEST' });
    }
    const hostFinished = performance.now();
    hostDone = hostFinished;
    await flooding;
    const answers = await Promise.all(flood);
    const floodEnded = Math.max(...answers.map((a) => a.at));
    const elapsedS = (floodEnded - floodStarted) / 1000;

    // ---- the flood was limited, and everything was answered
    const limited = answers.filter((a) => a.code === 'RATE_LIMITED').length;
    const through = answers.length - limited;
    const byCode: Record<string, number> = {};
    for (const a of answers) byCode[a.code] = (byCode[a.code] ?? 0) + 1;
    const latencies = hostActions.map((a) => a.ms);
    console.log(
      `ratelimit flood: sent=${answers.length} in ${elapsedS.toFixed(2)} s, RATE_LIMITED=${limited}, through=${through} ` +
        `(bound ${STAGE_BURST} + ${STAGE_RPS} × (${elapsedS.toFixed(2)} + 0.5) s = ${(STAGE_BURST + STAGE_RPS * (elapsedS + 0.5)).toFixed(1)}) ` +
        `byCode=${JSON.stringify(byCode)} | host actions=${hostActions.length} ` +
        `ack latency p50=${percentile(latencies, 50).toFixed(1)} ms max=${Math.max(...latencies).toFixed(1)} ms`,
    );
    expect(answers.length).toBeGreaterThanOrEqual(300);
    expect(limited).toBeGreaterThan(0);
    expect(limited).toBeGreaterThan(through); // most of the flood
    // What passes is burst + rate × the server's flood window, which lies inside the client's
    // window measured here: the bound holds by construction; the margin (half a second of refill)
    // covers timer rounding, not luck. The exact counts are test/server/rateLimit.test.ts's (fake clock).
    expect(through).toBeGreaterThanOrEqual(STAGE_BURST);
    expect(through).toBeLessThanOrEqual(STAGE_BURST + STAGE_RPS * (elapsedS + 0.5));
    expect(
      Object.keys(byCode).every((c) => ['ok', 'RATE_LIMITED', 'INVALID_STATE', 'STAGE_DISABLED'].includes(c)),
    ).toBe(true);

    // ---- the host was never limited, always answered, within a sane time, during the flood
    expect(hostActions).toHaveLength(12);
    for (const a of hostActions) expect(a, a.method).toMatchObject({ code: 'ok' });
    expect(Math.max(...latencies)).toBeLessThan(1000);
    expect(hostFinished).toBeLessThan(floodEnded); // the host acted while the flood was on

    // ---- the stage is consistent: the server, the viewer's own view, the host's list agree
    const status = room.statusOf('spammer');
    expect(['OFF_STAGE', 'REQUESTED_TO_JOIN_STAGE']).toContain(status);
    const pending = room.stage.getAccessRequests('host').map((r) => r.userId);
    expect(pending).toEqual(status === 'REQUESTED_TO_JOIN_STAGE' ? ['spammer'] : []);
    expect(room.statusOf('guest')).toBe('OFF_STAGE');
    expect(room.stage.mode).toBe('REQUEST');
    const lastOf = <T>(c: RawClient, name: string) =>
      c.received.filter((n) => n.name === name).at(-1)?.data as T | undefined;
    await until(
      () => {
        const mine = lastOf<{ new: StageStatus }>(spammer, 'stageStatusUpdate');
        const hostList = lastOf<{ requests: { userId: string }[] }>(host, 'stageAccessRequestUpdate');
        return (
          (mine?.new ?? 'OFF_STAGE') === status &&
          JSON.stringify((hostList?.requests ?? []).map((r) => r.userId)) === JSON.stringify(pending)
        );
      },
      3000,
      'the clients to agree with the server',
    );
    // what the spammer saw of itself is a chain of valid transitions ending where the server is
    const updates = spammer.received
      .filter((n) => n.name === 'stageStatusUpdate')
      .map((n) => n.data as { old: StageStatus; new: StageStatus });
    let seen: StageStatus = 'OFF_STAGE';
    for (const u of updates) {
      expect(u.old).toBe(seen);
      seen = u.new;
    }
    expect(seen).toBe(status);

    // ---- after a pause, the viewer can act again
    await sleep(1100);
    const first = await spammer.ack(
      status === 'REQUESTED_TO_JOIN_STAGE' ? 'stage.cancelRequestAccess' : 'stage.requestAccess',
    );
    expect(first.ok).toBe(true);
    const second = await spammer.ack(
      status === 'REQUESTED_TO_JOIN_STAGE' ? 'stage.requestAccess' : 'stage.cancelRequestAccess',
    );
    expect(second.ok).toBe(true);
    expect(room.statusOf('spammer')).toBe(status);
  });
});

describe('batch size', () => {
  it(`refuses batches over ${LIMITS.batchSize} users with INVALID_REQUEST; ${LIMITS.batchSize} are answered per user`, async () => {
    room = await server.sg.rooms.create('rl-batch');
    const host = await client('host', 'host');
    const viewer = await client('viewer', 'viewer');
    await viewer.request('stage.requestAccess');
    const before = room.stage.members();
    const tooMany = [...Array.from({ length: LIMITS.batchSize }, (_, i) => `nobody-${i}`), 'viewer'];
    for (const method of ['stage.grantAccess', 'stage.denyAccess', 'stage.kick'] as const) {
      const r = await host.ack(method, { userIds: tooMany });
      expect(r, method).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    }
    expect(room.stage.members()).toEqual(before); // 'viewer' (the 101st) was not granted or denied

    for (const method of ['stage.grantAccess', 'stage.denyAccess', 'stage.kick'] as const) {
      const r = await host.request(method, { userIds: tooMany.slice(0, LIMITS.batchSize) });
      expect(Object.keys(r.results)).toHaveLength(LIMITS.batchSize);
      expect(Object.values(r.results).every((x) => !x.ok && x.code === 'NOT_FOUND')).toBe(true);
    }
    expect(room.stage.members()).toEqual(before);
  });
});

describe('generic per-connection limit', () => {
  it(`answers RATE_LIMITED beyond ${RPS_BURST} cheap requests in a burst, and recovers`, async () => {
    room = await server.sg.rooms.create('rl-generic');
    const c = await client('cheap', 'viewer', false);
    const n = RPS_BURST + 150;
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: n }, () => c.ack('getRouterRtpCapabilities')));
    const elapsedS = (performance.now() - t0) / 1000;
    const limited = answers.filter((a) => code(a) === 'RATE_LIMITED').length;
    const through = answers.filter((a) => a.ok).length;
    console.log(
      `ratelimit generic: sent=${n} in ${elapsedS.toFixed(2)} s, ok=${through}, RATE_LIMITED=${limited} ` +
        `(bound ${RPS_BURST} + ${RPS} × ${elapsedS.toFixed(2)} s = ${(RPS_BURST + RPS * elapsedS).toFixed(1)})`,
    );
    expect(limited + through).toBe(n);
    expect(limited).toBeGreaterThan(0);
    expect(through).toBeGreaterThanOrEqual(RPS_BURST - 1);
    expect(through).toBeLessThanOrEqual(RPS_BURST + RPS * elapsedS + 1);
    const refused = answers.find((a) => !a.ok);
    expect(refused).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED', message: expect.any(String) } });

    await sleep(1000);
    expect((await c.ack('getRouterRtpCapabilities')).ok).toBe(true);
    // the connection is still usable for real work
    await joinRaw(c);
    expect(room.participants.has('cheap')).toBe(true);
  });

  // An event name that is no method is a request too (it is answered): it must not be a way
  // around the per-connection limit.
  it(`answers RATE_LIMITED beyond ${RPS_BURST} requests for unknown methods in a burst too`, async () => {
    room = await server.sg.rooms.create('rl-unknown');
    const c = await client('unknown', 'viewer');
    const n = RPS_BURST + 150;
    const t0 = performance.now();
    const answers = (await Promise.all(
      Array.from({ length: n }, () => c.socket.timeout(10_000).emitWithAck('no.such.method', {})),
    )) as Ack<unknown>[];
    const elapsedS = (performance.now() - t0) / 1000;
    const byCode: Record<string, number> = {};
    for (const a of answers) byCode[code(a)] = (byCode[code(a)] ?? 0) + 1;
    console.log(`ratelimit unknown methods: sent=${n} in ${elapsedS.toFixed(2)} s, byCode=${JSON.stringify(byCode)}`);
    expect(answers.every((a) => !a.ok)).toBe(true);
    expect(byCode.RATE_LIMITED ?? 0).toBeGreaterThan(0);
    expect(byCode.INVALID_REQUEST ?? 0).toBeLessThanOrEqual(RPS_BURST + RPS * elapsedS + 1);
  });
});
