/**
 * The audience contract through the thin client: `meeting.participants` follows who may be seen,
 * `meeting.audienceCount` and its event, `meeting.settings` and `roomSettingsUpdate`. Real server,
 * real socket.io, real mediasoup worker; FakeHandler and fake tracks on the client side.
 */
import { describe, expect, test } from 'vitest';
import { StagegateError } from '../../client/index.js';
import { waitFor, h, faults, useHarness } from './helpers.js';

useHarness();

const ids = (m: { participants: ReadonlyMap<string, unknown> }) => [...m.participants.keys()].sort();

describe('hidden room (default)', () => {
  test('a viewer sees the stage and a count; a host sees everyone', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const speaker = await h.join(room, 'speaker', 'speaker');
    const ada = await h.join(room, 'ada', 'viewer');
    expect(ada.settings).toMatchObject({ audience: 'hidden' });
    expect(ids(ada)).toEqual(['host', 'speaker']);
    // the snapshot has the count last announced; ada's own arrival follows within a second
    await expect.poll(() => ada.audienceCount, { timeout: 3000 }).toBe(1);

    const counted = waitFor(ada, 'audienceCount', (e) => e.count === 2, 3000);
    const bob = await h.join(room, 'bob', 'viewer');
    expect(ids(bob)).toEqual(['host', 'speaker']);
    expect(await counted).toEqual({ count: 2 });
    await expect.poll(() => bob.audienceCount, { timeout: 3000 }).toBe(2);
    expect(ada.audienceCount).toBe(2);
    expect(ada.participants.has('bob')).toBe(false);
    expect(ids(host)).toEqual(['ada', 'bob', 'speaker']);
    expect(ids(speaker)).toEqual(['host']); // a speaker is no host: the stage only
    await expect(ada.stage.setSettings({ audience: 'visible' })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(ada.stage.setSettings({ audience: 'visible' })).rejects.toBeInstanceOf(StagegateError);
  });

  test('a viewer granted the stage appears in the others’ participants and goes when back in the audience', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const ada = await h.join(room, 'ada', 'viewer');
    const bob = await h.join(room, 'bob', 'viewer');
    await bob.stage.requestAccess();
    expect(ada.participants.has('bob')).toBe(false);

    const appeared = waitFor(ada, 'participantJoined');
    await host.stage.grantAccess(['bob']);
    expect((await appeared).participant).toMatchObject({ id: 'bob', stageStatus: 'ACCEPTED_TO_JOIN_STAGE' });
    expect(ada.participants.get('bob')?.stageStatus).toBe('ACCEPTED_TO_JOIN_STAGE');
    // (bob's arrival and promotion may fall in one second: then no count is sent at all)
    await expect.poll(() => [ada.audienceCount, host.audienceCount], { timeout: 3000 }).toEqual([1, 1]);

    const track = waitFor(ada, 'trackAdded', (e) => e.participantId === 'bob');
    await bob.stage.join();
    await track;
    expect(ada.participants.get('bob')?.stageStatus).toBe('ON_STAGE');

    const gone = waitFor(ada, 'participantLeft');
    await bob.stage.leave();
    expect((await gone).userId).toBe('bob');
    expect(ada.participants.has('bob')).toBe(false);
    await expect.poll(() => host.participants.get('bob')?.stageStatus).toBe('OFF_STAGE'); // (another socket)
  });

  test('switching the audience to visible and back: rosters and settings follow', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const ada = await h.join(room, 'ada', 'viewer');
    await h.join(room, 'bob', 'viewer');
    const told = waitFor(ada, 'roomSettingsUpdate');
    const appeared = waitFor(ada, 'participantJoined');
    await expect(host.stage.setSettings({ audience: 'visible' })).resolves.toMatchObject({ audience: 'visible' });
    expect(await told).toMatchObject({ settings: { audience: 'visible' }, by: 'host' });
    expect((await appeared).participant.id).toBe('bob');
    expect(ada.settings.audience).toBe('visible');
    expect(ids(ada)).toEqual(['bob', 'host']);

    const gone = waitFor(ada, 'participantLeft');
    await host.stage.setSettings({ audience: 'hidden' });
    expect((await gone).userId).toBe('bob');
    expect(ids(ada)).toEqual(['host']);
    await expect.poll(() => ada.audienceCount, { timeout: 3000 }).toBe(2);
  });
});

describe('reconnect in a hidden room', () => {
  test('the snapshot follows the rule: who came on stage meanwhile arrives, who went back leaves, the count is set', async () => {
    const room = await h.room();
    const host = await h.join(room, 'host', 'host');
    const back = await h.join(room, 'back', 'viewer');
    await host.stage.grantAccess(['back']); // on stage before v comes: v sees them
    const v = await h.join(room, 'v', 'viewer');
    await h.join(room, 'up', 'viewer');
    await expect.poll(() => ids(v)).toEqual(['back', 'host']);

    const open = faults.gate('v');
    const reconnecting = waitFor(v, 'reconnecting');
    v.__dropConnectionForTests!();
    await reconnecting;
    // while v is away: `up` comes on stage, `back` returns to the audience, two more watch
    await host.stage.grantAccess(['up']);
    await back.stage.leave();
    await h.join(room, 'w1', 'viewer');
    await h.join(room, 'w2', 'viewer');

    const joined = waitFor(v, 'participantJoined');
    const left = waitFor(v, 'participantLeft');
    const reconnected = waitFor(v, 'reconnected', undefined, 10_000);
    open();
    await reconnected;
    expect(await joined).toMatchObject({ participant: { id: 'up' }, reconciled: true });
    expect(await left).toMatchObject({ userId: 'back', reconciled: true });
    await expect.poll(() => v.audienceCount, { timeout: 3000 }).toBe(4); // v, back, w1, w2
    expect(ids(v)).toEqual(['host', 'up']);
  });
});

describe('visible room', () => {
  test('everyone sees everyone, as before', async () => {
    const room = await h.room('REQUEST', { audience: 'visible' });
    await h.join(room, 'host', 'host');
    const ada = await h.join(room, 'ada', 'viewer');
    const joined = waitFor(ada, 'participantJoined');
    await h.join(room, 'bob', 'viewer');
    expect((await joined).participant.id).toBe('bob');
    expect(ids(ada)).toEqual(['bob', 'host']);
    expect(ada.settings).toMatchObject({ audience: 'visible' });
  });
});
