/**
 * The two systems every benchmark compares, started side by side in this process: Stagegate
 * (createStagegate via test/helpers/server.ts) and the baseline server, each on its own mediasoup
 * worker created with the same settings. `MediaTimeline` timestamps what the workers do (transport
 * ICE/DTLS, producer and consumer creation, first RTP, first key frame) from mediasoup's observer
 * and trace events, identically for both systems.
 */
import type { types as ms } from 'mediasoup';
import { startServer, type TestServer } from '../helpers/server.js';
import { createBaselineServer, createBenchWorker, type BaselineServer } from './baseline-server.js';
import { wall } from './stats.js';

/** Rate limits for the benchmarks' Stagegate server (defaults: 100 requests/s, 5 stage actions/s). */
export const BENCH_LIMITS = { requestsPerSecond: 10_000, stageActionsPerSecond: 1_000 };

export interface Systems {
  sg: TestServer;
  baseline: BaselineServer;
  sgWorker: ms.Worker;
  baselineWorker: ms.Worker;
  sgTimeline: MediaTimeline;
  baselineTimeline: MediaTimeline;
  close(): Promise<void>;
}

/** `allowedOrigins`: the bench page's origin, when a page connects (it is served from its own port). */
export async function startSystems(opts: { timeline?: boolean; allowedOrigins?: string[] } = {}): Promise<Systems> {
  const [sgWorker, baselineWorker] = await Promise.all([createBenchWorker(), createBenchWorker()]);
  const sgTimeline = new MediaTimeline();
  const baselineTimeline = new MediaTimeline();
  if (opts.timeline) {
    sgTimeline.attach(sgWorker);
    baselineTimeline.attach(baselineWorker);
  }
  // The bench drives each connection far faster than a person clicks (the kick benchmark: a
  // kick and a re-join every few ms, 30 times): per-connection limits that fit that load, so no
  // sample is refused RATE_LIMITED (the baseline has no limits at all).
  const sg = await startServer({
    config: { ...BENCH_LIMITS, allowedOrigins: opts.allowedOrigins ?? [] },
    extra: { workers: [sgWorker] },
  });
  const baseline = await createBaselineServer({ worker: baselineWorker });
  return {
    sg,
    baseline,
    sgWorker,
    baselineWorker,
    sgTimeline,
    baselineTimeline,
    async close() {
      await Promise.allSettled([sg.close(), baseline.close()]);
      sgWorker.close();
      baselineWorker.close();
    },
  };
}

export interface TimelineEvent {
  /** Wall clock (epoch ms, sub-ms resolution) when this process learnt of it. */
  t: number;
  what: string;
  /** Producer id (producer events), the consumed producer id (consumer events), or the transport's user. */
  key: string;
  kind?: string;
}

export interface LogEntry extends TimelineEvent {
  /** Simulcast layer (encoding index), when known. */
  layer?: number | undefined;
  ssrc?: number | undefined;
}

/**
 * Timestamps of what the worker does, from mediasoup's observer API and trace events:
 * `transport` (created) and `ice:<state>` / `dtls:<state>` keyed by `<userId>/<direction>`;
 * `producer`, `producer-rtp` (first RTP packet), `producer-keyframe` keyed by producer id;
 * `consumer`, `consumer-resume`, `consumer-rtp` (first RTP out), `consumer-keyframe` keyed by the
 * consumed producer id; `producer-close` keyed by producer id.
 */
export class MediaTimeline {
  readonly events: TimelineEvent[] = [];
  /** Every video key frame, PLI / FIR and layer change of the first seconds (not only the first). */
  readonly log: LogEntry[] = [];
  #max = 20_000;

  attach(worker: ms.Worker): void {
    worker.observer.on('newrouter', (router) => router.observer.on('newtransport', (t) => this.#transport(t)));
  }

  push(what: string, key: string, kind?: string): void {
    if (this.events.length >= this.#max) this.events.splice(0, this.#max / 2);
    this.events.push(kind ? { t: wall(), what, key, kind } : { t: wall(), what, key });
  }

  /** First event named `what` for `key` at or after `since`. */
  first(what: string, key: string, since: number): number | undefined {
    return this.events.find((e) => e.what === what && e.key === key && e.t >= since)?.t;
  }

  /** Log entries for `key` at or after `since`. */
  logOf(key: string, since: number): LogEntry[] {
    if (this.log.length > 20_000) this.log.splice(0, 10_000);
    return this.log.filter((e) => e.key === key && e.t >= since);
  }

  clear(): void {
    this.events.length = 0;
    this.log.length = 0;
  }

  #transport(t: ms.Transport): void {
    const owner = `${String(t.appData.userId ?? '?')}/${String(t.appData.direction ?? t.type)}`;
    this.push('transport', owner);
    if (t.type === 'webrtc') {
      const w = t as ms.WebRtcTransport;
      w.on('icestatechange', (s) => this.push(`ice:${s}`, owner));
      w.on('dtlsstatechange', (s) => this.push(`dtls:${s}`, owner));
    }
    t.observer.on('newproducer', (p) => {
      this.push('producer', p.id, p.kind);
      p.observer.once('close', () => this.push('producer-close', p.id, p.kind));
      const seen = new Set<string>();
      // Video: every key frame (with its stream's layer) and every PLI / FIR sent to the browser
      // during the first seconds (`log`, see JoinSample.events); the first of each type as before.
      const rids = new Map<number, string>();
      p.on('trace', (tr) => {
        const info = tr.info as { rtpPacket?: { ssrc?: number; rid?: string }; ssrc?: number } | undefined;
        if (info?.rtpPacket?.rid && info.rtpPacket.ssrc !== undefined)
          rids.set(info.rtpPacket.ssrc, info.rtpPacket.rid);
        if (p.kind === 'video' && tr.type === 'rtp' && process.env.BENCH_JOIN_RTP) {
          const pkt = info?.rtpPacket as { ssrc?: number; timestamp?: number; marker?: boolean } | undefined;
          const rid = pkt?.ssrc === undefined ? undefined : rids.get(pkt.ssrc);
          const layer = rid ? p.rtpParameters.encodings?.findIndex((e) => e.rid === rid) : undefined;
          if (pkt?.marker) this.log.push({ t: wall(), what: 'producer-frame-end', key: p.id, layer });
        }
        if (p.kind === 'video' && tr.type !== 'rtp') {
          const ssrc = info?.rtpPacket?.ssrc ?? info?.ssrc;
          const rid = ssrc === undefined ? undefined : rids.get(ssrc);
          const layer = rid ? p.rtpParameters.encodings?.findIndex((e) => e.rid === rid) : undefined;
          this.log.push({ t: wall(), what: `producer-${tr.type}-${tr.direction}`, key: p.id, layer, ssrc });
        }
        if (seen.has(tr.type)) return;
        seen.add(tr.type);
        this.push(`producer-${tr.type}`, p.id, p.kind);
        if (seen.has('rtp') && p.kind === 'audio') void p.enableTraceEvent([]).catch(() => undefined);
        if (seen.has('rtp') && p.kind === 'video' && !process.env.BENCH_JOIN_RTP) {
          void p.enableTraceEvent(['keyframe', 'pli', 'fir']).catch(() => undefined);
          setTimeout(() => void p.enableTraceEvent([]).catch(() => undefined), 3000).unref();
        }
      });
      void p.enableTraceEvent(p.kind === 'video' ? ['rtp', 'keyframe', 'pli', 'fir'] : ['rtp']).catch(() => undefined);
      if (p.kind === 'video' && process.env.BENCH_JOIN_RTP)
        setTimeout(() => void p.enableTraceEvent([]).catch(() => undefined), 600).unref();
    });
    t.observer.on('newconsumer', (c) => {
      this.push('consumer', c.producerId, c.kind);
      c.observer.on('resume', () => this.push('consumer-resume', c.producerId, c.kind));
      const seen = new Set<string>();
      c.on('trace', (tr) => {
        if (c.kind === 'video' && tr.type !== 'rtp')
          this.log.push({ t: wall(), what: `consumer-${tr.type}-${tr.direction}`, key: c.producerId });
        if (tr.direction !== 'out' || seen.has(tr.type)) return;
        seen.add(tr.type);
        this.push(`consumer-${tr.type}`, c.producerId, c.kind);
        if (seen.has('rtp') && c.kind === 'audio') void c.enableTraceEvent([]).catch(() => undefined);
        if (seen.has('rtp') && c.kind === 'video') {
          void c.enableTraceEvent(['keyframe', 'pli', 'fir']).catch(() => undefined);
          setTimeout(() => void c.enableTraceEvent([]).catch(() => undefined), 3000).unref();
        }
      });
      c.on('layerschange', (l) =>
        this.log.push({ t: wall(), what: 'consumer-layerschange', key: c.producerId, layer: l?.spatialLayer }),
      );
      void c.enableTraceEvent(c.kind === 'video' ? ['rtp', 'keyframe', 'pli', 'fir'] : ['rtp']).catch(() => undefined);
    });
  }
}
