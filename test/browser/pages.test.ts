/**
 * The demo pages as a host really runs a webinar (issue 12): identity across reloads and tabs,
 * and the rest of the product fixes, each in real Chromium against the real server.
 * Screenshots land in test-results/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import os from 'node:os';
import { CHROMIUM } from '../helpers/browser.js';
import {
  click,
  createRoom,
  enter,
  expectStatus,
  joined,
  open,
  ROOT,
  selfId,
  SHOTS,
  sg,
  sleep,
  url,
  useDemoPages,
} from '../helpers/demoPages.js';

useDemoPages({ reconnectGraceMs: 6_000 });

async function bringOnStage(host: Page, speaker: { page: Page; id: string }): Promise<void> {
  await click(speaker.page.getByTestId('ask-button'));
  await expectStatus(speaker.page, 'REQUESTED_TO_JOIN_STAGE');
  const request = host.locator(`[data-testid="request-item"][data-user-id="${speaker.id}"]`);
  await request.waitFor();
  await click(request.getByTestId('accept-request'));
  await expectStatus(speaker.page, 'ACCEPTED_TO_JOIN_STAGE');
  await click(speaker.page.getByTestId('join-stage-button'));
  await expectStatus(speaker.page, 'ON_STAGE');
}

describe('demo pages: a webinar a host can run (issue 12)', () => {
  it('1a. a reload while on stage resumes the same user ON_STAGE, without the host accepting again', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    await bringOnStage(host.page, bob);
    const server = sg.rooms.get(room.roomId)!;
    await expect.poll(() => server.participants.get(bob.id)?.producers.size).toBe(2);

    await bob.page.reload();
    // no name typed: the tab enters again by itself, as the same user
    await joined(bob.page);
    expect(await selfId(bob.page)).toBe(bob.id);
    await expectStatus(bob.page, 'ON_STAGE');
    // republished by the resumed page; the host saw no new request
    await expect.poll(() => server.participants.get(bob.id)?.producers.size, { timeout: 10_000 }).toBe(2);
    expect(server.statusOf(bob.id)).toBe('ON_STAGE');
    expect(await host.page.getByTestId('request-item').count()).toBe(0);
    await expect.poll(() => host.page.locator(`[data-testid="stage-tile"][data-user-id="${bob.id}"]`).count()).toBe(1);
    await bob.page.screenshot({ path: path.join(SHOTS, 'pages-1a-reload-on-stage.png') });
  });

  it('1b. the same person in a second tab is the same user: shown once, the older tab says it was replaced', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const first = await enter(await open(room.viewerPath), 'Carol');
    const second = await enter(await open(room.viewerPath), 'Carol');
    expect(second.id).toBe(first.id);
    const gone = first.page.locator('[data-notice="disconnected"]');
    await expect.poll(() => gone.textContent(), { timeout: 10_000 }).toContain('another tab');
    await expect
      .poll(() => host.page.locator(`[data-testid="participant-item"][data-user-id="${first.id}"]`).count())
      .toBe(1);
    expect(sg.rooms.get(room.roomId)!.participants.size).toBe(2);
    // another name in the same browser is another person
    const dave = await enter(await open(room.viewerPath), 'Dave');
    expect(dave.id).not.toBe(first.id);
    await first.page.screenshot({ path: path.join(SHOTS, 'pages-1b-replaced-tab.png') });
  });

  it('2a. camera and microphone denied: a blocked panel with how to fix and Retry, never live; Retry after allowing works', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const denied = await deviceContext([]);
    const bob = await enter(await denied.open(room.viewerPath), 'Bob');
    await click(bob.page.getByTestId('ask-button'));
    const request = host.page.locator(`[data-testid="request-item"][data-user-id="${bob.id}"]`);
    await click(request.getByTestId('accept-request'));
    const blocked = bob.page.getByTestId('devices-blocked');
    await blocked.waitFor({ timeout: 10_000 });
    expect(await blocked.getAttribute('data-problem')).toBe('blocked');
    expect(await blocked.textContent()).toContain('press Retry');
    expect(await bob.page.getByTestId('join-stage-button').isDisabled()).toBe(true);
    await bob.page.screenshot({ path: path.join(SHOTS, 'pages-2a-devices-blocked.png') });
    // not live anywhere: the server keeps them accepted, the host shows no tile
    await sleep(500);
    expect(sg.rooms.get(room.roomId)!.statusOf(bob.id)).toBe('ACCEPTED_TO_JOIN_STAGE');
    expect(await host.page.locator(`[data-testid="stage-tile"][data-user-id="${bob.id}"]`).count()).toBe(0);
    // the person allows the devices, presses Retry, then joins
    await denied.context.grantPermissions(['camera', 'microphone'], { origin: url });
    await click(bob.page.getByTestId('retry-devices'));
    await expect.poll(() => bob.page.getByTestId('preview-tag').textContent()).toBe('Camera preview');
    await click(bob.page.getByTestId('join-stage-button'));
    await expectStatus(bob.page, 'ON_STAGE');
    await expect.poll(() => sg.rooms.get(room.roomId)!.participants.get(bob.id)?.producers.size).toBe(2);
  });

  it('2b. only the microphone allowed: the viewer joins audio only; only the camera: the host goes live video only', async () => {
    const room = await createRoom('REQUEST');
    const camOnly = await deviceContext(['camera']);
    const host = await enter(await camOnly.open(room.hostPath), 'Grace Host');
    const micOnly = await deviceContext(['microphone']);
    const bob = await enter(await micOnly.open(room.viewerPath), 'Bob');
    await bringOnStage(host.page, bob);
    const server = sg.rooms.get(room.roomId)!;
    const kinds = (id: string) =>
      [...(server.participants.get(id)?.producers.values() ?? [])].map((p) => p.producer.kind);
    await expect.poll(() => kinds(bob.id)).toEqual(['audio']);
    await click(host.page.getByTestId('host-join-stage'));
    await expect.poll(() => host.page.getByTestId('preview-tag').textContent()).toBe('Camera only (no microphone)');
    await host.page.screenshot({ path: path.join(SHOTS, 'pages-2b-host-preview-video-only.png') });
    // the preview came first: not on stage until Go live
    expect(server.statusOf(host.id)).toBe('ACCEPTED_TO_JOIN_STAGE');
    await click(host.page.getByTestId('host-go-live'));
    await expectStatus(host.page, 'ON_STAGE');
    await expect.poll(() => kinds(host.id)).toEqual(['video']);
  });

  it('7. names: bidi override stripped and isolated in the log, emoji avatar, tooltip; bad names refused readably in the lobby', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const eve = await enter(await open(room.viewerPath), 'Eve\u202Egnp.exe');
    const dev = await enter(await open(room.viewerPath), '👩‍💻 Dev');
    await click(eve.page.getByTestId('ask-button'));
    const line = host.page.getByTestId('activity').locator('li', { hasText: 'asked to join the stage' });
    await line.first().waitFor();
    expect(await line.first().textContent()).toContain('\u2068Evegnp.exe\u2069 asked to join the stage.');
    expect(await host.page.locator('body').textContent()).not.toContain('\u202E');
    const devRow = host.page.locator(`[data-testid="participant-item"][data-user-id="${dev.id}"]`);
    expect(await devRow.locator('.avatar-sm').textContent()).toBe('👩‍💻');
    expect(await devRow.locator('.nm-text').getAttribute('title')).toBe('👩‍💻 Dev');
    expect(await devRow.locator('.nm-text').getAttribute('dir')).toBe('auto');
    await host.page.screenshot({ path: path.join(SHOTS, 'pages-7-names.png') });

    const long = await open(`${room.viewerPath}&name=${'x'.repeat(200)}`);
    await click(long.getByTestId('join-button'));
    const err = long.locator('#lobby-error [data-testid="notice"]');
    await expect
      .poll(() => err.textContent())
      .toContain('Please choose another name: display name is too long: at most 60 characters.');
    const blank = await open(`${room.viewerPath}&name=${encodeURIComponent('\u200B\u200D')}`);
    await click(blank.getByTestId('join-button'));
    await expect
      .poll(() => blank.locator('#lobby-error [data-testid="notice"]').textContent())
      .toContain('needs at least one visible character');
    await long.screenshot({ path: path.join(SHOTS, 'pages-7-long-name.png') });
  });

  it('6. broken links say so visibly before a name is typed; a closed host tab leaves viewers a clear word', async () => {
    const wrong = await open('/viewer.html?room=nope1234');
    const broken = wrong.getByTestId('broken-link');
    await broken.waitFor({ state: 'visible' });
    expect(await broken.textContent()).toContain('This webinar does not exist or has ended.');
    expect(await wrong.getByTestId('name-input').isVisible()).toBe(false);
    await wrong.screenshot({ path: path.join(SHOTS, 'pages-6-wrong-room.png') });
    const room = await createRoom('REQUEST');
    const noKey = await open(`/host.html?room=${room.roomId}`);
    await noKey.getByTestId('broken-link').waitFor({ state: 'visible' });
    expect(await noKey.getByTestId('broken-link').textContent()).toContain('needs a room and a host key');
    const noRoom = await open('/viewer.html');
    await noRoom.getByTestId('broken-link').waitFor({ state: 'visible' });

    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    const left = bob.page.locator('[data-notice="host"]');
    expect(await left.count()).toBe(0);
    await host.page.close();
    // after the reconnect grace period (6 s here) the host is gone
    await expect.poll(() => left.textContent(), { timeout: 15_000 }).toContain('The host left. Waiting for them');
    await bob.page.screenshot({ path: path.join(SHOTS, 'pages-6-host-left.png') });
    // the host comes back: the word goes away
    const back = await enter(await open(room.hostPath), 'Grace Host');
    expect(back.id).toBe(host.id);
    await expect.poll(() => left.count(), { timeout: 10_000 }).toBe(0);
  });

  it('4. a mode switch confirms with the consequence; each viewer is told; the log says what happened', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    const carol = await enter(await open(room.viewerPath), 'Carol');
    for (const v of [bob, carol]) {
      await click(v.page.getByTestId('ask-button'));
      await expectStatus(v.page, 'REQUESTED_TO_JOIN_STAGE');
    }
    await expect.poll(() => host.page.getByTestId('request-item').count()).toBe(2);
    const confirm = host.page.getByTestId('mode-confirm');
    await click(host.page.getByTestId('mode-INVITE'));
    await expect.poll(() => confirm.textContent()).toContain('The 2 pending requests will be declined');
    await host.page.screenshot({ path: path.join(SHOTS, 'pages-4-mode-confirm.png') });
    await click(host.page.getByTestId('cancel-mode'));
    // nothing changed
    await sleep(300);
    expect(sg.rooms.get(room.roomId)!.stage.mode).toBe('REQUEST');
    expect(await confirm.isVisible()).toBe(false);
    await click(host.page.getByTestId('mode-OPEN'));
    await expect.poll(() => confirm.textContent()).toContain('The 2 pending requests will be approved');
    await click(host.page.getByTestId('confirm-mode'));
    for (const v of [bob, carol]) {
      await expectStatus(v.page, 'ACCEPTED_TO_JOIN_STAGE');
      await expect
        .poll(() => v.page.getByTestId('accepted-panel').textContent())
        .toContain('opened the stage to everyone');
    }
    const log = host.page.getByTestId('activity');
    await expect.poll(() => log.textContent()).toContain('\u2068Bob\u2069 may join the stage now (everyone on stage).');
    expect(await log.textContent()).not.toContain('You accepted');
  });

  it('8. messages: stale decline cleared, cancel and removal logged, Accept/Deny once, a withdrawn invite reads as such', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    const carol = await enter(await open(room.viewerPath), 'Carol');
    const log = host.page.getByTestId('activity');
    const request = host.page.locator(`[data-testid="request-item"][data-user-id="${bob.id}"]`);

    await click(bob.page.getByTestId('ask-button'));
    await request.waitFor();
    // a new request: a title badge and a chime
    await expect.poll(() => host.page.title()).toMatch(/^\(1\) Host · /);
    expect(await host.page.locator('body').getAttribute('data-chimes')).toBe('1');
    // Accept and Deny once on the page (the Requests card), not again in the participant row
    expect(await host.page.getByRole('button', { name: 'Accept', exact: true }).count()).toBe(1);
    expect(await host.page.getByRole('button', { name: 'Deny', exact: true }).count()).toBe(1);
    await click(request.getByTestId('deny-request'));
    const banner = bob.page.locator('[data-notice="stage"]');
    await expect.poll(() => banner.textContent()).toContain('declined your request');
    await click(bob.page.getByTestId('ask-button'));
    await expectStatus(bob.page, 'REQUESTED_TO_JOIN_STAGE');
    await expect.poll(() => banner.count()).toBe(0);
    await click(bob.page.getByTestId('cancel-request-button'));
    await expect.poll(() => log.textContent()).toContain('\u2068Bob\u2069 cancelled their request.');
    // the decline was not logged as a cancel
    expect((await log.textContent())!.split('cancelled their request').length - 1).toBe(1);

    const carolRow = host.page.locator(`[data-testid="participant-item"][data-user-id="${carol.id}"]`);
    await click(carolRow.getByTestId('invite-button'));
    await expectStatus(carol.page, 'ACCEPTED_TO_JOIN_STAGE');
    await click(carolRow.getByTestId('withdraw-button'));
    await expect
      .poll(() => carol.page.locator('[data-notice="stage"]').textContent())
      .toContain('\u2068Grace Host\u2069 withdrew your invitation to the stage.');
    await expect.poll(() => log.textContent()).toContain("You withdrew \u2068Carol\u2069's invitation.");

    await bringOnStage(host.page, bob);
    await click(
      host.page.locator(`[data-testid="participant-item"][data-user-id="${bob.id}"]`).getByTestId('remove-button'),
    );
    await expect.poll(() => log.textContent()).toContain('You removed \u2068Bob\u2069 from the stage.');
    expect(await log.textContent()).not.toContain('\u2068Bob\u2069 left the stage.');
    await host.page.screenshot({ path: path.join(SHOTS, 'pages-8-messages.png') });
  });

  // The README's screenshots (client/web/screenshots/): STAGEGATE_README_SHOTS=1 npx vitest run test/browser/pages.test.ts -t README
  it.runIf(process.env.STAGEGATE_README_SHOTS === '1')(
    'README screenshots: host console and viewer, desktop and phone',
    async () => {
      const out = path.join(ROOT, 'client/web/screenshots');
      const room = await createRoom('REQUEST');
      const host = await enter(await open(room.hostPath), 'Grace Hopper');
      const ada = await enter(await open(room.viewerPath), 'Ada Lovelace');
      const alan = await enter(await open(room.viewerPath), 'Alan Turing');
      await enter(await open(room.viewerPath), 'Katherine Johnson');
      // the room settings: two seats, 5-minute slots (the speaker's tile and row count down)
      await host.page.getByTestId('setting-stageCap').fill('2');
      await host.page.getByTestId('setting-slotSeconds').fill('300');
      await host.page.getByTestId('setting-requestCooldownSeconds').fill('60');
      await click(host.page.getByTestId('apply-settings'));
      await expect.poll(() => sg.rooms.get(room.roomId)!.stage.settings.slotSeconds).toBe(300);
      await bringOnStage(host.page, ada);
      await host.page
        .locator(`[data-testid="speaker-row"][data-user-id="${ada.id}"]`)
        .getByTestId('slot-countdown')
        .waitFor();
      await click(alan.page.getByTestId('ask-button'));
      await host.page.locator(`[data-testid="request-item"][data-user-id="${alan.id}"]`).waitFor();
      await sleep(1500);
      const shot = async (page: Page, name: string, width: number, height: number) => {
        await page.setViewportSize({ width, height });
        await page.evaluate(() => window.scrollTo(0, 0)); // (clicks scrolled their buttons into view)
        await sleep(400);
        await page.screenshot({ path: path.join(out, name), fullPage: width < 600, animations: 'disabled' });
      };
      await shot(host.page, 'host-console.png', 1280, 1180);
      await shot(host.page, 'host-console-phone.png', 390, 844);
      await click(
        host.page.locator(`[data-testid="request-item"][data-user-id="${alan.id}"]`).getByTestId('accept-request'),
      );
      await alan.page.getByTestId('preview-video').waitFor();
      await sleep(1500);
      await shot(alan.page, 'viewer-accepted-preview.png', 1280, 800);
      await shot(alan.page, 'viewer-phone.png', 390, 844);
    },
  );

  it('9. a phone (390 px): no horizontal overflow on any page; faint text has AA contrast; toasts let clicks through', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    await click(bob.page.getByTestId('ask-button'));
    await host.page.getByTestId('request-item').waitFor();
    const landing = await open('/');
    for (const page of [host.page, bob.page, landing]) {
      await page.setViewportSize({ width: 390, height: 844 });
      await sleep(200);
      const wide = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>('body *')]
          .filter((el) => el.getBoundingClientRect().right > 391 && el.offsetParent)
          .map((el) => `${el.tagName}.${el.className}#${el.id}`)
          .slice(0, 5),
      );
      expect(
        await page.evaluate(() => document.documentElement.scrollWidth),
        `${page.url()} ${wide.join(' ')}`,
      ).toBeLessThanOrEqual(390);
    }
    await host.page.screenshot({ path: path.join(SHOTS, 'pages-9-host-phone.png'), fullPage: true });
    // contrast of the faint grey against white
    const ratio = await host.page.evaluate(() => {
      const el = document.createElement('span');
      el.className = 'faint';
      document.body.append(el);
      const rgb = getComputedStyle(el).color.match(/\d+/g)!.slice(0, 3).map(Number);
      const lum = (c: number[]) =>
        c
          .map((v) => v / 255)
          .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
          .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
      return 1.05 / (lum(rgb) + 0.05);
    });
    expect(ratio).toBeGreaterThanOrEqual(4.5);
    expect(await host.page.locator('.toasts').evaluate((el) => getComputedStyle(el).pointerEvents)).toBe('none');
    // a heading once joined, and the status announced to screen readers
    for (const page of [host.page, bob.page]) {
      expect(await page.getByRole('heading', { level: 1 }).count()).toBe(1);
      expect(await page.getByTestId('stage-status').getAttribute('aria-live')).toBe('polite');
    }
  });

  it('5. the host ends the webinar for everyone (after a confirmation); viewers are told it ended', async () => {
    const room = await createRoom('REQUEST');
    const host = await enter(await open(room.hostPath), 'Grace Host');
    const bob = await enter(await open(room.viewerPath), 'Bob');
    await click(host.page.getByTestId('end-webinar'));
    expect(await host.page.locator('[data-notice="end"]').textContent()).toContain('End the webinar for everyone?');
    expect(sg.rooms.get(room.roomId)?.closed).toBe(false);
    await click(host.page.getByTestId('confirm-end'));
    const ended = bob.page.locator('[data-notice="disconnected"]');
    await expect.poll(() => ended.textContent(), { timeout: 10_000 }).toContain('The webinar has ended.');
    expect(sg.rooms.get(room.roomId)).toBeUndefined();
    await bob.page.screenshot({ path: path.join(SHOTS, 'pages-5-ended.png') });
  });
});

/**
 * A separate Chromium whose permission prompts are not auto-accepted (no
 * --use-fake-ui-for-media-stream): getUserMedia is refused unless `grant`ed (fake devices).
 */
const extraContexts: BrowserContext[] = [];
async function deviceContext(grant: string[]): Promise<{ context: BrowserContext; open(p: string): Promise<Page> }> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1280, height: 800 },
  });
  extraContexts.push(context);
  if (grant.length) await context.grantPermissions(grant, { origin: url });
  return {
    context,
    async open(p) {
      const page = await context.newPage();
      await page.goto(`${url}${p}`);
      return page;
    },
  };
}
afterEach(async () => {
  for (const c of extraContexts.splice(0)) await c.close().catch(() => undefined);
});
