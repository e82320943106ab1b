/**
 * Cluster benchmarks (`npm run bench:cluster`; BENCH_SMOKE=1 for tiny sizes): one Redis and
 * Stagegate nodes in child processes on loopback, against a single node (no Redis).
 *
 * 1. requestAccess burst: N participants joined (spread evenly over 3 nodes, the room owned by
 *    the first), all send `stage.requestAccess` at once; ack latency percentiles, against the
 *    same N on one node.
 * 2. join-to-first-frame: a speaker on node A; a viewer (real Chromium, thin client) joins on A
 *    (same node) or on C (another node, relayed to A); time from `joinMeeting()` to the first
 *    decoded video frame.
 */
import fs from 'node:fs';
import { io, type Socket } from 'socket.io-client';
import type { Page } from 'playwright-core';
import { TokenService } from '../../server/auth/tokens.js';
import { launchBrowser } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
import { api, startNode, startRedis, TOKEN_SECRET, type TestNode } from '../cluster/helpers.js';
import { mapLimit, summarize, type Summary } from './stats.js';

const smoke = ['1', 'true'].includes(process.env.BENCH_SMOKE ?? '');
const N = smoke ? 60 : 500;
const FRAME_RUNS = smoke ? 2 : 8;
const tokens = new TokenService(TOKEN_SECRET);
const BIG = { stageActionsPerSecond: 10_000, requestsPerSecond: 100_000, logLevel: 'silent' as const };

async function connect(url: string, token: string): Promise<Socket> {
  const socket = io(url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const caps = (await socket.emitWithAck('getRouterRtpCapabilities', {})) as { data: { rtpCapabilities: unknown } };
  const joined = (await socket.emitWithAck('joinRoom', { rtpCapabilities: caps.data.rtpCapabilities })) as {
    ok: boolean;
  };
  if (!joined.ok) throw new Error(`joinRoom: ${JSON.stringify(joined)}`);
  return socket;
}

async function burst(urls: string[], roomId: string): Promise<Summary> {
  const sockets = await mapLimit(
    Array.from({ length: N }, (_, i) => i),
    32,
    async (i) =>
      connect(urls[i % urls.length]!, await tokens.mint({ userId: `u${i}`, name: `u${i}`, roomId, preset: 'viewer' })),
  );
  await new Promise((r) => setTimeout(r, 500));
  const times = await Promise.all(
    sockets.map(async (s) => {
      const t0 = performance.now();
      const ack = (await s.timeout(30_000).emitWithAck('stage.requestAccess', {})) as { ok: boolean };
      if (!ack.ok) throw new Error(`requestAccess refused: ${JSON.stringify(ack)}`);
      return performance.now() - t0;
    }),
  );
  for (const s of sockets) s.disconnect();
  return summarize(times);
}

async function firstFrame(page: Page, url: string, token: string): Promise<number> {
  return page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    const t0 = performance.now();
    const meeting = await joinMeeting({ url: ${JSON.stringify(url)}, token: ${JSON.stringify(token)} });
    window.meeting = meeting;
    for (;;) {
      for (const pc of window.__pcs) {
        if (pc.connectionState === 'closed') continue;
        let frames = 0;
        (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0; });
        if (frames > 0) return performance.now() - t0;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })()`);
}

const fmt = (s: Summary) =>
  `p50 ${s.p50.toFixed(1)} ms, p95 ${s.p95.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms (n=${s.n})`;

const redis = await startRedis();
const webRoot = await buildClientWebRoot();
const nodes: TestNode[] = [];
try {
  nodes.push(...(await Promise.all(['a', 'b', 'c'].map((id) => startNode(redis.url, id, BIG, webRoot)))));
  const single = await startNode('', 'single', { ...BIG, redisUrl: undefined }, webRoot);
  nodes.push(single);
  const [a, , c] = nodes as [TestNode, TestNode, TestNode];

  await api(single.url, 'POST', '/api/rooms', { id: 'burst' });
  const one = await burst([single.url], 'burst');
  await api(a.url, 'POST', '/api/rooms', { id: 'burst' });
  const three = await burst(
    nodes.slice(0, 3).map((n) => n.url),
    'burst',
  );
  console.log(`requestAccess x${N} at once, one node:         ${fmt(one)}`);
  console.log(`requestAccess x${N} at once, over 3 nodes:     ${fmt(three)}`);

  const browser = await launchBrowser();
  try {
    await api(a.url, 'POST', '/api/rooms', { id: 'frames' });
    const speaker = await browser.newPage(`${a.url}/index.html`);
    const spkToken = await tokens.mint({ userId: 'spk', name: 'spk', roomId: 'frames', preset: 'speaker' });
    await speaker.evaluate(`(async () => {
      const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
      const meeting = await joinMeeting({ url: location.origin, token: ${JSON.stringify(spkToken)} });
      await meeting.stage.join();
    })()`);
    const same: number[] = [];
    const other: number[] = [];
    for (let i = 0; i < FRAME_RUNS * 2; i++) {
      const node = i % 2 === 0 ? a : c;
      const page = await browser.newPage(`${node.url}/index.html`);
      const token = await tokens.mint({ userId: `v${i}`, name: `v${i}`, roomId: 'frames', preset: 'viewer' });
      (node === a ? same : other).push(await firstFrame(page, node.url, token));
      await page.close();
    }
    console.log(`join-to-first-frame, viewer on the speaker's node: ${fmt(summarize(same))}`);
    console.log(`join-to-first-frame, viewer on another node:       ${fmt(summarize(other))}`);
  } finally {
    await browser.close();
  }
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
  fs.rmSync(webRoot, { recursive: true, force: true });
}
process.exit(0);
