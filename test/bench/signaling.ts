/**
 * Benchmark 4: signaling scale. The server runs in a child process (server-child.ts, with
 * --expose-gc) so its CPU (/proc/<pid>/stat) and memory (process.memoryUsage after gc) are its
 * own; N raw socket.io-client participants (websocket transport) live in this process.
 *
 * 1. N participants (1 host + N-1 viewers) connect and `joinRoom`, at most `concurrency` in
 *    flight: connect time, joinRoom ack latency, time until all joined.
 * 2. Idle: once no notification arrived for 300 ms, gc; memory per idle participant against the
 *    server before anyone joined, and CPU over an idle window.
 * 3. `requesters` viewers send `stage.requestAccess` at once: ack latency of each.
 * 4. The host grants `grantBatch` of them in one `stage.grantAccess` call, until all are granted:
 *    ack latency of each call, and when each granted viewer got its `stageStatusUpdate`.
 *
 * 5. During 3 (and the second after it), and apart during 4, one idle viewer (neither
 *    requester nor granted) records every notification it receives, `batch` items counted one by
 *    one: in Stagegate's `hidden` room (the default, what this benchmark runs) the burst should
 *    bring it nothing but `audienceCount`, at most once a second; grants do make the granted
 *    appear to everyone (they become stage people).
 *
 * Each size in `participants` runs both systems. The load generator (this process) shares the
 * machine with the server: its own CPU per phase is reported next to the server's.
 *
 * The baseline runs the same client code: its joinRoom only records the peer (no peer list, no
 * broadcast) and its `stage.*` requests are acked with no logic, so it measures socket.io itself.
 */
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import { TokenService } from '../../server/auth/tokens.js';
import { forkTs, type Child } from './child.js';
import { CpuWindow } from './proc.js';
import { mapLimit, round, roundAll, sleep, summarize, wall, type Summary } from './stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface SignalingOptions {
  /** Room sizes; each runs Stagegate and the baseline. */
  participants: number[];
  requesters: number;
  grantBatch: number;
  concurrency: number;
  idleWindowMs: number;
  log: (msg: string) => void;
}

export interface SignalingSystemResult {
  participants: number;
  joined: number;
  allJoinedMs: number;
  connectMs: Summary;
  joinAckMs: Summary;
  joinServerCpuSeconds: number;
  notificationsReceived: number;
  notificationBytesApprox: number;
  idle: {
    rssBytesPerParticipant: number;
    heapBytesPerParticipant: number;
    cpuCoresIdle: number;
    cpuMicrosPerSecondPerParticipant: number;
    rssBefore: number;
    rssAfter: number;
    heapBefore: number;
    heapAfter: number;
  };
  requestAtOnce: { n: number; ackMs: Summary; allAckedMs: number; serverCpuSeconds: number };
  grant: { calls: number; batch: number; ackMs: Summary; notifiedMs: Summary; samples: number[] };
  /**
   * What one idle viewer received during the request burst and the second after it: notifications by name
   * (`batch` items counted one by one), frames, and the shortest gap between two `audienceCount`.
   */
  idleViewer: IdleViewer;
  /** The same during the grants: the granted become stage people, so everyone sees them arrive. */
  idleViewerDuringGrants: IdleViewer;
  /** The load generator's CPU (this process) next to the server's, per phase: cores used, and share of the machine. */
  loadGenerator: Record<
    'join' | 'requestAccess' | 'grantAccess',
    { cores: number; machineShare: number; serverCores: number }
  >;
  /** Server-side request time (dispatch → ack, no queueing) per method, and event-loop utilization per phase. */
  server: { ms: Record<string, Summary>; elu: Record<string, number> };
  clientLoopDelayP99Ms: number;
  failures: string[];
}

export type SignalingPair = Record<'stagegate' | 'baseline', SignalingSystemResult> & { participants: number };
export interface SignalingResult {
  /** One per room size, in the order of `participants`. */
  sizes: SignalingPair[];
}

export async function benchSignaling(opts: SignalingOptions): Promise<SignalingResult> {
  const sizes: SignalingPair[] = [];
  for (const participants of opts.participants) {
    const stagegate = await runOne('stagegate', participants, opts);
    const baseline = await runOne('baseline', participants, opts);
    sizes.push({ participants, stagegate, baseline });
  }
  return { sizes };
}

export interface IdleViewer {
  frames: number;
  byName: Record<string, number>;
  audienceCountMinGapMs: number | null;
  seconds: number;
}

/** Records what one client receives, `batch` frames opened (their items counted one by one). */
class Watch {
  frames = 0;
  readonly byName: Record<string, number> = {};
  readonly audienceCountAt: number[] = [];
  #on = false;
  #t0 = 0;
  #seconds = 0;

  start(): void {
    this.#on = true;
    this.#t0 = performance.now();
  }

  stop(): void {
    this.#on = false;
    this.#seconds = (performance.now() - this.#t0) / 1000;
  }

  record(name: string, data: unknown): void {
    if (!this.#on) return;
    this.frames++;
    const names = name === 'batch' ? (data as { items: [string][] }).items.map(([n]) => n) : [name];
    for (const n of names) {
      this.byName[n] = (this.byName[n] ?? 0) + 1;
      if (n === 'audienceCount') this.audienceCountAt.push(performance.now());
    }
  }

  result(): IdleViewer {
    const gaps = this.audienceCountAt.slice(1).map((t, i) => t - this.audienceCountAt[i]!);
    return {
      frames: this.frames,
      byName: this.byName,
      audienceCountMinGapMs: gaps.length ? round(Math.min(...gaps), 1) : null,
      seconds: round(this.#seconds, 2),
    };
  }
}

/** A socket.io participant that only counts what it receives (no per-message storage). */
class LeanClient {
  static lastNotificationAt = 0;
  static notifications = 0;
  static bytes = 0;
  accepted: number | undefined;
  watch: Watch | undefined;

  private constructor(readonly socket: Socket) {
    socket.onAny((name: string, data: unknown) => {
      this.watch?.record(name, data);
      LeanClient.lastNotificationAt = performance.now();
      LeanClient.notifications++;
      if (name === 'participantJoined' || name === 'stageAccessRequestUpdate')
        LeanClient.bytes += JSON.stringify(data).length;
      if (name === 'stageStatusUpdate' && (data as { new?: string }).new === 'ACCEPTED_TO_JOIN_STAGE')
        this.accepted ??= wall();
    });
  }

  static connect(url: string, auth: Record<string, string>): Promise<LeanClient> {
    const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connect timeout')), 20_000);
      socket.once('connect', () => {
        clearTimeout(t);
        resolve(new LeanClient(socket));
      });
      socket.once('connect_error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** Sends a request; resolves with its ack latency in ms (throws on refusal or timeout). */
  async request(method: string, data: unknown = {}): Promise<number> {
    return (await this.call(method, data)).ms;
  }

  async call(method: string, data: unknown = {}): Promise<{ ms: number; data: unknown }> {
    const t0 = wall();
    const ack = (await this.socket.timeout(30_000).emitWithAck(method, data)) as {
      ok: boolean;
      data?: unknown;
      error?: { message: string };
    };
    if (!ack.ok) throw new Error(`${method}: ${ack.error?.message}`);
    return { ms: wall() - t0, data: ack.data };
  }

  close(): void {
    this.socket.disconnect();
  }
}

async function stats(child: Child): Promise<{ rss: number; heap: number }> {
  await child.call('gc');
  await sleep(200);
  await child.call('gc');
  const { memory } = await child.call<{ memory: NodeJS.MemoryUsage }>('stats');
  return { rss: memory.rss, heap: memory.heapUsed + memory.external };
}

async function waitQuiet(quietMs: number, maxMs: number): Promise<void> {
  const end = performance.now() + maxMs;
  while (performance.now() < end && performance.now() - LeanClient.lastNotificationAt < quietMs) await sleep(50);
}

async function runOne(
  kind: 'stagegate' | 'baseline',
  participants: number,
  opts: SignalingOptions,
): Promise<SignalingSystemResult> {
  const secret = randomBytes(32).toString('base64url');
  process.env.BENCH_TOKEN_SECRET = secret;
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = await forkTs(path.join(HERE, 'server-child.ts'), [kind], ['--expose-gc', ...prof]);
  const url = String(child.info.url);
  const tokens = new TokenService(secret);
  const failures: string[] = [];
  const clients: LeanClient[] = [];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const serverMs: Record<string, number[]> = {};
  const elu: Record<string, number> = {};
  const phase = async (name: string) => {
    const t = await child.call<{ timings: Record<string, number[]>; elu: number }>('timings');
    elu[name] = round(t.elu, 3);
    for (const [m, v] of Object.entries(t.timings)) (serverMs[m] ??= []).push(...v);
  };
  try {
    const auth = async (userId: string, preset: 'host' | 'viewer'): Promise<Record<string, string>> =>
      kind === 'stagegate'
        ? { token: await tokens.mint({ userId, name: userId, roomId: 'signaling', preset }) }
        : { userId };
    // Every participant declares the router's capabilities, as a real receiver does (about 2 KB).
    const join = async (c: LeanClient) => {
      const { data } = await c.call('getRouterRtpCapabilities');
      return c.request('joinRoom', { rtpCapabilities: (data as { rtpCapabilities: unknown }).rtpCapabilities });
    };

    // Warm-up (JIT, first-connection costs), then the empty-room reference.
    const warm = await Promise.all(
      Array.from({ length: 5 }, async (_, i) => LeanClient.connect(url, await auth(`warm${i}`, 'viewer'))),
    );
    for (const c of warm) await join(c);
    for (const c of warm) c.close();
    await sleep(300);
    const before = await stats(child);
    await phase('warm-up');

    // 1. join
    const ids = Array.from({ length: participants }, (_, i) => (i === 0 ? 'host' : `v${i}`));
    const auths = await Promise.all(ids.map((id, i) => auth(id, i === 0 ? 'host' : 'viewer')));
    LeanClient.notifications = 0;
    LeanClient.bytes = 0;
    loop.enable();
    const connectMs: number[] = [];
    const joinAckMs: number[] = [];
    const joinCpu = new CpuWindow(child.pid);
    const joinLoad = new CpuWindow(process.pid);
    const t0 = wall();
    await mapLimit(ids, opts.concurrency, async (_id, i) => {
      try {
        const c0 = wall();
        const c = await LeanClient.connect(url, auths[i]!);
        connectMs.push(wall() - c0);
        clients[i] = c;
        joinAckMs.push(await join(c));
      } catch (err) {
        failures.push(`join ${ids[i]}: ${(err as Error).message}`);
      }
    });
    const allJoinedMs = wall() - t0;
    await waitQuiet(300, 30_000);
    const joinServer = joinCpu.end();
    const joinServerCpu = joinServer.cpuSeconds;
    const loadGenerator = {} as SignalingSystemResult['loadGenerator'];
    const loadShare = (server: ReturnType<CpuWindow['end']>, load: ReturnType<CpuWindow['end']>) => ({
      cores: round(load.cores, 3),
      machineShare: round(load.cores / os.availableParallelism(), 3),
      serverCores: round(server.cores, 3),
    });
    loadGenerator.join = loadShare(joinServer, joinLoad.end());
    await phase('join');
    opts.log(
      `  signaling ${kind}: ${joinAckMs.length}/${participants} joined in ${round(allJoinedMs, 0)} ms, ${LeanClient.notifications} notifications`,
    );

    // 2. idle
    const after = await stats(child);
    await sleep(1000); // let the gc's background work finish
    const idleCpu = new CpuWindow(child.pid);
    await sleep(opts.idleWindowMs);
    const idle = idleCpu.end();
    const n = joinAckMs.length || 1;

    // 3. requests at once
    const requesters = clients.slice(1, 1 + opts.requesters).filter(Boolean);
    // an idle viewer, neither requester nor granted: what does the burst cost it?
    const watch = new Watch();
    const grantWatch = new Watch();
    const watcher = clients.at(-1);
    if (watcher && !requesters.includes(watcher)) watcher.watch = watch;
    watch.start();
    const reqCpu = new CpuWindow(child.pid);
    const reqLoad = new CpuWindow(process.pid);
    const r0 = wall();
    const reqAck = (
      await Promise.all(
        requesters.map((c) =>
          c.request('stage.requestAccess').catch((e: Error) => {
            failures.push(`requestAccess: ${e.message}`);
            return NaN;
          }),
        ),
      )
    ).filter((x) => Number.isFinite(x));
    const allAckedMs = wall() - r0;
    await waitQuiet(300, 30_000);
    const reqServer = reqCpu.end();
    const reqServerCpu = reqServer.cpuSeconds;
    loadGenerator.requestAccess = loadShare(reqServer, reqLoad.end());
    await sleep(1000); // and the second after it (a count would come within it)
    watch.stop();
    if (watcher?.watch) watcher.watch = grantWatch;
    grantWatch.start();
    await phase('requestAccess');

    // 4. grants, `grantBatch` per call
    const host = clients[0]!;
    const grantAck: number[] = [];
    const notified: number[] = [];
    const grantCpu = new CpuWindow(child.pid);
    const grantLoad = new CpuWindow(process.pid);
    for (let k = 0; k < requesters.length; k += opts.grantBatch) {
      const batch = requesters.slice(k, k + opts.grantBatch);
      const userIds = batch.map((c) => ids[clients.indexOf(c)]!);
      const g0 = wall();
      try {
        grantAck.push(await host.request('stage.grantAccess', { userIds }));
      } catch (e) {
        failures.push(`grantAccess: ${(e as Error).message}`);
      }
      if (kind === 'stagegate') {
        const end = performance.now() + 10_000;
        while (batch.some((c) => c.accepted === undefined) && performance.now() < end) await sleep(5);
        for (const c of batch) notified.push(c.accepted !== undefined ? c.accepted - g0 : NaN);
      }
      await waitQuiet(200, 10_000);
    }
    loadGenerator.grantAccess = loadShare(grantCpu.end(), grantLoad.end());
    grantWatch.stop();
    loop.disable();
    await phase('grantAccess');
    delete serverMs.getRouterRtpCapabilities;

    const result: SignalingSystemResult = {
      participants,
      joined: joinAckMs.length,
      allJoinedMs: round(allJoinedMs, 1),
      connectMs: summarize(roundAll(connectMs)),
      joinAckMs: summarize(roundAll(joinAckMs)),
      joinServerCpuSeconds: round(joinServerCpu, 3),
      notificationsReceived: LeanClient.notifications,
      notificationBytesApprox: LeanClient.bytes,
      idle: {
        rssBytesPerParticipant: round((after.rss - before.rss) / n, 0),
        heapBytesPerParticipant: round((after.heap - before.heap) / n, 0),
        cpuCoresIdle: round(idle.cores, 5),
        cpuMicrosPerSecondPerParticipant: round((idle.cores * 1e6) / n, 3),
        rssBefore: before.rss,
        rssAfter: after.rss,
        heapBefore: before.heap,
        heapAfter: after.heap,
      },
      requestAtOnce: {
        n: reqAck.length,
        ackMs: summarize(roundAll(reqAck)),
        allAckedMs: round(allAckedMs, 1),
        serverCpuSeconds: round(reqServerCpu, 3),
      },
      grant: {
        calls: grantAck.length,
        batch: opts.grantBatch,
        ackMs: summarize(roundAll(grantAck)),
        notifiedMs: summarize(roundAll(notified)),
        samples: roundAll(grantAck),
      },
      idleViewer: watch.result(),
      idleViewerDuringGrants: grantWatch.result(),
      loadGenerator,
      server: { ms: Object.fromEntries(Object.entries(serverMs).map(([m, v]) => [m, summarize(roundAll(v, 3))])), elu },
      clientLoopDelayP99Ms: round(loop.percentile(99) / 1e6, 1),
      failures: failures.slice(0, 20),
    };
    opts.log(
      `  signaling ${kind}: requestAccess x${reqAck.length} p50 ${result.requestAtOnce.ackMs.p50} / p99 ${result.requestAtOnce.ackMs.p99} ms; ` +
        `grant x${opts.grantBatch} ack p50 ${result.grant.ackMs.p50} ms; idle ${round(result.idle.rssBytesPerParticipant / 1024, 1)} KB RSS / participant`,
    );
    return result;
  } finally {
    for (const c of clients) c?.close();
    await child.stop();
  }
}
