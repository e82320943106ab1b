/**
 * Benchmark 5: fan-out of one room across workers. The same one on-stage speaker (synthetic VP8
 * 640x480 + Opus, as benchmark 3) to N receivers, in two Stagegate servers side by side in this
 * process: `1 worker` (the room's only router: no pipe) and `2 workers` (pool of two workers,
 * `maxConsumersPerRouter: 0`, so placement spreads the receivers from the first one: half of
 * them on the edge router, fed by one pipe per producer). The 1-worker server is the baseline.
 *
 * Receivers as in benchmark 3: raw socket.io participants whose recv transport is a
 * PlainTransport (SRTP AEAD_AES_256_GCM) made through the room's hook
 * (`room.openTransport(participant, 'recv', make)`: the server's own placement), sending to a
 * UDP socket per receiver in a counting child process; `consume` + `resumeConsumer` through the
 * server's handlers. Only the measured system's source sends.
 *
 * Per level and system, alternating order: each worker's CPU (schedstat, utime + stime when
 * unavailable), the consumers each worker carries (its routers' consumers, pipe consumers on the
 * origin included), loss from the receivers' sequence numbers, and the producers' packet count
 * against the source's (the origin kept up). Reported: the most consumers with < 0.5% loss in
 * every window, per system; worker CPU per consumer above N = 0 (all workers of the system
 * together, so the pipes' cost is in the 2-worker figure) and per worker.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { types as ms } from 'mediasoup';
import type { Room } from '../../server/room/Room.js';
import { connectRaw, joinRaw, startServer, type RawClient, type TestServer } from '../helpers/server.js';
import { createBenchWorker } from './baseline-server.js';
import { forkTs, type Child } from './child.js';
import { openPlain, packetCount, snapshot } from './fanout.js';
import { CpuWindow } from './proc.js';
import { sourceRtpParameters } from './rtp.js';
import { mapLimit, median, round, sleep } from './stats.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRTP_SUITE: ms.SrtpCryptoSuite = 'AEAD_AES_256_GCM';

export interface SpreadOptions {
  /** Receivers per level (each consumes audio and video: 2 consumers). */
  levels: number[];
  windowMs: number;
  warmupMs: number;
  reps: number;
  /** Levels not started within this budget (ms since the first window) are skipped. */
  budgetMs: number;
  log: (msg: string) => void;
}

type SystemName = 'one' | 'two';

interface System {
  name: SystemName;
  sg: TestServer;
  room: Room;
  workers: ms.Worker[];
  producerPort: number;
  producers: ms.Producer[];
  producerIds: string[];
  clients: RawClient[];
  receiverIds: string[];
  ssrcs: Set<number>;
  stop(): Promise<void>;
}

export interface SpreadWindow {
  /** CPU of each worker over the window, in cores; origin first. */
  workerCores: number[];
  workerPids: number[];
  /** Consumers each worker carries (its routers' consumers; pipe consumers included). */
  workerConsumers: number[];
  /** Share of the window each worker waited for a CPU. */
  workerWait: number[];
  loss: number;
  packetsPerSecond: number;
  consumersReceiving: number;
  sourcePps: number;
  workerInPps: number;
  machineBusy: number;
}

export interface SpreadLevel {
  receivers: number;
  consumers: number;
  one: SpreadWindow[];
  two: SpreadWindow[];
  /** Median CPU of the system's workers together, in cores. */
  oneCores: number;
  twoCores: number;
  /** Median CPU of each worker of the 2-worker system (origin, edge). */
  twoWorkerCores: number[];
  twoWorkerConsumers: number[];
  oneWorstLoss: number;
  twoWorstLoss: number;
  /** The origin took in ≥ 90% of what the source sent in every window. */
  keptUp: { one: boolean; two: boolean };
  saturated: boolean;
  /** Worker CPU per participant consumer above N = 0 (µs of CPU per second); all workers together. */
  oneCpuPerConsumerUs: number;
  twoCpuPerConsumerUs: number;
  /** The same per worker of the 2-worker system, per consumer it carries (origin, edge). */
  twoWorkerCpuPerConsumerUs: number[];
}

export interface SpreadResult {
  levels: SpreadLevel[];
  skippedLevels: number[];
  /** Most participant consumers with < 0.5% loss in every window and the origin keeping up. */
  mostConsumers: { one: number; two: number };
  /** Worker CPU per consumer with pipes (2 workers) / without (1 worker), at the highest level both passed. */
  cpuPerConsumer: { receivers: number; one: number; two: number; ratio: number };
  windowMs: number;
  reps: number;
}

export async function benchSpread(opts: SpreadOptions): Promise<SpreadResult> {
  const receivers = await forkTs(path.join(HERE, 'fanout-receiver.ts'));
  const sources = await forkTs(path.join(HERE, 'fanout-source.ts'));
  const systems: System[] = [];
  try {
    systems.push(await startSystem('one', 1, sources), await startSystem('two', 2, sources));
    const levels: SpreadLevel[] = [];
    const skippedLevels: number[] = [];
    const zero: Partial<Record<SystemName, number[]>> = {};
    const started = performance.now();
    for (const [li, n] of opts.levels.entries()) {
      if (performance.now() - started > opts.budgetMs) {
        skippedLevels.push(n);
        opts.log(`  spread N=${n}: skipped (time budget of ${opts.budgetMs / 1000} s used)`);
        continue;
      }
      for (const s of systems) await sources.call('target', { name: s.name });
      for (const s of systems) await grow(s, n, receivers, opts.log);
      const win: Record<SystemName, SpreadWindow[]> = { one: [], two: [] };
      for (let rep = 0; rep < opts.reps; rep++) {
        const order = (li + rep) % 2 === 0 ? systems : [...systems].reverse();
        for (const s of order) win[s.name].push(await measure(s, systems, receivers, sources, opts));
      }
      const perWorker = (name: SystemName) =>
        (win[name][0]?.workerCores ?? []).map((_, i) => median(win[name].map((w) => w.workerCores[i] ?? NaN)));
      const total = (name: SystemName) => perWorker(name).reduce((a, b) => a + b, 0);
      if (n === 0) for (const s of systems) zero[s.name] = perWorker(s.name);
      const sumZero = (name: SystemName) => (zero[name] ?? []).reduce((a, b) => a + b, 0);
      const perConsumer = (cores: number, idle: number, consumers: number) =>
        consumers > 0 ? round(((cores - idle) * 1e6) / consumers, 1) : NaN;
      const last = win.two.at(-1);
      const twoWorkerConsumers = last?.workerConsumers ?? [];
      const level: SpreadLevel = {
        receivers: n,
        consumers: 2 * n,
        one: win.one,
        two: win.two,
        oneCores: round(total('one'), 4),
        twoCores: round(total('two'), 4),
        twoWorkerCores: perWorker('two').map((c) => round(c, 4)),
        twoWorkerConsumers,
        oneWorstLoss: round(Math.max(...win.one.map((w) => w.loss)), 5),
        twoWorstLoss: round(Math.max(...win.two.map((w) => w.loss)), 5),
        keptUp: {
          one: win.one.every((w) => w.sourcePps === 0 || w.workerInPps >= 0.9 * w.sourcePps),
          two: win.two.every((w) => w.sourcePps === 0 || w.workerInPps >= 0.9 * w.sourcePps),
        },
        saturated: [...win.one, ...win.two].some((w) => w.machineBusy >= 0.95),
        oneCpuPerConsumerUs: perConsumer(total('one'), sumZero('one'), 2 * n),
        twoCpuPerConsumerUs: perConsumer(total('two'), sumZero('two'), 2 * n),
        twoWorkerCpuPerConsumerUs: perWorker('two').map((c, i) =>
          perConsumer(c, zero.two?.[i] ?? NaN, twoWorkerConsumers[i] ?? 0),
        ),
      };
      levels.push(level);
      opts.log(
        `  spread N=${n}: 1 worker ${round(level.oneCores * 100, 1)}% of a core, loss ≤ ${round(level.oneWorstLoss * 100, 3)}%; ` +
          `2 workers ${level.twoWorkerCores.map((c) => `${round(c * 100, 1)}%`).join(' + ')} ` +
          `carrying ${twoWorkerConsumers.join(' + ')} consumers, loss ≤ ${round(level.twoWorstLoss * 100, 3)}%; ` +
          `CPU per consumer ${level.oneCpuPerConsumerUs} / ${level.twoCpuPerConsumerUs} µs/s ` +
          `(${round((performance.now() - started) / 1000, 0)} s)`,
      );
    }
    const fine = (l: SpreadLevel, name: SystemName) =>
      l.receivers > 0 && (name === 'one' ? l.oneWorstLoss : l.twoWorstLoss) < 0.005 && l.keptUp[name];
    const most = (name: SystemName) => Math.max(0, ...levels.filter((l) => fine(l, name)).map((l) => l.consumers));
    const both = [...levels].reverse().find((l) => fine(l, 'one') && fine(l, 'two'));
    return {
      levels,
      skippedLevels,
      mostConsumers: { one: most('one'), two: most('two') },
      cpuPerConsumer: both
        ? {
            receivers: both.receivers,
            one: both.oneCpuPerConsumerUs,
            two: both.twoCpuPerConsumerUs,
            ratio: round(both.twoCpuPerConsumerUs / both.oneCpuPerConsumerUs, 3),
          }
        : { receivers: 0, one: NaN, two: NaN, ratio: NaN },
      windowMs: opts.windowMs,
      reps: opts.reps,
    };
  } finally {
    for (const s of systems) await s.stop();
    await sources.stop();
    await receivers.stop();
  }
}

async function startSystem(name: SystemName, numWorkers: number, sources: Child): Promise<System> {
  const workers = await Promise.all(Array.from({ length: numWorkers }, () => createBenchWorker()));
  const sg = await startServer({ extra: { workers }, config: { maxConsumersPerRouter: 0 } });
  const room = await sg.sg.rooms.create(`spread-${name}`, 'REQUEST');
  const videoSsrc = name === 'one' ? 3333 : 4444;
  const { port: sourcePort } = await sources.call<{ port: number }>('bind', { name, videoSsrc });
  const speaker = await connectRaw(sg.url, { token: await sg.token('speaker', 'speaker', room.id) });
  await joinRaw(speaker);
  await speaker.request('stage.join');
  const transport = await openPlain(room, 'speaker', 'send', {
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: true,
    comedia: false,
  });
  await transport.connect({ ip: '127.0.0.1', port: sourcePort });
  const producerIds: string[] = [];
  for (const kind of ['video', 'audio'] as const) {
    const rtpParameters = sourceRtpParameters(kind, kind === 'video' ? videoSsrc : videoSsrc + 1);
    producerIds.push((await speaker.request('produce', { transportId: transport.id, kind, rtpParameters })).id);
  }
  const producers = [...room.participants.get('speaker')!.producers.values()].map((x) => x.producer);
  const clients = [speaker];
  return {
    name,
    sg,
    room,
    workers,
    producerPort: transport.tuple.localPort,
    producers,
    producerIds,
    clients,
    receiverIds: [],
    ssrcs: new Set(),
    async stop() {
      for (const c of clients) c.close();
      room.close();
      await sg.close();
      for (const w of workers) w.close();
    },
  };
}

async function grow(s: System, n: number, child: Child, log: (m: string) => void): Promise<void> {
  const have = s.receiverIds.length;
  if (n <= have) return;
  const t0 = performance.now();
  const { ports } = await child.call<{ ports: number[] }>('open', { count: n - have });
  await mapLimit(ports, 16, async (port, k) => {
    const userId = `r${have + k}`;
    const c = await connectRaw(s.sg.url, { token: await s.sg.token(userId, 'viewer', s.room.id) });
    s.clients.push(c);
    await joinRaw(c);
    const transport = await openPlain(s.room, userId, 'recv', {
      listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
      rtcpMux: true,
      comedia: false,
      enableSrtp: true,
      srtpCryptoSuite: SRTP_SUITE,
    });
    await transport.connect({
      ip: '127.0.0.1',
      port,
      srtpParameters: { cryptoSuite: SRTP_SUITE, keyBase64: randomBytes(44).toString('base64') },
    });
    s.receiverIds.push(userId);
    for (const producerId of s.producerIds) {
      const o = await c.request('consume', { producerId });
      s.ssrcs.add((o.rtpParameters as { encodings: { ssrc: number }[] }).encodings[0]!.ssrc);
      await c.request('resumeConsumer', { consumerId: o.id });
    }
  });
  log(`  spread ${s.name}: ${n} receivers ready (+${n - have} in ${round((performance.now() - t0) / 1000, 1)} s)`);
}

/** The system's workers, origin first, with the consumers their routers of the room carry. */
function workerLoad(s: System): { worker: ms.Worker; consumers: number }[] {
  const routers = s.room.media.routers().filter((r) => !r.closed);
  return s.workers
    .map((w) => ({
      worker: w,
      consumers: routers.filter((r) => r.worker === w).reduce((n, r) => n + r.consumers, 0),
    }))
    .sort((a, b) => Number(b.worker === s.room.worker) - Number(a.worker === s.room.worker));
}

async function measure(
  s: System,
  all: System[],
  receivers: Child,
  sources: Child,
  opts: SpreadOptions,
): Promise<SpreadWindow> {
  for (const x of all)
    await sources.call('target', x === s ? { name: x.name, port: s.producerPort } : { name: x.name });
  await sleep(opts.warmupMs);
  const sourceSent = async () => {
    const { sent } = await sources.call<{ sent: Record<string, { video: number; audio: number }> }>('sent');
    return sent[s.name]!.video + sent[s.name]!.audio;
  };
  const load = workerLoad(s);
  const a = await snapshot(receivers);
  const [src0, in0] = await Promise.all([sourceSent(), packetCount(s.producers)]);
  const cpu = load.map((l) => new CpuWindow(l.worker.pid));
  await sleep(opts.windowMs);
  const c = cpu.map((x) => x.end());
  const [src1, in1] = await Promise.all([sourceSent(), packetCount(s.producers)]);
  const b = await snapshot(receivers);
  let received = 0;
  let expected = 0;
  let receiving = 0;
  for (const ssrc of s.ssrcs) {
    const x = a.get(ssrc);
    const y = b.get(ssrc);
    if (!y) continue;
    const dr = y[0] - (x?.[0] ?? 0);
    if (dr > 0) receiving++;
    if (!x) continue;
    received += dr;
    expected += y[1] - x[1];
  }
  const seconds = c[0]!.seconds;
  return {
    workerCores: c.map((x) => round(Number.isFinite(x.schedCores) ? x.schedCores : x.cores, 4)),
    workerPids: load.map((l) => l.worker.pid),
    workerConsumers: load.map((l) => l.consumers),
    workerWait: c.map((x) => round(x.waitShare, 3)),
    loss: expected > 0 ? round(Math.max(0, 1 - received / expected), 6) : s.ssrcs.size === 0 ? 0 : NaN,
    packetsPerSecond: round(received / seconds, 0),
    consumersReceiving: receiving,
    sourcePps: round((src1 - src0) / seconds, 0),
    workerInPps: round((in1 - in0) / seconds, 0),
    machineBusy: round(Math.max(...c.map((x) => x.machineBusy)), 3),
  };
}
