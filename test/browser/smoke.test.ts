/**
 * Real-media smoke test: the toolchain end to end, below any UI.
 *
 * A real mediasoup worker and router (Opus, VP8, H264), a real socket.io server on port 0, two
 * headless Chromium pages with fake camera and microphone driving the thin client directly.
 * Page 1 goes on stage (getUserMedia → mediasoup-client produce); page 2 consumes.
 *
 * What proves media flows (read with getStats() on every RTCPeerConnection of page 2):
 * `inbound-rtp` video `framesDecoded` grows and `frameWidth`/`frameHeight` are the fake camera's
 * 640x480; `inbound-rtp` audio `bytesReceived` grows. After the producers are closed on the
 * server, both counters stop growing. If media does not flow, the first poll times out.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { inboundStats, launchBrowser, type BrowserHandle } from '../helpers/browser.js';
import { buildClientWebRoot } from '../helpers/clientBundle.js';
import { startServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let browser: BrowserHandle;
let webRoot: string;

beforeAll(async () => {
  webRoot = await buildClientWebRoot();
  server = await startServer({ extra: { webRoot } });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

/** Opens a page that joins the room with the thin client; `onStage` also joins the stage. */
async function openMeeting(token: string, roomId: string, onStage: boolean): Promise<Page> {
  const page = await browser.newPage(`${server.url}/index.html`);
  // A string, not a function: vitest would rewrite a dynamic import() inside a function's source.
  await page.evaluate(`(async () => {
    const { joinMeeting } = await import(location.origin + '/stagegate-client.js');
    const meeting = await joinMeeting({ url: location.origin, token: ${JSON.stringify(token)}, roomId: ${JSON.stringify(roomId)} });
    // play what arrives, as an app would
    meeting.on('trackAdded', ({ track }) => {
      const el = document.createElement(track.kind === 'video' ? 'video' : 'audio');
      el.autoplay = true;
      el.muted = true;
      el.srcObject = new MediaStream([track]);
      document.body.append(el);
    });
    window.meeting = meeting;
    if (${onStage}) await meeting.stage.join();
  })()`);
  return page;
}

it('the router offers Opus, VP8 and H264', async () => {
  const room = await server.sg.rooms.create('codecs');
  const mimeTypes = room.router.rtpCapabilities.codecs!.map((c) => c.mimeType);
  expect(mimeTypes).toEqual(expect.arrayContaining(['audio/opus', 'video/VP8', 'video/H264']));
  room.close();
});

it('camera and microphone flow from one Chromium page through mediasoup to another, and stop when the server closes the producers', async () => {
  const room = await server.sg.rooms.create('smoke');
  const sender = await openMeeting(await server.token('sender', 'host', room.id), room.id, true);
  const receiver = await openMeeting(await server.token('receiver', 'viewer', room.id), room.id, false);

  const p = room.participants.get('sender')!;
  expect([...p.producers.values()].map((s) => s.source).sort()).toEqual(['audio', 'video']);

  await expect
    .poll(async () => (await inboundStats(receiver)).video.framesDecoded, { timeout: 15_000, interval: 250 })
    .toBeGreaterThan(20);
  // simulcast: the consumer starts on the 320x240 layer and moves up to 640x480 (no size reported)
  await expect
    .poll(async () => (await inboundStats(receiver)).video.frameWidth, { timeout: 15_000, interval: 250 })
    .toBe(640);
  const flowing = await inboundStats(receiver);
  expect(flowing.video).toMatchObject({ frameWidth: 640, frameHeight: 480 });
  expect(flowing.audio.bytesReceived).toBeGreaterThan(1000);

  // close the producers on the server: the receiver's counters must stop
  for (const { producer } of [...p.producers.values()]) room.closeProducer(p, producer.id);
  expect((await room.router.dump()).mapProducerIdConsumerIds).toEqual([]);
  await new Promise((r) => setTimeout(r, 500)); // packets already in flight
  const a = await inboundStats(receiver);
  await new Promise((r) => setTimeout(r, 1500));
  const b = await inboundStats(receiver);
  expect(b.video.framesDecoded).toBe(a.video.framesDecoded);
  expect(b.audio.bytesReceived).toBe(a.audio.bytesReceived);

  await sender.close();
  await receiver.close();
});
