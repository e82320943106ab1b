/**
 * Real media across nodes: Chromium pages with the thin client. The speaker connects to node A
 * (the room's node), the viewer to node C: the viewer decodes the speaker's video. Then node A is
 * SIGKILLed: the speaker's client moves on to the next node of its URL list, the room is taken
 * over from Redis, the speaker (still ON_STAGE) publishes again and the viewer decodes again;
 * the time from the kill to new frames is measured and printed.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { inboundStats, launchBrowser, type BrowserHandle } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
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

/** A page on `urls[0]` in the room with the thin client (URL list `urls`), playing what it receives. */
async function openMeeting(userId: string, preset: 'speaker' | 'viewer', urls: string[]): Promise<Page> {
  const token = await mint(urls[0]!, 'media', userId, preset);
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

it('a viewer on node C decodes a speaker on node A, and again after A dies', async () => {
  const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
  // every node knows the others' public URLs (heartbeats): its pages may then reach them (CSP
  // connect-src) and its socket.io accepts pages of the others (origins), as a cluster that has
  // been running a while does
  for (const n of nodes) {
    await expect
      .poll(async () => (await fetch(`${n.url}/index.html`)).headers.get('content-security-policy') ?? '', {
        timeout: 20_000,
      })
      .toSatisfy((csp: string) => nodes.every((o) => csp.includes(o.url)));
  }
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
