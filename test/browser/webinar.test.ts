/**
 * The demo pages end to end: real Chromium (fake camera and microphone), real mediasoup, the
 * real server. Every test asserts decoded media read from getStats() in the receiving pages,
 * and what the server holds, not just what the UI says.
 *
 * The pages are served from client/dist (built by `npm test`'s pretest; built here if missing).
 * Screenshots land in test-results/.
 */
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { types as ms } from 'mediasoup';
import type { Meeting } from '../../client/index.js';
import { a11yViolations, inboundStats, type InboundStats } from '../helpers/browser.js';
import {
  click,
  createRoom,
  enter,
  expectStatus,
  newPage,
  sg,
  SHOTS,
  sleep,
  url,
  useDemoPages,
  type DemoRoom,
} from '../helpers/demoPages.js';

/** What the tests read in a page (set by the pages and by the init script below). */
type TestWindow = Window & {
  __meeting: Meeting;
  /** Every track getUserMedia handed out in this page. */
  __gumTracks: MediaStreamTrack[];
  /** Every WebSocket this page opened (socket.io's among them). */
  __sockets: WebSocket[];
};

useDemoPages();

// ------------------------------------------------------------------ helpers

/** A page that records getUserMedia tracks and WebSockets, then opens `path`. */
async function open(pathAndQuery: string): Promise<Page> {
  const page = await newPage();
  await page.addInitScript(() => {
    const w = window as unknown as TestWindow;
    w.__gumTracks = [];
    w.__sockets = [];
    const md = navigator.mediaDevices;
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = async (constraints) => {
      const stream = await gum(constraints);
      w.__gumTracks.push(...stream.getTracks());
      return stream;
    };
    const NativeWs = window.WebSocket;
    window.WebSocket = class extends NativeWs {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        w.__sockets.push(this);
      }
    } as typeof WebSocket;
  });
  await page.goto(`${url}${pathAndQuery}`);
  return page;
}

const openHost = async (room: DemoRoom, name = 'Grace Host') => enter(await open(room.hostPath), name);
const openViewer = async (room: DemoRoom, name: string) => enter(await open(room.viewerPath), name);

/** Decoded video and received audio, as the receivers' getStats() count them. */
async function expectReceiving(page: Page): Promise<InboundStats> {
  await expect
    .poll(async () => (await inboundStats(page)).video.framesDecoded, { timeout: 15_000, interval: 250 })
    .toBeGreaterThan(20);
  const s = await inboundStats(page);
  expect(s.video.frameWidth).toBeGreaterThan(0);
  expect(s.video.frameHeight).toBeGreaterThan(0);
  expect(s.video.bytesReceived).toBeGreaterThan(0);
  await expect.poll(async () => (await inboundStats(page)).audio.bytesReceived, { timeout: 10_000 }).toBeGreaterThan(0);
  return s;
}

/** Video frames decoded, video bytes, audio bytes (inboundStats() leaves out mediasoup's probe stream). */
async function mediaCounters(page: Page): Promise<number[]> {
  const s = await inboundStats(page);
  return [s.video.framesDecoded, s.video.bytesReceived, s.audio.bytesReceived];
}

/**
 * Media to these pages stopped: within 5 s the counters stop growing (a 500 ms window shows no
 * growth), then two readings 1.5 s apart are equal.
 */
async function expectStopped(receivers: Page[]): Promise<void> {
  for (const page of receivers) {
    await expect
      .poll(
        async () => {
          const a = await mediaCounters(page);
          await sleep(500);
          const b = await mediaCounters(page);
          return b.some((v, i) => v > a[i]!);
        },
        { timeout: 5_000, interval: 100 },
      )
      .toBe(false);
  }
  const first = await Promise.all(receivers.map(mediaCounters));
  await sleep(1_500);
  const second = await Promise.all(receivers.map(mediaCounters));
  expect(second).toEqual(first);
}

/** Keeps, in each receiving page, the tracks it receives from `userId` right now (for later checks). */
async function keepReceivedTracks(pages: Page[], userId: string): Promise<void> {
  for (const page of pages) {
    const kinds = await page.evaluate((id) => {
      const w = window as unknown as TestWindow & { __kept: MediaStreamTrack[] };
      const tracks = w.__meeting.participants.get(id)?.tracks ?? {};
      w.__kept = [tracks.audio, tracks.video].filter((t): t is MediaStreamTrack => !!t);
      return w.__kept.map((t) => t.kind).sort();
    }, userId);
    expect(kinds).toEqual(['audio', 'video']);
  }
}

/** The tracks kept by keepReceivedTracks() have ended, and the pages no longer hold any from `userId`. */
async function expectReceivedTracksEnded(pages: Page[], userId: string): Promise<void> {
  for (const page of pages) {
    await expect
      .poll(() =>
        page.evaluate((id) => {
          const w = window as unknown as TestWindow & { __kept: MediaStreamTrack[] };
          return {
            live: w.__kept.filter((t) => t.readyState !== 'ended').length,
            held: Object.keys(w.__meeting.participants.get(id)?.tracks ?? {}).length,
          };
        }, userId),
      )
      .toEqual({ live: 0, held: 0 });
  }
}

function serverParticipant(roomId: string, userId: string) {
  const p = sg.rooms.get(roomId)?.participants.get(userId);
  expect(p, `participant ${userId} on the server`).toBeDefined();
  return p!;
}

/** Every track getUserMedia gave the page is stopped, and the client publishes none. */
async function expectCameraOff(page: Page): Promise<void> {
  await expect
    .poll(() =>
      page.evaluate(() => {
        const w = window as unknown as TestWindow;
        return {
          opened: w.__gumTracks.length > 0,
          live: w.__gumTracks.filter((t) => t.readyState !== 'ended').map((t) => t.kind),
          published: Object.keys(w.__meeting.localTracks).filter(
            (k) => !!w.__meeting.localTracks[k as 'audio' | 'video'],
          ),
        };
      }),
    )
    .toEqual({ opened: true, live: [], published: [] });
}

/** The viewer asks, the host accepts in the console, the viewer joins (all by clicks): returns once ON_STAGE. */
async function bringOnStage(host: Page, speaker: { page: Page; id: string }): Promise<void> {
  await click(speaker.page.getByTestId('ask-button'));
  await expectStatus(speaker.page, 'REQUESTED_TO_JOIN_STAGE');
  const request = host.locator(`[data-testid="request-item"][data-user-id="${speaker.id}"]`);
  await request.waitFor();
  await click(request.getByTestId('accept-request'));
  await expectStatus(speaker.page, 'ACCEPTED_TO_JOIN_STAGE');
  await speaker.page.getByTestId('preview-video').waitFor();
  await click(speaker.page.getByTestId('join-stage-button'));
  await expectStatus(speaker.page, 'ON_STAGE');
}

/** Counts every Producer the room's router ever creates, from now on. */
function watchProducers(roomId: string): { count: () => number } {
  const room = sg.rooms.get(roomId)!;
  let n = 0;
  room.router.observer.on('newtransport', (t) => t.observer.on('newproducer', () => n++));
  for (const p of room.participants.values()) n += p.producers.size;
  return { count: () => n };
}

// ------------------------------------------------------------------ tests
describe('webinar pages (real Chromium, real mediasoup)', () => {
  it('1. the host goes on stage: two viewers decode the video and receive audio', async () => {
    const room = await createRoom('REQUEST');
    const host = await openHost(room);
    // One viewer is there before the host goes live (newProducer), one comes after (snapshot).
    const early = await openViewer(room, 'Early Viewer');
    await click(host.page.getByTestId('host-join-stage'));
    // the host's own preview first, then Go live
    await click(host.page.getByTestId('host-go-live'));
    await expectStatus(host.page, 'ON_STAGE');
    await expect.poll(() => serverParticipant(room.roomId, host.id).producers.size).toBe(2);
    const late = await openViewer(room, 'Late Viewer');

    for (const v of [early, late]) {
      await expectReceiving(v.page);
      await expect(v.page.locator(`[data-testid="stage-tile"][data-user-id="${host.id}"]`).count()).resolves.toBe(1);
    }
    // The host sees themselves in their own stage, with a live local preview.
    await expect
      .poll(() =>
        host.page
          .locator('[data-testid="stage-tile"][data-self] video')
          .evaluate((v: HTMLVideoElement) => v.videoWidth),
      )
      .toBeGreaterThan(0);
    await host.page.screenshot({ path: path.join(SHOTS, 'host-on-stage.png'), fullPage: true, animations: 'disabled' });
  });

  it('2. a viewer asks, the host accepts, the viewer joins: everyone else decodes the new speaker', async () => {
    const room = await createRoom('REQUEST');
    const host = await openHost(room);
    const speaker = await openViewer(room, 'Ada Speaker');
    const watcher = await openViewer(room, 'Wes Watcher');

    await click(speaker.page.getByTestId('ask-button'));
    await expectStatus(speaker.page, 'REQUESTED_TO_JOIN_STAGE');
    const request = host.page.locator(`[data-testid="request-item"][data-user-id="${speaker.id}"]`);
    await request.waitFor();
    await expect(request.innerText()).resolves.toContain('Ada Speaker');
    await host.page.screenshot({
      path: path.join(SHOTS, 'host-request-pending.png'),
      fullPage: true,
      animations: 'disabled',
    });

    await click(request.getByTestId('accept-request'));
    await expectStatus(speaker.page, 'ACCEPTED_TO_JOIN_STAGE');
    await expect
      .poll(() => speaker.page.getByTestId('preview-video').evaluate((v: HTMLVideoElement) => v.videoWidth), {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    await speaker.page.screenshot({
      path: path.join(SHOTS, 'viewer-accepted-preview.png'),
      fullPage: true,
      animations: 'disabled',
    });
    // The preview's camera is prepared while accepted (its sender negotiated, DTLS up), and not
    // one RTP byte reaches the server before the stage: no producer exists.
    const accepted = serverParticipant(room.roomId, speaker.id);
    await expect
      .poll(
        () => (accepted.transports.get(accepted.sendTransportId ?? '') as ms.WebRtcTransport | undefined)?.dtlsState,
        {
          timeout: 10_000,
        },
      )
      .toBe('connected');
    const send = accepted.transports.get(accepted.sendTransportId!) as ms.WebRtcTransport;
    await sleep(1000);
    expect((await send.getStats())[0]!.rtpBytesReceived).toBe(0);
    expect(accepted.producers.size).toBe(0);

    await click(speaker.page.getByTestId('join-stage-button'));
    await expectStatus(speaker.page, 'ON_STAGE');
    await expect(speaker.page.getByTestId('leave-stage-button').isVisible()).resolves.toBe(true);

    await expectReceiving(host.page);
    await expectReceiving(watcher.page);
    expect(serverParticipant(room.roomId, speaker.id).producers.size).toBe(2);
    // The host's tile for the speaker shows live video and a working audio meter.
    const tile = host.page.locator(`[data-testid="stage-tile"][data-user-id="${speaker.id}"]`);
    await expect.poll(() => tile.locator('video').evaluate((v: HTMLVideoElement) => v.videoWidth)).toBeGreaterThan(0);
    await expect.poll(() => tile.getAttribute('data-audio-level').then(Number), { timeout: 10_000 }).toBeGreaterThan(0);
    await expect
      .poll(() =>
        watcher.page
          .locator(`[data-testid="stage-tile"][data-user-id="${speaker.id}"] video`)
          .evaluate((v: HTMLVideoElement) => v.videoWidth),
      )
      .toBeGreaterThan(0);

    await host.page.screenshot({ path: path.join(SHOTS, 'host-console.png'), fullPage: true, animations: 'disabled' });
    await watcher.page.screenshot({
      path: path.join(SHOTS, 'viewer-watching.png'),
      fullPage: true,
      animations: 'disabled',
    });
    await speaker.page.screenshot({
      path: path.join(SHOTS, 'viewer-on-stage.png'),
      fullPage: true,
      animations: 'disabled',
    });
  });

  it('3. the host removes the speaker: media stops everywhere, the server drops the producers, the camera goes off', async () => {
    const room = await createRoom('REQUEST');
    const host = await openHost(room);
    const speaker = await openViewer(room, 'Rita Removed');
    const watcher = await openViewer(room, 'Wes Watcher');
    await bringOnStage(host.page, speaker);
    await expectReceiving(host.page);
    await expectReceiving(watcher.page);
    await keepReceivedTracks([host.page, watcher.page], speaker.id);

    await click(
      host.page.locator(`[data-testid="participant-item"][data-user-id="${speaker.id}"]`).getByTestId('remove-button'),
    );

    await expectStopped([host.page, watcher.page]);
    await expectReceivedTracksEnded([host.page, watcher.page], speaker.id);
    expect(serverParticipant(room.roomId, speaker.id).producers.size).toBe(0);
    for (const r of [host, watcher]) expect(serverParticipant(room.roomId, r.id).consumers.size).toBe(0);
    await expectStatus(speaker.page, 'OFF_STAGE');
    await expect(speaker.page.locator('[data-notice="stage"]').innerText()).resolves.toContain(
      'Removed from stage by \u2068Grace Host\u2069', // the name isolated (FSI … PDI)
    );
    await expectCameraOff(speaker.page);
    await expect(host.page.locator(`[data-testid="stage-tile"][data-user-id="${speaker.id}"]`).count()).resolves.toBe(
      0,
    );
    await speaker.page.screenshot({
      path: path.join(SHOTS, 'viewer-removed.png'),
      fullPage: true,
      animations: 'disabled',
    });
  });

  it('4. the speaker leaves by themselves: the same clean stop', async () => {
    const room = await createRoom('REQUEST');
    const host = await openHost(room);
    const speaker = await openViewer(room, 'Lee Leaver');
    const watcher = await openViewer(room, 'Wes Watcher');
    await bringOnStage(host.page, speaker);
    await expectReceiving(host.page);
    await expectReceiving(watcher.page);
    await keepReceivedTracks([host.page, watcher.page], speaker.id);

    await click(speaker.page.getByTestId('leave-stage-button'));

    await expectStopped([host.page, watcher.page]);
    await expectReceivedTracksEnded([host.page, watcher.page], speaker.id);
    expect(serverParticipant(room.roomId, speaker.id).producers.size).toBe(0);
    for (const r of [host, watcher]) expect(serverParticipant(room.roomId, r.id).consumers.size).toBe(0);
    await expectStatus(speaker.page, 'OFF_STAGE');
    await expect(speaker.page.locator('[data-notice="stage"]').count()).resolves.toBe(0);
    await expectCameraOff(speaker.page);
    // Off stage again, they may ask again.
    await expect(speaker.page.getByTestId('ask-button').isVisible()).resolves.toBe(true);
  });

  it('5. invite only: no Ask button, scripted requests refused, an invite declined produces nothing', async () => {
    const room = await createRoom('INVITE');
    const producers = watchProducers(room.roomId);
    const host = await openHost(room);
    const viewer = await openViewer(room, 'Ivy Invited');

    await expect(viewer.page.getByTestId('ask-button').count()).resolves.toBe(0);
    await expect(viewer.page.getByTestId('invite-only-note').innerText()).resolves.toContain('Invite only');
    const code = await viewer.page.evaluate(() =>
      (window as unknown as TestWindow).__meeting.stage.requestAccess().then(
        () => 'accepted',
        (err: { code?: string }) => err.code,
      ),
    );
    expect(code).toBe('STAGE_DISABLED');
    await expectStatus(viewer.page, 'OFF_STAGE');

    await click(
      host.page.locator(`[data-testid="participant-item"][data-user-id="${viewer.id}"]`).getByTestId('invite-button'),
    );
    await expectStatus(viewer.page, 'ACCEPTED_TO_JOIN_STAGE');
    await expect(viewer.page.getByTestId('accepted-panel').innerText()).resolves.toContain('invited you');
    // the camera stays off until the invitee chooses to check it
    await sleep(500);
    expect(await viewer.page.evaluate(() => (window as unknown as TestWindow).__gumTracks.length)).toBe(0);
    await click(viewer.page.getByTestId('preview-button'));
    await expect
      .poll(() => viewer.page.getByTestId('preview-video').evaluate((v: HTMLVideoElement) => v.videoWidth), {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    await viewer.page.screenshot({
      path: path.join(SHOTS, 'viewer-invited.png'),
      fullPage: true,
      animations: 'disabled',
    });
    await click(viewer.page.getByTestId('decline-button'));
    await expectStatus(viewer.page, 'OFF_STAGE');
    await expectCameraOff(viewer.page);

    await sleep(1_000);
    expect(producers.count()).toBe(0);
    expect(serverParticipant(room.roomId, viewer.id).producers.size).toBe(0);
    const s = await inboundStats(host.page);
    expect(s.video.framesDecoded).toBe(0);
    expect(s.audio.bytesReceived).toBe(0);
  });

  it('6. a raw produce from an OFF_STAGE viewer is refused with INVALID_STATE and nobody decodes anything', async () => {
    const room = await createRoom('REQUEST');
    const producers = watchProducers(room.roomId);
    const host = await openHost(room);
    const intruder = await openViewer(room, 'Mallory');
    const watcher = await openViewer(room, 'Wes Watcher');
    await expectStatus(intruder.page, 'OFF_STAGE');

    // Straight onto the meeting's own socket.io connection, bypassing the thin client.
    const answers = await intruder.page.evaluate(async () => {
      const w = window as unknown as TestWindow;
      const ws = w.__sockets.find((s) => s.url.includes('/socket.io/') && s.readyState === WebSocket.OPEN);
      if (!ws) throw new Error('no open socket.io WebSocket in the page');
      let nextId = 9000;
      const request = (method: string, data: unknown) =>
        new Promise<unknown>((resolve, reject) => {
          const id = nextId++;
          const timer = setTimeout(() => reject(new Error(`${method}: no answer`)), 5000);
          const onMessage = (ev: MessageEvent) => {
            const text = String(ev.data);
            if (!text.startsWith(`43${id}[`)) return;
            ws.removeEventListener('message', onMessage);
            clearTimeout(timer);
            resolve((JSON.parse(text.slice(`43${id}`.length)) as unknown[])[0]);
          };
          ws.addEventListener('message', onMessage);
          ws.send(`42${id}${JSON.stringify([method, data])}`);
        });
      const rtpParameters = {
        mid: '0',
        codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, parameters: {}, rtcpFeedback: [] }],
        headerExtensions: [],
        encodings: [{ ssrc: 11111111 }],
        rtcp: { cname: 'mallory', reducedSize: true },
      };
      return {
        produce: await request('produce', { transportId: 'any-transport', kind: 'video', rtpParameters }),
        produceAudio: await request('produce', {
          transportId: 'any-transport',
          kind: 'audio',
          rtpParameters: {
            ...rtpParameters,
            codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
          },
        }),
        sendTransport: await request('createTransport', { direction: 'send' }),
      };
    });
    for (const answer of Object.values(answers)) {
      expect(answer).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    }
    // The meeting itself is unharmed.
    await expect(intruder.page.evaluate(() => (window as unknown as TestWindow).__meeting.connected)).resolves.toBe(
      true,
    );

    await sleep(1_500);
    expect(producers.count()).toBe(0);
    expect(serverParticipant(room.roomId, intruder.id).producers.size).toBe(0);
    expect(serverParticipant(room.roomId, intruder.id).sendTransportId).toBeUndefined();
    for (const page of [host.page, watcher.page]) {
      const s = await inboundStats(page);
      expect(s.video.framesDecoded).toBe(0);
      expect(s.video.bytesReceived).toBe(0);
      expect(s.audio.bytesReceived).toBe(0);
    }
  });

  it('7. the loopback page sends the camera through the SFU and decodes it back', async () => {
    const page = await open('/loopback.html');
    await page.locator('body[data-state="live"]').waitFor({ timeout: 20_000 });
    await expect
      .poll(() => page.getByTestId('stat-frames').innerText().then(Number), { timeout: 10_000 })
      .toBeGreaterThan(20);
    await expect(page.getByTestId('stat-res').innerText()).resolves.toMatch(/^\d+×\d+$/);
    const s = await inboundStats(page);
    expect(s.video.framesDecoded).toBeGreaterThan(20);
    expect(await a11yViolations(page)).toEqual([]); // axe-core: no serious or critical violation (issue 12)
    await page.screenshot({ path: path.join(SHOTS, 'loopback.png'), fullPage: true, animations: 'disabled' });
  });
});
