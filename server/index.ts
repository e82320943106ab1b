/**
 * Stagegate server, as a library. `createStagegate()` either runs its own HTTP + socket.io
 * server (what `npm start` does) or attaches to an app's existing HTTP server, socket.io
 * instance and mediasoup workers.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server as IoServer } from 'socket.io';
import type { types as ms } from 'mediasoup';
import { LIMITS, type RequestMethod } from '../shared/protocol.js';
import { TokenService } from './auth/tokens.js';
import { loadConfig, type Config, type ConfigInput } from './config.js';
import { createApi, sendError, sendJson } from './http/api.js';
import { createDemoRoutes } from './http/demo.js';
import { createMetrics } from './http/metrics.js';
import { guardRequest, originAllowed } from './http/guard.js';
import { createStatic } from './http/static.js';
import { createLogger, type Logger } from './logger.js';
import { WorkerPool } from './media/WorkerPool.js';
import { RoomRegistry } from './room/RoomRegistry.js';
import { Outbox } from './signaling/outbox.js';
import { attachSignaling } from './signaling/signaling.js';
import { Cluster } from './cluster/Cluster.js';
import { AuditTrail } from './audit/AuditTrail.js';
import { WebhookSender } from './audit/webhooks.js';

export { StagegateError } from '../shared/errors.js';
export type { Config, ConfigInput } from './config.js';
export type { Room } from './room/Room.js';
export type { RoomRegistry } from './room/RoomRegistry.js';
export type { TokenService, TokenClaims } from './auth/tokens.js';
export { verifyWebhook, signWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER } from './audit/webhooks.js';
export type { AuditRecord, AuditAction, AuditTrail } from './audit/AuditTrail.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * The Stagegate package's folder: the nearest one above this file with a package.json (the
 * repository for server/index.ts, the installed package for the built dist/server/index.js).
 */
function packageRoot(): string {
  for (let dir = HERE; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return path.resolve(HERE, '..');
}
export const DEFAULT_WEB_ROOT = path.join(packageRoot(), 'client/dist');

export interface StagegateOptions {
  /** Settings; anything left out comes from STAGEGATE_* environment variables, then defaults. */
  config?: ConfigInput;
  /** Read STAGEGATE_* variables (default true; tests pass false). */
  useEnv?: boolean;
  logger?: Logger;
  /** Attach to this HTTP server instead of creating one (you call listen). */
  httpServer?: http.Server;
  /** Attach to this socket.io server instead of creating one. */
  io?: IoServer;
  /** Use these mediasoup workers instead of spawning one per core. */
  workers?: ms.Worker[];
  /**
   * Serve the HTTP API, demo routes and pages. Default: true when Stagegate creates the HTTP
   * server, false when you pass one (then mount `stagegate.httpHandler` yourself).
   */
  serveHttp?: boolean;
  /** Where the built demo pages are (default client/dist). */
  webRoot?: string;
}

export interface Stagegate {
  readonly config: Config;
  readonly log: Logger;
  readonly httpServer: http.Server;
  readonly io: IoServer;
  readonly rooms: RoomRegistry;
  readonly tokens: TokenService;
  readonly pool: WorkerPool;
  /** Cluster mode (`redisUrl` set): this node's part of the cluster. */
  readonly cluster: Cluster | undefined;
  /** Every room's audit records (also POSTed to the configured webhooks). */
  readonly audit: AuditTrail;
  /** The API secret (generated when not configured). */
  readonly apiSecret: string;
  /** Handles /api/*, /healthz, /demo/* and the pages; answers false for anything else. */
  httpHandler(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean>;
  /** Starts listening (only when Stagegate created the HTTP server). */
  listen(): Promise<{ url: string }>;
  /** Tells clients, closes rooms, workers and (if owned) the servers. Idempotent. */
  close(): Promise<void>;
}

export async function createStagegate(options: StagegateOptions = {}): Promise<Stagegate> {
  const config = loadConfig(options.useEnv === false ? {} : process.env, options.config);
  const log = options.logger ?? createLogger(config.logLevel);
  const tokenSecret = config.tokenSecret ?? randomBytes(32).toString('base64url');
  const apiSecret = config.apiSecret ?? randomBytes(24).toString('base64url');
  const tokens = new TokenService(tokenSecret);
  if (config.redisUrl && (!config.tokenSecret || !config.apiSecret)) {
    throw new Error(
      'invalid configuration: cluster mode (STAGEGATE_REDIS_URL) needs STAGEGATE_TOKEN_SECRET and STAGEGATE_API_SECRET, the same on every node',
    );
  }
  // Browser origins allowed besides the server's own: configured, plus (cluster mode) every node's
  // public URL, so a page served by one node may reach another (updated in place).
  const origins: string[] = [...config.allowedOrigins];
  const cluster = config.redisUrl
    ? await Cluster.start({
        redisUrl: config.redisUrl,
        nodeId: config.nodeId,
        publicUrl: config.publicUrl,
        rtcAddress: config.rtcAnnouncedAddress ?? config.rtcListenIp,
        leaseMs: config.clusterLeaseMs,
        log,
        // kept after a node dies: its pages are still open and their clients move to another node
        onPeerOrigins: (peers) => {
          for (const o of peers) if (!origins.includes(o) && origins.length < 1000) origins.push(o);
        },
      })
    : undefined;

  const pool = options.workers
    ? WorkerPool.fromWorkers(options.workers, log, (dead) => void rooms.onWorkerDied(dead))
    : await WorkerPool.create({
        numWorkers: config.numWorkers,
        rtcMinPort: config.rtcMinPort,
        rtcMaxPort: config.rtcMaxPort,
        logLevel: config.workerLogLevel,
        logger: log,
        // the registry below exists by the time a worker can die
        onWorkerDied: (dead) => void rooms.onWorkerDied(dead),
      });

  const ownsHttp = !options.httpServer;
  const httpServer = options.httpServer ?? http.createServer();
  const ownsIo = !options.io;
  const io =
    options.io ??
    new IoServer(httpServer, {
      maxHttpBufferSize: LIMITS.maxMessageBytes,
      serveClient: false,
      // never an echo of any Origin: configured ones only (same-origin needs no CORS)
      cors: { origin: (origin, callback) => callback(null, origin !== undefined && origins.includes(origin)) },
      allowRequest: (req, callback) => callback(null, originAllowed(req.headers, origins)),
    });
  // Also when the app brought its own socket.io server: Stagegate's namespace checks the Origin.
  io.use((socket, next) => {
    if (originAllowed(socket.handshake.headers, origins)) return next();
    next(
      Object.assign(new Error('origin not allowed'), { data: { code: 'FORBIDDEN', message: 'origin not allowed' } }),
    );
  });

  const outbox = new Outbox(io);
  const audit = new AuditTrail();
  const webhooks =
    config.webhookUrls.length > 0 && config.webhookSecret
      ? new WebhookSender({ urls: config.webhookUrls, secret: config.webhookSecret, log })
      : undefined;
  if (webhooks) audit.onRecord((record) => webhooks.send(record));
  const rooms = new RoomRegistry({
    audit,
    pool,
    channelFor: (roomId) => ({
      toAll: (name, data, exceptUserId) => {
        outbox.broadcast(roomId, name, data, exceptUserId);
        cluster?.changed(roomId);
      },
      toGroup: (group, name, data, exceptUserId) => {
        outbox.broadcastTo(roomId, group, name, data, exceptUserId);
        cluster?.changed(roomId);
      },
      afterSent: (fn) => outbox.ack(fn),
    }),
    rtc: { listenIp: config.rtcListenIp, announcedAddress: config.rtcAnnouncedAddress },
    log,
    autoCreate: config.demo,
    reconnectGraceMs: config.reconnectGraceMs,
    maxConsumersPerRouter: config.maxConsumersPerRouter,
    cluster: cluster?.registryHooks,
    emptyRoomCloseMs: config.emptyRoomCloseSeconds * 1000,
  });
  const signalingDeps = {
    io,
    rooms,
    tokens,
    log,
    outbox,
    limits: { requestsPerSecond: config.requestsPerSecond, stageActionsPerSecond: config.stageActionsPerSecond },
    onRequest: (method: RequestMethod, outcome: string) => metrics.countRequest(method, outcome),
  };
  attachSignaling({ ...signalingDeps, router: cluster });
  const metrics = createMetrics(rooms, pool, () => cluster?.hostedMedia() ?? []);

  const api = createApi({ rooms, tokens, apiSecret, log, audit });
  const demo = config.demo
    ? createDemoRoutes({ rooms, tokens, log, audit, roomsPerMinute: config.demoRoomsPerMinute })
    : undefined;
  const pages = createStatic(options.webRoot ?? DEFAULT_WEB_ROOT, origins);
  cluster?.bind({ ...signalingDeps, apiSecret, httpHandler: (req, res) => httpHandler(req, res) });
  const httpHandler = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      const workers = pool.workers.filter((w) => !w.closed && !w.died).length;
      const ok = workers > 0 && (cluster?.healthy ?? true);
      sendJson(res, ok ? 200 : 503, {
        status: ok ? 'ok' : 'degraded',
        workers,
        rooms: rooms.list().length,
        ...(cluster && { node: cluster.nodeId, redis: cluster.healthy ? 'up' : 'down' }),
      });
      return true;
    }
    if (url === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return true;
    }
    if (url?.startsWith('/api/') || url?.startsWith('/demo/')) {
      try {
        if (guardRequest(req, res, origins)) return true;
      } catch (err) {
        sendError(res, err, log);
        return true;
      }
    }
    // relayed to the room's node after the origin, body and content-type checks here
    if (cluster && (await cluster.handleHttp(req, res))) return true;
    if (await api(req, res)) return true;
    if (demo && (await demo(req, res))) return true;
    return pages(req, res);
  };
  if (options.serveHttp ?? ownsHttp) {
    httpServer.on('request', (req, res) => {
      // socket.io answers its own path on the same server.
      if (req.url?.startsWith('/socket.io/')) return;
      httpHandler(req, res).then(
        (handled) => {
          if (!handled) sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'not found' } });
        },
        (err: unknown) => {
          log.error({ err }, 'HTTP request failed');
          if (!res.headersSent) sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
        },
      );
    });
  }

  let closing: Promise<void> | undefined;
  return {
    config,
    log,
    httpServer,
    io,
    rooms,
    tokens,
    pool,
    cluster,
    audit,
    apiSecret,
    httpHandler,
    async listen() {
      if (!ownsHttp) throw new Error('listen() is for the HTTP server Stagegate created; call listen on yours');
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(config.port, config.host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const { port } = httpServer.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      if (cluster) cluster.publicUrl ??= `http://${host}:${port}`;
      const url = `http://${host}:${port}`;
      if (cluster && !cluster.publicUrl) cluster.publicUrl = url; // the nodes' pages reach each other
      return { url };
    },
    close() {
      closing ??= (async () => {
        outbox.flush();
        // cluster mode: the rooms go on on other nodes; their participants reconnect there
        await cluster?.handOver();
        rooms.closeAll('server-shutdown');
        // sockets that never joined a room are told too
        for (const socket of io.of('/').sockets.values()) {
          socket.emit('goodbye', { reason: 'server-shutdown' });
          socket.disconnect(true);
        }
        if (ownsIo) await new Promise<void>((resolve) => void io.close(() => resolve()));
        else io.disconnectSockets(true);
        if (!options.workers) pool.close();
        await cluster?.close();
        // records of the closing rooms still go out: a short grace, then stop retrying
        if (webhooks) setTimeout(() => webhooks.close(), 2000).unref();
        if (ownsHttp && httpServer.listening) {
          httpServer.closeAllConnections();
          await new Promise<void>((resolve) => httpServer.close(() => resolve()));
        }
        log.info('stagegate closed');
      })();
      return closing;
    },
  };
}
