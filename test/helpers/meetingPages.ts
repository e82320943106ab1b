/**
 * The lifecycle of the Chromium tests that drive the thin client (a test bundle, not the demo
 * pages): one real server serving the bundle and one headless Chromium for the file; pages and
 * rooms closed after each test.
 *
 * `server` and `browser` are live ESM bindings (vitest gives each test file its own module graph).
 */
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Page } from 'playwright-core';
import type { Room } from '../../server/room/Room.js';
import type { ConfigInput } from '../../server/config.js';
import type { RoomSettings, StageMode } from '../../shared/stage.js';
import { inboundStats, launchBrowser, type BrowserHandle } from './browser.js';
import { buildClientWebRoot } from './clientBundle.js';
import { startServer, type TestServer } from './server.js';

export let server: TestServer;
export let browser: BrowserHandle;
let webRoot: string | undefined;
const pages: Page[] = [];
const rooms: Room[] = [];

/** Registers the file's hooks: the bundle built, a server with `config` and Chromium started. */
export function useMeetingPages(config: ConfigInput = {}): void {
  beforeAll(async () => {
    webRoot = await buildClientWebRoot();
    server = await startServer({ extra: { webRoot }, config });
    browser = await launchBrowser();
  }, 120_000);
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close().catch(() => undefined);
    for (const room of rooms.splice(0)) if (!room.closed) room.close();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
  });
}

/** A room closed after the test. */
export async function newRoom(id: string, mode?: StageMode, settings?: Partial<RoomSettings>): Promise<Room> {
  const room = await server.sg.rooms.create(id, mode, settings);
  rooms.push(room);
  return room;
}

/** A page of the server's test bundle (`/index.html`), closed after the test. */
export async function newPage(): Promise<Page> {
  const page = await browser.newPage(`${server.url}/index.html`);
  pages.push(page);
  return page;
}

export interface MeetingPageOptions {
  /** Script run before `joinMeeting` (it may set `tracks`, passed to joinMeeting). */
  before?: string;
  /** Meeting events (`meeting.on`) recorded as "name json" lines on `window.log`. */
  events?: string[];
  /** Stage events (`meeting.stage.on`) recorded on `window.log` the same way. */
  stageEvents?: string[];
  /** Script run after the meeting is on `window.meeting` (before an `onStage` join). */
  after?: string;
  /** Joins the stage once in the room. */
  onStage?: boolean;
}

/**
 * A page that joins `room` with the thin client as `userId`, plays what it receives (one muted
 * element per producer, with the producer id as its id) and exposes the meeting as
 * `window.meeting`. A string, not a function, is evaluated: vitest would rewrite a dynamic
 * import() inside a function's source.
 */
export async function openMeeting(
  userId: string,
  preset: 'host' | 'speaker' | 'viewer',
  room: Room,
  opts: MeetingPageOptions = {},
): Promise<Page> {
  const token = await server.token(userId, preset, room.id);
  const page = await newPage();
  await page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    let tracks;
    ${opts.before ?? ''}
    const meeting = await joinMeeting({ url: location.origin, token: ${JSON.stringify(token)}, roomId: ${JSON.stringify(room.id)}, tracks });
    window.log = [];
    for (const name of ${JSON.stringify(opts.events ?? [])}) {
      meeting.on(name, (e) => window.log.push(name + ' ' + JSON.stringify(e)));
    }
    for (const name of ${JSON.stringify(opts.stageEvents ?? [])}) {
      meeting.stage.on(name, (e) => window.log.push(name + ' ' + JSON.stringify(e)));
    }
    meeting.on('trackAdded', ({ track, producerId }) => {
      const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
      el.autoplay = true;
      el.muted = true;
      el.id = producerId;
      el.srcObject = new MediaStream([track]);
      document.body.append(el);
    });
    meeting.on('trackRemoved', ({ producerId }) => document.getElementById(producerId)?.remove());
    window.meeting = meeting;
    ${opts.after ?? ''}
    if (${Boolean(opts.onStage)}) await meeting.stage.join();
  })()`);
  return page;
}

/** The recorded `window.log` lines of a page. */
export const pageLog = (page: Page) => page.evaluate(() => (window as unknown as { log: string[] }).log);

export const framesDecoded = async (page: Page) => (await inboundStats(page)).video.framesDecoded;
