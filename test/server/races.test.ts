/**
 * Races between `produce` and the owner's own connection going away (a drop, or a second
 * connection of the same user that replaces the first). The participant stays ON_STAGE in both
 * cases, so the stage epoch does not move; what must hold is that the room never lists (or
 * announces) a producer the worker does not hold, and that the new connection can publish the
 * same source at once. Real worker, real socket.io; the worker's view comes from router.dump().
 */
import { expect, it } from 'vitest';
import { connectRaw, DTLS, joinRaw, rtpParameters, until, type RawClient } from '../helpers/server.js';
import { server, room, clients, useRawRooms, adoptRoom } from '../helpers/rawRooms.js';

const TRIES = 20;
useRawRooms({ reconnectGraceMs: 30_000 });

async function connect(userId: string, join = true): Promise<RawClient> {
  const c = await connectRaw(server.url, { token: await server.token(userId, 'speaker', room.id) });
  clients.push(c);
  if (join) await joinRaw(c);
  return c;
}

async function sendTransport(c: RawClient): Promise<string> {
  const t = await c.request('createTransport', { direction: 'send' });
  await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
  return t.id;
}

/** Producer ids the worker holds in this room's router. */
async function workerProducerIds(): Promise<string[]> {
  return (await room.router.dump()).mapProducerIdConsumerIds.map((e) => e.key);
}

/** Every producer the room lists is one the worker holds, and a watcher can consume each. */
async function expectNoPhantom(watcher: RawClient): Promise<void> {
  const held = await workerProducerIds();
  const listed = [...room.participants.values()].flatMap((p) => [...p.producers.keys()]);
  expect(listed.filter((id) => !held.includes(id))).toEqual([]);
  for (const producerId of listed) {
    expect(await watcher.ack('consume', { producerId })).toMatchObject({ ok: true });
  }
}

async function watcherWithRecvTransport(): Promise<RawClient> {
  const watcher = await connect('watcher');
  await watcher.request('createTransport', { direction: 'recv' });
  return watcher;
}

it(`produce racing the owner's own drop leaves no phantom producer (${TRIES} tries)`, async () => {
  adoptRoom(await server.sg.rooms.create('race-drop', 'OPEN'));
  const watcher = await watcherWithRecvTransport();
  const announced: string[] = [];
  watcher.on('newProducer', ({ producer }) => announced.push(producer.id));
  for (let i = 0; i < TRIES; i++) {
    const s = await connect('spk');
    if (room.stage.get('spk')?.status !== 'ON_STAGE') await s.request('stage.join'); // kept through drops
    const tid = await sendTransport(s);
    // The connection breaks while the worker creates the producer. (A client-side disconnect right
    // after the emit does not get there: socket.io drops an event that arrives with its
    // disconnect. So the server side of the socket is closed, as a network failure would, the
    // moment the real transport.produce has been sent to the worker.)
    const transport = room.participants.get('spk')!.transports.get(tid)!;
    const serverSocket = server.sg.io.of('/').sockets.get(s.socket.id!)!;
    const realProduce = transport.produce.bind(transport);
    transport.produce = ((options: Parameters<typeof realProduce>[0]) => {
      const creating = realProduce(options);
      serverSocket.conn.close();
      return creating;
    }) as typeof transport.produce;
    await s
      .ack('produce', { transportId: tid, kind: 'audio', rtpParameters: rtpParameters('audio', 100 + i) })
      .catch(() => undefined); // no ack: the connection is gone
    await until(() => room.participants.get('spk')?.connected === false, 5000, 'the drop');
    await new Promise((r) => setTimeout(r, 50)); // let the worker's answer come back
    await expectNoPhantom(watcher);

    // reconnect: the same source can be published at once
    const again = await connect('spk');
    const tid2 = await sendTransport(again);
    const p = await again.ack('produce', {
      transportId: tid2,
      kind: 'audio',
      rtpParameters: rtpParameters('audio', 200 + i),
    });
    expect(p).toMatchObject({ ok: true });
    await expectNoPhantom(watcher);
    again.close();
    await until(() => room.participants.get('spk')?.connected === false, 5000, 'the second drop');
  }
  const held = await workerProducerIds();
  await until(() => announced.length >= TRIES, 5000, 'announcements');
  // every announced producer was real; those still listed are held by the worker
  expect(held.filter((id) => !announced.includes(id))).toEqual([]);
});

it(`produce racing a second connection of the same user leaves no phantom and does not block it (${TRIES} tries)`, async () => {
  adoptRoom(await server.sg.rooms.create('race-replace', 'OPEN'));
  const watcher = await watcherWithRecvTransport();
  let first = await connect('spk');
  await first.request('stage.join');
  for (let i = 0; i < TRIES; i++) {
    const tid = await sendTransport(first);
    const second = await connect('spk', false); // connected, not joined yet
    const { rtpCapabilities } = await second.request('getRouterRtpCapabilities');
    // both leave at once: the joinRoom replaces the first connection while its produce is in the worker
    const [produced, joined] = await Promise.all([
      first
        .ack('produce', { transportId: tid, kind: 'audio', rtpParameters: rtpParameters('audio', 300 + i) })
        .catch(() => undefined), // the replaced connection may be cut off before its ack
      second.ack('joinRoom', { rtpCapabilities }),
    ]);
    expect(joined).toMatchObject({ ok: true });
    void produced; // either answer is fine: refused, or accepted and closed with the old connection
    await new Promise((r) => setTimeout(r, 50));
    await expectNoPhantom(watcher);
    expect(room.participants.get('spk')!.producers.size).toBe(0);

    // the new connection publishes the same source at once
    const tid2 = await sendTransport(second);
    const p = await second.ack('produce', {
      transportId: tid2,
      kind: 'audio',
      rtpParameters: rtpParameters('audio', 400 + i),
    });
    expect(p).toMatchObject({ ok: true });
    await expectNoPhantom(watcher);
    expect(await workerProducerIds()).toEqual([...room.participants.get('spk')!.producers.keys()]);
    await second.request('closeProducer', { producerId: (p as { data: { id: string } }).data.id });
    first.close();
    first = second;
  }
});

it('a produce still in the worker for a dropped connection does not block the new connection’s produce', async () => {
  adoptRoom(await server.sg.rooms.create('race-reservation', 'OPEN'));
  const watcher = await watcherWithRecvTransport();
  const s = await connect('spk');
  await s.request('stage.join');
  const tid = await sendTransport(s);
  // hold the worker's answer for the old connection's produce until the new one has produced
  const transport = room.participants.get('spk')!.transports.get(tid)!;
  const realProduce = transport.produce.bind(transport);
  let started!: () => void;
  const inWorker = new Promise<void>((resolve) => (started = resolve));
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  transport.produce = (async (options: Parameters<typeof realProduce>[0]) => {
    started();
    const created = await realProduce(options);
    await held;
    return created;
  }) as typeof transport.produce;
  const old = s.ack('produce', { transportId: tid, kind: 'audio', rtpParameters: rtpParameters('audio', 500) });
  void old.catch(() => undefined);
  await inWorker;
  s.close();
  await until(() => room.participants.get('spk')?.connected === false, 5000, 'the drop');

  const again = await connect('spk');
  const tid2 = await sendTransport(again);
  const p = await again.ack('produce', {
    transportId: tid2,
    kind: 'audio',
    rtpParameters: rtpParameters('audio', 501),
  });
  expect(p).toMatchObject({ ok: true });
  release();
  await new Promise((r) => setTimeout(r, 50));
  await expectNoPhantom(watcher);
  expect([...room.participants.get('spk')!.producers.keys()]).toEqual([(p as { data: { id: string } }).data.id]);
  expect(await workerProducerIds()).toEqual([(p as { data: { id: string } }).data.id]);
});
