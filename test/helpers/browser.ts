/**
 * Real headless Chromium (Debian's, via playwright-core) with fake camera and microphone.
 * Flags measured on this machine kind: see the README's "Browser tests" section.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.STAGEGATE_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // without it Chromium gathers no ICE candidate on loopback
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

export interface BrowserHandle {
  context: BrowserContext;
  newPage(url?: string): Promise<Page>;
  close(): Promise<void>;
}

/**
 * One persistent context (fresh profile) that pages share; closed with its profile dir.
 * `extraArgs` go after the usual flags (the benchmark's `--js-flags=--expose-gc`).
 */
export async function launchBrowser(extraArgs: string[] = []): Promise<BrowserHandle> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, ...extraArgs],
    viewport: { width: 1280, height: 800 },
  });
  // Record every RTCPeerConnection the page creates, so tests read getStats() without any
  // hook in the product code.
  await context.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    const pcs: RTCPeerConnection[] = [];
    (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs = pcs;
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config);
        pcs.push(this);
      }
    } as typeof RTCPeerConnection;
  });
  return {
    context,
    async newPage(url) {
      const page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error' && process.env.STAGEGATE_TEST_VERBOSE) console.error('[page]', m.text());
      });
      if (url) await page.goto(url);
      return page;
    },
    async close() {
      await context.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Inbound RTP counters of every RTCPeerConnection a page registered on window.__pcs. */
export interface InboundStats {
  video: { framesDecoded: number; frameWidth: number; frameHeight: number; bytesReceived: number };
  audio: { bytesReceived: number; packetsReceived: number };
}

/**
 * Reads `getStats()` in the page: sums `inbound-rtp` framesDecoded/bytesReceived over all
 * peer connections the page created (recorded on `window.__pcs` by the init script above).
 */
export async function inboundStats(page: Page): Promise<InboundStats> {
  return page.evaluate(async () => {
    const out = {
      video: { framesDecoded: 0, frameWidth: 0, frameHeight: 0, bytesReceived: 0 },
      audio: { bytesReceived: 0, packetsReceived: 0 },
    };
    const pcs = ((window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? []).filter(
      (pc) => pc.connectionState !== 'closed',
    );
    for (const pc of pcs) {
      const report = await pc.getStats();
      report.forEach((s: Record<string, unknown>) => {
        // mediasoup's bandwidth probe (mid 'probator', SSRC 1234) keeps sending padding with
        // no frames after a producer closes: it is not media
        if (s.type !== 'inbound-rtp' || s.mid === 'probator' || s.ssrc === 1234) return;
        if (s.kind === 'video') {
          out.video.framesDecoded += Number(s.framesDecoded ?? 0);
          out.video.bytesReceived += Number(s.bytesReceived ?? 0);
          out.video.frameWidth = Math.max(out.video.frameWidth, Number(s.frameWidth ?? 0));
          out.video.frameHeight = Math.max(out.video.frameHeight, Number(s.frameHeight ?? 0));
        } else if (s.kind === 'audio') {
          out.audio.bytesReceived += Number(s.bytesReceived ?? 0);
          out.audio.packetsReceived += Number(s.packetsReceived ?? 0);
        }
      });
    }
    return out;
  });
}

/** One axe-core violation, as the tests print it. */
export interface A11yViolation {
  id: string;
  impact: string | null | undefined;
  help: string;
  targets: string[];
}

const AXE_SOURCE = fs.readFileSync(
  path.join(path.dirname(new URL(import.meta.resolve('axe-core')).pathname), 'axe.min.js'),
  'utf8',
);

/**
 * Runs axe-core (WCAG 2.x A/AA rules) in the page as it is now and returns the serious and
 * critical violations. Tests assert the list is empty; printing it says what to fix.
 */
export async function a11yViolations(page: Page): Promise<A11yViolation[]> {
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run(
            ctx: Document,
            opts: object,
          ): Promise<{
            violations: Array<{
              id: string;
              impact?: string | null;
              help: string;
              nodes: Array<{ target: unknown[] }>;
            }>;
          }>;
        };
      }
    ).axe;
    const result = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.map(String).join(' ')),
    }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
