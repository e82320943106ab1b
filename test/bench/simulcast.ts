/**
 * Benchmark 6: simulcast against one stream, real Chromium on both ends.
 *
 * One speaker (thin client, Chromium's fake camera at 1280x720) publishes its camera either as
 * simulcast (three layers: 320, 640, 1280 wide, L1T3) or as one 1280x720 stream (the thin
 * client's `simulcast: false`, the baseline column). `viewers` thin-client viewers in one page
 * watch it, their tiles cycling through three sizes (320x180, 640x360, 1280x720) reported with
 * `setDefaultVideoPreferences`; with simulcast the server sends each the layer that fits.
 *
 * Per mode, after a warm-up, over one window:
 * - the worker's CPU (utime + stime from /proc) per video consumer;
 * - downlink bytes per viewer: the bytes each video consumer sent (its `outbound-rtp` byteCount
 *   from mediasoup's consumer.getStats(), headers included), as kbit/s, by tile size;
 * - the spatial layer each viewer got (consumer.currentLayers).
 *
 * The modes alternate (`reps` times) so machine noise hits both alike; the medians are reported.
 */
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import type { types as ms } from 'mediasoup';
import { launchBrowser, type BrowserHandle } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { CpuWindow } from './proc.js';
import { median, round, sleep } from './stats.js';

export interface SimulcastOptions {
  viewers: number;
  warmupMs: number;
  windowMs: number;
  reps: number;
  log: (msg: string) => void;
}

const TILES = [
  { name: 'small', width: 320, height: 180 },
  { name: 'medium', width: 640, height: 360 },
  { name: 'large', width: 1280, height: 720 },
] as const;
type TileName = (typeof TILES)[number]['name'];
type Mode = 'simulcast' | 'single';

export interface SimulcastModeResult {
  /** Worker CPU per video consumer, µs per second. */
  cpuPerConsumerUs: number;
  /** Video downlink per viewer by tile size, kbit/s. */
  downlinkKbps: Record<TileName, number>;
  /** The spatial layer each tile size got (median). */
  layer: Record<TileName, number>;
}

export interface SimulcastResult {
  viewers: number;
  windowMs: number;
  simulcast: SimulcastModeResult;
  single: SimulcastModeResult;
}

export async function benchSimulcast(opts: SimulcastOptions): Promise<SimulcastResult> {
  const webRoot = await buildClientWebRoot();
  let server: TestServer | undefined;
  let browser: BrowserHandle | undefined;
  try {
    server = await startServer({ extra: { webRoot } });
    browser = await launchBrowser();
    const samples: Record<Mode, SimulcastModeResult[]> = { simulcast: [], single: [] };
    for (let rep = 0; rep < opts.reps; rep++) {
      const order: Mode[] = rep % 2 === 0 ? ['simulcast', 'single'] : ['single', 'simulcast'];
      for (const mode of order) {
        const r = await oneRun(server, browser, mode, rep, opts);
        samples[mode].push(r);
        opts.log(
          `  simulcast ${mode} #${rep}: ${r.cpuPerConsumerUs} µs/s per consumer, downlink ${TILES.map((t) => `${t.name} ${r.downlinkKbps[t.name]} kbit/s (layer ${r.layer[t.name]})`).join(', ')}`,
        );
      }
    }
    return {
      viewers: opts.viewers,
      windowMs: opts.windowMs,
      simulcast: medianOf(samples.simulcast),
      single: medianOf(samples.single),
    };
  } finally {
    await browser?.close();
    await server?.close();
    fs.rmSync(webRoot, { recursive: true, force: true });
  }
}

async function oneRun(
  server: TestServer,
  browser: BrowserHandle,
  mode: Mode,
  rep: number,
  opts: SimulcastOptions,
): Promise<SimulcastModeResult> {
  const room = await server.sg.rooms.create(`simulcast-${mode}-${rep}`, 'REQUEST');
  const pages: Page[] = [];
  try {
    const viewerPage = await browser.newPage(`${server.url}/index.html`);
    pages.push(viewerPage);
    const viewers: { userId: string; tile: (typeof TILES)[number] }[] = [];
    for (let i = 0; i < opts.viewers; i++) {
      const tile = TILES[i % TILES.length]!;
      const userId = `viewer-${i}-${tile.name}`;
      viewers.push({ userId, tile });
      await join(viewerPage, await server.token(userId, 'viewer', room.id), room.id, { tile });
    }
    const speakerPage = await browser.newPage(`${server.url}/index.html`);
    pages.push(speakerPage);
    await join(speakerPage, await server.token('speaker', 'speaker', room.id), room.id, {
      speaker: true,
      simulcast: mode === 'simulcast',
    });
    const consumers = () =>
      viewers.map(({ userId, tile }) => {
        const c = [...(room.participants.get(userId)?.consumers.values() ?? [])].find((x) => x.kind === 'video');
        if (!c) throw new Error(`${userId} has no video consumer`);
        return { c, tile };
      });
    await sleep(opts.warmupMs);

    const before = await Promise.all(consumers().map(({ c }) => sentBytes(c)));
    const cpu = new CpuWindow(room.worker.pid);
    await sleep(opts.windowMs);
    const used = cpu.end();
    const list = consumers();
    const after = await Promise.all(list.map(({ c }) => sentBytes(c)));

    const byTile = (values: number[]) =>
      Object.fromEntries(
        TILES.map((t) => [t.name, round(median(values.filter((_, i) => list[i]!.tile.name === t.name)), 1)]),
      ) as Record<TileName, number>;
    const kbps = list.map((_, i) => ((after[i]! - before[i]!) * 8) / used.seconds / 1000);
    const layers = list.map(({ c }) => c.currentLayers?.spatialLayer ?? 0);
    return {
      cpuPerConsumerUs: round((used.cpuSeconds / used.seconds / list.length) * 1e6, 0),
      downlinkKbps: byTile(kbps),
      layer: byTile(layers),
    };
  } finally {
    for (const page of pages) await page.close().catch(() => undefined);
    room.close();
  }
}

async function sentBytes(c: ms.Consumer): Promise<number> {
  const stats = await c.getStats();
  return stats.filter((s) => s.type === 'outbound-rtp').reduce((n, s) => n + s.byteCount, 0);
}

/** A thin-client meeting in the page: a viewer with a tile size, or the speaker going on stage. */
async function join(
  page: Page,
  token: string,
  roomId: string,
  o: { tile?: { width: number; height: number }; speaker?: boolean; simulcast?: boolean },
): Promise<void> {
  await page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    let tracks;
    if (${!!o.speaker}) {
      const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
      tracks = { audio: s.getAudioTracks()[0], video: s.getVideoTracks()[0] };
    }
    const meeting = await joinMeeting({ url: location.origin, token: ${JSON.stringify(token)}, roomId: ${JSON.stringify(roomId)}, tracks, simulcast: ${o.simulcast ?? true} });
    const tile = ${JSON.stringify(o.tile ?? null)};
    if (tile) meeting.setDefaultVideoPreferences(tile);
    meeting.on('trackAdded', ({ track }) => {
      if (track.kind !== 'video') return;
      const el = document.createElement('video');
      el.autoplay = true;
      el.muted = true;
      el.srcObject = new MediaStream([track]);
      document.body.append(el);
    });
    if (${!!o.speaker}) await meeting.stage.join();
  })()`);
}

function medianOf(rs: SimulcastModeResult[]): SimulcastModeResult {
  const pick = (f: (r: SimulcastModeResult) => number) => round(median(rs.map(f)), 1);
  const per = (f: (r: SimulcastModeResult) => Record<TileName, number>) =>
    Object.fromEntries(TILES.map((t) => [t.name, pick((r) => f(r)[t.name])])) as Record<TileName, number>;
  return {
    cpuPerConsumerUs: pick((r) => r.cpuPerConsumerUs),
    downlinkKbps: per((r) => r.downlinkKbps),
    layer: per((r) => r.layer),
  };
}
