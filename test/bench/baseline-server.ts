/**
 * The benchmarks' baseline: the same mediasoup worker settings and media path as Stagegate, with
 * no stage logic. A minimal produce/consume socket.io server that speaks the same request names
 * and ack shape (shared/protocol.ts) for transports, produce and consume, so the same client code
 * drives both servers:
 *
 * - identity: `auth.userId` (no token);
 * - `getRouterRtpCapabilities`, `joinRoom` (records the capabilities; answers the live producers,
 *   shaped like Stagegate's snapshot; no peer list, no broadcast), `createTransport`,
 *   `connectTransport`, `produce`, `closeProducer`, `consume` (paused), `resumeConsumer` (resume +
 *   key frame request for video, as Stagegate does) with the same notifications `newProducer`,
 *   `producerClosed`, `consumerClosed`;
 * - `stage.kick {userIds}`: closes those peers' producers (the baseline of a kick: a server-side
 *   close requested by another socket, with no state machine);
 * - every other `stage.*` request: acked at once with no effect (the "no stage logic" case).
 *
 * No payload validation, no permissions: that is the point of a baseline.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { Server as IoServer, type Socket } from 'socket.io';
import { MEDIA_CODECS, SOCKET_BUFFER_BYTES } from '../../server/media/rtp.js';
import { LIMITS, requestSchemas, type ProducerInfo } from '../../shared/protocol.js';

const ROOM = 'baseline';
const METHODS = new Set(Object.keys(requestSchemas));

/** Same field names as Stagegate's Participant, so bench code can treat both alike. */
export interface BaselinePeer {
  readonly id: string;
  readonly socket: Socket;
  rtpCapabilities: ms.RtpCapabilities | undefined;
  readonly transports: Map<string, ms.Transport>;
  sendTransportId: string | undefined;
  recvTransportId: string | undefined;
  readonly producers: Map<string, { producer: ms.Producer; source: string }>;
  readonly consumers: Map<string, ms.Consumer>;
}

export interface BaselineServer {
  readonly url: string;
  readonly worker: ms.Worker;
  readonly router: ms.Router;
  readonly io: IoServer;
  readonly peers: Map<string, BaselinePeer>;
  close(): Promise<void>;
}

export interface BaselineOptions {
  /** Use this worker (not closed by close()); default: a new one with Stagegate's default settings. */
  worker?: ms.Worker;
  host?: string;
  port?: number;
  listenIp?: string;
}

type Ack = (a: unknown) => void;
type Handler = (peer: BaselinePeer, data: Record<string, unknown>) => unknown;

/** Stagegate's WorkerPool settings (server/media/WorkerPool.ts with the default config). */
export function createBenchWorker(): Promise<ms.Worker> {
  return mediasoup.createWorker({ logLevel: 'warn', rtcMinPort: 40000, rtcMaxPort: 49999 });
}

export async function createBaselineServer(opts: BaselineOptions = {}): Promise<BaselineServer> {
  const ownsWorker = !opts.worker;
  const worker = opts.worker ?? (await createBenchWorker());
  const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
  const httpServer = http.createServer();
  const io = new IoServer(httpServer, {
    maxHttpBufferSize: LIMITS.maxMessageBytes,
    serveClient: false,
    cors: { origin: true },
  });
  const peers = new Map<string, BaselinePeer>();
  const owners = new Map<string, BaselinePeer>();
  const listenIp = opts.listenIp ?? '127.0.0.1';

  const info = (peer: BaselinePeer, producer: ms.Producer, source: string): ProducerInfo => ({
    id: producer.id,
    userId: peer.id,
    kind: producer.kind,
    source: source as ProducerInfo['source'],
    paused: producer.paused,
  });
  const toOthers = (peer: BaselinePeer, name: string, data: unknown) =>
    io.to(ROOM).except(peer.socket.id).emit(name, data);
  const dropProducer = (peer: BaselinePeer, producer: ms.Producer, reason: string) => {
    if (!owners.delete(producer.id)) return;
    peer.producers.delete(producer.id);
    toOthers(peer, 'producerClosed', { producerId: producer.id, userId: peer.id, reason });
  };
  const transportOf = (peer: BaselinePeer, id: unknown) => {
    const t = peer.transports.get(String(id));
    if (!t) throw new Error(`no transport ${String(id)}`);
    return t;
  };

  const handlers: Record<string, Handler> = {
    getRouterRtpCapabilities: () => ({ rtpCapabilities: router.rtpCapabilities }),
    joinRoom(peer, { rtpCapabilities }) {
      peer.rtpCapabilities = rtpCapabilities as ms.RtpCapabilities;
      void peer.socket.join(ROOM);
      const participants = [...peers.values()]
        .filter((o) => o !== peer && o.producers.size > 0)
        .map((o) => ({ id: o.id, producers: [...o.producers.values()].map((s) => info(o, s.producer, s.source)) }));
      return { roomId: ROOM, self: { id: peer.id }, participants };
    },
    async createTransport(peer, { direction }) {
      const transport = await router.createWebRtcTransport({
        // same socket buffers as Stagegate's transports: the media path must be the same
        listenInfos: [
          { protocol: 'udp', ip: listenIp, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES },
          { protocol: 'tcp', ip: listenIp, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES },
        ],
        preferUdp: true,
        appData: { userId: peer.id, direction },
      });
      const previous = direction === 'send' ? peer.sendTransportId : peer.recvTransportId;
      if (previous) {
        peer.transports.get(previous)?.close();
        peer.transports.delete(previous);
      }
      peer.transports.set(transport.id, transport);
      if (direction === 'send') peer.sendTransportId = transport.id;
      else peer.recvTransportId = transport.id;
      return {
        id: transport.id,
        iceParameters: transport.iceParameters,
        iceCandidates: transport.iceCandidates,
        dtlsParameters: transport.dtlsParameters,
      };
    },
    async connectTransport(peer, { transportId, dtlsParameters }) {
      await transportOf(peer, transportId).connect({ dtlsParameters });
      return {};
    },
    async produce(peer, { transportId, kind, rtpParameters, source }) {
      const src = String(source ?? kind);
      const producer = await transportOf(peer, transportId).produce({
        kind: kind as ms.MediaKind,
        rtpParameters: rtpParameters as ms.RtpParameters,
        appData: { userId: peer.id, source: src },
      });
      peer.producers.set(producer.id, { producer, source: src });
      owners.set(producer.id, peer);
      producer.on('transportclose', () => dropProducer(peer, producer, 'transport-closed'));
      toOthers(peer, 'newProducer', { producer: info(peer, producer, src) });
      return { id: producer.id, source: src };
    },
    closeProducer(peer, { producerId }) {
      const staged = peer.producers.get(String(producerId));
      if (!staged) throw new Error(`no producer ${String(producerId)}`);
      staged.producer.close();
      dropProducer(peer, staged.producer, 'closed');
      return {};
    },
    async consume(peer, { producerId }) {
      const id = String(producerId);
      const owner = owners.get(id);
      const staged = owner?.producers.get(id);
      if (!owner || !staged) throw new Error(`no producer ${id}`);
      const transport = peer.recvTransportId ? peer.transports.get(peer.recvTransportId) : undefined;
      if (!transport) throw new Error('create a recv transport first');
      if (!peer.rtpCapabilities || !router.canConsume({ producerId: id, rtpCapabilities: peer.rtpCapabilities })) {
        throw new Error('cannot consume');
      }
      const consumer = await transport.consume({
        producerId: id,
        rtpCapabilities: peer.rtpCapabilities,
        paused: true,
        appData: { userId: peer.id },
      });
      peer.consumers.set(consumer.id, consumer);
      consumer.on('transportclose', () => peer.consumers.delete(consumer.id));
      consumer.on('producerclose', () => {
        peer.consumers.delete(consumer.id);
        peer.socket.emit('consumerClosed', { consumerId: consumer.id, producerId: id });
      });
      return {
        id: consumer.id,
        producerId: id,
        userId: owner.id,
        kind: consumer.kind,
        source: staged.source,
        rtpParameters: consumer.rtpParameters,
      };
    },
    async resumeConsumer(peer, { consumerId }) {
      const consumer = peer.consumers.get(String(consumerId));
      if (!consumer) throw new Error(`no consumer ${String(consumerId)}`);
      await consumer.resume();
      if (consumer.kind === 'video') await consumer.requestKeyFrame();
      return {};
    },
    'stage.kick'(_peer, { userIds }) {
      const results: Record<string, unknown> = {};
      for (const userId of (userIds as string[] | undefined) ?? []) {
        const target = peers.get(userId);
        if (!target) continue;
        for (const staged of [...target.producers.values()]) {
          staged.producer.close();
          dropProducer(target, staged.producer, 'kicked');
        }
        results[userId] = { ok: true, status: 'OFF_STAGE' };
      }
      return { results };
    },
  };

  io.use((socket, next) => {
    const userId = (socket.handshake.auth as { userId?: unknown }).userId;
    if (typeof userId !== 'string' || !userId) return next(new Error('auth.userId required'));
    next();
  });

  io.on('connection', (socket) => {
    const id = String((socket.handshake.auth as { userId: string }).userId);
    peers.get(id)?.socket.disconnect(true);
    const peer: BaselinePeer = {
      id,
      socket,
      rtpCapabilities: undefined,
      transports: new Map(),
      sendTransportId: undefined,
      recvTransportId: undefined,
      producers: new Map(),
      consumers: new Map(),
    };
    peers.set(id, peer);
    const run = (event: string, args: unknown[]) => {
      const ack = args.at(-1);
      if (typeof ack !== 'function') return;
      const handler = handlers[event];
      const data = (typeof args[0] === 'object' && args[0] !== null ? args[0] : {}) as Record<string, unknown>;
      Promise.resolve()
        .then(() => (handler ? handler(peer, data) : {}))
        .then(
          (result) => socket.connected && (ack as Ack)({ ok: true, data: result }),
          (err: unknown) =>
            socket.connected &&
            (ack as Ack)({ ok: false, error: { code: 'INTERNAL', message: String((err as Error)?.message ?? err) } }),
        );
    };
    // One listener per protocol method (as Stagegate registers them); stage.* without a handler are no-ops.
    for (const method of METHODS) socket.on(method, (...args: unknown[]) => run(method, args));
    socket.onAny((event: string, ...args: unknown[]) => {
      const ack = args.at(-1);
      if (!METHODS.has(event) && typeof ack === 'function') {
        (ack as Ack)({ ok: false, error: { code: 'INVALID_REQUEST', message: `unknown method ${event}` } });
      }
    });
    socket.on('disconnect', () => {
      if (peers.get(id) === peer) peers.delete(id);
      for (const staged of [...peer.producers.values()]) {
        staged.producer.close();
        dropProducer(peer, staged.producer, 'disconnected');
      }
      for (const t of peer.transports.values()) t.close();
      peer.transports.clear();
    });
  });

  await new Promise<void>((resolve) => httpServer.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    worker,
    router,
    io,
    peers,
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => void io.close(() => resolve()));
        router.close();
        if (ownsWorker) worker.close();
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      })();
      return closing;
    },
  };
}
