/**
 * Real media across nodes: Chromium pages with the thin client. The speaker connects to node A
 * (the room's node), the viewer to node C: the viewer decodes the speaker's video. Then node A is
 * SIGKILLed: the speaker's client moves on to the next node of its URL list, the room is taken
 * over from Redis, the speaker (still ON_STAGE) publishes again and the viewer decodes again;
 * the time from the kill to new frames is measured and printed.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Page } from 'playwright-core';
import { inboundStats, launchBrowser, type BrowserHandle } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
import { DTLS, rtpParameters } from '../helpers/server.js';
import { roomClients } from './fixture.js';
import { api, mint, startNode, startRedis, type TestNode, type TestRedis } from './helpers.js';

const LEASE_MS = 1500;
let redis: TestRedis;
let nodes: TestNode[] = [];
let browser: BrowserHandle;
let webRoot: string;

beforeAll(async () => {
  webRoot = await buildClientWebRoot();
  redis = await startRedis();
  nodes = await Promise.all(
    ['a', 'b', 'c'].map((id) => startNode(redis.url, id, { clusterLeaseMs: LEASE_MS }, webRoot)),
  );
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

/**
 * Every node knows the others' public URLs (heartbeats): its pages may then reach them (CSP
 * connect-src) and its socket.io accepts pages of the others (origins), as a cluster that has
 * been running a while does.
 */
async function peersKnown(): Promise<void> {
  for (const n of nodes) {
    await expect
      .poll(async () => (await fetch(`${n.url}/index.html`)).headers.get('content-security-policy') ?? '', {
        timeout: 20_000,
      })
      .toSatisfy((csp: string) => nodes.every((o) => csp.includes(o.url)));
  }
}

/** A page on `urls[0]` in the room with the thin client (URL list `urls`), playing what it receives. */
async function openMeeting(
  userId: string,
  preset: 'speaker' | 'viewer',
  urls: string[],
  roomId = 'media',
): Promise<Page> {
  const token = await mint(urls[0]!, roomId, userId, preset);
  const page = await browser.newPage(`${urls[0]}/index.html`);
  await page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    const meeting = await joinMeeting({ url: ${JSON.stringify(urls)}, token: ${JSON.stringify(token)} });
    window.log = [];
    for (const name of ['reconnecting', 'reconnected', 'disconnected', 'mediaError']) {
      meeting.on(name, (e) => window.log.push(name + ' ' + JSON.stringify(e)));
    }
    meeting.on('trackAdded', ({ track, producerId }) => {
      const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
      el.autoplay = true;
      el.muted = true;
      el.id = producerId;
      el.srcObject = new MediaStream([track]);
      document.body.append(el);
    });
    meeting.on('trackRemoved', ({ producerId }) => document.getElementById(producerId)?.remove());
    window.meeting = meeting;
    if (${preset === 'speaker'}) await meeting.stage.join();
  })()`);
  return page;
}

const framesDecoded = async (page: Page) => (await inboundStats(page)).video.framesDecoded;
const bytesReceived = async (page: Page) => {
  const { video, audio } = await inboundStats(page);
  return video.bytesReceived + audio.bytesReceived;
};

interface RouterPart {
  role: string;
  transports: number;
  consumers: number;
  producers: number;
  pipeProducers: number;
  pipeTransports: number;
  transportIds: string[];
  producerIds: string[];
  consumerIds: string[];
}
interface MediaPart {
  roomId: string;
  role: 'owner' | 'media';
  owner?: string;
  participants: Record<string, { send?: string; recv?: string }>;
  pipes: { producerId: string; node: string; direction: 'in' | 'out'; paused?: boolean }[];
  routers: RouterPart[];
}

/** The media of room `roomId` on the node at `url`, as that node's own routers hold it. */
async function mediaOn(url: string, roomId: string): Promise<MediaPart | undefined> {
  const r = await api<{ rooms: MediaPart[] }>(url, 'GET', '/api/node/media');
  expect(r.status).toBe(200);
  return r.json.rooms.find((p) => p.roomId === roomId);
}

const sum = (part: MediaPart | undefined, key: 'pipeTransports' | 'pipeProducers' | 'transports' | 'producers') =>
  (part?.routers ?? []).reduce((n, r) => n + r[key], 0);

it("node media (signaling only): producers on the speaker's node, one pipe per producer and node shared by its viewers there, closed with the producer", async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'raw', mode: 'OPEN' })).status).toBe(201);
  const room = roomClients('raw');
  const join = room.join;
  try {
    const spk = await join(b.url, 'spk', 'speaker');
    await spk.request('stage.join');
    const send = await spk.request('createTransport', { direction: 'send' });
    const produced = await Promise.all(
      (['audio', 'video'] as const).map((kind, i) =>
        spk.request('produce', { transportId: send.id, kind, rtpParameters: rtpParameters(kind, 1000 + i) }),
      ),
    );
    const ids = produced.map((p) => p.id).sort();
    // the room is A's, the speaker on B: two viewers on C consume at once, one on A, one on B
    const viewers = await Promise.all([
      join(c.url, 'c1', 'viewer'),
      join(c.url, 'c2', 'viewer'),
      join(a.url, 'a1', 'viewer'),
      join(b.url, 'b1', 'viewer'),
    ]);
    const consumers = await Promise.all(
      viewers.map(async (v) => {
        const recv = await v.request('createTransport', { direction: 'recv' });
        await v.request('connectTransport', { transportId: recv.id, dtlsParameters: DTLS });
        return Promise.all(ids.map((producerId) => v.request('consume', { producerId })));
      }),
    );
    // the calls a client makes on its consumers run on its node
    const [c1] = consumers as [Awaited<(typeof consumers)[0]>];
    for (const consumer of c1)
      expect((await viewers[0]!.ack('resumeConsumer', { consumerId: consumer.id })).ok).toBe(true);
    const video = c1.find((x) => x.kind === 'video')!;
    expect(await viewers[0]!.request('setConsumerPreferences', { consumerId: video.id, visible: false })).toEqual({
      spatialLayer: 0,
      paused: true,
    });

    const [onA, onB, onC] = [await mediaOn(a.url, 'raw'), await mediaOn(b.url, 'raw'), await mediaOn(c.url, 'raw')];
    // every transport on the node of its participant's socket: the producers on B
    expect(onA).toMatchObject({ role: 'owner', owner: 'a' });
    expect(onA?.participants).toEqual({ a1: { recv: expect.any(String) } });
    expect(onB).toMatchObject({ role: 'media', owner: 'a' });
    expect(onB?.participants).toEqual({ spk: { send: expect.any(String) }, b1: { recv: expect.any(String) } });
    expect(sum(onB, 'producers')).toBe(2);
    expect(sum(onA, 'producers') + sum(onC, 'producers')).toBe(0);
    expect(Object.keys(onC?.participants ?? {}).sort()).toEqual(['c1', 'c2']);
    // one pipe per (producer, node): out of B to A and C; two viewers on C share theirs; none for B's own viewer
    const pipes = (part: MediaPart | undefined) =>
      part?.pipes.map((p) => `${p.producerId}${p.direction === 'in' ? '<' : '>'}${p.node}`).sort();
    expect(pipes(onA)).toEqual(ids.map((id) => `${id}<b`));
    expect(pipes(onB)).toEqual(ids.flatMap((id) => [`${id}>a`, `${id}>c`]).sort());
    expect(pipes(onC)).toEqual(ids.map((id) => `${id}<b`));
    expect([sum(onA, 'pipeTransports'), sum(onB, 'pipeTransports'), sum(onC, 'pipeTransports')]).toEqual([2, 4, 2]);
    expect([sum(onA, 'pipeProducers'), sum(onB, 'pipeProducers'), sum(onC, 'pipeProducers')]).toEqual([2, 0, 2]);
    expect(onC?.routers.flatMap((r) => r.consumerIds)).toHaveLength(4);
    // B: its viewer's 2 consumers and 4 pipe consumers
    expect(onB?.routers.flatMap((r) => r.consumerIds)).toHaveLength(6);

    // the speaker's mute pauses the producer on B and its piped copies on A and C; C's viewers are told
    const audio = produced.find((p) => p.source === 'audio')!;
    const paused = viewers[1]!.next('producerPaused');
    await spk.request('pauseProducer', { producerId: audio.id });
    expect(await paused).toEqual({ producerId: audio.id, userId: 'spk' });
    for (const url of [a.url, c.url]) {
      await expect
        .poll(async () => (await mediaOn(url, 'raw'))?.pipes.find((p) => p.producerId === audio.id)?.paused)
        .toBe(true);
    }
    await spk.request('resumeProducer', { producerId: audio.id });
    await expect
      .poll(async () => (await mediaOn(c.url, 'raw'))?.pipes.find((p) => p.producerId === audio.id)?.paused)
      .toBe(false);

    // the producer closes: its pipes close on every node, and C's viewers hear of their consumers
    const closed = viewers[1]!.next('consumerClosed');
    await spk.request('closeProducer', { producerId: audio.id });
    expect((await closed).producerId).toBe(audio.id);
    await expect
      .poll(async () => [
        pipes(await mediaOn(a.url, 'raw')),
        pipes(await mediaOn(b.url, 'raw')),
        pipes(await mediaOn(c.url, 'raw')),
      ])
      .toEqual([
        [`${video.producerId}<b`],
        [`${video.producerId}>a`, `${video.producerId}>c`],
        [`${video.producerId}<b`],
      ]);
    // the pipe transports as the workers hold them: the video's pair per node only
    const transportsOf = async (url: string) => {
      const part = await mediaOn(url, 'raw');
      return [
        sum(part, 'pipeTransports'),
        part!.routers.flatMap((r) => r.transportIds).length - sum(part, 'transports'),
      ];
    };
    expect(await transportsOf(a.url)).toEqual([1, 1]);
    expect(await transportsOf(b.url)).toEqual([2, 2]);
    expect(await transportsOf(c.url)).toEqual([1, 1]);

    // a viewer on C leaves: its transport goes from C, the other's stays
    viewers[0]!.close();
    await expect.poll(async () => Object.keys((await mediaOn(c.url, 'raw'))?.participants ?? {})).toEqual(['c2']);
  } finally {
    room.close();
  }
  // the room closes: each node drops its part
  expect((await api(a.url, 'DELETE', '/api/rooms/raw')).status).toBe(204);
  await expect
    .poll(async () => [await mediaOn(a.url, 'raw'), await mediaOn(b.url, 'raw'), await mediaOn(c.url, 'raw')])
    .toEqual([undefined, undefined, undefined]);
});

it("a produce sent right behind stage.join through an edge node runs after it (the thin client's prepared camera): made; behind a refused join: refused, nothing made", async () => {
  const [a, , c] = nodes as [TestNode, TestNode, TestNode];
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'pipelined', mode: 'REQUEST' })).status).toBe(201);
  const room = roomClients('pipelined');
  try {
    // the room is A's; both clients are on C, their requests relayed over Redis
    const spk = await room.join(c.url, 'spk', 'speaker'); // ACCEPTED on arrival
    const viewer = await room.join(c.url, 'v', 'viewer'); // must ask first: its join is refused
    const send = await spk.request('createTransport', { direction: 'send' });
    const produce = (ssrc: number) => ({
      transportId: send.id,
      kind: 'video' as const,
      rtpParameters: rtpParameters('video', ssrc),
    });
    // not awaited in between: both leave on the socket back to back
    const accepted = await Promise.all([spk.ack('stage.join'), spk.ack('produce', produce(5000))]);
    expect(accepted.map((x) => x.ok)).toEqual([true, true]);
    const refused = await Promise.all([viewer.ack('stage.join'), viewer.ack('produce', produce(6000))]);
    expect(refused.map((x) => (x.ok ? 'ok' : x.error.code))).toEqual(['INVALID_STATE', 'INVALID_STATE']);
    const part = await mediaOn(c.url, 'pipelined');
    expect(sum(part, 'producers')).toBe(1); // the speaker's, on its node; none of the viewer's
  } finally {
    room.close();
  }
});

it('a node that dropped its part of a room (it judged the owner gone) tells the owner: the next viewer there gets a new pipe', async () => {
  const [a, , c] = nodes as [TestNode, TestNode, TestNode];
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'heal', mode: 'OPEN' })).status).toBe(201);
  const { join, speak, consume, close } = roomClients('heal');
  const redisClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redisClient.connect();
  try {
    // the speaker on A (the room's node), a viewer on C: a pipe from A to C
    const { producerId } = await speak(a.url, 'spk', 'audio', 3000);
    expect((await consume(await join(c.url, 'c1', 'viewer'), producerId)).ok).toBe(true);
    expect((await mediaOn(c.url, 'heal'))?.pipes.map((p) => p.node)).toEqual(['a']);

    // C misses A's heartbeat (deleted until C has acted on it; A writes it again every third of
    // its lease): C drops its part of the room and closes the sockets it relayed there
    await expect
      .poll(
        async () => {
          await redisClient.del('sg:node:a');
          return mediaOn(c.url, 'heal');
        },
        { timeout: 15_000, interval: 100 },
      )
      .toBe(undefined);

    // A is alive and still owns the room: a new viewer on C gets a new pipe, and A holds one
    // pipe transport for it (the dropped one is closed, not kept)
    await expect.poll(() => redisClient.exists('sg:node:a')).toBe(1);
    const again = await consume(await join(c.url, 'c2', 'viewer'), producerId);
    expect(again.ok).toBe(true);
    expect((await mediaOn(c.url, 'heal'))?.pipes.map((p) => p.node)).toEqual(['a']);
    await expect.poll(async () => sum(await mediaOn(a.url, 'heal'), 'pipeTransports')).toBe(1);
  } finally {
    close();
    redisClient.disconnect();
  }
  expect((await api(a.url, 'DELETE', '/api/rooms/heal')).status).toBe(204);
});

it('node media: a viewer on node C decodes a speaker on node A (the room on B) through a pipe, held: no bytes; kicked: no pipe left', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  await peersKnown();
  expect((await api(b.url, 'POST', '/api/rooms', { id: 'pipes', mode: 'REQUEST' })).status).toBe(201);
  expect((await api(a.url, 'GET', '/api/node/media', undefined, 'wrong-secret')).status).toBe(401);
  const speaker = await openMeeting('spk2', 'speaker', [a.url], 'pipes');
  const viewer = await openMeeting('v2', 'viewer', [c.url], 'pipes');
  try {
    await expect.poll(() => framesDecoded(viewer), { timeout: 20_000, interval: 250 }).toBeGreaterThan(10);

    // the speaker's producers on A, the viewer's transport on C: the nodes of their sockets
    const [onA, onB, onC] = [
      await mediaOn(a.url, 'pipes'),
      await mediaOn(b.url, 'pipes'),
      await mediaOn(c.url, 'pipes'),
    ];
    expect(onB).toMatchObject({ role: 'owner', owner: 'b', participants: {} });
    expect(onA).toMatchObject({ role: 'media', owner: 'b' });
    expect(Object.keys(onA!.participants)).toEqual(['spk2']);
    expect(onA?.participants.spk2?.send).toBeDefined();
    expect(onC).toMatchObject({ role: 'media', owner: 'b' });
    expect(Object.keys(onC!.participants)).toEqual(['v2']);
    expect(onC?.participants.v2?.recv).toBeDefined();
    // one pipe per producer from A to C, on both nodes (and the audio to B, for the active speaker)
    const producers = sum(onA, 'producers');
    expect(producers).toBeGreaterThanOrEqual(2); // audio and video
    expect(onA?.pipes.filter((p) => p.node === 'c').map((p) => p.direction)).toEqual(Array(producers).fill('out'));
    expect(onC?.pipes.map((p) => [p.direction, p.node, p.paused])).toEqual(Array(producers).fill(['in', 'a', false]));
    expect(sum(onC, 'pipeTransports')).toBe(producers);
    expect(sum(onC, 'pipeProducers')).toBe(producers);
    expect(sum(onC, 'producers')).toBe(0);
    expect(onB?.pipes.map((p) => `${p.direction}:${p.node}`)).toEqual(['in:a']);
    // ... where the room's active speaker observer hears it
    await expect
      .poll(() => viewer.evaluate('window.meeting.activeSpeaker'), { timeout: 10_000, interval: 250 })
      .toBe('spk2');

    // a host's hold (through B): the producers are paused on A, their copies on C, no bytes reach the viewer
    const flowing = await bytesReceived(viewer);
    await expect.poll(() => bytesReceived(viewer), { timeout: 5000 }).toBeGreaterThan(flowing + 5000);
    const muted = await api(b.url, 'POST', '/api/rooms/pipes/stage/mute', {
      userIds: ['spk2'],
      sources: ['audio', 'video'],
    });
    expect(muted.status).toBe(200);
    await expect
      .poll(async () => (await mediaOn(c.url, 'pipes'))?.pipes.map((p) => p.paused), { timeout: 5000 })
      .toEqual(Array(producers).fill(true));
    await new Promise((r) => setTimeout(r, 1000)); // what was in flight arrives
    const held = await bytesReceived(viewer);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await bytesReceived(viewer)) - held).toBeLessThan(1000);

    // the speaker is kicked off the stage: the producers close on A, and with them every pipe on every node
    expect((await api(b.url, 'POST', '/api/rooms/pipes/stage/kick', { userIds: ['spk2'] })).status).toBe(200);
    const clean = async (url: string) => {
      const part = await mediaOn(url, 'pipes');
      return {
        pipes: part?.pipes.length,
        pipeTransports: sum(part, 'pipeTransports'),
        producers: part?.routers.flatMap((r) => r.producerIds).length,
        consumers: part?.routers.flatMap((r) => r.consumerIds).length,
        // what the worker holds beyond the participants' transports (pipe transports)
        extraTransports: (part?.routers.flatMap((r) => r.transportIds).length ?? 0) - sum(part, 'transports'),
        transports: sum(part, 'transports'),
      };
    };
    const none = { pipes: 0, pipeTransports: 0, producers: 0, consumers: 0, extraTransports: 0 };
    await expect
      .poll(async () => [await clean(a.url), await clean(b.url), await clean(c.url)], { timeout: 10_000 })
      .toEqual([
        { ...none, transports: expect.any(Number) }, // the speaker's send transport closes as well (OFF_STAGE)
        { ...none, transports: 0 },
        { ...none, transports: 1 }, // the viewer's receive transport
      ]);
  } finally {
    await speaker.close();
    await viewer.close();
  }
});

it("the worker of a node's part of a room dies: its participants there are told to set their media up again, the others are not", async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'wd', mode: 'OPEN' })).status).toBe(201);
  const { join, speak, consume, close } = roomClients('wd');
  try {
    // the room on A, the speaker on B, viewers on C (the one that loses its worker) and on A
    const { client: spk, producerId } = await speak(b.url, 'spk', 'video', 4000);
    const onC = await join(c.url, 'c1', 'viewer');
    const onA = await join(a.url, 'a1', 'viewer');
    for (const viewer of [onC, onA]) expect((await consume(viewer, producerId)).ok).toBe(true);
    const part = await mediaOn(c.url, 'wd');
    expect(part?.pipes.map((p) => `${p.direction}:${p.node}`)).toEqual(['in:b']);
    const workerPid = (part!.routers[0] as RouterPart & { workerPid: number }).workerPid;
    expect(workerPid).toBeGreaterThan(0);

    const spkRouter = (await mediaOn(b.url, 'wd'))?.participants.spk?.send;
    expect(spkRouter).toBeDefined();
    const reset = onC.next('mediaReset');
    process.kill(workerPid, 'SIGKILL');
    expect(await reset).toEqual({ reason: 'worker-died' });
    // The viewer on C sets its media up again at once, as the client does (no retry): the reset
    // came once C had a live worker again (its only one, replaced), with a new part there
    const made = await onC.ack('createTransport', { direction: 'recv' });
    expect(made, JSON.stringify(made)).toMatchObject({ ok: true });
    // the owner forgot the old pipe and transport there
    expect((await mediaOn(b.url, 'wd'))?.pipes.map((p) => `${p.direction}:${p.node}`)).toEqual(['out:a']);
    // the speaker on B and the viewer on A were not touched
    for (const other of [spk, onA]) expect(other.received.map((r) => r.name)).not.toContain('mediaReset');
    expect((await mediaOn(b.url, 'wd'))?.participants.spk?.send).toBe(spkRouter);
    const again = await onC.ack('consume', { producerId });
    expect(again.ok).toBe(true);
    const newPart = await mediaOn(c.url, 'wd');
    expect(newPart?.pipes.map((p) => `${p.direction}:${p.node}`)).toEqual(['in:b']);
    expect((newPart!.routers[0] as RouterPart & { workerPid: number }).workerPid).not.toBe(workerPid);
  } finally {
    close();
  }
  expect((await api(a.url, 'DELETE', '/api/rooms/wd')).status).toBe(204);
});

it('a viewer on node C decodes a speaker on node A, and again after A dies', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  await peersKnown();
  expect((await api(a.url, 'POST', '/api/rooms', { id: 'media', mode: 'REQUEST' })).status).toBe(201);
  const speaker = await openMeeting('spk', 'speaker', [a.url, b.url]);
  const viewer = await openMeeting('viewer', 'viewer', [c.url, b.url]);
  await expect.poll(() => framesDecoded(viewer), { timeout: 20_000, interval: 250 }).toBeGreaterThan(10);

  const t0 = performance.now();
  await a.kill();
  nodes = [b, c];
  await expect
    .poll(async () => ((await viewer.evaluate('window.log')) as string[]).some((l) => l.startsWith('reconnected')), {
      timeout: 30_000,
      interval: 100,
    })
    .toBe(true);
  // new frames (the old connection's counters stay where they were)
  const before = await framesDecoded(viewer);
  await expect.poll(() => framesDecoded(viewer), { timeout: 20_000, interval: 100 }).toBeGreaterThan(before + 5);
  const recovered = performance.now() - t0;
  console.log(
    `[cluster] owner SIGKILL → viewer decoding again after ${recovered.toFixed(0)} ms (lease ${LEASE_MS} ms)`,
  );
  expect((await speaker.evaluate('window.meeting.stage.status')) as string).toBe('ON_STAGE');
  expect((await speaker.evaluate('window.log')) as string[]).not.toContainEqual(expect.stringMatching(/^disconnected/));
  const rooms = await api<{ rooms: { id: string; node: string }[] }>(b.url, 'GET', '/api/rooms');
  expect(['b', 'c']).toContain(rooms.json.rooms.find((r) => r.id === 'media')?.node);
});
