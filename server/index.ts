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
import { LIMITS } from '../shared/protocol.js';
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

export { StagegateError } from '../shared/errors.js';
export type { Config, ConfigInput } from './config.js';
export type { Room } from './room/Room.js';
export type { RoomRegistry } from './room/RoomRegistry.js';
export type { TokenService, TokenClaims } from './auth/tokens.js';

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
      cors: { origin: config.allowedOrigins.length > 0 ? config.allowedOrigins : false },
      allowRequest: (req, callback) => callback(null, originAllowed(req.headers, config.allowedOrigins)),
    });
  // Also when the app brought its own socket.io server: Stagegate's namespace checks the Origin.
  io.use((socket, next) => {
    if (originAllowed(socket.handshake.headers, config.allowedOrigins)) return next();
    next(
      Object.assign(new Error('origin not allowed'), { data: { code: 'FORBIDDEN', message: 'origin not allowed' } }),
    );
  });

  const outbox = new Outbox(io);
  const rooms = new RoomRegistry({
    pool,
    channelFor: (roomId) => ({
      toAll: (name, data, exceptUserId) => outbox.broadcast(roomId, name, data, exceptUserId),
      toGroup: (group, name, data, exceptUserId) => outbox.broadcastTo(roomId, group, name, data, exceptUserId),
      afterSent: (fn) => outbox.ack(fn),
    }),
    rtc: { listenIp: config.rtcListenIp, announcedAddress: config.rtcAnnouncedAddress },
    log,
    autoCreate: config.demo,
    reconnectGraceMs: config.reconnectGraceMs,
    maxConsumersPerRouter: config.maxConsumersPerRouter,
    emptyRoomCloseMs: config.emptyRoomCloseSeconds * 1000,
  });
  attachSignaling({
    io,
    rooms,
    tokens,
    log,
    outbox,
    limits: { requestsPerSecond: config.requestsPerSecond, stageActionsPerSecond: config.stageActionsPerSecond },
    onRequest: (method, outcome) => metrics.countRequest(method, outcome),
  });
  const metrics = createMetrics(rooms, pool);

  const api = createApi({ rooms, tokens, apiSecret, log });
  const demo = config.demo
    ? createDemoRoutes({ rooms, tokens, log, roomsPerMinute: config.demoRoomsPerMinute })
    : undefined;
  const pages = createStatic(options.webRoot ?? DEFAULT_WEB_ROOT);
  const httpHandler = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> => {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      const workers = pool.workers.filter((w) => !w.closed && !w.died).length;
      sendJson(res, workers > 0 ? 200 : 503, {
        status: workers > 0 ? 'ok' : 'degraded',
        workers,
        rooms: rooms.list().length,
      });
      return true;
    }
    if (url === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return true;
    }
    if (url?.startsWith('/api/') || url?.startsWith('/demo/')) {
      try {
        if (guardRequest(req, res, config.allowedOrigins)) return true;
      } catch (err) {
        sendError(res, err, log);
        return true;
      }
    }
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
      return { url: `http://${host}:${port}` };
    },
    close() {
      closing ??= (async () => {
        outbox.flush();
        rooms.closeAll('server-shutdown');
        // sockets that never joined a room are told too
        for (const socket of io.of('/').sockets.values()) {
          socket.emit('goodbye', { reason: 'server-shutdown' });
          socket.disconnect(true);
        }
        if (ownsIo) await new Promise<void>((resolve) => void io.close(() => resolve()));
        else io.disconnectSockets(true);
        if (!options.workers) pool.close();
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
