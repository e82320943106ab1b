/**
 * A real Stagegate server on 127.0.0.1 port 0 with a real mediasoup worker, and raw
 * socket.io-client connections that speak the wire protocol directly (no thin client), so
 * tests can send what a hostile client would.
 */
import { io, type Socket } from 'socket.io-client';
import type { TokenClaims } from '../../server/auth/tokens.js';
import { createStagegate, type Stagegate, type StagegateOptions } from '../../server/index.js';
import type {
  Ack,
  BatchNotification,
  NotificationName,
  Notifications,
  RequestMethod,
  Responses,
} from '../../shared/protocol.js';
import type { ConfigInput } from '../../server/config.js';

export interface TestServer {
  sg: Stagegate;
  url: string;
  token(userId: string, preset: TokenClaims['preset'], roomId?: string, name?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startServer(
  opts: { demo?: boolean; config?: ConfigInput; extra?: StagegateOptions } = {},
): Promise<TestServer> {
  const sg = await createStagegate({
    useEnv: false,
    config: { port: 0, numWorkers: 1, logLevel: 'silent', demo: opts.demo ?? false, ...opts.config },
    ...opts.extra,
  });
  const { url } = await sg.listen();
  return {
    sg,
    url,
    token: (userId, preset, roomId = 'room-1', name = userId) => sg.tokens.mint({ userId, name, roomId, preset }),
    close: () => sg.close(),
  };
}

export interface RawClient {
  socket: Socket;
  /** Sends a request and resolves to its ack (success or typed error), never throws on refusal. */
  ack<M extends RequestMethod>(method: M, data?: unknown): Promise<Ack<Responses[M]>>;
  /** Like ack() but throws when refused. */
  request<M extends RequestMethod>(method: M, data?: unknown): Promise<Responses[M]>;
  /** Every notification received so far, in order. */
  received: { name: string; data: unknown }[];
  next<N extends NotificationName>(name: N, timeoutMs?: number): Promise<Notifications[N]>;
  /** Calls `listener` for every `name` notification (also those inside batches); returns an unsubscribe. */
  on<N extends NotificationName>(name: N, listener: (data: Notifications[N]) => void): () => void;
  close(): void;
}

/** Connects with `auth`; rejects with the server's `connect_error` data when refused. */
export function connectRaw(url: string, auth: Record<string, unknown>): Promise<RawClient> {
  const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  const received: { name: string; data: unknown }[] = [];
  const waiters: { name: string; resolve: (d: unknown) => void }[] = [];
  const self = typeof auth.token === 'string' ? subjectOf(auth.token) : undefined;
  const listeners = new Set<{ name: string; fn: (d: unknown) => void }>();
  const receive = (name: string, data: unknown) => {
    received.push({ name, data });
    for (const l of [...listeners]) if (l.name === name) l.fn(data);
    for (const w of waiters.filter((x) => x.name === name)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(data);
    }
  };
  socket.onAny((name: string, data: unknown) => {
    if (name !== 'batch') return receive(name, data);
    // coalesced room notifications: skip those not meant for us, as the client does
    for (const [item, itemData, except] of (data as BatchNotification).items)
      if (except !== self) receive(item, itemData);
  });
  const client: RawClient = {
    socket,
    received,
    ack: (method, data) =>
      socket.timeout(10_000).emitWithAck(method, data ?? {}) as Promise<Ack<Responses[typeof method]>>,
    async request(method, data) {
      const a = await client.ack(method, data);
      if (!a.ok) throw Object.assign(new Error(`${method}: ${a.error.code} ${a.error.message}`), a.error);
      return a.data;
    },
    next: (name, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${name} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          name,
          resolve: (d) => {
            clearTimeout(t);
            resolve(d as Notifications[typeof name]);
          },
        });
      }),
    on(name, listener) {
      const entry = { name, fn: listener as (d: unknown) => void };
      listeners.add(entry);
      return () => void listeners.delete(entry);
    },
    close: () => void socket.disconnect(),
  };
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(client));
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      socket.disconnect();
      reject(Object.assign(err, err.data ?? {}));
    });
  });
}

/** RTP capabilities a receiver can declare: the router's own codecs. */
export async function joinRaw(c: RawClient): Promise<Responses['joinRoom']> {
  const { rtpCapabilities } = await c.request('getRouterRtpCapabilities');
  return c.request('joinRoom', { rtpCapabilities });
}

/** RTP parameters a real sender would send for one Opus or VP8 stream. */
export function rtpParameters(kind: 'audio' | 'video', ssrc = 11111111) {
  return kind === 'audio'
    ? {
        mid: '0',
        codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: {} }],
        headerExtensions: [],
        encodings: [{ ssrc }],
        rtcp: { cname: 'test' },
      }
    : {
        mid: '1',
        codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, parameters: {}, rtcpFeedback: [] }],
        headerExtensions: [],
        encodings: [{ ssrc }],
        rtcp: { cname: 'test' },
      };
}

/** A DTLS fingerprint in the shape mediasoup accepts (the handshake never happens in these tests). */
export const DTLS = {
  role: 'client',
  fingerprints: [{ algorithm: 'sha-256', value: Array.from({ length: 32 }, () => 'AB').join(':') }],
};

/** Resolves when `check` passes, polling; rejects after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function subjectOf(token: string): string | undefined {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).sub;
  } catch {
    return undefined;
  }
}
