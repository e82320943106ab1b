/**
 * Benchmark 2: kick latency.
 *
 * Raw sockets (test/helpers/server.ts), per system, interleaved sample by sample: a speaker on
 * stage with an audio and a video producer (no media: fake DTLS, as in the gating tests) and R
 * receivers consuming both. The host sends `stage.kick` at t0 (the baseline's `stage.kick`
 * closes the producers with no stage logic). Measured from t0:
 * - `producerClosed (JS)`: the Producer's observer 'close' event in the server process;
 * - `closed in worker`: a `router.dump()` issued from that event answers without the producer
 *   (the worker handles its channel in order, so this is an upper bound that includes one dump
 *   round trip, reported separately as `dumpRttMs`);
 * - `kick ack` at the host;
 * - every receiver's `producerClosed` and `consumerClosed` notification (all receivers, all samples),
 *   and the last receiver told per sample.
 *
 * Browser: one page with a speaker publishing real 640x480 VP8 + Opus and a viewer (thin client on
 * Stagegate, the raw driver on the baseline). After frames flow, the host (raw, in Node) kicks; the
 * viewer's last received frame (requestVideoFrameCallback receiveTime) and its track removal are
 * timed against t0 (page clock mapped to this process's). The last-frame figure has a resolution of
 * one frame interval (reported: `frameIntervalMs`): it is negative when the last frame arrived
 * before the kick.
 */
import type { types as ms } from 'mediasoup';
import type { Room } from '../../server/room/Room.js';
import { connectRaw, DTLS, joinRaw, rtpParameters, type RawClient } from '../helpers/server.js';
import type { BaselineServer } from './baseline-server.js';
import type { BenchBrowser } from './page/page.js';
import { median, round, roundAll, sleep, summarize, wall, withTimeout, type Summary } from './stats.js';
import type { Systems } from './systems.js';

export interface KickOptions {
  samples: number;
  receivers: number;
  browserSamples: number;
  log: (msg: string) => void;
}

interface SystemSide {
  name: 'stagegate' | 'baseline';
  host: RawClient;
  speaker: RawClient;
  speakerId: string;
  receivers: RawClient[];
  transportId: string;
  /** The live producer objects of the speaker (server side). */
  producers(): ms.Producer[];
  dump(): Promise<{ mapProducerIdConsumerIds: { key: string }[] }>;
  ssrc: number;
}

export interface KickRawResult {
  workerClosed: Summary;
  producerCloseEvent: Summary;
  kickAck: Summary;
  receiverProducerClosed: Summary;
  receiverConsumerClosed: Summary;
  lastReceiverNotified: Summary;
  dumpRttMs: Summary;
  samples: { workerClosed: number[]; lastReceiverNotified: number[]; kickAck: number[] };
  failures: string[];
}

export interface KickBrowserResult {
  lastFrameReceived: Summary;
  lastFramePainted: Summary;
  trackRemoved: Summary;
  /** Median interval between the viewer's last received frames: the resolution of lastFrameReceived. */
  frameIntervalMs: Summary;
  /** Frames received (receiveTime) after t0. */
  framesAfterKick: Summary;
  stoppedAfter500ms: number;
  samples: { lastFrameReceived: number[]; lastFramePainted: number[]; trackRemoved: number[] };
  failures: string[];
}

export interface KickResult {
  receivers: number;
  raw: Record<string, KickRawResult>;
  browser: Record<string, KickBrowserResult>;
}

export async function benchKick(sys: Systems, bb: BenchBrowser | undefined, opts: KickOptions): Promise<KickResult> {
  const raw = await kickRaw(sys, opts);
  const browser = bb ? await kickBrowser(sys, bb, opts) : {};
  return { receivers: opts.receivers, raw, browser };
}

// ------------------------------------------------------------------ raw sockets
async function kickRaw(sys: Systems, opts: KickOptions): Promise<Record<string, KickRawResult>> {
  const room = await sys.sg.sg.rooms.create('kick-raw', 'REQUEST');
  const sides = [await stagegateSide(sys, room, opts.receivers), await baselineSide(sys.baseline, opts.receivers)];
  const acc = new Map<string, Record<string, number[]> & { failures?: string[] }>();
  const failures: Record<string, string[]> = { stagegate: [], baseline: [] };
  for (const s of sides)
    acc.set(s.name, {
      workerClosed: [],
      producerCloseEvent: [],
      kickAck: [],
      receiverProducerClosed: [],
      receiverConsumerClosed: [],
      lastReceiverNotified: [],
      dumpRttMs: [],
    });

  const deadline = Date.now() + Math.max(20_000, opts.samples * 2000);
  for (let i = 0; i < opts.samples && Date.now() < deadline; i++) {
    for (const side of sides) {
      const a = acc.get(side.name)!;
      try {
        await putOnStage(side);
        const r = await oneKick(side);
        a.workerClosed!.push(r.workerClosed);
        a.producerCloseEvent!.push(r.closeEvent);
        a.kickAck!.push(r.ack);
        a.receiverProducerClosed!.push(...r.producerClosed);
        a.receiverConsumerClosed!.push(...r.consumerClosed);
        a.lastReceiverNotified!.push(Math.max(...r.producerClosed, ...r.consumerClosed));
        a.dumpRttMs!.push(r.dumpRtt);
      } catch (err) {
        failures[side.name]!.push(String((err as Error).message ?? err));
        opts.log(`  kick ${side.name} #${i} failed: ${(err as Error).message}`);
      }
    }
  }
  for (const s of sides) for (const c of [s.host, s.speaker, ...s.receivers]) c.close();
  room.close();

  const out: Record<string, KickRawResult> = {};
  for (const [name, a] of acc) {
    out[name] = {
      workerClosed: summarize(a.workerClosed!),
      producerCloseEvent: summarize(a.producerCloseEvent!),
      kickAck: summarize(a.kickAck!),
      receiverProducerClosed: summarize(a.receiverProducerClosed!),
      receiverConsumerClosed: summarize(a.receiverConsumerClosed!),
      lastReceiverNotified: summarize(a.lastReceiverNotified!),
      dumpRttMs: summarize(a.dumpRttMs!),
      samples: {
        workerClosed: roundAll(a.workerClosed!, 3),
        lastReceiverNotified: roundAll(a.lastReceiverNotified!, 3),
        kickAck: roundAll(a.kickAck!, 3),
      },
      failures: failures[name]!,
    };
    for (const k of Object.keys(out[name]!) as (keyof KickRawResult)[]) {
      const v = out[name]![k];
      if (v && typeof v === 'object' && 'p50' in v) roundSummary(v);
    }
  }
  return out;
}

function roundSummary(s: Summary): void {
  for (const k of Object.keys(s) as (keyof Summary)[]) s[k] = round(s[k], 3);
}

async function stagegateSide(sys: Systems, room: Room, receivers: number): Promise<SystemSide> {
  const token = (u: string, p: 'host' | 'speaker' | 'viewer') => sys.sg.token(u, p, room.id);
  const host = await connectRaw(sys.sg.url, { token: await token('host', 'host') });
  await joinRaw(host);
  const speaker = await connectRaw(sys.sg.url, { token: await token('speaker', 'speaker') });
  await joinRaw(speaker);
  const t = await speaker.request('createTransport', { direction: 'send' });
  await speaker.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const rs = await Promise.all(
    Array.from({ length: receivers }, async (_, i) => {
      const c = await connectRaw(sys.sg.url, { token: await token(`r${i}`, 'viewer') });
      await joinRaw(c);
      await c.request('createTransport', { direction: 'recv' });
      return c;
    }),
  );
  return {
    name: 'stagegate',
    host,
    speaker,
    speakerId: 'speaker',
    receivers: rs,
    transportId: t.id,
    producers: () => [...(room.participants.get('speaker')?.producers.values() ?? [])].map((s) => s.producer),
    dump: () => room.router.dump(),
    ssrc: 100000,
  };
}

async function baselineSide(bl: BaselineServer, receivers: number): Promise<SystemSide> {
  const host = await connectRaw(bl.url, { userId: 'host' });
  await joinRaw(host);
  const speaker = await connectRaw(bl.url, { userId: 'speaker' });
  await joinRaw(speaker);
  const t = await speaker.request('createTransport', { direction: 'send' });
  await speaker.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  const rs = await Promise.all(
    Array.from({ length: receivers }, async (_, i) => {
      const c = await connectRaw(bl.url, { userId: `r${i}` });
      await joinRaw(c);
      await c.request('createTransport', { direction: 'recv' });
      return c;
    }),
  );
  return {
    name: 'baseline',
    host,
    speaker,
    speakerId: 'speaker',
    receivers: rs,
    transportId: t.id,
    producers: () => [...(bl.peers.get('speaker')?.producers.values() ?? [])].map((s) => s.producer),
    dump: () => bl.router.dump(),
    ssrc: 200000,
  };
}

/** Speaker ON_STAGE with audio + video producers, every receiver consuming both (resumed). */
async function putOnStage(side: SystemSide): Promise<void> {
  if (side.name === 'stagegate') {
    const a = await side.speaker.ack('stage.join');
    if (!a.ok) {
      await side.speaker.request('stage.requestAccess');
      await side.speaker.request('stage.join');
    }
  }
  const ids: string[] = [];
  for (const kind of ['audio', 'video'] as const) {
    const r = await side.speaker.request('produce', {
      transportId: side.transportId,
      kind,
      rtpParameters: rtpParameters(kind, side.ssrc++),
    });
    ids.push(r.id);
  }
  await Promise.all(
    side.receivers.map(async (c) => {
      for (const producerId of ids) {
        const consumer = await c.request('consume', { producerId });
        await c.request('resumeConsumer', { consumerId: consumer.id });
      }
    }),
  );
  await sleep(20); // let the newProducer broadcasts drain
}

async function oneKick(side: SystemSide) {
  const producers = side.producers();
  const video = producers.find((p) => p.kind === 'video');
  if (!video || producers.length !== 2) throw new Error(`speaker has ${producers.length} producers`);
  const expected = side.receivers.length * 2;
  const producerClosed: number[] = [];
  const consumerClosed: number[] = [];
  let resolveAll!: () => void;
  const allTold = new Promise<void>((r) => (resolveAll = r));
  const unsubscribe: (() => void)[] = [];
  const check = () => producerClosed.length >= expected && consumerClosed.length >= expected && resolveAll();
  let t0 = 0;
  for (const c of side.receivers) {
    const onP = (d: { producerId: string }) => {
      if (producers.some((p) => p.id === d.producerId)) producerClosed.push(wall() - t0);
      check();
    };
    const onC = (d: { producerId: string }) => {
      if (producers.some((p) => p.id === d.producerId)) consumerClosed.push(wall() - t0);
      check();
    };
    // through RawClient.on: these arrive inside the server's coalesced 'batch' frames
    unsubscribe.push(c.on('producerClosed', onP), c.on('consumerClosed', onC));
  }
  let closeEvent = NaN;
  const inWorker = new Promise<number>((resolve, reject) => {
    video.observer.once('close', () => {
      closeEvent = wall() - t0;
      side.dump().then((d) => {
        if (d.mapProducerIdConsumerIds.some((e) => e.key === video.id))
          reject(new Error('worker still lists the producer'));
        else resolve(wall() - t0);
      }, reject);
    });
  });
  t0 = wall();
  const ack = await side.host.request('stage.kick', { userIds: [side.speakerId] }).then(() => wall() - t0);
  const workerClosed = await withTimeout(inWorker, 5000, 'producer close in worker');
  await withTimeout(allTold, 5000, `${expected} producerClosed + consumerClosed`).catch((e: Error) => {
    throw new Error(`${e.message} (got ${producerClosed.length} + ${consumerClosed.length})`);
  });
  for (const off of unsubscribe) off();
  // One idle dump round trip, for the slack in `workerClosed`.
  const d0 = wall();
  await side.dump();
  const dumpRtt = wall() - d0;
  return { workerClosed, closeEvent, ack, producerClosed, consumerClosed, dumpRtt };
}

// ------------------------------------------------------------------ browser
async function kickBrowser(
  sys: Systems,
  bb: BenchBrowser,
  opts: KickOptions,
): Promise<Record<string, KickBrowserResult>> {
  const room = await sys.sg.sg.rooms.create('kick-browser', 'REQUEST');
  const sgHost = await connectRaw(sys.sg.url, { token: await sys.sg.token('khost', 'host', room.id) });
  await joinRaw(sgHost);
  const blHost = await connectRaw(sys.baseline.url, { userId: 'khost' });
  await joinRaw(blHost);
  await bb.call('openDevices');
  await bb.call('tcJoin', 'kview', sys.sg.url, await sys.sg.token('kview', 'viewer', room.id), false);
  await bb.call('tcJoin', 'kspk', sys.sg.url, await sys.sg.token('kspk', 'speaker', room.id), true);
  await bb.call(
    'rawConnect',
    'kview-b',
    sys.baseline.url,
    { userId: 'kview-b' },
    { stagegate: false, recv: true, send: false },
  );
  await bb.call(
    'rawConnect',
    'kspk-b',
    sys.baseline.url,
    { userId: 'kspk-b' },
    { stagegate: false, recv: false, send: true },
  );
  await bb.calibrate();

  type Acc = {
    received: number[];
    painted: number[];
    removed: number[];
    frameGap: number[];
    after: number[];
    stopped: number;
    failures: string[];
  };
  const acc: Record<string, Acc> = {
    stagegate: { received: [], painted: [], removed: [], frameGap: [], after: [], stopped: 0, failures: [] },
    baseline: { received: [], painted: [], removed: [], frameGap: [], after: [], stopped: 0, failures: [] },
  };
  const deadline = Date.now() + Math.max(20_000, opts.browserSamples * 6000);
  for (let i = 0; i < opts.browserSamples && Date.now() < deadline; i++) {
    for (const name of ['stagegate', 'baseline'] as const) {
      const a = acc[name]!;
      try {
        const thin = name === 'stagegate';
        if (thin && (await bb.call('tcStatus', 'kspk')) !== 'ACCEPTED_TO_JOIN_STAGE')
          await bb.call('tcRequestAccess', 'kspk');
        const j = await bb.call(thin ? 'tcStageJoin' : 'rawStageJoin', thin ? 'kspk' : 'kspk-b');
        const videoId = await waitFrames(bb, j.producerIds, 15, 8000);
        const t0 = wall();
        await (thin ? sgHost : blHost).request('stage.kick', { userIds: [thin ? 'kspk' : 'kspk-b'] });
        const end = Date.now() + 5000;
        let rec = await bb.call('record', videoId);
        while (rec?.tRemoved === undefined && Date.now() < end) {
          await sleep(10);
          rec = await bb.call('record', videoId);
        }
        await sleep(500);
        const after = await bb.call('record', videoId);
        await sleep(300);
        const later = await bb.call('record', videoId);
        if (!after || !later) throw new Error('record vanished');
        // The last frame that came from the network (when the track ends, Chromium paints one more
        // frame with no receiveTime: not media).
        const last = after.lastFrames.filter((f) => f.receiveTime !== undefined).at(-1);
        // 0 when no frame arrived after the kick (the previous one came before t0).
        a.received.push(last?.receiveTime !== undefined ? Math.max(0, bb.toWall(last.receiveTime) - t0) : NaN);
        a.after.push(
          after.lastFrames.filter((f) => f.receiveTime !== undefined && bb.toWall(f.receiveTime) > t0).length,
        );
        a.frameGap.push(gap(after.lastFrames));
        a.painted.push(last ? Math.max(0, bb.toWall(last.now) - t0) : NaN);
        a.removed.push(after.tRemoved !== undefined ? bb.toWall(after.tRemoved) - t0 : NaN);
        if (later.frames === after.frames) a.stopped++;
        await bb.call('forget', j.producerIds);
      } catch (err) {
        a.failures.push(String((err as Error).message ?? err));
        opts.log(`  kick browser ${name} #${i} failed: ${(err as Error).message}`);
      }
    }
  }
  await bb.call('tcLeave', 'kspk');
  await bb.call('tcLeave', 'kview');
  await bb.call('rawClose', 'kspk-b');
  await bb.call('rawClose', 'kview-b');
  sgHost.close();
  blHost.close();
  room.close();

  const out: Record<string, KickBrowserResult> = {};
  for (const [name, a] of Object.entries(acc)) {
    out[name] = {
      lastFrameReceived: summarize(a.received),
      lastFramePainted: summarize(a.painted),
      trackRemoved: summarize(a.removed),
      frameIntervalMs: summarize(a.frameGap),
      framesAfterKick: summarize(a.after),
      stoppedAfter500ms: a.stopped,
      samples: {
        lastFrameReceived: roundAll(a.received),
        lastFramePainted: roundAll(a.painted),
        trackRemoved: roundAll(a.removed),
      },
      failures: a.failures,
    };
  }
  return out;
}

/** Median receive interval of the frames that carry a receiveTime. */
function gap(frames: { receiveTime?: number | undefined }[]): number {
  const t = frames.map((f) => f.receiveTime).filter((x): x is number => x !== undefined);
  const d = t.slice(1).map((x, i) => x - t[i]!);
  return d.length ? median(d) : NaN;
}

/** Waits until the viewer painted `frames` frames of the video producer among `producerIds`; returns its id. */
async function waitFrames(bb: BenchBrowser, producerIds: string[], frames: number, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const id of producerIds) {
      const r = await bb.call('record', id);
      if (r?.kind === 'video' && r.frames >= frames) return id;
    }
    if (Date.now() > end) throw new Error(`viewer did not paint ${frames} frames within ${timeoutMs} ms`);
    await sleep(20);
  }
}
