/**
 * The camera's sender prepared at ACCEPTED_TO_JOIN_STAGE, in real Chromium (fake camera,
 * 1280x720: three simulcast layers) against the real server and worker.
 *
 * While ACCEPTED the client has negotiated the camera's sender and the transport's DTLS is up,
 * but the sender has no track: not one RTP byte may reach the server (read from the server's
 * transport stats, `rtpBytesReceived`, and the page's own `outbound-rtp`), and the server has no
 * producer (router dump). `stage.join()` publishes through that sender: a viewer decodes frames.
 * Leaving the stage prepares it again, silent again; a second join sends again.
 */
import { expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { types as ms } from 'mediasoup';
import { inboundStats } from '../helpers/browser.js';
import { newRoom, openMeeting, useMeetingPages } from '../helpers/meetingPages.js';

useMeetingPages();

/** The fake camera and microphone opened first and handed to the client (as the pages do their preview's). */
const CAMERA = `
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
  tracks = { audio: stream.getAudioTracks()[0], video: stream.getVideoTracks()[0] };
  window.cameraTrack = tracks.video;
`;

/** The page's send side: RTP bytes its `outbound-rtp` sent, and its senders' tracks (ids or null). */
async function sendSide(page: Page): Promise<{ bytesSent: number; senderTracks: (string | null)[] }> {
  return page.evaluate(async () => {
    const pcs = ((window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs ?? []).filter(
      (pc) => pc.connectionState !== 'closed',
    );
    let bytesSent = 0;
    const senderTracks: (string | null)[] = [];
    for (const pc of pcs) {
      for (const t of pc.getTransceivers()) {
        if (t.currentDirection === 'sendonly' && t.sender.track?.kind !== 'audio')
          senderTracks.push(t.sender.track?.id ?? null);
      }
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === 'outbound-rtp') bytesSent += Number(s.bytesSent ?? 0);
      });
    }
    return { bytesSent, senderTracks };
  });
}

async function serverRtpIn(transport: ms.Transport): Promise<number> {
  const [stats] = await transport.getStats();
  return (stats as { rtpBytesReceived: number }).rtpBytesReceived;
}

it('prepared at ACCEPTED: DTLS up, not one RTP byte and no producer until ON_STAGE; join sends through it; leaving prepares it again', async () => {
  const room = await newRoom('prepared');
  const viewer = await openMeeting('viewer', 'viewer', room);
  const speaker = await openMeeting('spk', 'speaker', room, { before: CAMERA });
  const p = room.participants.get('spk')!;
  expect(room.statusOf('spk')).toBe('ACCEPTED_TO_JOIN_STAGE');

  // prepared: the send transport's DTLS is connected (the prepared sender's negotiation did it)
  await expect
    .poll(() => (p.sendTransportId ? (p.transports.get(p.sendTransportId) as ms.WebRtcTransport).dtlsState : 'none'), {
      timeout: 10_000,
    })
    .toBe('connected');
  const send = p.transports.get(p.sendTransportId!)!;
  await expect.poll(async () => (await sendSide(speaker)).senderTracks, { timeout: 5000 }).toEqual([null]);
  await new Promise((r) => setTimeout(r, 1500)); // a camera running: 45 frames, had any been encoded
  expect(await serverRtpIn(send)).toBe(0);
  expect((await sendSide(speaker)).bytesSent).toBe(0);
  expect((await room.router.dump()).mapProducerIdConsumerIds).toEqual([]);
  expect(p.producers.size).toBe(0);

  // on stage: the same transport, the camera now on the sender, frames at the viewer
  await speaker.evaluate(() =>
    (window as unknown as { meeting: { stage: { join(): Promise<void> } } }).meeting.stage.join(),
  );
  expect(p.sendTransportId).toBe(send.id);
  expect([...p.producers.values()].map((s) => s.source).sort()).toEqual(['audio', 'video']);
  const camera = await speaker.evaluate(() => (window as unknown as { cameraTrack: MediaStreamTrack }).cameraTrack.id);
  expect((await sendSide(speaker)).senderTracks).toEqual([camera]);
  await expect
    .poll(async () => (await inboundStats(viewer)).video.framesDecoded, { timeout: 15_000, interval: 250 })
    .toBeGreaterThan(20);
  expect(await serverRtpIn(send)).toBeGreaterThan(0);

  // off the stage (back to ACCEPTED): prepared again, silent again
  await speaker.evaluate(() =>
    (window as unknown as { meeting: { stage: { leave(): Promise<void> } } }).meeting.stage.leave(),
  );
  expect(room.statusOf('spk')).toBe('ACCEPTED_TO_JOIN_STAGE');
  expect((await room.router.dump()).mapProducerIdConsumerIds).toEqual([]);
  await expect.poll(async () => (await sendSide(speaker)).senderTracks, { timeout: 5000 }).toEqual([null]);
  await new Promise((r) => setTimeout(r, 500)); // packets already in flight
  const after = await serverRtpIn(send);
  await new Promise((r) => setTimeout(r, 1500));
  expect(await serverRtpIn(send)).toBe(after);

  // and a second turn sends again
  const decoded = (await inboundStats(viewer)).video.framesDecoded;
  await speaker.evaluate(() =>
    (window as unknown as { meeting: { stage: { join(): Promise<void> } } }).meeting.stage.join(),
  );
  await expect
    .poll(async () => (await inboundStats(viewer)).video.framesDecoded, { timeout: 15_000, interval: 250 })
    .toBeGreaterThan(decoded + 20);
});
