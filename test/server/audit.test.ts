/**
 * The audit trail and webhooks (STAGE.md Part 2), and the Part 2 HTTP routes: a real server on
 * port 0 with a webhook receiver on loopback (node:http on port 0) that verifies every delivery
 * with the exported `verifyWebhook`, answers 500 on demand, and checks order and replays.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook, type AuditRecord } from '../../server/index.js';
import { signWebhook } from '../../server/audit/webhooks.js';
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

const SECRET = 'webhook-secret-0123456789';
interface Delivery {
  body: string;
  headers: http.IncomingHttpHeaders;
}
let receiver: http.Server;
let receiverUrl: string;
/** Every delivery as received (also the refused ones). */
const deliveries: Delivery[] = [];
/** Deliveries the receiver accepted (2xx), in order. */
const accepted: AuditRecord[] = [];
/** Answer 500 to the next N deliveries (of one delivery id when `failOnly` is set). */
let failNext = 0;
let failOnly: string | undefined;
let server: TestServer;
const clients: RawClient[] = [];

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      deliveries.push({ body, headers: req.headers });
      if (failNext > 0 && (!failOnly || req.headers['x-stagegate-delivery'] === failOnly)) {
        failNext--;
        return void res.writeHead(500).end();
      }
      try {
        accepted.push(verifyWebhook({ body, headers: req.headers, secret: SECRET, toleranceSeconds: 60 }));
        res.writeHead(204).end();
      } catch {
        res.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  server = await startServer({ config: { webhookUrls: [receiverUrl], webhookSecret: SECRET, reconnectGraceMs: 0 } });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server.close();
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
});

const api = (method: string, path: string, body?: unknown, secret = server.sg.apiSecret) =>
  fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

async function client(roomId: string, userId: string, preset: 'host' | 'speaker' | 'viewer') {
  const c = await connectRaw(server.url, { token: await server.token(userId, preset, roomId) });
  clients.push(c);
  await joinRaw(c);
  return c;
}

describe('audit trail', () => {
  it('one record per effective change, ids increasing, refusals leave none; paginated oldest first', async () => {
    const created = await api('POST', '/api/rooms', { id: 'aud-1' });
    expect(created.status).toBe(201);
    const host = await client('aud-1', 'host', 'host');
    const v = await client('aud-1', 'v', 'viewer');
    await v.request('stage.requestAccess');
    await host.request('stage.grantAccess', { userIds: ['v'] });
    await v.request('stage.join');
    const before = server.sg.audit.list('aud-1', 0, 500).records.length;
    // refused: nothing recorded
    expect((await v.ack('stage.kick', { userIds: ['host'] })).ok).toBe(false);
    expect((await v.ack('stage.setMode', { mode: 'OPEN' })).ok).toBe(false);
    expect(server.sg.audit.list('aud-1', 0, 500).records.length).toBe(before);
    await host.request('stage.mute', { userIds: ['v'], sources: ['audio'] });
    await host.request('stage.setSettings', { stageCap: 3 });
    await host.request('stage.setMode', { mode: 'OPEN' });
    await host.request('stage.removeFromRoom', { userIds: ['v'], ban: true });

    const all = (await (await api('GET', '/api/rooms/aud-1/audit?limit=500')).json()) as { records: AuditRecord[] };
    const ids = all.records.map((r) => r.id);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    const brief = all.records.map((r) => [r.action, r.actor, r.target, r.from, r.to, r.reason]);
    expect(brief).toEqual([
      ['room.created', '@backend', undefined, undefined, 'REQUEST', undefined],
      ['participant.joined', 'host', undefined, undefined, 'ACCEPTED_TO_JOIN_STAGE', undefined],
      ['participant.joined', 'v', undefined, undefined, 'OFF_STAGE', undefined],
      ['stage.status', 'v', 'v', 'OFF_STAGE', 'REQUESTED_TO_JOIN_STAGE', 'request'],
      ['stage.status', 'host', 'v', 'REQUESTED_TO_JOIN_STAGE', 'ACCEPTED_TO_JOIN_STAGE', 'grant'],
      ['stage.status', 'v', 'v', 'ACCEPTED_TO_JOIN_STAGE', 'ON_STAGE', 'join'],
      ['media.held', 'host', 'v', undefined, undefined, undefined],
      ['settings.changed', 'host', undefined, undefined, undefined, undefined],
      ['stage.mode', 'host', undefined, 'REQUEST', 'OPEN', undefined],
      ['stage.status', 'host', 'v', 'ON_STAGE', 'OFF_STAGE', 'removed-from-room'],
      ['participant.removed', 'host', 'v', undefined, undefined, 'banned'],
    ]);
    expect(all.records[7]!.details).toMatchObject({ changed: ['stageCap'] });

    // pages: after + limit, oldest first, `next` until the end
    const page1 = (await (await api('GET', '/api/rooms/aud-1/audit?limit=4')).json()) as {
      records: AuditRecord[];
      next: number;
    };
    expect(page1.records.map((r) => r.id)).toEqual([1, 2, 3, 4]);
    expect(page1.next).toBe(4);
    const page2 = (await (await api('GET', `/api/rooms/aud-1/audit?after=${page1.next}&limit=100`)).json()) as {
      records: AuditRecord[];
      next: number | null;
    };
    expect(page2.records[0]!.id).toBe(5);
    expect(page2.next).toBeNull();
    expect((await api('GET', '/api/rooms/aud-1/audit?limit=0')).status).toBe(400);
    expect((await api('GET', '/api/rooms/aud-1/audit?after=x')).status).toBe(400);
    expect((await api('GET', '/api/rooms/nope/audit')).status).toBe(404);
  });

  it('producers created and closed are recorded with why; leaving is recorded', async () => {
    await api('POST', '/api/rooms', { id: 'aud-2' });
    const records = () => server.sg.audit.list('aud-2', 0, 500).records;
    const host = await client('aud-2', 'host', 'host');
    const sp = await client('aud-2', 'sp', 'speaker');
    await sp.request('stage.join');
    const t = await sp.request('createTransport', { direction: 'send' });
    await sp.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    const { id } = await sp.request('produce', {
      transportId: t.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });
    const n = records().length;
    await host.request('stage.kick', { userIds: ['sp'] });
    const after = records().slice(n - 1);
    expect(after.map((r) => [r.action, r.actor, r.reason])).toEqual([
      ['producer.created', 'sp', undefined],
      ['stage.status', 'host', 'kick'],
      ['producer.closed', '@server', 'kicked'],
    ]);
    expect(after[0]!.details).toMatchObject({ producerId: id, source: 'audio' });
    await sp.request('leaveRoom');
    expect(records().at(-1)).toMatchObject({ action: 'participant.left', actor: 'sp', reason: 'left' });
  });
});

describe('webhooks', () => {
  it('every record reaches the receiver signed, in order, a 500 is retried, a replay is refused', async () => {
    failNext = 2; // the first record is refused twice, then delivered; the rest wait behind it
    failOnly = 'hook-1:1';
    await api('POST', '/api/rooms', { id: 'hook-1' });
    await client('hook-1', 'h', 'host');
    await api('PUT', '/api/rooms/hook-1/stage/mode', { mode: 'INVITE' });
    const want = server.sg.audit.list('hook-1', 0, 500).records;
    await until(() => accepted.filter((r) => r.roomId === 'hook-1').length >= want.length, 10_000, 'deliveries');
    const got = accepted.filter((r) => r.roomId === 'hook-1');
    expect(got).toEqual(want); // order kept, nothing lost
    const first = deliveries.filter((d) => d.headers['x-stagegate-delivery'] === 'hook-1:1');
    expect(first.length).toBe(3); // 500, 500, then delivered: the same delivery id on each retry
    expect(new Set(first.map((d) => d.body)).size).toBe(1);
    failOnly = undefined;

    // a delivery replayed later: the signature is still right, the timestamp is too old
    const d = deliveries.at(-1)!;
    const later = (Number(d.headers['x-stagegate-timestamp']) + 120) * 1000;
    expect(() =>
      verifyWebhook({ body: d.body, headers: d.headers, secret: SECRET, toleranceSeconds: 60, now: later }),
    ).toThrow(/replay/);
    // a forged or altered body, a wrong secret, a missing timestamp: refused
    expect(() =>
      verifyWebhook({ body: d.body.replace('hook-1', 'hook-2'), headers: d.headers, secret: SECRET }),
    ).toThrow(/signature/);
    expect(() => verifyWebhook({ body: d.body, headers: d.headers, secret: 'another-secret-0123456' })).toThrow(
      /signature/,
    );
    const { ['x-stagegate-timestamp']: _ts, ...noTs } = d.headers;
    expect(() => verifyWebhook({ body: d.body, headers: noTs, secret: SECRET })).toThrow(/timestamp/);
    // a fresh timestamp signed with the secret passes
    const ts = Math.floor(Date.now() / 1000);
    const fresh = { 'x-stagegate-timestamp': String(ts), 'x-stagegate-signature': signWebhook(d.body, ts, SECRET) };
    expect(verifyWebhook({ body: d.body, headers: fresh, secret: SECRET }).roomId).toBe('hook-1');
  });

  it('a slow receiver never blocks the stage', async () => {
    failNext = 1000; // every delivery refused for now
    await api('POST', '/api/rooms', { id: 'hook-2' });
    const h = await client('hook-2', 'h', 'host');
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await h.request('stage.setMode', { mode: i % 2 ? 'OPEN' : 'INVITE' });
    expect(performance.now() - t0).toBeLessThan(2000);
    failNext = 0;
  });
});

describe('Part 2 HTTP routes', () => {
  it('every new route refuses without the API secret, and changes nothing', async () => {
    await api('POST', '/api/rooms', { id: 'routes-1' });
    const room = server.sg.rooms.get('routes-1')!;
    await client('routes-1', 'sp', 'speaker');
    const calls: [string, string, unknown?][] = [
      ['PATCH', '/api/rooms/routes-1/settings', { stageCap: 1 }],
      ['POST', '/api/rooms/routes-1/stage/mute', { userIds: ['sp'], sources: ['audio'] }],
      ['POST', '/api/rooms/routes-1/stage/allow-unmute', { userIds: ['sp'], sources: ['audio'] }],
      ['POST', '/api/rooms/routes-1/stage/remove', { userIds: ['sp'], ban: true }],
      ['POST', '/api/rooms/routes-1/bans/someone'],
      ['DELETE', '/api/rooms/routes-1/bans/someone'],
      ['GET', '/api/rooms/routes-1/bans'],
      ['GET', '/api/rooms/routes-1/audit'],
    ];
    for (const [method, path, body] of calls) {
      for (const secret of ['', 'wrong-secret-0123456789']) {
        const res = await api(method, path, body, secret);
        expect(res.status, `${method} ${path}`).toBe(401);
      }
    }
    expect(room.settings.stageCap).toBeNull();
    expect(room.stage.isHeld('sp', 'audio')).toBe(false);
    expect(room.participants.has('sp')).toBe(true);
    expect(room.stage.bannedUsers()).toEqual([]);
  });

  it('settings, mute, remove with ban, ban ahead and unban', async () => {
    await api('POST', '/api/rooms', { id: 'routes-2' });
    const room = server.sg.rooms.get('routes-2')!;
    const sp = await client('routes-2', 'sp', 'speaker');
    const settings = await api('PATCH', '/api/rooms/routes-2/settings', {
      stageCap: 2,
      slotSeconds: 60,
      autoFill: true,
    });
    expect(await settings.json()).toEqual({
      settings: {
        stageCap: 2,
        autoFill: true,
        acceptTimeoutSeconds: 60,
        slotSeconds: 60,
        requestCooldownSeconds: 0,
        audience: 'hidden',
      },
    });
    expect((await api('PATCH', '/api/rooms/routes-2/settings', { stageCap: -1 })).status).toBe(400);
    expect((await api('PATCH', '/api/rooms/routes-2/settings', { bogus: 1 })).status).toBe(400);
    expect(room.settings.stageCap).toBe(2);

    const muted = await api('POST', '/api/rooms/routes-2/stage/mute', { userIds: ['sp'], sources: ['audio'] });
    expect(((await muted.json()) as { results: Record<string, { ok: boolean }> }).results.sp!.ok).toBe(true);
    expect(room.stage.isHeld('sp', 'audio')).toBe(true);
    expect((await api('POST', '/api/rooms/routes-2/stage/mute', { userIds: ['sp'], sources: ['mic'] })).status).toBe(
      400,
    );

    // ban ahead: someone not in the room is refused at connection
    const ahead = await api('POST', '/api/rooms/routes-2/bans/later');
    expect(await ahead.json()).toEqual({ userId: 'later', banned: true, removed: false });
    await expect(
      connectRaw(server.url, { token: await server.token('later', 'viewer', 'routes-2') }),
    ).rejects.toMatchObject({ code: 'BANNED' });
    // a member: removed with the ban
    const bye = sp.next('goodbye');
    const banned = await api('POST', '/api/rooms/routes-2/bans/sp');
    expect(await banned.json()).toEqual({ userId: 'sp', banned: true, removed: true });
    expect(await bye).toEqual({ reason: 'removed-from-room' });
    expect(await (await api('GET', '/api/rooms/routes-2/bans')).json()).toEqual({ bans: ['later', 'sp'] });
    expect((await api('DELETE', '/api/rooms/routes-2/bans/sp')).status).toBe(204);
    expect((await api('DELETE', '/api/rooms/routes-2/bans/sp')).status).toBe(409);
    const back = await client('routes-2', 'sp', 'speaker');
    expect(back.socket.connected).toBe(true);
    const removed = await api('POST', '/api/rooms/routes-2/stage/remove', { userIds: ['sp'] });
    expect(((await removed.json()) as { results: Record<string, { ok: boolean }> }).results.sp!.ok).toBe(true);
    await until(() => !back.socket.connected);
    expect(room.stage.isBanned('sp')).toBe(false);
  });
});

describe('AuditTrail bounds', () => {
  it('keeps the last N records per room, pages stay ordered, a closed room is forgotten after the retention', async () => {
    const { AuditTrail } = await import('../../server/audit/AuditTrail.js');
    const trail = new AuditTrail(3, Date.now, 50);
    for (let i = 0; i < 5; i++) trail.record('r', { actor: 'a', action: 'stage.mode', to: String(i) });
    expect(trail.list('r').records.map((r) => r.id)).toEqual([3, 4, 5]);
    expect(trail.list('r', 3, 1)).toMatchObject({ records: [{ id: 4 }], next: 4 });
    trail.record('r', { actor: '@backend', action: 'room.closed' });
    trail.record('s', { actor: '@backend', action: 'room.closed' });
    trail.record('s', { actor: '@backend', action: 'room.created' }); // created again: kept
    await new Promise((r) => setTimeout(r, 120));
    expect(trail.has('r')).toBe(false);
    expect(trail.has('s')).toBe(true);
  });
});
