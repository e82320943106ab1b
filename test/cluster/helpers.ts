/**
 * A test cluster on loopback: its own redis-server (Debian's, from the setup) on a free port with
 * nothing persisted, and Stagegate nodes in child processes sharing it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigInput } from '../../server/config.js';
import { forkTs, type Child } from '../bench/child.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REDIS_SERVER = process.env.STAGEGATE_REDIS_SERVER ?? 'redis-server';
export const TOKEN_SECRET = 'cluster-test-token-secret-0123456789abcdef';
export const API_SECRET = 'cluster-test-api-secret-0123';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface TestRedis {
  url: string;
  port: number;
  /** Stops it (SIGKILL: nothing saved anyway). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const p = spawn(
        REDIS_SERVER,
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      proc = p;
      let out = '';
      const t = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(t);
          resolve();
        }
      });
      p.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  const stop = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, stop, start };
}

export interface TestNode {
  child: Child;
  url: string;
  nodeId: string;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function startNode(
  redisUrl: string,
  nodeId: string,
  config: ConfigInput = {},
  webRoot = '',
): Promise<TestNode> {
  const child = await forkTs(path.join(HERE, 'node-child.ts'), [
    JSON.stringify({
      port: 0,
      numWorkers: 1,
      logLevel: process.env.STAGEGATE_TEST_VERBOSE ? 'info' : 'error',
      demo: false,
      redisUrl,
      nodeId,
      tokenSecret: TOKEN_SECRET,
      apiSecret: API_SECRET,
      clusterLeaseMs: 1500,
      reconnectGraceMs: 15_000,
      ...config,
    }),
    webRoot,
  ]);
  const url = String(child.info.url);
  return {
    child,
    url,
    nodeId,
    async kill() {
      const exited = new Promise((r) => child.proc.once('exit', r));
      child.proc.kill('SIGKILL');
      await exited;
    },
    stop: () => child.stop(),
  };
}

/** The HTTP API of a node, with the shared secret. */
export async function api<T = Record<string, unknown>>(
  url: string,
  method: string,
  route: string,
  body?: unknown,
  secret = API_SECRET,
): Promise<{ status: number; json: T }> {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as T };
}

/** A token for `userId` in `roomId`, minted by the node at `url` (any node). */
export async function mint(url: string, roomId: string, userId: string, preset: string): Promise<string> {
  const r = await api<{ token: string }>(url, 'POST', `/api/rooms/${roomId}/tokens`, { userId, name: userId, preset });
  if (r.status !== 201) throw new Error(`mint ${userId}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.token;
}
