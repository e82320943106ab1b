/**
 * Configuration from the environment, validated once at start. Every value has a default, so
 * `npm start` runs with nothing set. See the README's configuration table.
 */
import os from 'node:os';
import { z } from 'zod';

const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);

/** A list of `item`s, given as an array or (from the environment) a comma-separated string. */
const commaList = <T extends z.ZodType<string, string>>(item: T) =>
  z
    .union([
      z.array(z.string()),
      z.string().transform((v) =>
        v
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(item))
    .default([]);
export const configSchema = z.object({
  /** HTTP + socket.io listen address. */
  host: z.string().default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(3000),
  /** The IP mediasoup's WebRTC transports listen on, and the one announced to clients. */
  rtcListenIp: z.string().default('127.0.0.1'),
  rtcAnnouncedAddress: z.string().optional(),
  rtcMinPort: z.coerce.number().int().min(1024).max(65535).default(40000),
  rtcMaxPort: z.coerce.number().int().min(1024).max(65535).default(49999),
  /** mediasoup workers; default one per core. */
  numWorkers: z.coerce.number().int().min(1).max(64).default(os.availableParallelism()),
  /**
   * Consumers a room's router carries before its next viewers' receive transports go to a router
   * on another worker (pipes bring the stage there). 0 spreads from the first viewer.
   */
  maxConsumersPerRouter: z.coerce.number().int().min(0).max(1_000_000).default(200),
  /** HS256 secret for participant tokens. Default: random per process (tokens die with it). */
  tokenSecret: z.string().min(32).optional(),
  /** Secret for the backend HTTP API (Authorization: Bearer ...). Default: random per process. */
  apiSecret: z.string().min(16).optional(),
  /** How long a dropped participant keeps their stage status and queue position. */
  reconnectGraceMs: z.coerce.number().int().min(0).max(600_000).default(15_000),
  /**
   * A room nobody is in (no participant, none within a reconnect grace period) closes after this
   * long; 0 keeps empty rooms open.
   */
  emptyRoomCloseSeconds: z.coerce
    .number()
    .min(0)
    .max(7 * 24 * 3600)
    .default(300),
  /** Demo mode: rooms one client address may create per minute (`POST /demo/rooms`). */
  demoRoomsPerMinute: z.coerce.number().int().min(1).max(100_000).default(30),
  /** Per connection: any request (burst = 2 s worth). */
  requestsPerSecond: z.coerce.number().min(1).max(100_000).default(100),
  /** Per connection: stage actions (request, cancel, grant, deny, join, leave, kick, mode), burst = 4 s worth. */
  stageActionsPerSecond: z.coerce.number().min(0.1).max(10_000).default(5),
  /**
   * Browser origins (scheme://host[:port]) other than the server's own that may open sockets and
   * call the HTTP routes; the server's own origin is always allowed. Env: comma-separated.
   */
  allowedOrigins: commaList(
    z.string().refine((o) => URL.canParse(o) && new URL(o).origin === o, {
      message: 'each origin must be scheme://host[:port], without path or trailing slash',
    }),
  ),
  /**
   * Webhook receivers: every audit record is POSTed to each (signed with `webhookSecret`).
   * Env: comma-separated. Needs `webhookSecret`.
   */
  webhookUrls: commaList(
    z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), {
      message: 'each webhook URL must be http(s)://...',
    }),
  ),
  /** The HMAC-SHA256 key webhooks are signed with (at least 16 characters). */
  webhookSecret: z.string().min(16).optional(),
  /** Demo mode: the landing page mints tokens itself. On by default for local webinars. */
  demo: bool.default(true),
  /** Cluster mode (server/cluster/): the Redis every node of the cluster shares. Unset: one process, state in memory. */
  redisUrl: z.string().url().optional(),
  /** This node's id in the cluster (default: host name and pid). */
  nodeId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)')
    .optional(),
  /** The URL other nodes and load balancers reach this node's HTTP API at (default: the listen address). */
  publicUrl: z.string().url().optional(),
  /** How long a room's ownership lease lasts without renewal (renewed every third of it). */
  clusterLeaseMs: z.coerce.number().int().min(500).max(60_000).default(3000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  workerLogLevel: z.enum(['debug', 'warn', 'error', 'none']).default('warn'),
});
export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Environment variable for each key: STAGEGATE_ + upper snake case (e.g. STAGEGATE_RTC_MIN_PORT). */
export function envName(key: string): string {
  return `STAGEGATE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigInput = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[envName(key)];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  // PORT is the usual convention of hosting platforms.
  if (raw.port === undefined && env.PORT) raw.port = env.PORT;
  const result = configSchema.safeParse({ ...raw, ...overrides });
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${envName(String(i.path[0]))}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  if (result.data.rtcMinPort > result.data.rtcMaxPort) {
    throw new Error('invalid configuration: STAGEGATE_RTC_MIN_PORT is above STAGEGATE_RTC_MAX_PORT');
  }
  if (result.data.webhookUrls.length > 0 && !result.data.webhookSecret) {
    throw new Error('invalid configuration: STAGEGATE_WEBHOOK_URLS needs STAGEGATE_WEBHOOK_SECRET');
  }
  return result.data;
}
