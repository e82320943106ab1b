/**
 * The thin client with a list of node URLs (cluster mode): an unreachable node is skipped for
 * the next one; a refusal by a reachable node is final (another node would refuse the same).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../cluster/helpers.js';
import { startHarness, type Harness } from './helpers.js';

let h: Harness;
let dead: string;

beforeAll(async () => {
  h = await startHarness({ demo: false });
  dead = `http://127.0.0.1:${await freePort()}`;
});

afterAll(() => h?.close());

it('connects through the next URL when the first node is unreachable', async () => {
  const room = await h.room();
  const meeting = await h.join(room, 'u1', 'viewer', { url: [dead, h.url] });
  expect(meeting.connected).toBe(true);
  expect(room.participants.has('u1')).toBe(true);
});

it('does not try another node after a refusal, and fails DISCONNECTED when none is reachable', async () => {
  await expect(h.join('no-such-room', 'u2', 'viewer', { url: [h.url, dead] })).rejects.toMatchObject({
    code: 'NOT_FOUND',
  });
  const room = await h.room();
  await expect(h.join(room, 'u3', 'viewer', { url: [dead, dead] })).rejects.toMatchObject({ code: 'DISCONNECTED' });
});
