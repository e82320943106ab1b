/**
 * Signaling against a bare socket.io server that misbehaves on purpose: timeouts, malformed
 * acks, disconnects with requests in flight, and held notifications.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Signaling, StagegateError } from '../../client/index.js';

let httpServer: http.Server;
let io: Server;
let url: string;

beforeAll(async () => {
  httpServer = http.createServer();
  io = new Server(httpServer);
  io.use((socket, next) => {
    const { token } = socket.handshake.auth as { token?: string };
    if (token === 'ok') return next();
    next(Object.assign(new Error('nope'), { data: { code: 'UNAUTHORIZED', message: 'bad token' } }));
  });
  io.on('connection', (socket) => {
    socket.on('getRouterRtpCapabilities', () => undefined); // never answers
    socket.on('stage.join', (_data: unknown, ack: (a: unknown) => void) => ack({ hello: 'world' }));
    socket.on('stage.leave', (_data: unknown, ack: (a: unknown) => void) =>
      ack({ ok: false, error: { code: 'INVALID_STATE', message: 'nothing to leave' } }),
    );
    socket.on('stage.requestAccess', (data: unknown, ack: (a: unknown) => void) => {
      socket.emit('stageModeUpdate', { mode: 'OPEN', by: 'x' });
      socket.emit('stageStatusUpdate', { old: 'OFF_STAGE', new: 'ACCEPTED_TO_JOIN_STAGE' });
      ack({ ok: true, data: { status: 'ACCEPTED_TO_JOIN_STAGE', echo: data } });
    });
    socket.on('stage.cancelRequestAccess', () => socket.disconnect(true));
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => void io.close(() => r()));
});

describe('Signaling', () => {
  test('a refused connection rejects with the code the server attached', async () => {
    const err = await Signaling.connect({ url, token: 'bad' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StagegateError);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED', message: 'bad token' });
  });

  test('acks: data, refusal, malformed, timeout; the payload of an empty request is {}', async () => {
    const s = await Signaling.connect({ url, token: 'ok', requestTimeoutMs: 200 });
    try {
      await expect(s.request('stage.requestAccess')).resolves.toEqual({ status: 'ACCEPTED_TO_JOIN_STAGE', echo: {} });
      await expect(s.request('stage.leave')).rejects.toMatchObject({
        code: 'INVALID_STATE',
        message: 'nothing to leave',
      });
      await expect(s.request('stage.join')).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(s.request('getRouterRtpCapabilities')).rejects.toMatchObject({
        code: 'TIMEOUT',
        message: expect.stringContaining('200 ms'),
      });
    } finally {
      s.close();
    }
  });

  test('held notifications are delivered in order on release, before later ones', async () => {
    const s = await Signaling.connect({ url, token: 'ok' });
    try {
      const seen: string[] = [];
      s.on('stageModeUpdate', (d) => seen.push(`mode:${d.mode}`));
      s.on('stageStatusUpdate', (d) => seen.push(`status:${d.new}`));
      s.hold();
      await s.request('stage.requestAccess');
      expect(seen).toEqual([]);
      s.release();
      expect(seen).toEqual(['mode:OPEN', 'status:ACCEPTED_TO_JOIN_STAGE']);
      await s.request('stage.requestAccess');
      expect(seen).toHaveLength(4);
    } finally {
      s.close();
    }
  });

  test('a disconnect rejects the requests in flight and is reported once', async () => {
    const s = await Signaling.connect({ url, token: 'ok' });
    const reasons: string[] = [];
    s.onDisconnect((r) => reasons.push(r));
    const err = await s.request('stage.cancelRequestAccess').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DISCONNECTED' });
    expect(reasons).toEqual(['io server disconnect']);
    expect(s.connected).toBe(false);
    await expect(s.request('stage.join')).rejects.toMatchObject({ code: 'DISCONNECTED' });
    s.close();
  });
});
