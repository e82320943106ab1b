/**
 * `npm run bench` (or `npx tsx test/bench/run.ts`): runs every benchmark against the baseline,
 * prints the summary as a table and as Markdown (for the README), and writes everything (machine,
 * raw samples, percentiles) to bench-results/latest.json.
 *
 *   BENCH_SMOKE=1            tiny sizes (what the test suite runs), written to bench-results/smoke.json
 *   BENCH_ONLY=join,fanout   a subset (join, kick, fanout, signaling, spread)
 *   BENCH_OUT=path.json      another output file
 *   BENCH_SIGNALING_SIZES=1000  the signaling benchmark's room sizes (default 1000,5000)
 *   BENCH_JOIN_SAMPLES=10    join samples per variant (default 30; a quick look at one change)
 *   BENCH_JOIN_VARIANTS=stagegate/thin-client-720p,baseline/raw  only these join variants
 *                            (…-rtt50 variants, on request only: the speaker's signaling 50 ms away)
 *   BENCH_JOIN_RTP=1         the join samples' events also list every video frame end (first 600 ms)
 *   BENCH_CPU_PROF=dir       --cpu-prof for the signaling server children (profiles land in dir)
 *   BENCH_RENDER=file.json   print the tables of an earlier run again (no benchmark runs)
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BENCH_NAMES,
  consoleTable,
  joinBreakdownTable,
  machineLine,
  markdownTable,
  rows,
  runBenchmarks,
  type BenchName,
  type BenchReport,
} from './bench.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const smoke = ['1', 'true'].includes(process.env.BENCH_SMOKE ?? '');
const only = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is BenchName => (BENCH_NAMES as string[]).includes(s));
const out = process.env.BENCH_OUT ?? path.join(ROOT, 'bench-results', smoke ? 'smoke.json' : 'latest.json');

const render = process.env.BENCH_RENDER;
let report: BenchReport;
if (render) {
  report = JSON.parse(fs.readFileSync(render, 'utf8')) as BenchReport;
  report.rows = rows(report);
} else {
  report = await runBenchmarks({ smoke, only });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // NaN / Infinity (a figure that could not be measured) become null.
  const json = JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  fs.writeFileSync(out, `${json}\n`);
}

console.log('');
console.log(consoleTable(report.rows));
console.log('');
console.log(`Machine: ${machineLine(report.machine)}`);
console.log('');
console.log('Markdown:');
console.log('');
console.log(markdownTable(report.rows));
if (report.join) {
  console.log('');
  console.log(joinBreakdownTable(report.join));
}
console.log('');
console.log(`*${machineLine(report.machine)}; ${report.durationS} s; \`npm run bench\`.*`);
for (const [name, err] of Object.entries(report.errors)) console.log(`\n${name} FAILED:\n${err}`);
if (!render) console.log(`\nwrote ${path.relative(process.cwd(), out)} (${report.durationS} s)`);
process.exit(Object.keys(report.errors).length ? 1 : 0);
