/**
 * Runs the benchmarks (join latency, kick latency, fan-out cost, signaling scale, fan-out across
 * workers), each
 * against the baseline in the same run, and builds the report: the full JSON (machine, options,
 * raw samples, summaries) and the summary rows printed as a console table and as Markdown.
 *
 * `runBenchmarks({ smoke: true })` uses tiny sizes (the test suite runs it: bench-smoke.test.ts).
 * Nothing here asserts a target: a missed target is reported, never thrown.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { version as mediasoupVersion } from 'mediasoup';
import { benchFanout, type FanoutOptions, type FanoutResult } from './fanout.js';
import { benchSpread, type SpreadOptions, type SpreadResult } from './fanout-workers.js';
import { benchJoin, rawSamples, type JoinOptions, type JoinResult, type JoinVariantResult } from './join.js';
import { benchSimulcast, type SimulcastOptions, type SimulcastResult } from './simulcast.js';
import { benchKick, type KickOptions, type KickResult } from './kick.js';
import { openBenchBrowser, type BenchBrowser } from './page/page.js';
import {
  benchSignaling,
  type IdleViewer,
  type SignalingOptions,
  type SignalingResult,
  type SignalingSystemResult,
} from './signaling.js';
import { ratio, round, type Summary } from './stats.js';
import { startSystems, type Systems } from './systems.js';
import { CHROMIUM } from '../helpers/browser.js';

const require = createRequire(import.meta.url);

export type BenchName = 'join' | 'kick' | 'fanout' | 'signaling' | 'spread' | 'simulcast';
export const BENCH_NAMES: BenchName[] = ['join', 'kick', 'fanout', 'signaling', 'spread', 'simulcast'];

export interface BenchOptions {
  smoke?: boolean;
  only?: BenchName[];
  log?: (msg: string) => void;
}

type Log = (msg: string) => void;

export interface Sizes {
  join: Omit<JoinOptions, 'log'>;
  kick: Omit<KickOptions, 'log'>;
  fanout: Omit<FanoutOptions, 'log'>;
  signaling: Omit<SignalingOptions, 'log'>;
  spread: Omit<SpreadOptions, 'log'>;
  simulcast: Omit<SimulcastOptions, 'log'>;
}

export function sizes(smoke: boolean): Sizes {
  return smoke
    ? {
        join: { samples: 2, warmSamples: 2 },
        kick: { samples: 2, receivers: 2, browserSamples: 1 },
        fanout: { levels: [0, 5], windowMs: 1000, warmupMs: 600, reps: 1, budgetMs: 60_000 },
        signaling: { participants: [20], requesters: 10, grantBatch: 5, concurrency: 10, idleWindowMs: 300 },
        spread: { levels: [0, 4], windowMs: 500, warmupMs: 300, reps: 1, budgetMs: 30_000 },
        simulcast: { viewers: 3, warmupMs: 2000, windowMs: 1000, reps: 1 },
      }
    : {
        join: {
          samples: Number(process.env.BENCH_JOIN_SAMPLES) || 30,
          warmSamples: Number(process.env.BENCH_JOIN_SAMPLES) || 30,
        },
        kick: { samples: 30, receivers: 10, browserSamples: 10 },
        fanout: {
          levels: [0, 50, 100, 200, 250, 400, 600],
          windowMs: 3000,
          warmupMs: 1000,
          reps: 3,
          budgetMs: 270_000,
        },
        signaling: {
          participants: [1000, 5000],
          requesters: 500,
          grantBatch: 100,
          concurrency: 100,
          idleWindowMs: 3000,
        },
        spread: {
          levels: [0, 100, 200, 300, 400, 500, 600, 700],
          windowMs: 3000,
          warmupMs: 1000,
          reps: 3,
          budgetMs: 300_000,
        },
        simulcast: { viewers: 6, warmupMs: 5000, windowMs: 5000, reps: 3 },
      };
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  mediasoup: string;
  mediasoupClient: string;
  socketIo: string;
  chromium: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
}

export interface Row {
  benchmark: string;
  metric: string;
  stagegate: string;
  baseline: string;
  ratio: string;
  target: string;
  met: string;
}

export interface BenchReport {
  smoke: boolean;
  startedAt: string;
  durationS: number;
  machine: Machine;
  sizes: Partial<Sizes>;
  durationsS: Partial<Record<BenchName, number>>;
  errors: Partial<Record<BenchName, string>>;
  join?: JoinResult & { raw: Record<string, Record<string, ReturnType<typeof rawSamples>>> };
  kick?: KickResult;
  fanout?: FanoutResult;
  signaling?: SignalingResult;
  spread?: SpreadResult;
  simulcast?: SimulcastResult;
  rows: Row[];
}

function pkgVersion(name: string): string {
  try {
    let dir = path.dirname(require.resolve(name));
    for (let i = 0; i < 5; i++) {
      const p = path.join(dir, 'package.json');
      if (fs.existsSync(p)) {
        const j = JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (j.name === name && j.version) return j.version;
      }
      dir = path.dirname(dir);
    }
  } catch {
    /* not installed */
  }
  return 'unknown';
}

function chromiumVersion(): string {
  try {
    const out = execFileSync(CHROMIUM, ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    return out.trim();
  } catch {
    return 'unknown';
  }
}

export function machine(): Machine {
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    mediasoup: mediasoupVersion,
    mediasoupClient: pkgVersion('mediasoup-client'),
    socketIo: pkgVersion('socket.io'),
    chromium: chromiumVersion(),
    loadAverageAtStart: os.loadavg().map((x) => round(x, 2)),
  };
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, mediasoup ${m.mediasoup}, ` +
    `mediasoup-client ${m.mediasoupClient}, socket.io ${m.socketIo}, ${m.chromium}; ` +
    `load average ${m.loadAverageAtStart.join(' ')} at start${m.loadAverageAtEnd ? `, ${m.loadAverageAtEnd.join(' ')} at end` : ''}`
  );
}

export async function runBenchmarks(opts: BenchOptions = {}): Promise<BenchReport> {
  const smoke = opts.smoke ?? false;
  const log: Log = opts.log ?? ((m) => console.log(m));
  const only = new Set(opts.only?.length ? opts.only : BENCH_NAMES);
  const sz = sizes(smoke);
  // BENCH_SIGNALING_SIZES=1000,5000: other room sizes for the signaling benchmark
  const signalingSizes = (process.env.BENCH_SIGNALING_SIZES ?? '')
    .split(',')
    .map(Number)
    .filter((x) => x > 1);
  if (signalingSizes.length > 0) sz.signaling.participants = signalingSizes;
  const started = performance.now();
  const report: BenchReport = {
    smoke,
    startedAt: new Date().toISOString(),
    durationS: 0,
    machine: machine(),
    sizes: Object.fromEntries(BENCH_NAMES.filter((b) => only.has(b)).map((b) => [b, sz[b]])),
    durationsS: {},
    errors: {},
    rows: [],
  };
  log(`machine: ${machineLine(report.machine)}`);

  const timed = async (name: BenchName, fn: () => Promise<void>) => {
    if (!only.has(name)) return;
    const t = performance.now();
    log(`== ${name}`);
    try {
      await fn();
    } catch (err) {
      report.errors[name] = String((err as Error)?.stack ?? err);
      log(`  ${name} failed: ${(err as Error)?.message ?? err}`);
    }
    report.durationsS[name] = round((performance.now() - t) / 1000, 1);
    log(`  (${name}: ${report.durationsS[name]} s)`);
  };

  if (only.has('join') || only.has('kick')) {
    let bb: BenchBrowser | undefined;
    let sys: Systems | undefined;
    try {
      // the page first: Stagegate must allow its origin (a port of its own)
      bb = await openBenchBrowser();
      sys = await startSystems({ timeline: true, allowedOrigins: [bb.origin] });
      const b = bb;
      const s = sys;
      await timed('join', async () => {
        const r = await benchJoin(s, b, { ...sz.join, log });
        const raw: Record<string, Record<string, ReturnType<typeof rawSamples>>> = { cold: {}, warm: {} };
        for (const mode of ['cold', 'warm'] as const)
          for (const [v, x] of Object.entries(r[mode])) raw[mode]![v] = rawSamples(x);
        report.join = { ...r, raw };
      });
      await timed('kick', async () => {
        report.kick = await benchKick(s, b, { ...sz.kick, log });
      });
    } catch (err) {
      for (const n of ['join', 'kick'] as const)
        if (only.has(n) && !report.errors[n]) report.errors[n] = String((err as Error)?.stack ?? err);
      log(`  browser benchmarks failed: ${(err as Error)?.message ?? err}`);
    } finally {
      await bb?.close();
      await sys?.close();
    }
  }

  await timed('fanout', async () => {
    const sys = await startSystems();
    try {
      report.fanout = await benchFanout(sys, { ...sz.fanout, log });
    } finally {
      await sys.close();
    }
  });

  await timed('signaling', async () => {
    report.signaling = await benchSignaling({ ...sz.signaling, log });
  });

  await timed('spread', async () => {
    report.spread = await benchSpread({ ...sz.spread, log });
  });

  await timed('simulcast', async () => {
    report.simulcast = await benchSimulcast({ ...sz.simulcast, log });
  });

  report.machine.loadAverageAtEnd = os.loadavg().map((x) => round(x, 2));
  report.durationS = round((performance.now() - started) / 1000, 1);
  report.rows = rows(report);
  return report;
}

// ------------------------------------------------------------------ summary rows
const ms = (v: number) =>
  Number.isFinite(v) ? (Math.abs(v) >= 100 ? String(Math.round(v)) : String(round(v, 1))) : '–';
const trio = (s: Summary | undefined, keys: (keyof Summary)[] = ['p50', 'p95', 'max']) =>
  s && s.n > 0 ? `${keys.map((k) => ms(s[k])).join(' / ')} ms` : '–';
const pct = (v: number, digits = 2) => (Number.isFinite(v) ? `${round(v * 100, digits)}%` : '–');
const yes = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'yes' : 'NO');
const r2 = (a: number, b: number) => {
  const x = ratio(a, b);
  return Number.isFinite(x) ? `${x}×` : '–';
};

export function rows(rep: BenchReport): Row[] {
  const out: Row[] = [];
  const add = (
    benchmark: string,
    metric: string,
    stagegate: string,
    baseline: string,
    ratioS: string,
    target = '',
    met = '',
  ) => out.push({ benchmark, metric, stagegate, baseline, ratio: ratioS, target, met });

  const j = rep.join;
  if (j) {
    const tc = j.cold['stagegate/thin-client'];
    const sr = j.cold['stagegate/raw'];
    const bl = j.cold['baseline/raw'];
    if (tc && bl) {
      add(
        '1 join (cold)',
        `stage.join() → first frame (simulcast, 2 layers: 640x480 camera), p50 / p95 / max (n=${tc.firstFrame.n})`,
        trio(tc.firstFrame),
        trio(bl.firstFrame),
        r2(tc.firstFrame.p50, bl.firstFrame.p50),
        'p50 ≤ 100, p95 ≤ 200 ms',
        yes(tc.firstFrame.p50 <= 100 && tc.firstFrame.p95 <= 200),
      );
      add(
        '1 join (cold)',
        'stage.join() → first audio bytes, p50 / p95 / max',
        trio(tc.firstAudio),
        trio(bl.firstAudio),
        r2(tc.firstAudio.p50, bl.firstAudio.p50),
      );
    }
    const hd = j.cold['stagegate/thin-client-720p'];
    if (hd && bl) {
      add(
        '1 join (cold)',
        `simulcast, 3 layers (1280x720 camera): stage.join() → first frame (n=${hd.firstFrame.n})`,
        trio(hd.firstFrame),
        trio(bl.firstFrame),
        r2(hd.firstFrame.p50, bl.firstFrame.p50),
        'p50 ≤ 80, p95 ≤ 110 ms',
        yes(hd.firstFrame.p50 <= 80 && hd.firstFrame.p95 <= 110),
      );
    }
    const un = j.cold['stagegate/thin-client-720p-unprepared'];
    if (hd && un) {
      add(
        '1 join (cold)',
        'camera sender prepared at ACCEPTED vs not (3 layers): → first frame',
        trio(hd.firstFrame),
        trio(un.firstFrame),
        r2(hd.firstFrame.p50, un.firstFrame.p50),
      );
    }
    if (sr && bl) {
      add(
        '1 join (cold)',
        'same page code both sides (raw driver): → first frame',
        trio(sr.firstFrame),
        trio(bl.firstFrame),
        r2(sr.firstFrame.p50, bl.firstFrame.p50),
      );
    }
    const wtc = j.warm['stagegate/thin-client'];
    const wbl = j.warm['baseline/raw'];
    if (wtc && wbl) {
      add(
        '1 join (warm)',
        `re-join, transport connected: → first frame (n=${wtc.firstFrame.n})`,
        trio(wtc.firstFrame),
        trio(wbl.firstFrame),
        r2(wtc.firstFrame.p50, wbl.firstFrame.p50),
        'p50 ≤ 100, p95 ≤ 200 ms',
        yes(wtc.firstFrame.p50 <= 100 && wtc.firstFrame.p95 <= 200),
      );
    }
  }

  const k = rep.kick;
  if (k) {
    const s = k.raw.stagegate;
    const b = k.raw.baseline;
    if (s && b) {
      add(
        '2 kick',
        `kick → producer gone from the worker (dump), p50 / p95 / max (n=${s.workerClosed.n})`,
        trio(s.workerClosed),
        trio(b.workerClosed),
        r2(s.workerClosed.p95, b.workerClosed.p95),
        'p95 ≤ 5 ms',
        yes(s.workerClosed.p95 <= 5),
      );
      add(
        '2 kick',
        `kick → last of ${k.receivers} receivers told (producerClosed + consumerClosed)`,
        trio(s.lastReceiverNotified),
        trio(b.lastReceiverNotified),
        r2(s.lastReceiverNotified.p95, b.lastReceiverNotified.p95),
        'p95 ≤ 20 ms',
        yes(s.lastReceiverNotified.p95 <= 20),
      );
    }
    const bs = k.browser.stagegate;
    const bb = k.browser.baseline;
    if (bs && bb) {
      add(
        '2 kick (browser)',
        `kick → viewer's last frame received, 0 = none after the kick (resolution: 1 frame, ${ms(bs.frameIntervalMs.p50)} ms), n=${bs.lastFrameReceived.n}`,
        trio(bs.lastFrameReceived),
        trio(bb.lastFrameReceived),
        '',
        '',
        '',
      );
      add(
        '2 kick (browser)',
        'frames received after the kick, p50 / max; frame counter still after 0.5 s',
        `${bs.framesAfterKick.p50} / ${bs.framesAfterKick.max}; ${bs.stoppedAfter500ms}/${bs.lastFrameReceived.n}`,
        `${bb.framesAfterKick.p50} / ${bb.framesAfterKick.max}; ${bb.stoppedAfter500ms}/${bb.lastFrameReceived.n}`,
        '',
      );
      add(
        '2 kick (browser)',
        "kick → viewer's track removed",
        trio(bs.trackRemoved),
        trio(bb.trackRemoved),
        r2(bs.trackRemoved.p50, bb.trackRemoved.p50),
      );
    }
  }

  const f = rep.fanout;
  if (f) {
    const cell = (cores: number, perPacket: number, loss: number, worst: number, wait: number) =>
      `${pct(cores, 1)} core, ${ms(perPacket)} µs/pkt, ${pct(loss, 2)} loss${worst > loss ? ` (worst window ${pct(worst, 2)})` : ''}, waited ${pct(wait, 0)}`;
    const range = (xs: number[]) =>
      xs.length > 1 ? ` (${round(Math.min(...xs), 2)}–${round(Math.max(...xs), 2)})` : '';
    for (const l of f.levels) {
      if (l.receivers === 0) continue;
      add(
        '3 fan-out',
        `N=${l.receivers} (${l.consumers} consumers): worker CPU, CPU per packet out, loss, worker waiting for a CPU${l.workerKeptUp ? '' : '; the worker fell behind the source'}`,
        cell(l.stagegateCores, l.stagegateCpuPerPacketUs, l.stagegateLoss, l.stagegateWorstLoss, l.stagegateWorkerWait),
        cell(l.baselineCores, l.baselineCpuPerPacketUs, l.baselineLoss, l.baselineWorstLoss, l.baselineWorkerWait),
        Number.isFinite(l.cpuRatio) ? `${l.cpuRatio}×${range(l.cpuRatios)}` : '–',
        'CPU ≤ 1.05×',
        yes(l.cpuRatio <= 1.05),
      );
    }
    const top =
      [...f.levels].reverse().find((l) => l.receivers > 0 && l.workerKeptUp) ??
      [...f.levels].reverse().find((l) => l.receivers > 0);
    if (top) {
      add(
        '3 fan-out',
        `worker CPU per consumer above N=0, at N=${top.receivers} (µs of CPU per second)`,
        String(top.stagegateCpuPerConsumerUs),
        String(top.baselineCpuPerConsumerUs),
        r2(top.stagegateCpuPerConsumerUs, top.baselineCpuPerConsumerUs),
      );
    }
    const pooled = pooledRatio(f.levels.filter((l) => l.receivers >= 50).flatMap((l) => l.cpuRatios));
    if (pooled.n > 1) {
      add(
        '3 fan-out',
        `worker CPU ratio pooled over every level N ≥ 50 (${pooled.n} back-to-back window pairs): geometric mean [95% CI]`,
        '',
        '',
        `${pooled.mean}× [${pooled.lo}–${pooled.hi}]`,
        'CPU ≤ 1.05×',
        yes(pooled.mean <= 1.05),
      );
    }
    // Every window of the level under 0.5% loss, and the worker keeping up with the source.
    const fine = (l: FanoutResult['levels'][number], worst: number) =>
      l.receivers > 0 && worst < 0.005 && l.workerKeptUp;
    const best = Math.max(0, ...f.levels.filter((l) => fine(l, l.stagegateWorstLoss)).map((l) => l.consumers));
    const bestB = Math.max(0, ...f.levels.filter((l) => fine(l, l.baselineWorstLoss)).map((l) => l.consumers));
    add(
      '3 fan-out',
      `most consumers on one worker with < 0.5% loss in every window and the worker keeping up (levels ${f.levels.map((l) => l.receivers).join(', ')}${f.skippedLevels.length ? `; skipped ${f.skippedLevels.join(', ')}` : ''})`,
      String(best),
      String(bestB),
      '',
      '≥ 500',
      yes(best >= 500),
    );
  }

  for (const s of rep.signaling?.sizes ?? []) {
    const g = s.stagegate;
    const b = s.baseline;
    const n = s.participants;
    const bench = `4 signaling (${n.toLocaleString('en')}, hidden)`;
    // goals: 1,000 joined < 3 s, 5,000 < 15 s (3 ms per participant)
    const joinGoalMs = 3 * n;
    add(
      bench,
      `${g.participants} participants join one hidden room (${g.joined} ok): time until all joined`,
      `${ms(g.allJoinedMs)} ms`,
      `${ms(b.allJoinedMs)} ms`,
      r2(g.allJoinedMs, b.allJoinedMs),
      `< ${ms(joinGoalMs)} ms`,
      yes(g.joined === g.participants && g.allJoinedMs < joinGoalMs),
    );
    add(
      bench,
      'joinRoom ack, p50 / p99 / max',
      trio(g.joinAckMs, ['p50', 'p99', 'max']),
      trio(b.joinAckMs, ['p50', 'p99', 'max']),
      r2(g.joinAckMs.p99, b.joinAckMs.p99),
    );
    add(
      bench,
      `${g.requestAtOnce.n} requestAccess at once: ack p50 / p99 / max`,
      trio(g.requestAtOnce.ackMs, ['p50', 'p99', 'max']),
      trio(b.requestAtOnce.ackMs, ['p50', 'p99', 'max']),
      r2(g.requestAtOnce.ackMs.p99, b.requestAtOnce.ackMs.p99),
      'p99 < 100 ms',
      yes(g.requestAtOnce.ackMs.p99 < 100),
    );
    add(
      bench,
      `grantAccess of ${g.grant.batch} in one call: ack p50 / p99 / max (${g.grant.calls} calls)`,
      trio(g.grant.ackMs, ['p50', 'p99', 'max']),
      trio(b.grant.ackMs, ['p50', 'p99', 'max']),
      r2(g.grant.ackMs.p50, b.grant.ackMs.p50),
      'p99 < 50 ms',
      yes(g.grant.ackMs.p99 < 50),
    );
    add(
      bench,
      'grant → granted viewer told, p50 / p99 / max',
      trio(g.grant.notifiedMs, ['p50', 'p99', 'max']),
      '–',
      '',
    );
    const seen = (v: IdleViewer) =>
      Object.keys(v.byName).length === 0
        ? 'nothing'
        : `${Object.entries(v.byName)
            .map(([name, count]) => `${name} ×${count}`)
            .join(', ')}${v.audienceCountMinGapMs === null ? '' : ` (min gap ${ms(v.audienceCountMinGapMs)} ms)`}`;
    const onlyCount = (v: IdleViewer) =>
      Object.keys(v.byName).every((name) => name === 'audienceCount') &&
      (v.audienceCountMinGapMs === null || v.audienceCountMinGapMs >= 950); // 1 s on the server; client-side jitter
    add(
      bench,
      `an idle viewer during the ${g.requestAtOnce.n} requests and the second after (${g.idleViewer.seconds} s): what it received`,
      seen(g.idleViewer),
      seen(b.idleViewer),
      '',
      'only audienceCount, ≤ 1/s',
      yes(onlyCount(g.idleViewer)),
    );
    add(
      bench,
      `the same viewer during the grants (${g.idleViewerDuringGrants.seconds} s; the granted become stage people)`,
      seen(g.idleViewerDuringGrants),
      seen(b.idleViewerDuringGrants),
      '',
    );
    for (const m of ['joinRoom', 'stage.requestAccess', 'stage.grantAccess']) {
      const sg = g.server.ms[m];
      const sb = b.server.ms[m];
      if (sg)
        add(
          bench,
          `server time in ${m} (dispatch → ack, no queueing), p50 / p99 / max`,
          trio(sg, ['p50', 'p99', 'max']),
          trio(sb, ['p50', 'p99', 'max']),
          sb ? r2(sg.p50, sb.p50) : '',
        );
    }
    add(
      bench,
      'server event-loop utilization: join / requests / grants',
      ['join', 'requestAccess', 'grantAccess'].map((k) => pct(g.server.elu[k] ?? NaN, 0)).join(' / '),
      ['join', 'requestAccess', 'grantAccess'].map((k) => pct(b.server.elu[k] ?? NaN, 0)).join(' / '),
      '',
    );
    const phases = ['join', 'requestAccess', 'grantAccess'] as const;
    const load = (r: SignalingSystemResult) =>
      r.loadGenerator
        ? phases
            .map((k) => `${round(r.loadGenerator[k].cores, 2)} (server ${round(r.loadGenerator[k].serverCores, 2)})`)
            .join(' / ')
        : '–';
    add(bench, 'load generator CPU in cores (server cores): join / requests / grants', load(g), load(b), '');
    add(
      bench,
      'server memory per idle participant (RSS; JS heap + external)',
      `${round(g.idle.rssBytesPerParticipant / 1024, 1)} KB; ${round(g.idle.heapBytesPerParticipant / 1024, 1)} KB`,
      `${round(b.idle.rssBytesPerParticipant / 1024, 1)} KB; ${round(b.idle.heapBytesPerParticipant / 1024, 1)} KB`,
      r2(g.idle.rssBytesPerParticipant, b.idle.rssBytesPerParticipant),
      '< 50 KB',
      yes(g.idle.rssBytesPerParticipant < 50 * 1024),
    );
    add(
      bench,
      'server CPU idle (all joined), per participant',
      `${round(g.idle.cpuMicrosPerSecondPerParticipant, 2)} µs/s`,
      `${round(b.idle.cpuMicrosPerSecondPerParticipant, 2)} µs/s`,
      '',
    );
    add(
      bench,
      'server CPU to join everyone',
      `${g.joinServerCpuSeconds} s`,
      `${b.joinServerCpuSeconds} s`,
      r2(g.joinServerCpuSeconds, b.joinServerCpuSeconds),
    );
  }
  spreadRows(rep.spread, add);
  simulcastRows(rep.simulcast, add);
  return out;
}

/** Benchmark 6 rows: the Stagegate column is the simulcast camera, the Baseline column one stream. */
function simulcastRows(
  sc: SimulcastResult | undefined,
  add: (b: string, m: string, s: string, bl: string, r: string, t?: string, met?: string) => void,
): void {
  if (!sc) return;
  const B = '6 simulcast vs one stream';
  const { simulcast: s, single: o } = sc;
  add(
    B,
    `worker CPU per video consumer (${sc.viewers} viewers, 1280x720 camera)`,
    `${s.cpuPerConsumerUs} µs/s`,
    `${o.cpuPerConsumerUs} µs/s`,
    r2(s.cpuPerConsumerUs, o.cpuPerConsumerUs),
  );
  for (const t of ['small', 'medium', 'large'] as const) {
    add(
      B,
      `video downlink per viewer, ${t} tile (layer ${s.layer[t]})`,
      `${s.downlinkKbps[t]} kbit/s`,
      `${o.downlinkKbps[t]} kbit/s`,
      r2(s.downlinkKbps[t], o.downlinkKbps[t]),
    );
  }
}

/** Benchmark 5 rows: the Stagegate column is the 2-worker server, the Baseline column the 1-worker one. */
function spreadRows(
  sp: SpreadResult | undefined,
  add: (b: string, m: string, s: string, bl: string, r: string, t?: string, met?: string) => void,
): void {
  if (!sp) return;
  const B = '5 fan-out, 2 workers vs 1';
  for (const l of sp.levels) {
    if (l.receivers === 0) continue;
    const machine = l.saturated ? '; machine saturated' : '';
    add(
      B,
      `N=${l.receivers} (${l.consumers} consumers): worker CPU (2 workers: origin + edge), consumers each worker carries, worst loss${machine}`,
      `${l.twoWorkerCores.map((c) => pct(c, 1)).join(' + ')} core, ${l.twoWorkerConsumers.join(' + ')} consumers, ${pct(l.twoWorstLoss, 2)} loss${l.keptUp.two ? '' : ', fell behind'}`,
      `${pct(l.oneCores, 1)} core, ${l.consumers} consumers, ${pct(l.oneWorstLoss, 2)} loss${l.keptUp.one ? '' : ', fell behind'}`,
      r2(l.twoCores, l.oneCores),
    );
  }
  add(
    B,
    `most consumers of one room with < 0.5% loss in every window (levels ${sp.levels.map((l) => l.receivers).join(', ')}${sp.skippedLevels.length ? `; skipped ${sp.skippedLevels.join(', ')}` : ''})`,
    String(sp.mostConsumers.two),
    String(sp.mostConsumers.one),
    r2(sp.mostConsumers.two, sp.mostConsumers.one),
    '≥ 1.8×',
    yes(sp.mostConsumers.one > 0 && sp.mostConsumers.two >= 1.8 * sp.mostConsumers.one),
  );
  const c = sp.cpuPerConsumer;
  add(
    B,
    `worker CPU per consumer above N=0, all workers together: with pipes (2 workers) vs without (1), at N=${c.receivers} (µs of CPU per second)`,
    String(c.two),
    String(c.one),
    Number.isFinite(c.ratio) ? `${c.ratio}×` : '–',
    '≤ 1.10×',
    yes(c.ratio <= 1.1),
  );
  const top = [...sp.levels].reverse().find((l) => l.receivers > 0);
  if (top) {
    add(
      B,
      `2 workers at N=${top.receivers}: consumers each worker carries (origin + edge) and its CPU per consumer (µs/s)`,
      top.twoWorkerConsumers.map((n, i) => `${n} @ ${top.twoWorkerCpuPerConsumerUs[i]}`).join(' + '),
      `${top.consumers} @ ${top.oneCpuPerConsumerUs}`,
      '',
    );
  }
}

/** Geometric mean of ratios with a normal-approximation 95% confidence interval on the logs. */
export function pooledRatio(xs: number[]): { n: number; mean: number; lo: number; hi: number } {
  const ls = xs.filter((x) => x > 0 && Number.isFinite(x)).map(Math.log);
  const n = ls.length;
  if (n < 2) return { n, mean: NaN, lo: NaN, hi: NaN };
  const m = ls.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(ls.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1));
  const h = (1.96 * sd) / Math.sqrt(n);
  return { n, mean: round(Math.exp(m), 3), lo: round(Math.exp(m - h), 3), hi: round(Math.exp(m + h), 3) };
}

const HEAD: (keyof Row)[] = ['benchmark', 'metric', 'stagegate', 'baseline', 'ratio', 'target', 'met'];
const TITLES: Record<keyof Row, string> = {
  benchmark: 'Benchmark',
  metric: 'Metric',
  stagegate: 'Stagegate',
  baseline: 'Baseline',
  ratio: 'Ratio',
  target: 'Target',
  met: 'Met',
};

export function markdownTable(rs: Row[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`| ${HEAD.map((h) => TITLES[h]).join(' | ')} |`, `|${HEAD.map(() => '---').join('|')}|`];
  for (const r of rs) lines.push(`| ${HEAD.map((h) => esc(r[h])).join(' | ')} |`);
  return lines.join('\n');
}

export function consoleTable(rs: Row[]): string {
  const widths = HEAD.map((h) => Math.max(TITLES[h].length, ...rs.map((r) => r[h].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [
    line(HEAD.map((h) => TITLES[h])),
    line(widths.map((w) => '-'.repeat(w))),
    ...rs.map((r) => line(HEAD.map((h) => r[h]))),
  ].join('\n');
}

/** The join breakdown (median ms after t0 per milestone), as Markdown. */
export function joinBreakdownTable(j: JoinResult): string {
  const variants = Object.keys(j.cold);
  const keys = [...new Set(variants.flatMap((v) => Object.keys(j.cold[v]!.breakdownMedian)))];
  const lines = [
    `| milestone (median ms after t0, cold) | ${variants.join(' | ')} |`,
    `|---|${variants.map(() => '---').join('|')}|`,
  ];
  for (const k of keys)
    lines.push(`| ${k} | ${variants.map((v) => ms(j.cold[v]!.breakdownMedian[k] ?? NaN)).join(' | ')} |`);
  const late = (r: JoinVariantResult) => `${r.lateResumes} of ${r.samples.length}`;
  const wait = (r: JoinVariantResult) =>
    r.keyFrameWait.n ? `${ms(r.keyFrameWait.p50)} / ${ms(r.keyFrameWait.max)}` : '–';
  lines.push(
    `| viewer consumer resumed after the first key frame passed (samples) | ${variants.map((v) => late(j.cold[v]!)).join(' | ')} |`,
  );
  lines.push(`| those: resume → key frame sent, p50 / max | ${variants.map((v) => wait(j.cold[v]!)).join(' | ')} |`);
  return lines.join('\n');
}
