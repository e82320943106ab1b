/**
 * The lifecycle of the Chromium tests that drive the demo pages (`client/dist`, built when
 * missing): one real server in demo mode and one headless Chromium for the file, pages closed
 * after each test; and the steps every such test takes (create a room, open a page, enter a name).
 *
 * `sg`, `url` and `browser` are live ESM bindings (vitest gives each test file its own module graph).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { Meeting } from '../../client/index.js';
import { createStagegate, type Stagegate } from '../../server/index.js';
import type { ConfigInput } from '../../server/config.js';
import type { StageMode } from '../../shared/stage.js';
import { launchBrowser, type BrowserHandle } from './browser.js';
import { connectRaw, joinRaw, type RawClient } from './server.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the tests' screenshots go. */
export const SHOTS = path.join(ROOT, 'test-results');

type TestWindow = Window & { __meeting: Meeting };

export let sg: Stagegate;
export let url: string;
export let browser: BrowserHandle;
const pages: Page[] = [];

/** Registers the file's hooks: the pages built if missing, a demo server with `config`, Chromium. */
export function useDemoPages(config: ConfigInput = {}): void {
  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'client/dist/host.html'))) {
      execFileSync('npx', ['vite', 'build', '--config', 'client/web/vite.config.ts'], { cwd: ROOT, stdio: 'inherit' });
    }
    fs.mkdirSync(SHOTS, { recursive: true });
    sg = await createStagegate({
      config: { port: 0, numWorkers: 1, logLevel: 'silent', demo: true, ...config },
      useEnv: false,
    });
    ({ url } = await sg.listen());
    browser = await launchBrowser();
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close().catch(() => undefined)));
  });
  afterAll(async () => {
    await browser?.close();
    await sg?.close();
  });
}

export interface DemoRoom {
  roomId: string;
  hostKey: string;
  hostPath: string;
  speakerPath: string;
  viewerPath: string;
}

/** `POST /demo/rooms`, as the landing page does. */
export async function createRoom(mode: StageMode = 'REQUEST'): Promise<DemoRoom> {
  const res = await fetch(`${url}/demo/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ mode }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as DemoRoom;
}

/** A blank page, closed after the test. */
export async function newPage(): Promise<Page> {
  const page = await browser.newPage();
  pages.push(page);
  return page;
}

/** A new page at `pathAndQuery` of the server, closed after the test. */
export async function open(pathAndQuery: string): Promise<Page> {
  const page = await newPage();
  await page.goto(`${url}${pathAndQuery}`);
  return page;
}

export const joined = (page: Page) => page.locator('body[data-state="joined"]').waitFor({ timeout: 15_000 });
export const selfId = (page: Page) => page.evaluate(() => (window as unknown as TestWindow).__meeting.self.id);

/** Types a name in the lobby and joins: the page and its user id. */
export async function enter(page: Page, name: string): Promise<{ page: Page; id: string }> {
  await page.getByTestId('name-input').fill(name);
  await click(page.getByTestId('join-button'));
  await joined(page);
  return { page, id: await selfId(page) };
}

/** Clicks in a page brought to the front (a background page's timers and media are throttled). */
export async function click(locator: Locator): Promise<void> {
  await locator.page().bringToFront();
  await locator.click();
}

export const statusOf = (page: Page) => page.getByTestId('stage-status').getAttribute('data-status');
export async function expectStatus(page: Page, status: string): Promise<void> {
  await expect.poll(() => statusOf(page), { timeout: 10_000 }).toBe(status);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A raw audience for a demo room: viewers "Watcher 000", "Watcher 001"... (user ids
 * `watcher-000`...) joined `batch` at a time; in index order. The caller closes them.
 */
export async function connectWatchers(roomId: string, count: number, batch = 10): Promise<RawClient[]> {
  const pad = (i: number) => String(i).padStart(3, '0');
  const clients: RawClient[] = [];
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, async (_, k) => {
        const token = await sg.tokens.mint({
          userId: `watcher-${pad(i + k)}`,
          name: `Watcher ${pad(i + k)}`,
          roomId,
          preset: 'viewer',
        });
        const c = await connectRaw(url, { token });
        clients[i + k] = c; // by index: connections finish in any order
        await joinRaw(c);
      }),
    );
  }
  return clients;
}
