/**
 * Node side of the browser benchmarks: bundles bench-page.ts (with the thin client and
 * mediasoup-client) with esbuild, serves it on 127.0.0.1, opens it in headless Chromium
 * (test/helpers/browser.ts flags) and maps page time to this process's clock.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchBrowser, type BrowserHandle } from '../../helpers/browser.js';
import { wall } from '../stats.js';
import type { Bench } from './bench-page.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

async function bundle(): Promise<string> {
  // esbuild ships with tsx (a dependency); imported lazily so non-browser benchmarks never need it.
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [path.join(HERE, 'bench-page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'error',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  return out.outputFiles[0]!.text;
}

export interface BenchBrowser {
  page: Page;
  browser: BrowserHandle;
  version: string;
  /** The page's own origin: the servers it connects to must allow it (it is not theirs). */
  origin: string;
  /** Calls a `bench` function in the page. */
  call<K extends keyof Bench>(fn: K, ...args: Parameters<Bench[K]>): Promise<Awaited<ReturnType<Bench[K]>>>;
  /** page performance.now() → this process's wall clock (epoch ms), from the latest calibration. */
  toWall(pageNow: number): number;
  /** Re-estimates the page ↔ process clock offset (NTP-style, best of several round trips). */
  calibrate(): Promise<{ offsetMs: number; rttMs: number }>;
  /**
   * Another page of the same browser, with its own renderer process (each tab the browser opens
   * is a browsing instance of its own) and its own clock mapping: a second participant whose
   * WebRTC threads do not queue behind the first one's, as on two machines.
   */
  openPage(): Promise<BenchBrowser>;
  close(): Promise<void>;
}

export async function openBenchBrowser(): Promise<BenchBrowser> {
  const js = await bundle();
  const html =
    '<!doctype html><meta charset="utf-8"><title>bench</title><body><script type="module" src="/bench.js"></script>';
  const server = http.createServer((req, res) => {
    if (req.url === '/bench.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  // gc(): the join benchmark makes ~600 peer connections, past Chromium's 500 uncollected
  const browser = await launchBrowser(['--js-flags=--expose-gc']);
  const version = browser.context.browser()?.version() ?? 'unknown';
  const origin = `http://127.0.0.1:${port}`;
  const closeAll = async () => {
    await browser.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return openHandle(browser, version, origin, closeAll);
}

async function openHandle(
  browser: BrowserHandle,
  version: string,
  origin: string,
  /** Closes the browser and its page server; a page opened by `openPage` closes only itself. */
  closeAll?: () => Promise<void>,
): Promise<BenchBrowser> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error('[bench page]', e.message));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => 'bench' in window, undefined, { timeout: 10_000 });
  // page timeOrigin + now ≈ wall() + offset
  let offset = 0;
  let timeOrigin = 0;
  const handle: BenchBrowser = {
    page,
    browser,
    version,
    origin,
    call: (fn, ...args) =>
      page.evaluate(
        ([f, a]) =>
          (window as unknown as { bench: Record<string, (...x: unknown[]) => unknown> }).bench[f as string]!(
            ...(a as unknown[]),
          ),
        [fn, args] as const,
      ) as never,
    toWall: (pageNow) => timeOrigin + pageNow - offset,
    async calibrate() {
      timeOrigin = (await handle.call('timeOrigin')) as number;
      let best = { offsetMs: 0, rttMs: Infinity };
      for (let i = 0; i < 7; i++) {
        const a = wall();
        const p = (await handle.call('clock')) as number;
        const b = wall();
        if (b - a < best.rttMs) best = { offsetMs: p - (a + b) / 2, rttMs: b - a };
      }
      offset = best.offsetMs;
      return best;
    },
    openPage: () => openHandle(browser, version, origin),
    close: closeAll ?? (() => page.close()),
  };
  await handle.calibrate();
  return handle;
}
