/**
 * The benchmarks at tiny sizes, so they cannot rot: every benchmark must run and produce
 * well-formed numbers. No target is asserted here (benchmarks assert nothing in CI); see
 * `npm run bench` for the real figures.
 */
import { describe, expect, it } from 'vitest';
import { markdownTable, runBenchmarks, type BenchReport } from './bench.js';
import type { Summary } from './stats.js';

function expectSummary(s: Summary | undefined, what: string, minN = 1): void {
  expect(s, what).toBeDefined();
  expect(s!.n, `${what}: n`).toBeGreaterThanOrEqual(minN);
  for (const k of ['min', 'p50', 'p95', 'p99', 'max'] as const) {
    expect(Number.isFinite(s![k]), `${what}: ${k} = ${s![k]}`).toBe(true);
  }
  expect(s!.p50).toBeLessThanOrEqual(s!.max);
  expect(s!.min).toBeLessThanOrEqual(s!.p50);
}

const finite = (v: number, what: string) => expect(Number.isFinite(v), `${what} = ${v}`).toBe(true);

describe('benchmarks (smoke sizes)', () => {
  it(
    'runs join, kick, fan-out, signaling and fan-out across workers against the baseline and reports well-formed numbers',
    { timeout: 90_000 },
    async () => {
      const lines: string[] = [];
      const report: BenchReport = await runBenchmarks({ smoke: true, log: (m) => lines.push(m) });
      expect(report.errors, lines.join('\n')).toEqual({});

      // machine line
      expect(report.machine.cores).toBeGreaterThan(0);
      expect(report.machine.mediasoup).toMatch(/^\d+\.\d+\.\d+/);

      // 1. join: every variant produced latencies
      const join = report.join!;
      for (const mode of ['cold', 'warm'] as const) {
        for (const [variant, r] of Object.entries(join[mode])) {
          expect(r.failures, `${mode} ${variant}`).toEqual([]);
          expectSummary(r.firstFrame, `join ${mode} ${variant} firstFrame`, 2);
          expectSummary(r.firstAudio, `join ${mode} ${variant} firstAudio`, 2);
          expect(r.firstFrame.min).toBeGreaterThan(0);
        }
      }
      expect(Object.keys(join.cold)).toEqual([
        'stagegate/thin-client',
        'stagegate/thin-client-720p',
        'stagegate/thin-client-720p-unprepared',
        'stagegate/raw',
        'baseline/raw',
      ]);
      finite(
        join.cold['stagegate/thin-client']!.breakdownMedian['video producer created']!,
        'breakdown: video producer created',
      );

      // 2. kick
      const kick = report.kick!;
      for (const system of ['stagegate', 'baseline']) {
        expectSummary(kick.raw[system]!.workerClosed, `kick ${system} workerClosed`, 2);
        expectSummary(kick.raw[system]!.lastReceiverNotified, `kick ${system} lastReceiverNotified`, 2);
        expectSummary(kick.browser[system]!.trackRemoved, `kick ${system} browser trackRemoved`, 1);
        expectSummary(kick.browser[system]!.lastFramePainted, `kick ${system} browser lastFramePainted`, 1);
      }

      // 3. fan-out: media flowed to every consumer and the worker's CPU was measured
      const fan = report.fanout!;
      const top = fan.levels.at(-1)!;
      expect(top.receivers).toBe(5);
      for (const w of [...top.stagegate, ...top.baseline]) {
        expect(w.cores).toBeGreaterThan(0);
        expect(w.consumersReceiving).toBe(10);
        finite(w.loss, 'fan-out loss');
        expect(w.packetsPerSecond).toBeGreaterThan(0);
      }
      finite(top.cpuRatio, 'fan-out cpu ratio');

      // 4. signaling
      const signaling = report.signaling!.sizes[0]!;
      expect(signaling.participants).toBe(20);
      for (const system of ['stagegate', 'baseline'] as const) {
        const s = signaling[system];
        expect(s.joined, `${system} joined`).toBe(20);
        expectSummary(s.joinAckMs, `${system} joinAck`, 20);
        expectSummary(s.requestAtOnce.ackMs, `${system} requestAccess ack`, 10);
        expectSummary(s.grant.ackMs, `${system} grant ack`, 2);
        finite(s.idle.rssBytesPerParticipant, `${system} rss per participant`);
        finite(s.idle.heapBytesPerParticipant, `${system} heap per participant`);
      }
      expectSummary(signaling.stagegate.grant.notifiedMs, 'grant notified', 10);
      // the idle viewer of the hidden room hears only the audience count; the load generator's CPU is measured
      expect(Object.keys(signaling.stagegate.idleViewer.byName).filter((n) => n !== 'audienceCount')).toEqual([]);
      for (const phase of ['join', 'requestAccess', 'grantAccess'] as const) {
        finite(signaling.stagegate.loadGenerator[phase].cores, `load generator ${phase}`);
      }

      // 5. fan-out across workers: media flowed to every consumer on both workers
      const sp = report.spread!;
      const l = sp.levels.at(-1)!;
      expect(l.receivers).toBe(4);
      for (const w of [...l.one, ...l.two]) {
        expect(w.consumersReceiving).toBe(8);
        finite(w.loss, 'spread loss');
      }
      expect(l.two[0]!.workerCores).toHaveLength(2);
      // spread from the first receiver: both workers carry consumers (the origin its pipe consumers too)
      expect(l.twoWorkerConsumers.every((n) => n > 0)).toBe(true);
      expect(l.twoWorkerConsumers.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(8);
      finite(l.twoCpuPerConsumerUs, 'spread cpu per consumer');

      // 6. simulcast vs one stream: CPU and downlink measured; the small tile got the low layer
      const sc = report.simulcast!;
      for (const mode of [sc.simulcast, sc.single]) {
        finite(mode.cpuPerConsumerUs, 'simulcast cpu per consumer');
        for (const t of ['small', 'medium', 'large'] as const) expect(mode.downlinkKbps[t]).toBeGreaterThan(0);
      }
      expect(sc.simulcast.layer.small).toBe(0);

      // the report renders, and survives JSON
      expect(report.rows.length).toBeGreaterThan(8);
      expect(markdownTable(report.rows)).toContain('| Benchmark |');
      expect(JSON.parse(JSON.stringify(report)).rows).toHaveLength(report.rows.length);
    },
  );
});
