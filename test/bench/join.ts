/**
 * Benchmark 1: stage join latency, real Chromium on both ends: the speaker and the viewers in two
 * pages of one browser, each page its own renderer process (its own WebRTC threads), as two
 * participants on two machines would be. `BENCH_JOIN_ONE_PAGE=1` puts them in one page, as this
 * benchmark did before: the viewer's SDP work then queues behind the speaker's.
 *
 * From the speaker's action to the viewer's first decoded video frame (first of: getStats
 * framesDecoded > 0 polled every 5 ms, or the first requestVideoFrameCallback) and first audio
 * bytes (getStats bytesReceived > 0):
 *
 * - `stagegate/thin-client`: `meeting.stage.join()` of the thin client (the product). The speaker
 *   (preset speaker: ACCEPTED_TO_JOIN_STAGE on arrival) has its send transport prepared at
 *   ACCEPTED; the tracks are opened before t0 (the camera start-up is not counted, see openDevices).
 * - `stagegate/raw`: the same page code as the baseline (mediasoup-client + socket.io) sending
 *   `stage.join` then producing: isolates the server's stage logic from the thin client.
 * - `baseline/raw`: produce to first frame against the baseline server (no stage logic).
 *
 * `cold`: a fresh connection per sample (send transport created but never connected: ICE + DTLS
 * are inside the measured time, as for a participant who just arrived). `warm`: the same
 * connection leaves and re-joins the stage (the send transport stays connected).
 *
 * Samples run round-robin over the variants so machine noise hits them alike. The breakdown maps
 * the worker's own timestamps (MediaTimeline) and the page's onto the sample's t0.
 */
import { startDelayProxy } from './delayProxy.js';
import type { BenchBrowser } from './page/page.js';
import type { RecvRecord } from './page/bench-page.js';
import { median, round, roundAll, sleep, summarize, type Summary } from './stats.js';
import type { Systems } from './systems.js';

export interface JoinOptions {
  samples: number;
  warmSamples: number;
  log: (msg: string) => void;
}

/**
 * `stagegate/thin-client` publishes the 640x480 camera as two simulcast layers (320x240 and
 * 640x480), `stagegate/thin-client-720p` a 1280x720 camera as three; the thin client negotiates
 * the camera's sender at ACCEPTED (its tracks are open: `previewTracks`), and
 * `stagegate/thin-client-720p-unprepared` does not (the A/B of that); the raw drivers send one
 * 640x480 stream (as before simulcast).
 */
type Variant =
  | 'stagegate/thin-client'
  | 'stagegate/thin-client-720p'
  | 'stagegate/thin-client-720p-unprepared'
  | 'stagegate/raw'
  | 'baseline/raw'
  | 'stagegate/thin-client-720p-rtt50'
  | 'stagegate/thin-client-720p-unprepared-rtt50'
  | 'baseline/raw-rtt50';
/**
 * On request only (`BENCH_JOIN_VARIANTS`): the speaker's signaling through a proxy that adds
 * 25 ms each way (`delayProxy.ts`), a 50 ms round trip; the media goes directly.
 */
const RTT_VARIANTS: Variant[] = [
  'stagegate/thin-client-720p-rtt50',
  'stagegate/thin-client-720p-unprepared-rtt50',
  'baseline/raw-rtt50',
];
const RTT_ONE_WAY_MS = 25;
const VARIANTS: Variant[] = [
  'stagegate/thin-client',
  'stagegate/thin-client-720p',
  'stagegate/thin-client-720p-unprepared',
  'stagegate/raw',
  'baseline/raw',
];
const isThin = (v: Variant) => v.startsWith('stagegate/thin-client');
const WARM_VARIANTS: Variant[] = ['stagegate/thin-client', 'baseline/raw'];

/** One sample: milliseconds after t0 (NaN when not observed). */
export interface JoinSample {
  firstFrame: number;
  firstAudio: number;
  joinResolved: number;
  breakdown: Record<string, number>;
  /**
   * The video's key frames (with their simulcast layer), PLIs / FIRs and the viewer consumer's
   * layer changes in the worker, as `ms what [layer]` after t0: what a slow sample waited for.
   */
  events: string[];
  /**
   * The viewer's video consumer was resumed only after the speaker's first key frame (of the layer
   * it starts on) had passed the worker: that frame was not forwarded, the first frame is the
   * next key frame, which the resume asks for (PLI).
   */
  lateResume: boolean;
  /** Late resume: ms from the resume to the consumer's first key frame out (NaN otherwise). */
  keyFrameWait: number;
}

export interface JoinVariantResult {
  samples: JoinSample[];
  failures: string[];
  firstFrame: Summary;
  firstAudio: Summary;
  joinResolved: Summary;
  /** Median of each milestone, ms after t0. */
  breakdownMedian: Record<string, number>;
  /** Samples whose viewer consumer resumed after the first key frame passed (see JoinSample). */
  lateResumes: number;
  /** Those samples: resume → first key frame sent to the viewer. */
  keyFrameWait: Summary;
}

export interface JoinResult {
  /** BENCH_JOIN_ONE_PAGE=1: speaker and viewers in one page (one renderer). */
  onePage: boolean;
  cold: Record<string, JoinVariantResult>;
  warm: Record<string, JoinVariantResult>;
  openDevicesMs: number;
  clock: { offsetMs: number; rttMs: number };
}

interface Ctx {
  sys: Systems;
  /** The servers' URLs as the speaker reaches them: direct, and through the delay proxies. */
  url: { sg: string; baseline: string; sgRtt?: string; baselineRtt?: string };
  /** The speaker's page. */
  spk: BenchBrowser;
  /** The viewers' page (the speaker's too with BENCH_JOIN_ONE_PAGE=1). */
  viewer: BenchBrowser;
  roomTc: string;
  roomRaw: string;
}

export async function benchJoin(sys: Systems, bb: BenchBrowser, opts: JoinOptions): Promise<JoinResult> {
  const roomTc = 'join-thin-client';
  const roomRaw = 'join-raw';
  await sys.sg.sg.rooms.create(roomTc, 'REQUEST');
  await sys.sg.sg.rooms.create(roomRaw, 'REQUEST');
  for (const room of [roomTc, roomRaw]) {
    sys.sg.sg.rooms.get(room)!.stage.on('statusChanged', ({ userId, to }) => {
      if (to === 'ON_STAGE') sys.sgTimeline.push('on-stage', userId);
    });
  }
  const onePage = process.env.BENCH_JOIN_ONE_PAGE === '1';
  const viewer = onePage ? bb : await bb.openPage();
  // BENCH_JOIN_VARIANTS=stagegate/thin-client-720p,baseline/raw: a subset (a quick A/B look).
  const pick = (process.env.BENCH_JOIN_VARIANTS ?? '').split(',').filter(Boolean);
  const rtt = RTT_VARIANTS.filter((v) => pick.includes(v));
  const proxies = rtt.length
    ? await Promise.all([sys.sg.url, sys.baseline.url].map((u) => startDelayProxy(u, RTT_ONE_WAY_MS)))
    : [];
  const url = { sg: sys.sg.url, baseline: sys.baseline.url, sgRtt: proxies[0]?.url, baselineRtt: proxies[1]?.url };
  const ctx: Ctx = { sys, url, spk: bb, viewer, roomTc, roomRaw };
  const openDevicesMs = await bb.call('openDevices');
  const clock = await bb.calibrate();
  await viewer.calibrate();

  // One viewer per variant, alive for the whole benchmark.
  await viewer.call('tcJoin', 'viewer-tc', sys.sg.url, await sys.sg.token('viewer-tc', 'viewer', roomTc), false);
  await viewer.call(
    'rawConnect',
    'viewer-sg',
    sys.sg.url,
    { token: await sys.sg.token('viewer-sg', 'viewer', roomRaw) },
    {
      stagegate: true,
      recv: true,
      send: false,
    },
  );
  await viewer.call(
    'rawConnect',
    'viewer-bl',
    sys.baseline.url,
    { userId: 'viewer-bl' },
    { stagegate: false, recv: true, send: false },
  );

  const only = <T extends string>(vs: T[]) => (pick.length ? vs.filter((v) => pick.includes(v)) : vs);
  const cold = await runRounds(ctx, [...only(VARIANTS), ...rtt], opts.samples, 'cold', opts.log);
  const warm = await runRounds(ctx, only(WARM_VARIANTS), opts.warmSamples, 'warm', opts.log);
  for (const proxy of proxies) await proxy.close();

  await viewer.call('tcLeave', 'viewer-tc');
  await viewer.call('rawClose', 'viewer-sg');
  await viewer.call('rawClose', 'viewer-bl');
  if (viewer !== bb) await viewer.close();
  return {
    onePage,
    cold,
    warm,
    openDevicesMs: round(openDevicesMs),
    clock: { offsetMs: round(clock.offsetMs, 3), rttMs: round(clock.rttMs, 3) },
  };
}

async function runRounds(
  ctx: Ctx,
  variants: Variant[],
  samples: number,
  mode: 'cold' | 'warm',
  log: (msg: string) => void,
): Promise<Record<string, JoinVariantResult>> {
  const raw: Record<string, { samples: JoinSample[]; failures: string[] }> = {};
  for (const v of variants) raw[v] = { samples: [], failures: [] };
  const warmSpeakers = new Set<Variant>();
  const deadline = Date.now() + Math.max(30_000, samples * variants.length * 4000);
  for (let i = 0; i < samples && Date.now() < deadline; i++) {
    if (i % 10 === 0) for (const page of new Set([ctx.spk, ctx.viewer])) await page.calibrate();
    for (const v of variants) {
      try {
        if (mode === 'warm' && !warmSpeakers.has(v)) {
          await connectSpeaker(ctx, v, `spk-warm-${v.replace(/\W/g, '')}`);
          warmSpeakers.add(v);
          await oneSample(ctx, v, mode, -1); // the first join connects the send transport: not counted
        }
        raw[v]!.samples.push(await oneSample(ctx, v, mode, i));
      } catch (err) {
        raw[v]!.failures.push(String((err as Error).message ?? err));
        log(`  join ${mode} ${v} #${i} failed: ${(err as Error).message}`);
        await ctx.spk.call(isThin(v) ? 'tcLeave' : 'rawClose', 'spk').catch(() => undefined);
        warmSpeakers.delete(v);
      }
    }
    if ((i + 1) % 10 === 0 || i + 1 === samples) {
      const line = variants
        .map((v) => `${v} p50 ${round(median(raw[v]!.samples.map((s) => s.firstFrame)), 1)} ms`)
        .join(', ');
      log(`  join ${mode} ${i + 1}/${samples}: ${line}`);
    }
  }
  for (const v of warmSpeakers) await ctx.spk.call(isThin(v) ? 'tcLeave' : 'rawClose', 'spk').catch(() => undefined);

  const out: Record<string, JoinVariantResult> = {};
  for (const v of variants) {
    const { samples: s, failures } = raw[v]!;
    const keys = [...new Set(s.flatMap((x) => Object.keys(x.breakdown)))];
    out[v] = {
      samples: s,
      failures,
      firstFrame: summarize(s.map((x) => x.firstFrame)),
      firstAudio: summarize(s.map((x) => x.firstAudio)),
      joinResolved: summarize(s.map((x) => x.joinResolved)),
      breakdownMedian: Object.fromEntries(keys.map((k) => [k, round(median(s.map((x) => x.breakdown[k] ?? NaN)))])),
      lateResumes: s.filter((x) => x.lateResume).length,
      keyFrameWait: summarize(s.map((x) => x.keyFrameWait)),
    };
  }
  return out;
}

async function connectSpeaker(ctx: Ctx, v: Variant, userId: string): Promise<void> {
  const { sys, spk: bb } = ctx;
  const viaRtt = v.endsWith('-rtt50');
  const sgUrl = viaRtt ? ctx.url.sgRtt! : ctx.url.sg;
  if (isThin(v)) {
    const token = await sys.sg.token(userId, 'speaker', ctx.roomTc);
    const hd = v.startsWith('stagegate/thin-client-720p');
    const r = await bb.call('tcJoin', 'spk', sgUrl, token, true, hd, !v.includes('-unprepared'));
    if (r.status !== 'ACCEPTED_TO_JOIN_STAGE') throw new Error(`speaker arrived ${r.status}`);
  } else if (v === 'stagegate/raw') {
    await bb.call(
      'rawConnect',
      'spk',
      sys.sg.url,
      { token: await sys.sg.token(userId, 'speaker', ctx.roomRaw) },
      {
        stagegate: true,
        recv: false,
        send: true,
      },
    );
  } else {
    const url = viaRtt ? ctx.url.baselineRtt! : ctx.url.baseline;
    await bb.call('rawConnect', 'spk', url, { userId }, { stagegate: false, recv: false, send: true });
  }
}

async function oneSample(ctx: Ctx, v: Variant, mode: 'cold' | 'warm', i: number): Promise<JoinSample> {
  const { spk, viewer } = ctx;
  const thin = isThin(v);
  const userId = mode === 'cold' ? `spk-${v.replace(/\W/g, '')}-${i}` : `spk-warm-${v.replace(/\W/g, '')}`;
  if (mode === 'cold') await connectSpeaker(ctx, v, userId);
  await sleep(50); // let the prepared transport and the previous sample's tear-down settle

  const j = await spk.call(thin ? 'tcStageJoin' : 'rawStageJoin', 'spk');
  if (j.producerIds.length !== 2) throw new Error(`published ${j.producerIds.length} producers, not 2`);
  const recs = await waitRecords(viewer, j.producerIds, (r) => r.tFirstStats !== undefined, 8000);
  // Give the tracer / rVFC a moment to report the first frame if getStats won.
  await sleep(30);
  const final = await Promise.all(j.producerIds.map((id) => viewer.call('record', id)));
  const video = final.find((r) => r?.kind === 'video') ?? recs.find((r) => r.kind === 'video');
  const audio = final.find((r) => r?.kind === 'audio') ?? recs.find((r) => r.kind === 'audio');
  if (!video || !audio) throw new Error('missing a received track');

  const t0 = spk.toWall(j.t0);
  // the viewer's page times, and the speaker's own (join resolved)
  const since = (pageT: number | undefined) => (pageT === undefined ? NaN : round(viewer.toWall(pageT) - t0));
  const spkSince = (pageT: number | undefined) => (pageT === undefined ? NaN : round(spk.toWall(pageT) - t0));
  const frameT = Math.min(video.tFirstStats ?? Infinity, video.tFirstFrame ?? Infinity);
  const tl = v.startsWith('baseline') ? ctx.sys.baselineTimeline : ctx.sys.sgTimeline;
  const pv = j.producerIds.find((id) => final.find((r) => r?.producerId === id)?.kind === 'video')!;
  const pa = j.producerIds.find((id) => id !== pv)!;
  const s = (e: number | undefined) => (e === undefined ? NaN : round(e - t0));
  const since0 = t0 - 5;
  const breakdown: Record<string, number> = {
    'server: ON_STAGE': s(tl.first('on-stage', userId, since0)),
    'send transport ICE connected': s(
      tl.first('ice:connected', `${userId}/send`, since0) ?? tl.first('ice:completed', `${userId}/send`, since0),
    ),
    'send transport DTLS connected': s(tl.first('dtls:connected', `${userId}/send`, since0)),
    'audio producer created': s(tl.first('producer', pa, since0)),
    'video producer created': s(tl.first('producer', pv, since0)),
    'audio first RTP at producer': s(tl.first('producer-rtp', pa, since0)),
    'video first RTP at producer': s(tl.first('producer-rtp', pv, since0)),
    'video first key frame at producer': s(tl.first('producer-keyframe', pv, since0)),
    'viewer video consumer created': s(tl.first('consumer', pv, since0)),
    'viewer video consumer resumed': s(tl.first('consumer-resume', pv, since0)),
    'viewer video first key frame sent': s(tl.first('consumer-keyframe', pv, since0)),
    'viewer: video track added': since(video.tAdded),
    'viewer: first frame received (rVFC receiveTime)': since(video.tFirstFrameReceived),
    'viewer: first frame decoded (getStats)': since(video.tFirstStats),
    'viewer: first frame painted (rVFC)': since(video.tFirstFrame),
    'viewer: first audio bytes': since(audio.tFirstStats),
    'speaker: join() resolved': spkSince(j.tResolved),
  };

  // The first key frame of the layer the consumer starts on (the lowest; a plain stream has no layer).
  const log = tl.logOf(pv, since0);
  const firstKey = log.find((e) => e.what === 'producer-keyframe-in' && (e.layer ?? 0) === 0)?.t;
  const resumed = tl.first('consumer-resume', pv, since0);
  const keyOut = tl.first('consumer-keyframe', pv, since0);
  const lateResume = firstKey !== undefined && resumed !== undefined && resumed > firstKey;
  const keyFrameWait = lateResume && keyOut !== undefined ? round(keyOut - resumed) : NaN;
  // each page's SDP steps, from t0 on (a page's own clock: t0 mapped into it)
  const pages =
    viewer === spk
      ? [['page', spk] as const]
      : ([
          ['spk', spk],
          ['viewer', viewer],
        ] as const);
  const pageEvents = (
    await Promise.all(
      pages.map(async ([name, page]) =>
        ((await page.call('pcEvents', t0 - page.toWall(0) - 1)) as { t: number; pc: number; what: string }[])
          .filter((e) => /^(create|set)/.test(e.what))
          .map((e) => ({ t: page.toWall(e.t) - t0, what: `${name} pc${e.pc} ${e.what}` })),
      ),
    )
  ).flat();
  const events = [
    ...log.map((e) => ({ t: e.t - t0, what: `${e.what}${e.layer === undefined ? '' : ` L${e.layer}`}` })),
    ...pageEvents,
  ]
    .sort((a, b) => a.t - b.t)
    .map((e) => `${round(e.t)} ${e.what}`);

  // Tear down: cold closes the connection, warm leaves the stage; the viewer must see the tracks go.
  if (mode === 'cold') await spk.call(thin ? 'tcLeave' : 'rawClose', 'spk');
  else await spk.call(thin ? 'tcStageLeave' : 'rawStageLeave', 'spk');
  await waitRecords(viewer, j.producerIds, (r) => r.tRemoved !== undefined, 5000).catch(() => undefined);
  await viewer.call('forget', j.producerIds);

  return {
    firstFrame: since(Number.isFinite(frameT) ? frameT : undefined),
    firstAudio: since(audio.tFirstStats),
    joinResolved: since(j.tResolved),
    breakdown,
    events,
    lateResume,
    keyFrameWait,
  };
}

async function waitRecords(
  bb: BenchBrowser,
  producerIds: string[],
  done: (r: RecvRecord) => boolean,
  timeoutMs: number,
): Promise<RecvRecord[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const recs = (await Promise.all(producerIds.map((id) => bb.call('record', id)))) as (RecvRecord | undefined)[];
    if (recs.every((r) => r && done(r))) return recs as RecvRecord[];
    if (Date.now() > end) {
      const missing = await Promise.all(
        producerIds
          .filter((_, i) => !(recs[i] && done(recs[i])))
          .map(async (id) => {
            const r = recs[producerIds.indexOf(id)];
            const frames = r ? `, ${r.kind}: ${r.frames} frames painted` : '';
            return `${id.slice(0, 8)} (${String(await bb.call('consumeStep', id))}${frames})`;
          }),
      );
      throw new Error(
        `viewer: ${recs.filter((r) => r && done(r)).length}/${producerIds.length} tracks ready after ${timeoutMs} ms; not ready: ${missing.join('; ')}`,
      );
    }
    await sleep(15);
  }
}

/** Flattens a variant result for the JSON file (raw samples rounded). */
export function rawSamples(r: JoinVariantResult) {
  return {
    firstFrame: roundAll(r.samples.map((s) => s.firstFrame)),
    firstAudio: roundAll(r.samples.map((s) => s.firstAudio)),
    joinResolved: roundAll(r.samples.map((s) => s.joinResolved)),
  };
}
