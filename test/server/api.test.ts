/**
 * The backend HTTP API against a real server (port 0) and real sockets: rooms, tokens, listing
 * with stage status and producers, moderation, and its refusals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRaw, DTLS, joinRaw, rtpParameters, startServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());

async function api(method: string, path: string, body?: unknown, secret: string | null = server.sg.apiSecret) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(secret === null ? {} : { authorization: `Bearer ${secret}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

describe('HTTP API', () => {
  it('refuses calls without the API secret', async () => {
    expect(await api('GET', '/api/rooms', undefined, null)).toMatchObject({
      status: 401,
      json: { error: { code: 'UNAUTHORIZED' } },
    });
    expect((await api('GET', '/api/rooms', undefined, 'wrong-secret-wrong')).status).toBe(401);
  });

  it('creates a room, mints tokens that connect, lists participants with status and producers, moderates', async () => {
    const created = await api('POST', '/api/rooms', { id: 'webinar-1', mode: 'REQUEST' });
    expect(created).toMatchObject({ status: 201, json: { id: 'webinar-1', mode: 'REQUEST', participants: 0 } });
    expect((await api('POST', '/api/rooms', { id: 'webinar-1' })).json.error.code).toBe('INVALID_STATE');

    const hostTok = await api('POST', '/api/rooms/webinar-1/tokens', { userId: 'h', name: 'Host', preset: 'host' });
    const viewerTok = await api('POST', '/api/rooms/webinar-1/tokens', { name: 'Vi', preset: 'viewer' });
    expect(hostTok.status).toBe(201);
    expect(viewerTok.json.userId).toMatch(/^[0-9a-f-]{36}$/); // the server chose it
    const viewerId: string = viewerTok.json.userId;

    const host = await connectRaw(server.url, { token: hostTok.json.token });
    const viewer = await connectRaw(server.url, { token: viewerTok.json.token, roomId: 'webinar-1' });
    await joinRaw(host);
    await joinRaw(viewer);
    await viewer.request('stage.requestAccess');

    let details = await api('GET', '/api/rooms/webinar-1');
    expect(details.json.requests).toEqual([{ userId: viewerId, name: 'Vi', requestedAt: expect.any(Number) }]);

    // grant via the API; the viewer is told, then joins and produces
    const accepted = viewer.next('stageAccessRequestAccepted');
    const grant = await api('POST', '/api/rooms/webinar-1/stage/grant', { userIds: [viewerId, 'ghost'] });
    expect(grant.json.results).toEqual({
      [viewerId]: { ok: true, status: 'ACCEPTED_TO_JOIN_STAGE' },
      ghost: { ok: false, code: 'NOT_FOUND', message: expect.any(String) },
    });
    expect(await accepted).toMatchObject({ by: '@backend', invited: false });
    await viewer.request('stage.join');
    const t = await viewer.request('createTransport', { direction: 'send' });
    await viewer.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
    const { id: producerId } = await viewer.request('produce', {
      transportId: t.id,
      kind: 'audio',
      rtpParameters: rtpParameters('audio'),
    });

    details = await api('GET', '/api/rooms/webinar-1');
    const listed = details.json.participants.find((p: { id: string }) => p.id === viewerId);
    expect(listed).toMatchObject({
      name: 'Vi',
      presetName: 'viewer',
      stageStatus: 'ON_STAGE',
      producers: [{ id: producerId, kind: 'audio', source: 'audio', paused: false }],
    });
    expect((await api('GET', '/api/rooms')).json.rooms).toContainEqual(
      expect.objectContaining({ id: 'webinar-1', participants: 2, onStage: 1 }),
    );

    // mode and kick via the API
    expect((await api('PUT', '/api/rooms/webinar-1/stage/mode', { mode: 'INVITE' })).json).toEqual({ mode: 'INVITE' });
    const removed = viewer.next('removedFromStage');
    const kick = await api('POST', '/api/rooms/webinar-1/stage/kick', { userIds: [viewerId] });
    expect(kick.json.results[viewerId]).toEqual({ ok: true, status: 'OFF_STAGE' });
    expect(await removed).toEqual({ by: '@backend' });
    details = await api('GET', '/api/rooms/webinar-1');
    expect(details.json.participants.find((p: { id: string }) => p.id === viewerId).producers).toEqual([]);

    // closing the room tells everyone and frees the router
    const bye = viewer.next('goodbye');
    expect((await api('DELETE', '/api/rooms/webinar-1')).status).toBe(204);
    expect(await bye).toEqual({ reason: 'room-closed' });
    expect((await api('GET', '/api/rooms/webinar-1')).status).toBe(404);
    host.close();
    viewer.close();
  });

  it('answers bad input with a typed error and changes nothing', async () => {
    await api('POST', '/api/rooms', { id: 'webinar-2' });
    const cases: [string, string, unknown, number, string][] = [
      ['POST', '/api/rooms', '{not json', 400, 'INVALID_REQUEST'],
      ['POST', '/api/rooms', { id: 'bad id with spaces' }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/rooms', { mode: 'PARTY' }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/rooms', { id: 'x', extra: 1 }, 400, 'INVALID_REQUEST'],
      ['POST', '/api/rooms/webinar-2/tokens', { name: 'A', preset: 'admin' }, 400, 'INVALID_REQUEST'],
      [
        'POST',
        '/api/rooms/webinar-2/tokens',
        { name: 'A', preset: 'host', userId: '@backend' },
        400,
        'INVALID_REQUEST',
      ],
      ['POST', '/api/rooms/nope/tokens', { name: 'A', preset: 'host' }, 404, 'NOT_FOUND'],
      ['POST', '/api/rooms/webinar-2/stage/kick', { userIds: 'all' }, 400, 'INVALID_REQUEST'],
      ['PUT', '/api/rooms/webinar-2/stage/mode', { mode: 'open' }, 400, 'INVALID_REQUEST'],
      ['GET', '/api/rooms/webinar-2/stage/mode', undefined, 400, 'INVALID_REQUEST'],
      ['GET', '/api/nothing', undefined, 404, 'NOT_FOUND'],
      ['POST', '/api/rooms', 'x', 400, 'INVALID_REQUEST'], // not JSON
      ['POST', '/api/rooms', 'x'.repeat(70_000), 413, 'INVALID_REQUEST'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await api(method, path, body);
      expect({ path, status: r.status, code: r.json?.error?.code }).toEqual({ path, status, code });
    }
    const rooms = (await api('GET', '/api/rooms')).json.rooms.map((r: { id: string }) => r.id);
    expect(rooms).toEqual(['webinar-2']);
    expect((await api('GET', '/api/rooms/webinar-2')).json).toMatchObject({ mode: 'REQUEST', participants: [] });
  });

  it('serves /healthz', async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', workers: 1 });
  });
});
