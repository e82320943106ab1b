/**
 * The three-node cluster a test file shares (vitest hooks; the benchmarks use helpers.ts alone).
 */
import { afterAll, beforeAll } from 'vitest';
import type { Responses } from '../../shared/protocol.js';
import { connectRaw, joinRaw, type RawClient } from '../helpers/server.js';
import { startNode, startRedis, type TestNode, type TestRedis } from './helpers.js';

/**
 * A file's cluster: one Redis and nodes a, b and c with a `leaseMs` lease, started before all
 * tests and stopped after them with every client the file connected. `nodes`, `tokens` and
 * `clients` are filled in place; `redis` is a live binding.
 */
export let redis: TestRedis;
export const nodes = new Map<string, TestNode>();
/** Tokens by user, minted by the test. */
export const tokens = new Map<string, string>();
/** The raw client of each user, closed after all tests. */
export const clients = new Map<string, RawClient>();

export function useThreeNodes(leaseMs: number): void {
  beforeAll(async () => {
    redis = await startRedis();
    for (const n of await Promise.all(
      ['a', 'b', 'c'].map((id) => startNode(redis.url, id, { clusterLeaseMs: leaseMs })),
    ))
      nodes.set(n.nodeId, n);
  });
  afterAll(async () => {
    for (const c of clients.values()) c.close();
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await redis?.stop();
  });
}

/** The URL of node `id`. */
export const nodeUrl = (id: string) => nodes.get(id)!.url;

/** Connects `user` (with its token in `tokens`) through node `node` and joins the room. */
export async function connectVia(user: string, node: string): Promise<Responses['joinRoom']> {
  const c = await connectRaw(nodeUrl(node), { token: tokens.get(user) });
  clients.set(user, c);
  return joinRaw(c);
}

/** Connects `user` through `node` again, retrying every 100 ms (`tries` times) while the room finds its new owner. */
export async function reconnectVia(user: string, node: string, tries = 50): Promise<Responses['joinRoom']> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await connectVia(user, node);
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}
