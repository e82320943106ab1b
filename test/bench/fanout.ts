/**
 * Benchmark 3: fan-out cost of one on-stage speaker (VP8 640x480 + Opus) to N receivers, on one
 * mediasoup worker, Stagegate against the baseline.
 *
 * Media: a synthetic RTP source (rtp.ts, in a child process: fanout-source.ts) sends ~128 video +
 * 50 audio packets/s over UDP into a PlainTransport producer; one source per system, only the
 * measured one sends (none while receivers are being added).
 * Receivers: N raw socket.io participants per system (joinRoom, then `consume` + `resumeConsumer`
 * for both producers through the server's own request handlers), whose recv transport is a
 * PlainTransport (SRTP AEAD_AES_256_GCM, so the per-consumer encryption a WebRTC consumer costs is
 * included) sending to one UDP socket per receiver in a child process that counts packets and
 * sequence gaps (fanout-receiver.ts). The protocol only creates WebRtcTransports, so the bench
 * makes those PlainTransports through the media plane's hook (`room.openTransport(participant,
 * direction, make)`: the server's gating and placement, the bench's transport kind); the
 * baseline's are registered on its peer objects. Everything after that (produce gating,
 * consume, resume + key frame) is the servers' own code.
 *
 * Per level N, per system, alternating which goes first: warm-up, then a fixed window over which
 * the worker's CPU (utime + stime from /proc/<pid>/stat) and the receivers' packets are counted;
 * the source's own count, the producers' and a sample of consumers' packet counts (getStats) say
 * where packets went missing (before the worker, in it, or after it). Loopback delivery to the
 * receiving socket is kernel work charged to the sending worker's stime.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { types as ms } from 'mediasoup';
import type { Room } from '../../server/room/Room.js';
import { connectRaw, joinRaw, type RawClient } from '../helpers/server.js';
import { forkTs, type Child } from './child.js';
import { CpuWindow, udpCounters } from './proc.js';
import { sourceRtpParameters } from './rtp.js';
import { mapLimit, median, ratio, round, sleep } from './stats.js';
import type { Systems } from './systems.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRTP_SUITE: ms.SrtpCryptoSuite = 'AEAD_AES_256_GCM';

export interface FanoutOptions {
  levels: number[];
  windowMs: number;
  warmupMs: number;
  reps: number;
  /** Levels not started within this budget (ms since the first window) are skipped. */
  budgetMs: number;
  /**
   * SO_RCVBUF of the producer's transport socket (mediasoup listenInfo.recvBufferSize). Default:
   * none, as Stagegate's createTransport (the kernel default, net.core.rmem_default).
   */
  producerRecvBufferSize?: number | undefined;
  /** SRTP on the receivers' transports (default true: the encryption a WebRTC consumer costs). */
  srtp?: boolean | undefined;
  log: (msg: string) => void;
}

interface ParticipantLike {
  transports: Map<string, unknown>;
  sendTransportId: string | undefined;
  recvTransportId: string | undefined;
  consumers: Map<string, ms.Consumer>;
}

interface Side {
  name: 'stagegate' | 'baseline';
  /** A PlainTransport of the participant, made where the server places it (see the header). */
  openPlain(userId: string, direction: 'send' | 'recv', options: ms.PlainTransportOptions): Promise<ms.PlainTransport>;
  worker: ms.Worker;
  router: ms.Router;
  url: string;
  auth(userId: string, preset: 'speaker' | 'viewer'): Promise<Record<string, string>>;
  participant(userId: string): ParticipantLike | undefined;
  producerPort: number;
  producerIds: string[];
  producers: ms.Producer[];
  receiverIds: string[];
  clients: RawClient[];
  ssrcs: Set<number>;
  setupMs: number[];
  srtp: boolean;
  closeRoom(): void;
}

export interface FanoutWindow {
  /** Worker CPU over the window, in cores (utime + stime). */
  cores: number;
  /** The same from schedstat (ns resolution), and the share of the window the worker waited for a CPU. */
  schedCores: number;
  workerWaitShare: number;
  /** 1 - received / expected over every consumer's sequence numbers, at the receivers. */
  loss: number;
  /** Packets/s counted at the receivers (all consumers). */
  packetsPerSecond: number;
  consumersReceiving: number;
  /** Packets/s the source sent, the producers counted (worker in), and one receiver was sent on average (sampled consumers). */
  sourcePps: number;
  workerInPps: number;
  workerOutPpsPerReceiver: number;
  /** Share of all cores busy (anything on the machine): near 1, the worker may have been starved. */
  machineBusy: number;
  receiverChildCores: number;
  kernelRcvbufErrors: number;
}

export interface FanoutLevel {
  receivers: number;
  consumers: number;
  stagegate: FanoutWindow[];
  baseline: FanoutWindow[];
  /** Median worker CPU, in cores (1 = one core busy; schedstat, utime + stime when unavailable). */
  stagegateCores: number;
  baselineCores: number;
  /** Median over reps of the ratio of back-to-back windows (stagegate / baseline), and each rep's ratio. */
  cpuRatio: number;
  cpuRatios: number[];
  /** Median worker CPU per packet delivered to the receivers (µs): robust to a worker starved of CPU. */
  stagegateCpuPerPacketUs: number;
  baselineCpuPerPacketUs: number;
  cpuPerPacketRatio: number;
  cpuPerPacketRatios: number[];
  /** Median share of the window the worker waited for a CPU (other load on the machine). */
  stagegateWorkerWait: number;
  baselineWorkerWait: number;
  /** Every window: the worker took in ≥ 90% of what the source sent (else it fell behind: backlog or drops; window edges cut key-frame bursts, hence the margin). */
  workerKeptUp: boolean;
  /** Median loss over the windows, and the worst window's. */
  stagegateLoss: number;
  baselineLoss: number;
  stagegateWorstLoss: number;
  baselineWorstLoss: number;
  /** A window with the whole machine busy (≥ 95%): the worker competed for CPU, its figures are suspect. */
  saturated: boolean;
  /** Worker CPU per consumer above the N = 0 level, in microseconds of CPU per second. */
  stagegateCpuPerConsumerUs: number;
  baselineCpuPerConsumerUs: number;
}

export interface FanoutResult {
  source: Record<string, { video: number; audio: number; keyFrames: number; plis: number }>;
  levels: FanoutLevel[];
  skippedLevels: number[];
  /** Receiver setup (socket.io join + transport + 2 consume/resume), ms per receiver, median. */
  setupMsPerReceiver: Record<string, number>;
  srtp: string;
  windowMs: number;
  reps: number;
}

export async function benchFanout(sys: Systems, opts: FanoutOptions): Promise<FanoutResult> {
  const receivers = await forkTs(path.join(HERE, 'fanout-receiver.ts'));
  const sources = await forkTs(path.join(HERE, 'fanout-source.ts'));
  const sides: Side[] = [];
  try {
    sides.push(await stagegateSide(sys, sources, opts), await baselineSide(sys, sources, opts));
    const levels: FanoutLevel[] = [];
    const skippedLevels: number[] = [];
    const zero: Record<string, number> = {};
    const started = performance.now();
    for (const [li, n] of opts.levels.entries()) {
      if (performance.now() - started > opts.budgetMs) {
        skippedLevels.push(n);
        opts.log(`  fan-out N=${n}: skipped (time budget of ${opts.budgetMs / 1000} s used)`);
        continue;
      }
      // No media while receivers are added: setup must not compete with a loaded worker.
      for (const s of sides) await sources.call('target', { name: s.name });
      for (const s of sides) await grow(s, n, receivers, opts.log);
      const win: Record<string, FanoutWindow[]> = { stagegate: [], baseline: [] };
      for (let rep = 0; rep < opts.reps; rep++) {
        const order = (li + rep) % 2 === 0 ? sides : [...sides].reverse();
        for (const s of order) win[s.name]!.push(await measure(s, sides, receivers, sources, opts));
      }
      const cpuOf = (w: FanoutWindow) => (Number.isFinite(w.schedCores) ? w.schedCores : w.cores);
      const cores = (name: string) => median(win[name]!.map(cpuOf));
      const pktCpu = (w: FanoutWindow) => (w.packetsPerSecond > 0 ? (cpuOf(w) * 1e6) / w.packetsPerSecond : NaN);
      const perPacket = (name: string) => median(win[name]!.map((w) => pktCpu(w)));
      const wait = (name: string) => median(win[name]!.map((w) => w.workerWaitShare));
      const loss = (name: string) => median(win[name]!.map((w) => w.loss));
      const worstLoss = (name: string) => Math.max(...win[name]!.map((w) => w.loss));
      // Ratios of windows measured back to back (rep by rep), so slow drift on the machine cancels.
      const paired = (f: (w: FanoutWindow) => number) =>
        win.stagegate!.map((w, i) => ratio(f(w), f(win.baseline![i]!), 4)).filter((x) => Number.isFinite(x));
      const cpuRatios = paired(cpuOf);
      const pktRatios = paired(pktCpu);
      if (n === 0) for (const s of sides) zero[s.name] = cores(s.name);
      const perConsumer = (name: string) =>
        n > 0 && zero[name] !== undefined ? round(((cores(name) - zero[name]!) * 1e6) / (2 * n), 1) : NaN;
      const level: FanoutLevel = {
        receivers: n,
        consumers: 2 * n,
        stagegate: win.stagegate!,
        baseline: win.baseline!,
        stagegateCores: round(cores('stagegate'), 4),
        baselineCores: round(cores('baseline'), 4),
        cpuRatio: round(median(cpuRatios), 3),
        cpuRatios,
        stagegateCpuPerPacketUs: round(perPacket('stagegate'), 3),
        baselineCpuPerPacketUs: round(perPacket('baseline'), 3),
        cpuPerPacketRatio: round(median(pktRatios), 3),
        cpuPerPacketRatios: pktRatios,
        stagegateWorkerWait: round(wait('stagegate'), 3),
        baselineWorkerWait: round(wait('baseline'), 3),
        workerKeptUp: [...win.stagegate!, ...win.baseline!].every(
          (w) => w.sourcePps === 0 || w.workerInPps >= 0.9 * w.sourcePps,
        ),
        stagegateLoss: round(loss('stagegate'), 5),
        baselineLoss: round(loss('baseline'), 5),
        stagegateWorstLoss: round(worstLoss('stagegate'), 5),
        baselineWorstLoss: round(worstLoss('baseline'), 5),
        saturated: [...win.stagegate!, ...win.baseline!].some((w) => w.machineBusy >= 0.95),
        stagegateCpuPerConsumerUs: perConsumer('stagegate'),
        baselineCpuPerConsumerUs: perConsumer('baseline'),
      };
      levels.push(level);
      const w0 = win.stagegate![0]!;
      opts.log(
        `  fan-out N=${n}: worker CPU stagegate ${round(level.stagegateCores * 100, 1)}% / baseline ${round(level.baselineCores * 100, 1)}% of a core ` +
          `(ratio ${level.cpuRatio}, per packet ${level.cpuPerPacketRatio}), worker waited ${round(level.stagegateWorkerWait * 100, 0)}% / ${round(level.baselineWorkerWait * 100, 0)}%, loss ${round(level.stagegateLoss * 100, 3)}% / ${round(level.baselineLoss * 100, 3)}%, ` +
          `source ${w0.sourcePps} pps, worker in ${w0.workerInPps} pps, out ${w0.workerOutPpsPerReceiver} pps/receiver, ` +
          `machine busy ${round(median([...win.stagegate!, ...win.baseline!].map((w) => w.machineBusy)) * 100, 0)}% ` +
          `(${round((performance.now() - started) / 1000, 0)} s)`,
      );
    }
    const { sent } = await sources.call<{ sent: FanoutResult['source'] }>('sent');
    return {
      source: sent,
      levels,
      skippedLevels,
      setupMsPerReceiver: Object.fromEntries(sides.map((s) => [s.name, round(median(s.setupMs), 2)])),
      srtp: (opts.srtp ?? true) ? SRTP_SUITE : 'none',
      windowMs: opts.windowMs,
      reps: opts.reps,
    };
  } finally {
    for (const s of sides) {
      for (const c of s.clients) c.close();
      s.closeRoom();
    }
    await sources.stop();
    await receivers.stop();
  }
}

async function stagegateSide(sys: Systems, sources: Child, opts: FanoutOptions): Promise<Side> {
  const room = await sys.sg.sg.rooms.create('fanout', 'REQUEST');
  const side = await makeSide(sources, opts, {
    name: 'stagegate',
    openPlain: (userId, direction, options) => openPlain(room, userId, direction, options),
    worker: sys.sgWorker,
    router: room.router,
    url: sys.sg.url,
    auth: async (userId, preset) => ({ token: await sys.sg.token(userId, preset, room.id) }),
    participant: (userId) => room.participants.get(userId) as unknown as ParticipantLike | undefined,
    closeRoom: () => room.close(),
  });
  return side;
}

async function baselineSide(sys: Systems, sources: Child, opts: FanoutOptions): Promise<Side> {
  const router = sys.baseline.router;
  return makeSide(sources, opts, {
    name: 'baseline',
    async openPlain(userId, direction, options) {
      const t = await router.createPlainTransport({ ...options, appData: { userId, direction } });
      adopt(sys.baseline.peers.get(userId) as unknown as ParticipantLike | undefined, t, direction);
      return t;
    },
    worker: sys.baselineWorker,
    router: sys.baseline.router,
    url: sys.baseline.url,
    auth: async (userId) => ({ userId }),
    participant: (userId) => sys.baseline.peers.get(userId) as unknown as ParticipantLike | undefined,
    closeRoom: () => undefined,
  });
}

async function makeSide(
  sources: Child,
  opts: FanoutOptions,
  s: Pick<Side, 'name' | 'openPlain' | 'worker' | 'router' | 'url' | 'auth' | 'participant' | 'closeRoom'>,
): Promise<Side> {
  const videoSsrc = s.name === 'stagegate' ? 1111 : 2222;
  const { port: sourcePort } = await sources.call<{ port: number }>('bind', { name: s.name, videoSsrc });
  const speaker = await connectRaw(s.url, await s.auth('speaker', 'speaker'));
  await joinRaw(speaker);
  if (s.name === 'stagegate') await speaker.request('stage.join');
  const rcvbuf = opts.producerRecvBufferSize;
  const transport = await s.openPlain('speaker', 'send', {
    listenInfo: { protocol: 'udp', ip: '127.0.0.1', ...(rcvbuf ? { recvBufferSize: rcvbuf } : {}) },
    rtcpMux: true,
    comedia: false,
  });
  await transport.connect({ ip: '127.0.0.1', port: sourcePort });
  const producerIds: string[] = [];
  for (const kind of ['video', 'audio'] as const) {
    const r = await speaker.request('produce', {
      transportId: transport.id,
      kind,
      rtpParameters: sourceRtpParameters(kind, kind === 'video' ? videoSsrc : videoSsrc + 1),
    });
    producerIds.push(r.id);
  }
  const speakerP = s.participant('speaker')!;
  const staged = speakerP as unknown as { producers: Map<string, ms.Producer | { producer: ms.Producer }> };
  const producers = [...staged.producers.values()].map((x) => ('producer' in x ? x.producer : x));
  return {
    ...s,
    producerPort: transport.tuple.localPort,
    producerIds,
    producers,
    receiverIds: [],
    srtp: opts.srtp ?? true,
    clients: [speaker],
    ssrcs: new Set(),
    setupMs: [],
  };
}

/**
 * A PlainTransport of a Stagegate participant through the room's supported hook: the server's
 * gating and placement (which router, on which worker), the bench's transport kind.
 */
export async function openPlain(
  room: Room,
  userId: string,
  direction: 'send' | 'recv',
  options: ms.PlainTransportOptions,
): Promise<ms.PlainTransport> {
  const p = room.participants.get(userId);
  if (!p) throw new Error(`participant ${userId} not found`);
  const t = await room.openTransport(p, direction, (router, appData) =>
    router.createPlainTransport({ ...options, appData }),
  );
  return t as ms.PlainTransport;
}

/** Registers a bench-made transport on a baseline peer as its send or recv transport. */
function adopt(p: ParticipantLike | undefined, t: ms.Transport, direction: 'send' | 'recv'): void {
  if (!p) throw new Error('participant not found');
  p.transports.set(t.id, t);
  if (direction === 'send') p.sendTransportId = t.id;
  else p.recvTransportId = t.id;
}

async function grow(side: Side, n: number, child: Child, log: (m: string) => void): Promise<void> {
  const have = side.clients.length - 1;
  if (n <= have) return;
  const t0 = performance.now();
  const { ports } = await child.call<{ ports: number[] }>('open', { count: n - have });
  const srtp = side.srtp;
  await mapLimit(ports, 16, async (port, k) => {
    const i = have + k;
    const started = performance.now();
    const userId = `r${i}`;
    const c = await connectRaw(side.url, await side.auth(userId, 'viewer'));
    side.clients.push(c);
    await joinRaw(c);
    const transport = await side.openPlain(userId, 'recv', {
      listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
      rtcpMux: true,
      comedia: false,
      enableSrtp: srtp,
      ...(srtp ? { srtpCryptoSuite: SRTP_SUITE } : {}),
    });
    await transport.connect({
      ip: '127.0.0.1',
      port,
      ...(srtp ? { srtpParameters: { cryptoSuite: SRTP_SUITE, keyBase64: randomBytes(44).toString('base64') } } : {}),
    });
    side.receiverIds.push(userId);
    for (const producerId of side.producerIds) {
      const o = await c.request('consume', { producerId });
      const ssrc = (o.rtpParameters as { encodings: { ssrc: number }[] }).encodings[0]!.ssrc;
      side.ssrcs.add(ssrc);
      await c.request('resumeConsumer', { consumerId: o.id });
    }
    side.setupMs.push(performance.now() - started);
  });
  log(`  fan-out ${side.name}: ${n} receivers ready (+${n - have} in ${round((performance.now() - t0) / 1000, 1)} s)`);
}

export type Snapshot = Map<number, [number, number]>;

export async function snapshot(child: Child): Promise<Snapshot> {
  const { ssrcs } = await child.call<{ ssrcs: [number, number, number][] }>('snapshot');
  return new Map(ssrcs.map(([ssrc, received, highest]) => [ssrc, [received, highest]]));
}

/** Packets the worker counted for these producers (in) and sent on these consumers (out). */
export async function packetCount(objs: (ms.Producer | ms.Consumer)[]): Promise<number> {
  const stats = await Promise.all(objs.map((o) => o.getStats().catch(() => [])));
  let n = 0;
  for (const list of stats) {
    const first = (list as { type: string; packetCount?: number }[]).find(
      (x) => x.type === 'inbound-rtp' || x.type === 'outbound-rtp',
    );
    n += first?.packetCount ?? 0;
  }
  return n;
}

const SAMPLE_RECEIVERS = 10;

async function measure(
  side: Side,
  all: Side[],
  receivers: Child,
  sources: Child,
  opts: FanoutOptions,
): Promise<FanoutWindow> {
  for (const s of all)
    await sources.call('target', s === side ? { name: s.name, port: side.producerPort } : { name: s.name });
  await sleep(opts.warmupMs);
  const step = Math.max(1, Math.floor(side.receiverIds.length / SAMPLE_RECEIVERS));
  const sampled = side.receiverIds.filter((_, i) => i % step === 0).slice(0, SAMPLE_RECEIVERS);
  const consumers = sampled.flatMap((u) => [...(side.participant(u)?.consumers.values() ?? [])]);
  const sourceSent = async () => {
    const { sent } = await sources.call<{ sent: Record<string, { video: number; audio: number }> }>('sent');
    return sent[side.name]!.video + sent[side.name]!.audio;
  };

  const a = await snapshot(receivers);
  const [src0, in0, out0] = await Promise.all([sourceSent(), packetCount(side.producers), packetCount(consumers)]);
  const udp0 = udpCounters();
  const cpu = new CpuWindow(side.worker.pid);
  const childCpu = new CpuWindow(receivers.pid);
  await sleep(opts.windowMs);
  const c = cpu.end();
  const cc = childCpu.end();
  const udp1 = udpCounters();
  const [src1, in1, out1] = await Promise.all([sourceSent(), packetCount(side.producers), packetCount(consumers)]);
  const b = await snapshot(receivers);
  let received = 0;
  let expected = 0;
  let receiving = 0;
  for (const ssrc of side.ssrcs) {
    const x = a.get(ssrc);
    const y = b.get(ssrc);
    if (!y) continue;
    const dr = y[0] - (x?.[0] ?? 0);
    if (dr > 0) receiving++;
    if (!x) continue;
    received += dr;
    expected += y[1] - x[1];
  }
  return {
    cores: round(c.cores, 4),
    schedCores: round(c.schedCores, 4),
    workerWaitShare: round(c.waitShare, 4),
    loss: expected > 0 ? round(Math.max(0, 1 - received / expected), 6) : side.ssrcs.size === 0 ? 0 : NaN,
    packetsPerSecond: round(received / c.seconds, 0),
    consumersReceiving: receiving,
    sourcePps: round((src1 - src0) / c.seconds, 0),
    workerInPps: round((in1 - in0) / c.seconds, 0),
    workerOutPpsPerReceiver: sampled.length ? round((out1 - out0) / c.seconds / sampled.length, 0) : 0,
    machineBusy: round(c.machineBusy, 3),
    receiverChildCores: round(cc.cores, 3),
    kernelRcvbufErrors: (udp1.RcvbufErrors ?? 0) - (udp0.RcvbufErrors ?? 0),
  };
}
