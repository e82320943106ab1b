/**
 * The demo pages and the audience contract in real Chromium: in a `hidden` room the host page
 * lists and searches the whole audience (hundreds here, rendered as the first rows plus "and K
 * more"), and the viewer page shows the stage and "N watching", never an audience name. The
 * audience is raw socket.io participants (cheap); host and viewer are the real pages.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectWatchers, createRoom, enter, open, sg, SHOTS, url, useDemoPages } from '../helpers/demoPages.js';
import type { RawClient } from '../helpers/server.js';

const AUDIENCE = 300;
const raws: RawClient[] = [];

useDemoPages();
afterAll(() => {
  for (const c of raws) c.close();
});

/** Opens `pathAndQuery` and enters as `name`. */
const enterAt = async (pathAndQuery: string, name: string) => (await enter(await open(pathAndQuery), name)).page;

describe('hidden audience in the pages', () => {
  it('the demo route creates hidden rooms unless asked for a visible one', async () => {
    const create = (body: unknown) =>
      fetch(`${url}/demo/rooms`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const visible = (await (await create({ audience: 'visible' })).json()) as { roomId: string };
    expect(sg.rooms.get(visible.roomId)!.settings).toMatchObject({ audience: 'visible' });
    expect((await create({ audience: 'everyone' })).status).toBe(400);
    const hidden = (await (await create({})).json()) as { roomId: string };
    expect(sg.rooms.get(hidden.roomId)!.settings).toMatchObject({ audience: 'hidden' });
    sg.rooms.close(visible.roomId);
    sg.rooms.close(hidden.roomId);
  });

  it('the host lists and searches the audience; a viewer sees the stage and a count, no names', async () => {
    const room = await createRoom('REQUEST');
    expect(sg.rooms.get(room.roomId)!.settings.audience).toBe('hidden');

    const host = await enterAt(room.hostPath, 'Grace Host');
    // the audience: raw participants named "Watcher 000".."Watcher 299", 10 at a time
    raws.push(...(await connectWatchers(room.roomId, AUDIENCE)));
    await raws[7]!.request('stage.requestAccess');

    // host: everyone counted, the first rows rendered, the rest summed up
    await expect
      .poll(() => host.getByTestId('people-count').textContent(), { timeout: 10_000 })
      .toBe(String(AUDIENCE + 1));
    const rows = host.getByTestId('participants').getByTestId('participant-item');
    expect(await rows.count()).toBeLessThanOrEqual(51); // 50 + the host's own row
    await expect.poll(() => host.getByTestId('people-more').textContent()).toMatch(/and 2\d\d more/);
    // the requester is on top of the list (requests first) and in the request queue
    await expect.poll(() => host.getByTestId('request-item').count()).toBe(1);
    expect(await host.getByTestId('requests').textContent()).toContain('Watcher 007');

    // search: one name among 300
    await host.getByTestId('people-search').fill('watcher 277');
    await expect.poll(() => rows.count()).toBe(2); // the host's own row and the match
    expect(await host.getByTestId('participants').textContent()).toContain('Watcher 277');
    expect(await host.getByTestId('people-more').count()).toBe(0);
    await host.getByTestId('people-search').fill('nobody by that name');
    await expect.poll(() => host.getByTestId('people-none').count()).toBe(1);
    await host.getByTestId('people-search').fill('');
    await host.screenshot({ path: path.join(SHOTS, 'host-audience-hidden.png') });

    // viewer: the stage (the host) and a count; no audience member's name anywhere in the page
    const viewer = await enterAt(room.viewerPath, 'Vera Viewer');
    await expect
      .poll(() => viewer.getByTestId('audience-count').textContent(), { timeout: 10_000 })
      .toMatch(new RegExp(`^${AUDIENCE + 1} watching`));
    const people = await viewer.getByTestId('people').textContent();
    expect(people).toContain('Grace Host');
    expect(people).toContain('Vera Viewer');
    expect(await viewer.locator('body').textContent()).not.toContain('Watcher');
    const seen = await viewer.evaluate(() => [
      ...(window as unknown as { __meeting: { participants: Map<string, unknown> } }).__meeting.participants.keys(),
    ]);
    expect(seen.some((id) => id.startsWith('watcher-'))).toBe(false);
    await viewer.screenshot({ path: path.join(SHOTS, 'viewer-audience-hidden.png') });

    // one watcher leaves: the viewer's count follows (at most once a second)
    await raws.pop()!.request('leaveRoom');
    await expect
      .poll(() => viewer.getByTestId('audience-count').textContent(), { timeout: 10_000 })
      .toMatch(new RegExp(`^${AUDIENCE} watching`));

    // the host lets everyone see everyone: the viewer's list fills (first rows only)
    await host.bringToFront();
    await host.getByTestId('audience-visible').click();
    await expect.poll(() => viewer.getByTestId('people-more').count(), { timeout: 10_000 }).toBe(1);
    expect(await viewer.getByTestId('people').textContent()).toContain('Watcher');
  });
});
