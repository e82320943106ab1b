/**
 * Cluster benchmarks (`npm run bench:cluster`; BENCH_SMOKE=1 for tiny sizes): one Redis and
 * Stagegate nodes in child processes on loopback, each figure against a single node (no Redis)
 * measured in the same run. Prints the rows as a console table and as Markdown, and writes
 * everything (machine, load, sizes, raw samples, summaries) to bench-results/cluster.json
 * (smoke: cluster-smoke.json; BENCH_OUT=file.json for another file).
 *
 * 1. requestAccess burst: N participants joined (spread evenly over 3 nodes, the room owned by
 *    the first: two thirds of them relayed), all send `stage.requestAccess` at once; client-side
 *    ack latency, against the same N on one node.
 * 2. join-to-first-frame: a speaker (real Chromium, thin client) on node A; a viewer joins on A
 *    (same node) or on C (another node), alternately; time from `joinMeeting()` to the viewer's
 *    first decoded video frame. Only the clients' URLs are fixed (speaker → A, viewer → C), so it
 *    measures whatever path the media takes between the nodes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import type { Page } from 'playwright-core';
import { TokenService } from '../../server/auth/tokens.js';
import { launchBrowser } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
import { api, startNode, startRedis, TOKEN_SECRET, type TestNode } from '../cluster/helpers.js';
import { consoleTable, machine, machineLine, markdownTable, type Row } from './bench.js';
import { mapLimit, ratio, round, roundAll, summarize, withTimeout, type Summary } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const smoke = ['1', 'true'].includes(process.env.BENCH_SMOKE ?? '');
const N = Number(process.env.BENCH_CLUSTER_REQUESTS) || (smoke ? 60 : 500);
const FRAME_RUNS = Number(process.env.BENCH_CLUSTER_FRAMES) || (smoke ? 2 : 8);
const out = process.env.BENCH_OUT ?? path.join(ROOT, 'bench-results', smoke ? 'cluster-smoke.json' : 'cluster.json');
const tokens = new TokenService(TOKEN_SECRET);
/** The default lease (3 s): the test helpers' 1.5 s lease judges a node dead on a loaded machine. */
const BIG = {
  stageActionsPerSecond: 10_000,
  requestsPerSecond: 100_000,
  logLevel: (process.env.BENCH_CLUSTER_LOG ?? 'silent') as 'silent',
  clusterLeaseMs: 3000,
};

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

/** N viewers joined through `urls` (round robin) send requestAccess at once: each ack's latency (ms). */
async function burst(urls: string[], roomId: string): Promise<number[]> {
  const sockets = await mapLimit(
    Array.from({ length: N }, (_, i) => i),
    32,
    async (i) =>
      connect(urls[i % urls.length]!, await tokens.mint({ userId: `u${i}`, name: `u${i}`, roomId, preset: 'viewer' })),
  );
  await new Promise((r) => setTimeout(r, 500));
  try {
    return await Promise.all(
      sockets.map(async (s, i) => {
        const t0 = performance.now();
        try {
          const ack = (await s.timeout(30_000).emitWithAck('stage.requestAccess', {})) as { ok: boolean };
          if (!ack.ok) throw new Error(`refused: ${JSON.stringify(ack)}`);
          return performance.now() - t0;
        } catch (err) {
          // reported (a failed request is not a fast one), and the run goes on
          failures.push(`requestAccess of u${i} in ${roomId} via ${urls[i % urls.length]}: ${(err as Error).message}`);
          return NaN;
        }
      }),
    );
  } finally {
    for (const s of sockets) s.disconnect();
  }
}

async function firstFrame(page: Page, url: string, token: string): Promise<number> {
  return page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    const t0 = performance.now();
    const meeting = await joinMeeting({ url: ${JSON.stringify(url)}, token: ${JSON.stringify(token)} });
    window.meeting = meeting;
    window.tJoined = performance.now() - t0;
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

const ms = (v: number) => (Number.isFinite(v) ? `${round(v, v < 10 ? 1 : 0).toLocaleString('en-US')}` : 'n/a');
const trio = (s: Summary, keys: (keyof Summary)[]) => `${keys.map((k) => ms(s[k])).join(' / ')} ms`;
const x = (a: number, b: number) => {
  const r = ratio(a, b);
  return Number.isFinite(r) ? `${r}×` : '';
};

function rowsOf(r: { burst: Record<string, Summary>; frames: Record<string, Summary> }): Row[] {
  const { one, three } = r.burst as { one: Summary; three: Summary };
  const { same, other } = r.frames as { same: Summary; other: Summary };
  const base = { target: '', met: '' };
  return [
    {
      benchmark: 'cluster: requestAccess burst',
      metric: `${N} at once, spread over 3 nodes (Stagegate) vs all on one node without Redis (baseline): ack p50 / p99 / max`,
      stagegate: trio(three, ['p50', 'p99', 'max']),
      baseline: trio(one, ['p50', 'p99', 'max']),
      ratio: x(three.p99, one.p99),
      ...base,
    },
    {
      benchmark: 'cluster: join-to-first-frame',
      metric: `speaker on node A; viewer on node C (Stagegate) vs on node A (baseline): joinMeeting() → first decoded frame, p50 / p95 / max (n=${other.n} and ${same.n})`,
      stagegate: trio(other, ['p50', 'p95', 'max']),
      baseline: trio(same, ['p50', 'p95', 'max']),
      ratio: x(other.p50, same.p50),
      ...base,
    },
  ];
}

const started = performance.now();
const report = {
  smoke,
  startedAt: new Date().toISOString(),
  durationS: 0,
  machine: machine(),
  sizes: { requests: N, frameRuns: FRAME_RUNS, nodes: 3, leaseMs: BIG.clusterLeaseMs },
  raw: {} as Record<string, number[]>,
  burst: {} as Record<string, Summary>,
  frames: {} as Record<string, Summary>,
  rows: [] as Row[],
  /** Samples that failed (no first frame): left out of the figures, listed here. */
  failures: [] as string[],
};
const failures: string[] = [];
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
  report.raw.burstOneNode = roundAll(one);
  report.raw.burstThreeNodes = roundAll(three);
  report.burst = { one: summarize(one), three: summarize(three) };

  const browser = await launchBrowser();
  try {
    // pages of one node talk to another only once the nodes know each other's public URLs (heartbeats)
    for (const n of nodes.slice(0, 3)) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const csp = (await fetch(`${n.url}/index.html`)).headers.get('content-security-policy') ?? '';
        if (nodes.slice(0, 3).every((o) => csp.includes(o.url))) break;
        if (Date.now() > deadline) throw new Error(`node ${n.nodeId} does not know the other nodes`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
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
      const node = i % 2 === 0 ? c : a;
      const page = await browser.newPage(`${node.url}/index.html`);
      const token = await tokens.mint({ userId: `v${i}`, name: `v${i}`, roomId: 'frames', preset: 'viewer' });
      try {
        const t = await withTimeout(firstFrame(page, node.url, token), 30_000, `first frame on ${node.nodeId}`);
        (node === a ? same : other).push(t);
        if (t > 1000) {
          // joinMeeting() or the first frame after it (a key frame request Chromium dropped: +1 s)
          const joined = (await page.evaluate('window.tJoined')) as number;
          console.log(
            `  slow sample: viewer v${i} on ${node.nodeId}: joined after ${ms(joined)} ms, first frame ${ms(t)} ms`,
          );
        }
      } catch (err) {
        // reported (a failed sample is not a fast one), and the run goes on
        failures.push(`viewer v${i} on ${node.nodeId}: ${(err as Error).message.split('\n')[0]}`);
        console.error(failures.at(-1));
      } finally {
        await page.close();
      }
    }
    report.raw.firstFrameSameNode = roundAll(same);
    report.raw.firstFrameOtherNode = roundAll(other);
    report.frames = { same: summarize(same), other: summarize(other) };
    report.failures = failures;
  } finally {
    await browser.close();
  }
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
  fs.rmSync(webRoot, { recursive: true, force: true });
}

report.rows = rowsOf(report);
report.durationS = round((performance.now() - started) / 1000, 1);
report.machine.loadAverageAtEnd = os.loadavg().map((v) => round(v, 2));
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
);
console.log('');
console.log(consoleTable(report.rows));
console.log('');
console.log('Markdown:');
console.log('');
console.log(markdownTable(report.rows));
console.log('');
console.log(`*${machineLine(report.machine)}; ${report.durationS} s; \`npm run bench:cluster\`.*`);
if (report.failures.length) console.log(`\nfailed samples (left out):\n${report.failures.join('\n')}`);
console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
process.exit(0);
