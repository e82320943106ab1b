/**
 * The three-node cluster a test file shares (vitest hooks; the benchmarks use helpers.ts alone).
 */
import { afterAll, beforeAll } from 'vitest';
import type { Responses } from '../../shared/protocol.js';
import { connectRaw, DTLS, joinRaw, rtpParameters, type RawClient } from '../helpers/server.js';
import { mint, startNode, startRedis, type TestNode, type TestRedis } from './helpers.js';

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

/**
 * Raw clients in room `roomId` of one test: `join` connects `userId` through the node at `url`
 * (a token minted there) and joins; `speak` joins a speaker, takes the stage and produces one
 * track (RTP parameters only); `consume` gives a viewer a connected receive transport and
 * consumes (the ack); `close` closes every client it made.
 */
export function roomClients(roomId: string) {
  const made: RawClient[] = [];
  const join = async (url: string, userId: string, preset: string): Promise<RawClient> => {
    const client = await connectRaw(url, { token: await mint(url, roomId, userId, preset) });
    made.push(client);
    await joinRaw(client);
    return client;
  };
  return {
    join,
    async speak(url: string, userId: string, kind: 'audio' | 'video', ssrc: number) {
      const client = await join(url, userId, 'speaker');
      await client.request('stage.join');
      const send = await client.request('createTransport', { direction: 'send' });
      const { id: producerId } = await client.request('produce', {
        transportId: send.id,
        kind,
        rtpParameters: rtpParameters(kind, ssrc),
      });
      return { client, producerId };
    },
    async consume(viewer: RawClient, producerId: string) {
      const recv = await viewer.request('createTransport', { direction: 'recv' });
      await viewer.request('connectTransport', { transportId: recv.id, dtlsParameters: DTLS });
      return viewer.ack('consume', { producerId });
    },
    close(): void {
      for (const client of made) client.close();
    },
  };
}
