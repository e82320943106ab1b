/**
 * The Redis side of cluster mode: connections, key names and the lease scripts.
 *
 * Three connections per node: `pub` (socket.io adapter broadcasts and this node's RPC messages, on
 * one connection so that a room's broadcasts reach the other nodes before the ack that follows
 * them), `sub` (the adapter's subscriptions and this node's RPC channel, for the same reason), and
 * `cmd` (keys: leases, room state, node load). `pub` and `sub` queue commands while Redis is away
 * and never give up (a late broadcast beats a lost one, and a rejected publish inside the adapter
 * would be an unhandled rejection); `cmd` fails at once, so that a lease or a state write is never
 * applied late, and the caller reports degraded service.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export const keys = {
  nodes: 'sg:nodes',
  node: (nodeId: string) => `sg:node:${nodeId}`,
  rooms: 'sg:rooms',
  owner: (roomId: string) => `sg:room:${roomId}:owner`,
  state: (roomId: string) => `sg:room:${roomId}:state`,
  rpc: (nodeId: string) => `sg:rpc:${nodeId}`,
};

/** Renews the lease (1), takes it again when Redis lost it (2, e.g. restarted empty), or 0: someone else holds it. */
const RENEW = `
local owner = redis.call('get', KEYS[1])
if owner == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if owner then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2`;
/** Compare-and-delete: only the holder releases its lease. */
const RELEASE = `
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;
/** Writes the room's state only while holding its lease (a node that lost it cannot overwrite). */
const WRITE_STATE = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[2])
return 1`;

export interface ClusterRedis extends Redis {
  renewLease(ownerKey: string, nodeId: string, ms: number): Promise<number>;
  releaseLease(ownerKey: string, nodeId: string): Promise<number>;
  writeState(ownerKey: string, stateKey: string, nodeId: string, json: string): Promise<number>;
}

export interface Connections {
  pub: Redis;
  sub: Redis;
  cmd: ClusterRedis;
  /** True while every connection is ready. */
  readonly up: boolean;
  close(): Promise<void>;
}

export async function connectRedis(url: string, log: Logger): Promise<Connections> {
  const retryStrategy = (times: number) => Math.min(100 * times, 1000);
  const queued = { maxRetriesPerRequest: null, retryStrategy, lazyConnect: true };
  const pub = new Redis(url, { ...queued, connectionName: 'stagegate-pub' });
  const sub = new Redis(url, { ...queued, connectionName: 'stagegate-sub' });
  const cmd = new Redis(url, {
    lazyConnect: true,
    retryStrategy,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectionName: 'stagegate-cmd',
  }) as ClusterRedis;
  cmd.defineCommand('renewLease', { numberOfKeys: 1, lua: RENEW });
  cmd.defineCommand('releaseLease', { numberOfKeys: 1, lua: RELEASE });
  cmd.defineCommand('writeState', { numberOfKeys: 2, lua: WRITE_STATE });
  let lastError = 0;
  for (const [name, client] of Object.entries({ pub, sub, cmd })) {
    client.on('error', (err: Error) => {
      // ioredis retries by itself; one line per second is enough to see it
      if (Date.now() - lastError < 1000) return;
      lastError = Date.now();
      log.warn({ err: err.message, connection: name }, 'Redis connection error (retrying)');
    });
    client.on('ready', () => log.info({ connection: name }, 'Redis connection ready'));
  }
  await Promise.all([pub.connect(), sub.connect(), cmd.connect()]);
  return {
    pub,
    sub,
    cmd,
    get up() {
      return pub.status === 'ready' && sub.status === 'ready' && cmd.status === 'ready';
    },
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit(), cmd.quit()]);
    },
  };
}
