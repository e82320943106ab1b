/**
 * Linux /proc readers: a process's CPU time (utime + stime), the machine's busy share, the
 * kernel's UDP drop counters. No dependency; Linux only (the bench machine).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
export function processRssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * Scheduler accounting of every thread of a process (/proc/<pid>/task/<tid>/schedstat): time on a
 * CPU and time runnable but waiting for one, in nanoseconds. Finer than utime + stime (10 ms ticks).
 */
export function processSchedstat(pid: number): { cpuNs: number; waitNs: number } | undefined {
  try {
    let cpuNs = 0;
    let waitNs = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      cpuNs += run ?? 0;
      waitNs += wait ?? 0;
    }
    return { cpuNs, waitNs };
  } catch {
    return undefined;
  }
}

export interface MachineCpu {
  busy: number;
  total: number;
}

/** Machine-wide CPU jiffies (all cores) from /proc/stat. */
export function machineCpu(): MachineCpu {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Share of all cores busy between two machineCpu() readings (0..1). */
export function machineBusyShare(a: MachineCpu, b: MachineCpu): number {
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : NaN;
}

/** The kernel's UDP counters (/proc/net/snmp): RcvbufErrors counts datagrams dropped at a full socket buffer. */
export function udpCounters(): Record<string, number> {
  const lines = fs
    .readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const [head, values] = lines;
  if (!head || !values) return {};
  const keys = head.split(/\s+/).slice(1);
  const vals = values.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i] ?? NaN]));
}

/** Measures a process's CPU use over `ms`: CPU seconds per wall second (1.0 = one full core). */
export class CpuWindow {
  readonly #pid: number;
  readonly #cpu0: number;
  readonly #t0: number;
  readonly #m0: MachineCpu;
  readonly #s0: { cpuNs: number; waitNs: number } | undefined;

  constructor(pid: number) {
    this.#pid = pid;
    this.#cpu0 = processCpuSeconds(pid);
    this.#s0 = processSchedstat(pid);
    this.#t0 = performance.now();
    this.#m0 = machineCpu();
  }

  /**
   * `cores`: utime + stime per wall second (1 = one core; 10 ms tick resolution);
   * `schedCores` / `waitShare`: the same from schedstat (ns resolution), and the share of the
   * window the process was runnable but waiting for a CPU (starved by other load);
   * `machineBusy`: share of all cores busy.
   */
  end(): {
    cores: number;
    cpuSeconds: number;
    seconds: number;
    machineBusy: number;
    schedCores: number;
    waitShare: number;
  } {
    const cpuSeconds = processCpuSeconds(this.#pid) - this.#cpu0;
    const s1 = processSchedstat(this.#pid);
    const seconds = (performance.now() - this.#t0) / 1000;
    const s0 = this.#s0;
    return {
      cores: cpuSeconds / seconds,
      cpuSeconds,
      seconds,
      machineBusy: machineBusyShare(this.#m0, machineCpu()),
      schedCores: s0 && s1 ? (s1.cpuNs - s0.cpuNs) / 1e9 / seconds : NaN,
      waitShare: s0 && s1 ? (s1.waitNs - s0.waitNs) / 1e9 / seconds : NaN,
    };
  }
}

export function cores(): number {
  return os.availableParallelism();
}
