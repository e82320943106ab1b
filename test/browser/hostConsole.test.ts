/**
 * The host console's moderation (issue 11 "Pages", host side; issue 12's host leftovers), in real
 * Chromium against the real server: room settings, mute / allow to unmute / mute everyone, slot
 * countdowns with "+1 min", remove and ban with a confirmation, the bans with Unban, the audit
 * trail, speaker links, two host consoles that agree, a large audience, and axe-core on the
 * landing page and the console. Speakers and the audience are raw socket.io participants (cheap:
 * the server's state is what is checked); hosts and viewers are the real pages. Screenshots land
 * in test-results/.
 */
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import type { Meeting } from '../../client/index.js';
import { a11yViolations } from '../helpers/browser.js';
import {
  connectWatchers,
  click,
  createRoom,
  enter,
  open,
  SHOTS,
  sg,
  sleep,
  url,
  useDemoPages,
  type DemoRoom,
} from '../helpers/demoPages.js';
import { connectRaw, joinRaw, type RawClient } from '../helpers/server.js';

type TestWindow = Window & { __meeting: Meeting };

useDemoPages({ reconnectGraceMs: 2_000 });

let raws: RawClient[] = [];

afterEach(() => {
  for (const c of raws) c.close();
  raws = [];
});

/** Opens `pathAndQuery` and enters as `name`. */
const enterAt = async (pathAndQuery: string, name: string) => (await enter(await open(pathAndQuery), name)).page;

/** A raw participant of `room` (no media): `speaker` goes on stage at once. */
async function raw(room: DemoRoom, userId: string, name: string, preset: 'speaker' | 'viewer'): Promise<RawClient> {
  const token = await sg.tokens.mint({ userId, name, roomId: room.roomId, preset });
  const c = await connectRaw(url, { token });
  raws.push(c);
  await joinRaw(c);
  if (preset === 'speaker') await c.request('stage.join');
  return c;
}

const row = (page: Page, testid: string, userId: string) =>
  page.locator(`[data-testid="${testid}"][data-user-id="${userId}"]`);
const settingsOf = (page: Page) => page.evaluate(() => (window as unknown as TestWindow).__meeting.settings);
/** Room for a loaded machine (the default poll gives up after 1 s). */
const T = { timeout: 10_000 };
/** Text without the isolation marks (FSI/PDI) the pages put around names. */
const plain = async (l: Locator) => ((await l.textContent()) ?? '').replace(/[\u2068\u2069]/g, '');

describe('host console: moderation', () => {
  it('room settings: applied from the console, shown in a co-host console and a viewer page; a refusal is readable and changes nothing', async () => {
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    const b = await enterAt(room.hostPath, 'Hedy Cohost');
    const viewer = await enterAt(room.viewerPath, 'Vera Viewer');
    const server = sg.rooms.get(room.roomId)!;

    // the current values are shown
    expect(await a.getByTestId('settings-summary').textContent()).toBe(
      'Now: no seat limit, auto-fill off, acceptance time-out 1 min, no slot limit, no request cool-down.',
    );
    expect(await a.getByTestId('setting-acceptTimeoutSeconds').inputValue()).toBe('60');

    await a.getByTestId('setting-stageCap').fill('2');
    await a.getByTestId('setting-autoFill').check();
    await a.getByTestId('setting-acceptTimeoutSeconds').fill('45');
    await a.getByTestId('setting-slotSeconds').fill('300');
    await a.getByTestId('setting-requestCooldownSeconds').fill('30');
    await click(a.getByTestId('apply-settings'));
    const want = {
      stageCap: 2,
      autoFill: true,
      acceptTimeoutSeconds: 45,
      slotSeconds: 300,
      requestCooldownSeconds: 30,
      audience: 'hidden',
    };
    await expect.poll(() => server.stage.settings, T).toEqual(want);
    // the co-host's console and the viewer's meeting follow
    await expect
      .poll(() => b.getByTestId('settings-summary').textContent())
      .toBe('Now: 2 seats, auto-fill on, acceptance time-out 45 s, slots of 5 min, request cool-down 30 s.');
    expect(await b.getByTestId('setting-stageCap').inputValue()).toBe('2');
    expect(await b.getByTestId('setting-autoFill').isChecked()).toBe(true);
    await expect.poll(() => settingsOf(viewer), T).toEqual(want);
    await expect.poll(() => plain(b.getByTestId('activity')), T).toContain('Grace Host changed the room settings');

    // refusals: a value out of range (the server's word, the field named as on the page), and a blank
    await a.getByTestId('setting-stageCap').fill('20000');
    await click(a.getByTestId('apply-settings'));
    const error = a.getByTestId('settings-error');
    await expect
      .poll(() => error.textContent())
      .toContain('Not applied: Stage seats must be a whole number from 0 to 10000, or empty for no limit.');
    await a.getByTestId('setting-stageCap').fill('2');
    await a.getByTestId('setting-requestCooldownSeconds').fill('');
    await click(a.getByTestId('apply-settings'));
    await expect.poll(() => error.textContent(), T).toContain('Not applied: Request cool-down needs a whole number.');
    expect(server.stage.settings).toEqual(want);
    expect(await a11yViolations(a)).toEqual([]);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-settings.png'), fullPage: true });

    // a viewer page has none of the host controls, and the server refuses a viewer's calls
    for (const id of ['settings-card', 'speakers-card', 'bans-card', 'audit-toggle', 'mute-everyone']) {
      expect(await viewer.getByTestId(id).count(), id).toBe(0);
    }
    const refused = await viewer.evaluate(async () => {
      const m = (window as unknown as TestWindow).__meeting;
      const codes: string[] = [];
      for (const call of [
        () => m.stage.setSettings({ stageCap: 9 }),
        () => m.stage.mute(['x'], ['audio']),
        () => m.stage.removeFromRoom(['x'], { ban: true }),
        () => m.stage.extendSlot('x', 60),
      ]) {
        try {
          await call();
          codes.push('ok');
        } catch (err) {
          codes.push((err as { code: string }).code);
        }
      }
      return codes;
    });
    expect(refused).toEqual(['FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN']);
    expect(server.stage.settings).toEqual(want);
  });

  it('mute, ask to unmute, allow, mute everyone: each reaches the server, and the co-host console shows it', async () => {
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    const b = await enterAt(room.hostPath, 'Hedy Cohost');
    const sam = await raw(room, 'sam', 'Sam Speaker', 'speaker');
    await raw(room, 'tia', 'Tia Talker', 'speaker');
    const server = sg.rooms.get(room.roomId)!;
    await row(a, 'speaker-row', 'sam').waitFor();
    await row(a, 'speaker-row', 'tia').waitFor();

    // mute Sam's mic in console A: held on the server, Sam told, console B shows it
    const muted = sam.next('mutedByHost');
    await click(row(a, 'speaker-row', 'sam').getByTestId('mute-audio'));
    expect(await muted).toMatchObject({ userId: 'sam', sources: ['audio'] });
    expect(server.stage.holdsOf('sam').held).toEqual(['audio']);
    await row(b, 'speaker-row', 'sam').getByTestId('held-audio').waitFor();
    expect(await row(b, 'speaker-row', 'sam').getByTestId('allow-audio').count()).toBe(1);
    await expect.poll(() => plain(b.getByTestId('activity')), T).toContain("Grace Host muted Sam Speaker's mic.");

    // Sam asks to unmute: both consoles show the ask; B allows; A's row is back to "Mute mic"
    await sam.request('stage.requestUnmute', { source: 'audio' });
    for (const page of [a, b]) await row(page, 'speaker-row', 'sam').getByTestId('unmute-ask-audio').waitFor();
    await a.screenshot({ path: path.join(SHOTS, 'host-console-unmute-ask.png') });
    const allowed = sam.next('unmuteAllowed');
    await click(row(b, 'speaker-row', 'sam').getByTestId('allow-audio'));
    expect(await allowed).toMatchObject({ userId: 'sam', sources: ['audio'] });
    expect(server.stage.holdsOf('sam')).toEqual({ held: [], unmuteRequested: [] });
    await row(a, 'speaker-row', 'sam').getByTestId('mute-audio').waitFor();
    expect(await row(a, 'speaker-row', 'sam').getByTestId('unmute-ask-audio').count()).toBe(0);

    // stop Tia's camera, then mute everyone: every speaker's mic held
    await click(row(b, 'speaker-row', 'tia').getByTestId('mute-video'));
    await expect.poll(() => server.stage.holdsOf('tia').held, T).toEqual(['video']);
    await click(a.getByTestId('mute-everyone'));
    await expect.poll(() => server.stage.holdsOf('sam').held, T).toEqual(['audio']);
    await expect.poll(() => server.stage.holdsOf('tia').held, T).toEqual(['audio', 'video']);
    for (const page of [a, b]) {
      await expect.poll(() => row(page, 'speaker-row', 'tia').getAttribute('data-held'), T).toBe('audio video');
      await expect.poll(() => row(page, 'speaker-row', 'sam').getAttribute('data-held'), T).toBe('audio');
      await expect.poll(() => page.getByTestId('mute-everyone').isDisabled(), T).toBe(true);
    }

    // a console opened now reads the holds from the server
    const late = await enterAt(room.hostPath, 'Lin Latecomer');
    await expect.poll(() => row(late, 'speaker-row', 'tia').getAttribute('data-held'), T).toBe('audio video');
    expect(await a11yViolations(a)).toEqual([]);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-muted.png') });
  });

  it('slots: a countdown on the row and the tile; "+1 min" extends it on the server and in the other console', async () => {
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    const b = await enterAt(room.hostPath, 'Hedy Cohost');
    const server = sg.rooms.get(room.roomId)!;
    await a.getByTestId('setting-slotSeconds').fill('120');
    await click(a.getByTestId('apply-settings'));
    await expect.poll(() => server.stage.settings.slotSeconds, T).toBe(120);
    await raw(room, 'sam', 'Sam Speaker', 'speaker');
    const countdown = row(a, 'speaker-row', 'sam').getByTestId('slot-countdown');
    await expect.poll(() => countdown.textContent(), T).toMatch(/^(2:00|1:5\d) left$/);
    const tile = a.locator('[data-testid="stage-tile"][data-user-id="sam"]').getByTestId('tile-slot');
    await expect.poll(() => tile.textContent(), T).toMatch(/^(2:00|1:5\d) left$/);
    const before = server.stage.slotEndsAt('sam')!;
    expect(Number(await countdown.getAttribute('data-ends-at'))).toBe(before);

    await click(row(a, 'speaker-row', 'sam').getByTestId('extend-slot'));
    await expect.poll(() => server.stage.slotEndsAt('sam'), T).toBe(before + 60_000);
    const other = row(b, 'speaker-row', 'sam').getByTestId('slot-countdown');
    await expect.poll(() => other.getAttribute('data-ends-at'), T).toBe(String(before + 60_000));
    await expect.poll(() => other.textContent(), T).toMatch(/^(3:00|2:5\d) left$/);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-slot.png') });

    // no slot: no countdown, no "+1 min"
    await a.getByTestId('setting-slotSeconds').fill('');
    await click(a.getByTestId('apply-settings'));
    await expect.poll(() => row(b, 'speaker-row', 'sam').getByTestId('slot-countdown').count(), T).toBe(0);
    expect(await row(b, 'speaker-row', 'sam').getByTestId('extend-slot').count()).toBe(0);
    expect(server.stage.slotEndsAt('sam')).toBeUndefined();
  });

  it('remove and ban: the confirmation names the person; a banned user cannot rejoin; both consoles list the ban; Unban lets them back', async () => {
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    const b = await enterAt(room.hostPath, 'Hedy Cohost');
    const server = sg.rooms.get(room.roomId)!;
    const token = await sg.tokens.mint({ userId: 'rex', name: 'Rex Rowdy', roomId: room.roomId, preset: 'viewer' });
    const rex = await connectRaw(url, { token });
    raws.push(rex);
    await joinRaw(rex);
    await raw(room, 'amy', 'Amy Audience', 'viewer');

    // Ban from the audience row: Cancel changes nothing
    await a.getByTestId('people-search').fill('rex');
    const rexRow = row(a, 'participant-item', 'rex');
    await click(rexRow.getByTestId('ban-button'));
    const dialog = a.getByTestId('confirm-dialog');
    expect(await dialog.getByTestId('confirm-title').textContent()).toBe('Remove and ban Rex Rowdy?');
    expect(await dialog.getByTestId('confirm-text').textContent()).toContain('cannot join this webinar again');
    expect(await a11yViolations(a)).toEqual([]);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-ban-confirm.png') });
    await click(dialog.getByTestId('confirm-cancel'));
    await sleep(300);
    expect(server.participants.has('rex')).toBe(true);
    expect(server.stage.isBanned('rex')).toBe(false);

    // confirmed: Rex is told and disconnected, banned on the server
    const bye = rex.next('goodbye');
    await click(rexRow.getByTestId('ban-button'));
    expect(await dialog.getByTestId('confirm-ok').textContent()).toBe('Remove and ban Rex Rowdy');
    await click(dialog.getByTestId('confirm-ok'));
    expect(await bye).toMatchObject({ reason: 'removed-from-room' });
    await expect.poll(() => server.stage.isBanned('rex'), T).toBe(true);
    expect(server.participants.has('rex')).toBe(false);
    // both consoles list the ban, by name; the log says removed and banned (not "left")
    for (const [page, who] of [
      [a, 'You'],
      [b, 'Grace Host'],
    ] as const) {
      await expect.poll(() => row(page, 'ban-item', 'rex').textContent(), T).toContain('Rex Rowdy');
      await expect.poll(() => plain(page.getByTestId('activity')), T).toContain(`${who} removed and banned Rex Rowdy.`);
    }
    await sleep(400);
    expect(await plain(b.getByTestId('activity'))).not.toContain('Rex Rowdy left');
    // Rex cannot come back
    await expect(connectRaw(url, { token })).rejects.toMatchObject({ code: 'BANNED' });

    // Remove (no ban) from Amy's row: disconnected, not banned, may rejoin
    await a.getByTestId('people-search').fill('amy');
    await click(row(a, 'participant-item', 'amy').getByTestId('remove-from-room'));
    expect(await dialog.getByTestId('confirm-title').textContent()).toBe('Remove Amy Audience from the webinar?');
    await click(dialog.getByTestId('confirm-ok'));
    await expect.poll(() => server.participants.has('amy'), T).toBe(false);
    expect(server.stage.isBanned('amy')).toBe(false);
    expect(await b.getByTestId('ban-item').count()).toBe(1);

    // Unban in console B: the server lets Rex in again, console A's list empties
    await b.screenshot({ path: path.join(SHOTS, 'host-console-bans.png'), fullPage: true });
    await click(row(b, 'ban-item', 'rex').getByTestId('unban-button'));
    await expect.poll(() => server.stage.isBanned('rex'), T).toBe(false);
    // (console A learns it within 3 s: an unban is the backend's, read again while a ban is listed)
    await expect.poll(() => a.getByTestId('ban-item').count(), { timeout: 8000 }).toBe(0);
    const back = await connectRaw(url, { token });
    raws.push(back);
    await joinRaw(back);
    expect(server.participants.has('rex')).toBe(true);

    // another host cannot be removed from a console: no buttons on a host's row
    await a.getByTestId('people-search').fill('hedy');
    const hedyRow = a.getByTestId('participant-item').filter({ hasText: 'Hedy Cohost' });
    await hedyRow.waitFor();
    expect(await hedyRow.getByTestId('ban-button').count()).toBe(0);
  });

  it('the audit view lists the room’s records in words, newest first, and follows new ones', async () => {
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    await raw(room, 'sam', 'Sam Speaker', 'speaker');
    await row(a, 'speaker-row', 'sam').waitFor();
    await click(row(a, 'speaker-row', 'sam').getByTestId('mute-audio'));
    await expect.poll(() => sg.rooms.get(room.roomId)!.stage.holdsOf('sam').held, T).toEqual(['audio']);

    await click(a.getByTestId('audit-toggle'));
    expect(await a.getByTestId('audit-toggle').getAttribute('aria-expanded')).toBe('true');
    const items = a.getByTestId('audit-item');
    await expect.poll(() => a.locator('[data-testid="audit-item"][data-action="media.held"]').count(), T).toBe(1);
    const all = (await items.allTextContents()).map((t) => t.replace(/[\u2068\u2069]/g, ''));
    expect(all.at(-1)).toContain('The room was created');
    expect(all.join('\n')).toContain("You muted Sam Speaker's mic");
    expect(all.join('\n')).toContain('Sam Speaker joined');
    expect(all.join('\n')).toContain('Sam Speaker: ready to join → on stage (join)');
    // the trail is the server's: as many records as the audit holds (fewer than a page)
    const records = sg.audit.list(room.roomId, 0, 500).records;
    expect(await items.count()).toBe(records.length);
    expect(await items.first().getAttribute('data-id')).toBe(String(records.at(-1)!.id));

    // a new change shows up while the view is open
    await click(row(a, 'speaker-row', 'sam').getByTestId('allow-audio'));
    await expect
      .poll(() => a.locator('[data-testid="audit-item"][data-action="media.unmuteAllowed"]').count(), { timeout: 6000 })
      .toBe(1);
    expect(await a11yViolations(a)).toEqual([]);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-audit.png'), fullPage: true });
  });

  it('speaker links: on the landing page and in the console; they join as speakers, on stage without asking', async () => {
    const landing = await open('/');
    expect(await a11yViolations(landing)).toEqual([]);
    await click(landing.getByTestId('create-room'));
    await landing.getByTestId('created').waitFor();
    const speakerUrl = await landing.getByTestId('speaker-link').inputValue();
    expect(speakerUrl).toMatch(/\/viewer\.html\?room=[^&]+&speaker=.+/);
    const roomId = new URL(speakerUrl).searchParams.get('room')!;
    expect(await a11yViolations(landing)).toEqual([]);
    await landing.screenshot({ path: path.join(SHOTS, 'landing-links.png'), fullPage: true });

    const hostUrl = await landing.getByTestId('host-link').inputValue();
    const a = await enterAt(new URL(hostUrl).pathname + new URL(hostUrl).search, 'Grace Host');
    await expect.poll(() => a.getByTestId('copy-speaker-link').isDisabled(), T).toBe(false);
    const speaker = await enterAt(new URL(speakerUrl).pathname + new URL(speakerUrl).search, 'Sam Speaker');
    expect(await speaker.evaluate(() => (window as unknown as TestWindow).__meeting.self.preset.name)).toBe('speaker');
    // a speaker may go on stage without a request
    const id = await speaker.evaluate(async () => {
      const m = (window as unknown as TestWindow).__meeting;
      return m.self.id;
    });
    expect(sg.rooms.get(roomId)!.statusOf(id)).toBe('ACCEPTED_TO_JOIN_STAGE');
    // the same name on the viewer link in this browser is another person (a viewer)
    const viewer = await enterAt(`/viewer.html?room=${roomId}`, 'Sam Speaker');
    const viewerSelf = await viewer.evaluate(() => {
      const m = (window as unknown as TestWindow).__meeting;
      return { id: m.self.id, preset: m.self.preset.name };
    });
    expect(viewerSelf.preset).toBe('viewer');
    expect(viewerSelf.id).not.toBe(id);
  });

  it('a large audience (400 raw participants): the console renders the first rows, finds one by search and bans them', async () => {
    const AUDIENCE = 400;
    const room = await createRoom();
    const a = await enterAt(room.hostPath, 'Grace Host');
    raws.push(...(await connectWatchers(room.roomId, AUDIENCE, 20)));
    await raw(room, 'sam', 'Sam Speaker', 'speaker');
    await expect
      .poll(() => a.getByTestId('people-count').textContent(), { timeout: 15_000 })
      .toBe(String(AUDIENCE + 2));
    const rows = a.getByTestId('participants').getByTestId('participant-item');
    expect(await rows.count()).toBeLessThanOrEqual(51);
    // the stage person is listed first, with their controls
    expect(await rows.nth(1).getAttribute('data-user-id')).toBe('sam');
    await row(a, 'speaker-row', 'sam').waitFor();
    // the page stays light: a render of the whole console takes little time
    const renderMs = await a.evaluate(async () => {
      const t0 = performance.now();
      (document.getElementById('people-search') as HTMLInputElement).dispatchEvent(new Event('input'));
      await new Promise((r) => requestAnimationFrame(() => r(null)));
      return performance.now() - t0;
    });
    expect(renderMs).toBeLessThan(1000);

    await a.getByTestId('people-search').fill('watcher 377');
    await expect.poll(() => rows.count(), T).toBe(2);
    await click(row(a, 'participant-item', 'watcher-377').getByTestId('ban-button'));
    expect(await a.getByTestId('confirm-title').textContent()).toBe('Remove and ban Watcher 377?');
    await click(a.getByTestId('confirm-ok'));
    await expect.poll(() => sg.rooms.get(room.roomId)!.stage.isBanned('watcher-377'), T).toBe(true);
    await expect.poll(() => a.getByTestId('people-count').textContent(), T).toBe(String(AUDIENCE + 1));
    await row(a, 'ban-item', 'watcher-377').waitFor();
    await a.getByTestId('people-search').fill('');
    await a.screenshot({ path: path.join(SHOTS, 'host-console-large-audience.png') });
  });

  it('axe-core: no serious or critical violations on the host lobby, the console joined with every panel open, and a phone width', async () => {
    const room = await createRoom();
    const lobby = await open(room.hostPath);
    await lobby.getByTestId('name-input').waitFor();
    expect(await a11yViolations(lobby)).toEqual([]);
    await lobby.close();
    const a = await enterAt(room.hostPath, 'Grace Host');
    await raw(room, 'sam', 'Sam Speaker', 'speaker');
    await row(a, 'speaker-row', 'sam').waitFor();
    await click(row(a, 'speaker-row', 'sam').getByTestId('mute-audio'));
    await row(a, 'speaker-row', 'sam').getByTestId('held-audio').waitFor();
    await click(a.getByTestId('audit-toggle'));
    await a.getByTestId('audit-item').first().waitFor();
    expect(await a11yViolations(a)).toEqual([]);
    await a.setViewportSize({ width: 390, height: 844 });
    await sleep(200);
    expect(await a.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await a11yViolations(a)).toEqual([]);
    await a.screenshot({ path: path.join(SHOTS, 'host-console-phone-panels.png'), fullPage: true });
  });
});
