/**
 * The viewer page's stage moderation (issue 11) and own media controls (issue 12 item 3), in
 * real Chromium (fake camera, microphone and screen) against the real server. The host is driven
 * through the HTTP API (the backend's routes), never through the host page. Effects are proven
 * on another viewer's inbound RTP counters, not only in the DOM. Screenshots land in test-results/.
 */
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { Meeting } from '../../client/index.js';
import { a11yViolations, inboundStats } from '../helpers/browser.js';
import {
  click,
  createRoom,
  enter,
  expectStatus,
  open,
  SHOTS,
  sg,
  sleep,
  statusOf,
  url,
  useDemoPages,
  type DemoRoom,
} from '../helpers/demoPages.js';

type TestWindow = Window & { __meeting: Meeting };

useDemoPages({ reconnectGraceMs: 6_000 });

/** The backend's HTTP API (Authorization: Bearer <API secret>). */
async function api(method: string, route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${url}/api${route}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${sg.apiSecret}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status, `${method} ${route}`).toBe(200);
  return res.json();
}

/** Asks, the backend grants, the preview opens, Join stage. */
async function bringOnStage(room: DemoRoom, viewer: { page: Page; id: string }): Promise<void> {
  await click(viewer.page.getByTestId('ask-button'));
  await expectStatus(viewer.page, 'REQUESTED_TO_JOIN_STAGE');
  await api('POST', `/rooms/${room.roomId}/stage/grant`, { userIds: [viewer.id] });
  await expectStatus(viewer.page, 'ACCEPTED_TO_JOIN_STAGE');
  await viewer.page.getByTestId('media-controls').waitFor();
  await click(viewer.page.getByTestId('join-stage-button'));
  await expectStatus(viewer.page, 'ON_STAGE');
}

const audioBytes = async (page: Page) => (await inboundStats(page)).audio.bytesReceived;
const videoBytes = async (page: Page) => (await inboundStats(page)).video.bytesReceived;

/** The counter grows (media flows). */
async function flowing(read: () => Promise<number>): Promise<void> {
  const a = await read();
  await expect.poll(read, { timeout: 10_000, interval: 250 }).toBeGreaterThan(a + 500);
}

/** The counter stands still for 2 s, after the packets in flight arrived. */
async function stopped(read: () => Promise<number>): Promise<void> {
  await sleep(800);
  const a = await read();
  await sleep(2000);
  expect(await read()).toBe(a);
}

async function noA11yViolations(page: Page, where: string): Promise<void> {
  expect(await a11yViolations(page), where).toEqual([]);
}

/** Video inbound streams that decode frames (a camera, a screen share) on a page. */
function decodingVideos(page: Page): Promise<number> {
  return page.evaluate(async () => {
    let n = 0;
    for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s: Record<string, unknown>) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && Number(s.framesDecoded ?? 0) > 0) n++;
      });
    }
    return n;
  });
}

const serverProducer = (roomId: string, userId: string, source: string) =>
  [...(sg.rooms.get(roomId)?.participants.get(userId)?.producers.values() ?? [])].find((p) => p.source === source)
    ?.producer;

describe('viewer page: the queue and refusals (issue 11)', () => {
  it('"You are #3 of 3" moves up when someone ahead cancels; a denied viewer asking again sees the cool-down', async () => {
    const room = await createRoom('REQUEST');
    await api('PATCH', `/rooms/${room.roomId}/settings`, { requestCooldownSeconds: 30 });
    const lobby = await open(room.viewerPath);
    await lobby.getByTestId('name-input').waitFor();
    await noA11yViolations(lobby, 'lobby');
    const ada = await enter(lobby, 'Ada');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    const cy = await enter(await open(room.viewerPath), 'Cy');
    await noA11yViolations(cy.page, 'joined, off stage');

    for (const v of [ada, bob, cy]) {
      await click(v.page.getByTestId('ask-button'));
      await expectStatus(v.page, 'REQUESTED_TO_JOIN_STAGE');
    }
    const position = (p: Page) => p.getByTestId('queue-position').textContent();
    await expect.poll(() => position(cy.page)).toBe('You are #3 of 3 in the queue.');
    await expect.poll(() => position(ada.page)).toBe('You are #1 of 3 in the queue.');
    await noA11yViolations(cy.page, 'requested, in the queue');

    await click(ada.page.getByTestId('cancel-request-button'));
    await expectStatus(ada.page, 'OFF_STAGE');
    await expect.poll(() => position(cy.page)).toBe('You are #2 of 2 in the queue.');
    await expect.poll(() => position(bob.page)).toBe('You are #1 of 2 in the queue.');
    expect(await ada.page.getByTestId('queue-position').count()).toBe(0);

    // denied → asking again within the cool-down is refused with a live countdown
    await api('POST', `/rooms/${room.roomId}/stage/deny`, { userIds: [cy.id] });
    await expectStatus(cy.page, 'OFF_STAGE');
    await click(cy.page.getByTestId('ask-button'));
    const cooldown = cy.page.getByTestId('cooldown');
    await cooldown.waitFor();
    const secondsLeft = async () => Number((await cooldown.textContent())!.match(/in (\d+) s\./)![1]);
    const first = await secondsLeft();
    expect(first).toBeGreaterThan(20);
    expect(first).toBeLessThanOrEqual(30);
    await expect.poll(secondsLeft, { timeout: 5_000 }).toBeLessThan(first); // it counts down
    expect(await cy.page.getByTestId('ask-button').isDisabled()).toBe(true);
    // refused: nothing changed on the server
    await expectStatus(cy.page, 'OFF_STAGE');
    expect(sg.rooms.get(room.roomId)!.stage.get(cy.id)?.status).toBe('OFF_STAGE');
    expect(sg.rooms.get(room.roomId)!.stage.positionOf(cy.id)).toBeUndefined();
    expect(await cy.page.getByTestId('toast').count()).toBe(0); // said in place, not in a toast
    await noA11yViolations(cy.page, 'cooling down');
    await cy.page.screenshot({ path: path.join(SHOTS, 'viewer-cooldown.png') });

    // the cool-down over (the setting back to 0 frees everyone): asking works again
    await api('PATCH', `/rooms/${room.roomId}/settings`, { requestCooldownSeconds: 0 });
    await click(ada.page.getByTestId('ask-button'));
    await expectStatus(ada.page, 'REQUESTED_TO_JOIN_STAGE');
    await expect.poll(() => position(ada.page)).toBe('You are #2 of 2 in the queue.');
  }, 90_000);

  it('a full stage: Join stage says "The stage is full" and the viewer stays off stage', async () => {
    const room = await createRoom('REQUEST');
    await api('PATCH', `/rooms/${room.roomId}/settings`, { stageCap: 1 });
    const ada = await enter(await open(room.viewerPath), 'Ada');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    for (const v of [ada, bob]) {
      await click(v.page.getByTestId('ask-button'));
      await expectStatus(v.page, 'REQUESTED_TO_JOIN_STAGE');
    }
    await api('POST', `/rooms/${room.roomId}/stage/grant`, { userIds: [ada.id, bob.id] });
    await expectStatus(ada.page, 'ACCEPTED_TO_JOIN_STAGE');
    await click(ada.page.getByTestId('join-stage-button'));
    await expectStatus(ada.page, 'ON_STAGE');
    await expectStatus(bob.page, 'ACCEPTED_TO_JOIN_STAGE');
    await bob.page.getByTestId('media-controls').waitFor();
    await click(bob.page.getByTestId('join-stage-button'));
    const full = bob.page.locator('[data-notice="stage"][data-reason="full"]');
    await expect.poll(() => full.textContent(), { timeout: 10_000 }).toContain('The stage is full.');
    expect(await statusOf(bob.page)).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(serverProducer(room.roomId, bob.id, 'audio')).toBeUndefined();
    await bob.page.screenshot({ path: path.join(SHOTS, 'viewer-stage-full.png') });
  }, 90_000);

  it('a slot: the countdown runs and warns near its end; removal with a ban is final', async () => {
    const room = await createRoom('REQUEST');
    await api('PATCH', `/rooms/${room.roomId}/settings`, { slotSeconds: 40 });
    const ada = await enter(await open(room.viewerPath), 'Ada');
    await bringOnStage(room, ada);
    const slot = ada.page.getByTestId('slot-countdown');
    await expect.poll(() => slot.textContent()).toMatch(/^Your turn on stage ends in 0:(3\d|40)\.$/);
    expect(await slot.getAttribute('data-warn')).toBe('false');
    const left = async () => {
      const [, m, s] = (await slot.textContent())!.match(/(\d+):(\d\d)/)!;
      return Number(m) * 60 + Number(s);
    };
    const a = await left();
    await expect.poll(left, { timeout: 4_000 }).toBeLessThan(a);
    // within 30 s of the end (the page's threshold; the server's stageSlotEnding at 10 s): a warning
    await expect.poll(() => slot.getAttribute('data-warn'), { timeout: 15_000 }).toBe('true');
    expect(await slot.textContent()).toContain('Time to wrap up');
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-slot-warning.png') });

    await api('POST', `/rooms/${room.roomId}/stage/remove`, { userIds: [ada.id], ban: true });
    const gone = ada.page.locator('[data-notice="disconnected"]');
    await expect
      .poll(() => gone.textContent(), { timeout: 10_000 })
      .toContain('The host removed you from this webinar.');
    expect(await gone.getByRole('button', { name: 'Rejoin' }).count()).toBe(0); // final
    // a reload does not get back in (and does not sneak in as a new user)
    await ada.page.reload();
    const lobbyError = ada.page.locator('#lobby-error');
    await expect
      .poll(() => lobbyError.textContent(), { timeout: 10_000 })
      .toContain('The host removed you from this webinar. You cannot join it again.');
    expect(sg.rooms.get(room.roomId)!.participants.size).toBe(0);
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-banned.png') });
  }, 90_000);
});

describe('viewer page: own media controls (issue 12 item 3)', () => {
  it('preview meter and pickers; on stage: mute and camera off stop another viewer’s bytes, a device switch keeps them flowing', async () => {
    const room = await createRoom('REQUEST');
    const watcher = await enter(await open(room.viewerPath), 'Wanda');
    const ada = await enter(await open(room.viewerPath), 'Ada');
    await click(ada.page.getByTestId('ask-button'));
    await api('POST', `/rooms/${room.roomId}/stage/grant`, { userIds: [ada.id] });
    await expectStatus(ada.page, 'ACCEPTED_TO_JOIN_STAGE');
    const controls = ada.page.getByTestId('media-controls');
    await controls.waitFor();

    // the preview: a microphone meter that moves with Chromium's fake beep
    const meter = ada.page.getByTestId('mic-meter');
    await expect
      .poll(async () => Number((await meter.getAttribute('data-audio-level')) ?? 0), { timeout: 10_000, interval: 100 })
      .toBeGreaterThan(0.2);
    // pickers list the fake devices; no on-stage buttons yet
    const mics = await ada.page.getByTestId('mic-select').locator('option').allTextContents();
    expect(mics.length).toBeGreaterThanOrEqual(2);
    expect(mics.join('|')).toContain('Fake');
    expect(await ada.page.getByTestId('camera-select').locator('option').allTextContents()).toContain('fake_device_0');
    expect(await ada.page.getByTestId('mic-button').count()).toBe(0);
    await noA11yViolations(ada.page, 'preview');
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-preview-controls.png') });

    await click(ada.page.getByTestId('join-stage-button'));
    await expectStatus(ada.page, 'ON_STAGE');
    const mic = ada.page.getByTestId('mic-button');
    const cam = ada.page.getByTestId('camera-button');
    await mic.waitFor();
    await flowing(() => audioBytes(watcher.page));
    await flowing(() => videoBytes(watcher.page));
    // a viewer preset may not share a screen: no button (and the server would refuse)
    expect(await ada.page.getByTestId('share-button').count()).toBe(0);
    await noA11yViolations(ada.page, 'on stage with controls');

    // mute: the producer pauses on the server, the watcher's audio bytes stop; the video flows
    await click(mic);
    await expect.poll(() => mic.textContent()).toBe('Unmute');
    expect(await mic.getAttribute('aria-pressed')).toBe('true');
    expect(serverProducer(room.roomId, ada.id, 'audio')?.paused).toBe(true);
    await stopped(() => audioBytes(watcher.page));
    await flowing(() => videoBytes(watcher.page));
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-on-stage-muted.png') });
    await click(mic);
    await expect.poll(() => mic.textContent()).toBe('Mute');
    await flowing(() => audioBytes(watcher.page));

    // camera off: video bytes stop (the own tile shows the avatar); on again: they flow
    await click(cam);
    await expect.poll(() => cam.textContent()).toBe('Start video');
    await stopped(() => videoBytes(watcher.page));
    await flowing(() => audioBytes(watcher.page));
    expect(await ada.page.locator('[data-testid="stage-tile"][data-self="true"] video').isHidden()).toBe(true);
    await click(cam);
    await expect.poll(() => cam.textContent()).toBe('Stop video');
    await flowing(() => videoBytes(watcher.page));

    // switch the microphone: the same producer sends the new device; the watcher keeps hearing it
    const audioProducer = serverProducer(room.roomId, ada.id, 'audio')!.id;
    const before = await ada.page.evaluate(
      () => (window as unknown as TestWindow).__meeting.localTracks.audio?.getSettings().deviceId,
    );
    const other = await ada.page
      .getByTestId('mic-select')
      .locator('option')
      .evaluateAll(
        (os, b) => (os as HTMLOptionElement[]).map((o) => o.value).find((v) => v !== b && v !== 'default'),
        before,
      );
    expect(other).toBeTruthy();
    await ada.page.getByTestId('mic-select').selectOption(other!);
    await expect
      .poll(() =>
        ada.page.evaluate(() => (window as unknown as TestWindow).__meeting.localTracks.audio?.getSettings().deviceId),
      )
      .toBe(other);
    expect(serverProducer(room.roomId, ada.id, 'audio')!.id).toBe(audioProducer);
    await flowing(() => audioBytes(watcher.page));
    await flowing(() => videoBytes(watcher.page));
    // the meter follows the new microphone
    await expect
      .poll(async () => Number((await meter.getAttribute('data-audio-level')) ?? 0), { timeout: 10_000, interval: 100 })
      .toBeGreaterThan(0.2);
  }, 120_000);

  it('held by the host: "Muted by the host", unmute disabled; Ask to unmute → allowed → Unmute works', async () => {
    const room = await createRoom('REQUEST');
    const watcher = await enter(await open(room.viewerPath), 'Wanda');
    const ada = await enter(await open(room.viewerPath), 'Ada');
    await bringOnStage(room, ada);
    await flowing(() => audioBytes(watcher.page));

    await api('POST', `/rooms/${room.roomId}/stage/mute`, { userIds: [ada.id], sources: ['audio'] });
    const held = ada.page.locator('[data-testid="held-note"][data-source="audio"]');
    await expect.poll(() => held.textContent()).toContain('Muted by the host');
    const mic = ada.page.getByTestId('mic-button');
    expect(await mic.getAttribute('data-state')).toBe('held');
    expect(await mic.isDisabled()).toBe(true); // cannot be unmuted from the page
    await stopped(() => audioBytes(watcher.page));
    await noA11yViolations(ada.page, 'held by the host');

    await click(held.getByTestId('ask-unmute-button'));
    await held.getByTestId('unmute-pending').waitFor();
    expect(await held.textContent()).toContain('Waiting for the host to allow it');
    expect(sg.rooms.get(room.roomId)!.stage.holdsOf(ada.id).unmuteRequested).toEqual(['audio']);
    expect(await mic.isDisabled()).toBe(true);
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-held-asked.png') });

    await api('POST', `/rooms/${room.roomId}/stage/allow-unmute`, { userIds: [ada.id], sources: ['audio'] });
    await ada.page.getByTestId('unmute-allowed').waitFor();
    expect(await held.count()).toBe(0);
    await expect.poll(() => mic.isDisabled()).toBe(false);
    expect(await mic.textContent()).toBe('Unmute');
    // allowed is not unmuted: still nothing until Ada presses Unmute
    await stopped(() => audioBytes(watcher.page));
    await click(mic);
    await expect.poll(() => mic.textContent()).toBe('Mute');
    await flowing(() => audioBytes(watcher.page));
  }, 90_000);

  it('a preset that allows screen share: Share screen sends a second video the watcher decodes; Stop ends it', async () => {
    const room = await createRoom('REQUEST');
    const watcher = await enter(await open(room.viewerPath), 'Wanda');
    // a backend token with a custom preset (as a real backend would mint for a presenter),
    // stored where the page keeps this browser's identity for that name
    const token = await sg.tokens.mint({
      userId: 'presenter-1',
      name: 'Pat',
      roomId: room.roomId,
      preset: {
        name: 'presenter',
        stageAccess: 'ALLOWED',
        acceptStageRequests: false,
        kickParticipant: false,
        media: { audio: 'ALLOWED', video: 'ALLOWED', screenshare: 'ALLOWED' },
      },
    });
    const page = await open(room.viewerPath);
    await page.evaluate(
      ([key, t]) => localStorage.setItem(key!, t!),
      [`stagegate.id.viewer:${room.roomId}.pat`, token],
    );
    const pat = await enter(page, 'Pat');
    expect(pat.id).toBe('presenter-1');
    await expectStatus(page, 'ACCEPTED_TO_JOIN_STAGE');
    await click(page.getByTestId('preview-button'));
    await page.getByTestId('media-controls').waitFor();
    await click(page.getByTestId('join-stage-button'));
    await expectStatus(page, 'ON_STAGE');
    await expect.poll(() => decodingVideos(watcher.page), { timeout: 15_000 }).toBe(1);

    const share = page.getByTestId('share-button');
    await click(share);
    await expect.poll(() => share.textContent()).toBe('Stop sharing');
    expect(serverProducer(room.roomId, pat.id, 'screenshare')?.kind).toBe('video');
    await expect.poll(() => decodingVideos(watcher.page), { timeout: 15_000 }).toBe(2);
    await expect.poll(() => watcher.page.locator(`[data-user-id="${pat.id}:screen"]`).count()).toBe(1);
    await noA11yViolations(page, 'sharing');
    await watcher.page.screenshot({ path: path.join(SHOTS, 'viewer-watching-screenshare.png') });

    await click(share);
    await expect.poll(() => share.textContent()).toBe('Share screen');
    expect(serverProducer(room.roomId, pat.id, 'screenshare')).toBeUndefined();
    await expect.poll(() => watcher.page.locator(`[data-user-id="${pat.id}:screen"]`).count()).toBe(0);
    expect(serverProducer(room.roomId, pat.id, 'video')).toBeDefined(); // the camera stays
  }, 90_000);

  it('the host console on stage mounts the same controls: Share screen (host preset) reaches a viewer', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const watcher = await enter(await open(room.viewerPath), 'Wanda');
    expect(await host.page.getByTestId('media-controls').count()).toBe(0); // not before going live
    await click(host.page.getByTestId('host-join-stage'));
    await click(host.page.getByTestId('host-go-live'));
    await expectStatus(host.page, 'ON_STAGE');
    const share = host.page.getByTestId('share-button');
    await share.waitFor();
    await expect.poll(() => decodingVideos(watcher.page), { timeout: 15_000 }).toBe(1);
    await click(share);
    await expect.poll(() => decodingVideos(watcher.page), { timeout: 15_000 }).toBe(2);
    await click(host.page.getByTestId('mic-button'));
    await expect.poll(() => serverProducer(room.roomId, host.id, 'audio')?.paused).toBe(true);
    await host.page.screenshot({ path: path.join(SHOTS, 'viewer-host-controls.png') });
  }, 60_000);

  it('a phone (390 px): a toast does not cover the action buttons', async () => {
    const room = await createRoom('REQUEST');
    const ada = await enter(await open(room.viewerPath), 'Ada');
    await bringOnStage(room, ada);
    await ada.page.setViewportSize({ width: 390, height: 844 });
    // a real toast: the microphone picked is gone by the time it is chosen (unplugged)
    await ada.page
      .getByTestId('mic-select')
      .evaluate((el) =>
        el.append(Object.assign(document.createElement('option'), { value: 'unplugged', text: 'Gone' })),
      );
    await ada.page.getByTestId('mic-select').selectOption('unplugged');
    const toast = ada.page.getByTestId('toast').first();
    await toast.waitFor({ timeout: 15_000 });
    expect(await toast.textContent()).toContain('Could not switch the microphone');
    for (const y of [0, 400, 10_000]) {
      await ada.page.evaluate((top) => window.scrollTo(0, top), y);
      await sleep(100);
      const overlaps = await ada.page.evaluate(() => {
        const t = document.querySelector('[data-testid="toast"]')!.getBoundingClientRect();
        return [...document.querySelectorAll<HTMLElement>('button, select')]
          .filter((b) => b.offsetParent)
          .filter((b) => {
            const r = b.getBoundingClientRect();
            return r.left < t.right && r.right > t.left && r.top < t.bottom && r.bottom > t.top;
          })
          .map((b) => b.textContent);
      });
      expect(overlaps, `scrolled to ${y}`).toEqual([]);
    }
    expect(await ada.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await ada.page.evaluate(() => window.scrollTo(0, 0));
    await ada.page.screenshot({ path: path.join(SHOTS, 'viewer-phone-toast.png'), fullPage: true });
  }, 60_000);
});
