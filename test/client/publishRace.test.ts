/**
 * The thin client's half of "a producer never survives a kick that races its creation". The
 * server creates the producer, and the kick lands before the `produce` ack leaves: the client
 * hears `producerClosedByServer` (for a producer it does not know yet) and its new status first,
 * then gets the ack and a local producer. It must close that producer, not keep a ghost.
 *
 * The interleaving is forced, not hoped for: the real `Room.produce` of the real server is
 * wrapped so that the kick runs right after it resolved (same turn, before the ack). Everything
 * else is real (worker, socket.io, mediasoup-client with its FakeHandler in Node).
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { BACKEND_ACTOR } from '../../server/stage/Stage.js';
import { serverProducers, startHarness, waitFor, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterEach(() => h.leaveAll());
afterAll(() => h.close());

test('a producer whose creation raced a kick is closed by the client, not kept', async () => {
  const room = await h.room('REQUEST');
  const speaker = await h.join(room, 'spk', 'speaker');
  const real = room.produce.bind(room);
  const kickedAfter: string[] = [];
  room.produce = async (p, req) => {
    const created = await real(p, req);
    if (kickedAfter.length === 0) {
      kickedAfter.push(created.id);
      room.stage.kick(BACKEND_ACTOR, [p.id]); // the server closes it; the ack is still to leave
    }
    return created;
  };
  const closedByServer = waitFor(speaker, 'producerClosedByServer');
  const kicked = waitFor(speaker.stage, 'stageStatusUpdate', (e) => e.old === 'ON_STAGE');
  await speaker.stage.join().catch(() => undefined); // either outcome: the kick won
  await kicked;
  expect((await closedByServer).producerId).toBe(kickedAfter[0]);
  await new Promise((r) => setTimeout(r, 200)); // anything still in flight has landed
  expect(kickedAfter).toHaveLength(1);
  expect(speaker.stage.status).toBe('ACCEPTED_TO_JOIN_STAGE');
  expect([...speaker.producers.keys()]).toEqual([]);
  expect(serverProducers(room, 'spk')).toBe(0);
});
