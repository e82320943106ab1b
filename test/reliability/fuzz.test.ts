/**
 * Hostile input: more than 10,000 malformed or random messages over real sockets (a host, an
 * on-stage speaker with a producer, a requester, an invited viewer, a viewer consuming the
 * speaker, and a connection that never joined) against a real server and a real mediasoup worker.
 *
 * Messages come from fast-check (fixed seed) plus a hand-written list: wrong types, huge strings
 * (below the size limit), unknown event names, binary payloads, extra arguments, missing acks,
 * `__proto__` / `constructor` keys, deep nesting, near-valid payloads with one field wrong.
 * A message that would be a valid request for its method (checked on what the server decodes,
 * with the real socket.io parser) is left out, so nothing may change.
 *
 * Asserted: every message sent with an ack gets exactly one ack `{ok:false, error:{code, message}}`
 * (counted on the raw socket.io packets too, so a second ack would show), none INTERNAL; the
 * stage, the participants, Stagegate's media maps and the worker's router.dump() are deep-equal
 * before and after; nobody was disconnected or notified; /healthz is ok and the worker alive.
 * Messages over LIMITS.maxMessageBytes, and broken socket.io packets, cut only the offending socket.
 * Last, well-formed requests the worker refuses (connect twice, a duplicate SSRC or MID) must get a
 * client error code, not INTERNAL.
 */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import type { types as ms } from 'mediasoup';
import { pino } from 'pino';
import { Decoder, Encoder, PacketType, type Packet } from 'socket.io-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../shared/errors.js';
import { LIMITS, requestSchemas, type RequestMethod } from '../../shared/protocol.js';
import type { Room } from '../../server/room/Room.js';
import {
  connectRaw,
  DTLS,
  joinRaw,
  rtpParameters,
  startServer,
  until,
  type RawClient,
  type TestServer,
} from '../helpers/server.js';

const SEED = 20_240_611;
const RANDOM_MESSAGES = 10_000;
/** Largest frame the fuzz sends: below socket.io's cut-off, with room for framing. */
const MAX_FRAME = LIMITS.maxMessageBytes - 1024;
const ACK_TIMEOUT_MS = 10_000;
const METHODS = Object.keys(requestSchemas) as RequestMethod[];
/** Names socket.io-client refuses to emit (a raw packet with them is a parse error: see the last test). */
const CLIENT_RESERVED = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

// ------------------------------------------------------------------ server and cast
let server: TestServer;
let room: Room;
/** Server log lines at level error or above (an unexpected throw in a handler logs there). */
const errorLogs: string[] = [];
let logLines = 0;

interface Member {
  name: string;
  c: RawClient;
  /** socket.io ACK packets seen on this connection (a duplicate ack would be counted here). */
  rawAcks: number;
  /** Acks for the raw packets this test writes itself (ids from RAW_ID up), by id. */
  rawById: Map<number, unknown[][]>;
}
const RAW_ID = 1_000_000;
const cast: Member[] = [];
let ids: { sendTransportId: string; recvTransportId: string; producerId: string; consumerId: string };
let routerCaps: unknown;

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        logLines++;
        if ((JSON.parse(line) as { level: number }).level >= 50) errorLogs.push(line.slice(0, 2000));
      }
      cb();
    },
  });
  server = await startServer({
    // validation answers, not the rate limits; a dropped connection leaves at once (it would show)
    config: { requestsPerSecond: 100_000, stageActionsPerSecond: 10_000, reconnectGraceMs: 0 },
    extra: { logger: pino({ level: 'info' }, sink) },
  });
  room = await server.sg.rooms.create('fuzz');
  const connect = async (name: string, preset: 'host' | 'speaker' | 'viewer', join = true) => {
    const c = await connectRaw(server.url, { token: await server.token(name, preset, room.id) });
    if (join) await joinRaw(c);
    const m: Member = { name, c, rawAcks: 0, rawById: new Map() };
    c.socket.io.on('packet', (p: Packet) => {
      if (p.nsp !== '/' || (p.type !== PacketType.ACK && p.type !== PacketType.BINARY_ACK)) return;
      m.rawAcks++;
      if (p.id !== undefined && p.id >= RAW_ID)
        m.rawById.set(p.id, [...(m.rawById.get(p.id) ?? []), p.data as unknown[]]);
    });
    cast.push(m);
    return c;
  };
  const host = await connect('host', 'host');
  const speaker = await connect('speaker', 'speaker');
  const requester = await connect('requester', 'viewer');
  await connect('invited', 'viewer');
  const watcher = await connect('watcher', 'viewer');
  await connect('lurker', 'viewer', false); // connected, never joined

  await speaker.request('stage.join');
  const send = await speaker.request('createTransport', { direction: 'send' });
  await speaker.request('connectTransport', { transportId: send.id, dtlsParameters: DTLS });
  const { id: producerId } = await speaker.request('produce', {
    transportId: send.id,
    kind: 'audio',
    rtpParameters: rtpParameters('audio'),
  });
  await requester.request('stage.requestAccess');
  await host.request('stage.grantAccess', { userIds: ['invited'] });
  const recv = await watcher.request('createTransport', { direction: 'recv' });
  const consumer = await watcher.request('consume', { producerId });
  await watcher.request('resumeConsumer', { consumerId: consumer.id });
  ids = { sendTransportId: send.id, recvTransportId: recv.id, producerId, consumerId: consumer.id };
  routerCaps = (await host.request('getRouterRtpCapabilities')).rtpCapabilities;
});

afterAll(async () => {
  for (const m of cast) m.c.close();
  await server?.close();
});

// ------------------------------------------------------------------ what the server holds
const byJson = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

/** Everything a request could change: stage, participants, Stagegate's media maps, the worker. */
async function serverState() {
  const dump = await room.router.dump();
  const transports = [];
  for (const p of room.participants.values()) {
    for (const t of p.transports.values() as Iterable<ms.WebRtcTransport>) {
      const d = await t.dump();
      transports.push({
        owner: p.id,
        id: t.id,
        closed: t.closed,
        dtlsState: t.dtlsState,
        iceState: t.iceState,
        producerIds: [...d.producerIds].sort(),
        consumerIds: [...d.consumerIds].sort(),
      });
    }
  }
  return {
    mode: room.stage.mode,
    settings: room.settings,
    members: room.stage.members(),
    requests: room.stage.getAccessRequests('host'),
    participants: [...room.participants.values()].map((p) => ({
      id: p.id,
      connected: p.connected,
      session: p.session.id,
      stageEpoch: p.stageEpoch,
      sendTransportId: p.sendTransportId,
      recvTransportId: p.recvTransportId,
      rtpCapabilities: p.rtpCapabilities,
      transports: [...p.transports.keys()].sort(),
      producers: [...p.producers.values()].map(({ producer, source }) => ({
        id: producer.id,
        source,
        paused: producer.paused,
        closed: producer.closed,
      })),
      consumers: [...p.consumers.values()].map((c) => ({ id: c.id, paused: c.paused, closed: c.closed })),
    })),
    router: {
      transportIds: [...dump.transportIds].sort(),
      rtpObserverIds: [...dump.rtpObserverIds].sort(),
      producers: dump.mapProducerIdConsumerIds.map((e) => ({ key: e.key, values: [...e.values].sort() })).sort(byJson),
      consumers: [...dump.mapConsumerIdProducerId].sort(byJson),
      dataProducers: [...dump.mapDataProducerIdDataConsumerIds].sort(byJson),
    },
    transports: transports.sort(byJson),
  };
}

// ------------------------------------------------------------------ messages
type Mode =
  /** emit(event, data, ack): a request. */
  | 'ack'
  /** emit(event, ack): no data argument. */
  | 'noData'
  /** emit(event, data, extra..., ack). */
  | 'extra'
  /** emit(event, data): no ack (the server must not act, and cannot answer). */
  | 'none'
  /** emit(event, fn, data): the function is not last, so it is no ack (it goes as null). */
  | 'ackNotLast';

interface Msg {
  client: number;
  event: string | number;
  args: unknown[];
  mode: Mode;
  kind: string;
}

const expectsAck = (mode: Mode) => mode === 'ack' || mode === 'noData' || mode === 'extra';
const noop = () => undefined;

function emittedArgs(m: Msg): unknown[] {
  return m.mode === 'ackNotLast' ? [noop, ...m.args] : m.args;
}

function toBuffer(x: unknown): Buffer {
  if (Buffer.isBuffer(x)) return x;
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return Buffer.from(x as ArrayBuffer);
}

const encoder = new Encoder();
/**
 * What the server's socket.io parser decodes from this emit (the same parser, same settings),
 * and the size of every frame it travels in; undefined when it cannot be encoded or decoded.
 */
function onTheWire(event: string | number, args: unknown[]): { data: unknown[]; frames: number[] } | undefined {
  let encoded: unknown[];
  try {
    encoded = encoder.encode({ type: PacketType.EVENT, nsp: '/', data: [event, ...args] }) as unknown[];
  } catch {
    return undefined;
  }
  const frames = encoded.map((c) => (typeof c === 'string' ? Buffer.byteLength(c) + 1 : toBuffer(c).byteLength));
  let decoded: Packet | undefined;
  const decoder = new Decoder();
  decoder.on('decoded', (p: Packet) => (decoded = p));
  try {
    for (const c of encoded) decoder.add(typeof c === 'string' ? c : toBuffer(c));
  } catch {
    return undefined;
  } finally {
    decoder.destroy();
  }
  return decoded && { data: (decoded.data as unknown[]).slice(1), frames };
}

/** A valid request for its method, as the server would see it (those are left out: they may act). */
function isValidRequest(m: Msg, wireArgs: unknown[]): boolean {
  if (!expectsAck(m.mode) || typeof m.event !== 'string' || !Object.hasOwn(requestSchemas, m.event)) return false;
  if (wireArgs.length > 1) return false;
  return requestSchemas[m.event as RequestMethod].safeParse(wireArgs[0]).success;
}

/** An object with these own enumerable keys (`__proto__` included, as JSON.parse would make it). */
function own(entries: [string, unknown][]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return o;
}

const POLLUTE = {
  polluted: 'yes',
  isAdmin: true,
  acceptStageRequests: true,
  kickParticipant: true,
  stageAccess: 'ALLOWED',
};

function deep(depth: number, shape: 'obj' | 'arr' | 'mixed'): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) {
    if (shape === 'arr' || (shape === 'mixed' && i % 2)) v = [v];
    else v = { a: v };
  }
  return v;
}

function wide(keys: number): Record<string, number> {
  return Object.fromEntries(Array.from({ length: keys }, (_, i) => [`k${i}`, i]));
}

/**
 * A valid payload for each method, built from the real ids of this room (mutated into invalid
 * ones). A method added to the protocol later gets `{}` until it is listed here.
 */
function templates(): Partial<Record<RequestMethod, unknown>> {
  return {
    getRouterRtpCapabilities: {},
    joinRoom: { rtpCapabilities: routerCaps },
    leaveRoom: {},
    createTransport: { direction: 'send' },
    connectTransport: { transportId: ids.sendTransportId, dtlsParameters: DTLS },
    produce: { transportId: ids.sendTransportId, kind: 'audio', rtpParameters: rtpParameters('audio', 4242) },
    closeProducer: { producerId: ids.producerId },
    pauseProducer: { producerId: ids.producerId },
    resumeProducer: { producerId: ids.producerId },
    consume: { producerId: ids.producerId },
    resumeConsumer: { consumerId: ids.consumerId },
    setConsumerPreferences: { consumerId: ids.consumerId, width: 640, height: 360, visible: true },
    'stage.requestAccess': {},
    'stage.cancelRequestAccess': {},
    'stage.getAccessRequests': {},
    'stage.grantAccess': { userIds: ['requester', 'invited'] },
    'stage.denyAccess': { userIds: ['requester'] },
    'stage.join': {},
    'stage.leave': {},
    'stage.kick': { userIds: ['speaker'] },
    'stage.setMode': { mode: 'INVITE' },
    'stage.setSettings': { audience: 'visible' },
  };
}

type Path = (string | number)[];
function paths(v: unknown, at: Path = [], out: { path: Path; node: unknown }[] = []) {
  out.push({ path: at, node: v });
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object')
    for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

interface Mutation {
  op:
    | 'wrongType'
    | 'delete'
    | 'extraKey'
    | 'overLength'
    | 'arrayBloat'
    | 'emptyArray'
    | 'enumCase'
    | 'wrapArray'
    | 'stringify';
  pathIdx: number;
  value: unknown;
  key: string;
  n: number;
}

/** One field of a valid payload made wrong. */
function mutate(template: unknown, r: Mutation): unknown {
  const root = { v: structuredClone(template) as unknown };
  const all = paths(root.v);
  const { path, node } = all[r.pathIdx % all.length]!;
  type Node = Record<string | number, unknown>;
  const parent = (path.length ? path.slice(0, -1).reduce<unknown>((o, k) => (o as Node)[k], root.v) : root) as Node;
  const key = path.length ? path.at(-1)! : 'v';
  const set = (v: unknown) =>
    Object.defineProperty(parent, key, { value: v, enumerable: true, writable: true, configurable: true });
  switch (r.op) {
    case 'wrongType':
      set(r.value);
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 'extraKey': {
      const target =
        node && typeof node === 'object' && !Array.isArray(node) ? (node as Record<string, unknown>) : undefined;
      if (target)
        Object.defineProperty(target, r.key, { value: r.value, enumerable: true, writable: true, configurable: true });
      else set(own([[r.key, r.value]]));
      break;
    }
    case 'overLength':
      set(typeof node === 'string' ? `${node}${'x'.repeat(r.n)}` : 'x'.repeat(100 + r.n));
      break;
    case 'arrayBloat':
      set(
        Array.isArray(node)
          ? Array.from({ length: 60 + r.n }, (_, i) => node[i % Math.max(1, node.length)] ?? `u${i}`)
          : [node, node],
      );
      break;
    case 'emptyArray':
      set([]);
      break;
    case 'enumCase':
      set(typeof node === 'string' ? (r.n % 2 ? node.toLowerCase() : ` ${node.toUpperCase()} `) : String(node));
      break;
    case 'wrapArray':
      set([node]);
      break;
    case 'stringify':
      set(JSON.stringify(node) ?? 'undefined');
      break;
  }
  return root.v;
}

function arbitraries(tpl: Partial<Record<RequestMethod, unknown>>, clients: number) {
  const keyArb = fc.oneof(
    { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '__proto__',
        'constructor',
        'prototype',
        'userId',
        'userIds',
        'preset',
        'mode',
        'direction',
        'transportId',
        'producerId',
        'consumerId',
        'rtpCapabilities',
        'dtlsParameters',
        'rtpParameters',
        'kind',
        'source',
        'role',
        'toString',
        'valueOf',
        'then',
      ),
    },
  );
  const anyValue = fc.anything({
    maxDepth: 3,
    maxKeys: 6,
    key: keyArb,
    withBoxedValues: true,
    withNullPrototype: true,
    withObjectString: true,
    withSparseArray: true,
    withTypedArray: true,
  });
  const wrongValue = fc.oneof(
    fc.constant(null),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.string({ maxLength: 20 }),
    fc.constant([]),
    fc.constant({}),
    fc.array(fc.integer(), { maxLength: 3 }),
    fc.string({ minLength: 129, maxLength: 400 }),
    fc.constant(''),
    fc.constant(own([['__proto__', POLLUTE]])),
  );
  const mutation = fc.record({
    op: fc.constantFrom<Mutation['op']>(
      'wrongType',
      'delete',
      'extraKey',
      'overLength',
      'arrayBloat',
      'emptyArray',
      'enumCase',
      'wrapArray',
      'stringify',
    ),
    pathIdx: fc.nat(1000),
    value: wrongValue,
    key: keyArb,
    n: fc.integer({ min: 1, max: 300 }),
  });
  const nearValid = (method: RequestMethod) =>
    mutation.map((r) => ({ kind: `near-valid:${r.op}`, data: mutate(tpl[method] ?? {}, r) }));
  const binary = fc
    .tuple(
      fc.uint8Array({ maxLength: 512 }),
      fc.constantFrom('buffer', 'u8', 'u16', 'arraybuffer', 'inField', 'inArray'),
      fc.nat(20),
    )
    .map(([bytes, how, big]) => {
      const b = big === 0 ? new Uint8Array(50_000).fill(0x7b) : bytes;
      const data =
        how === 'buffer'
          ? Buffer.from(b)
          : how === 'u8'
            ? b
            : how === 'u16'
              ? new Uint16Array(b.buffer, 0, Math.floor(b.byteLength / 2))
              : how === 'arraybuffer'
                ? b.slice().buffer
                : how === 'inField'
                  ? { userIds: Buffer.from(b), mode: Buffer.from('OPEN'), producerId: b }
                  : [Buffer.from(b), b];
      return { kind: `binary:${how}`, data };
    });
  const polluted = fc
    .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.constantFrom(...METHODS), anyValue)
    .map(([key, method, extra]) => {
      const base = (tpl[method] ?? {}) as Record<string, unknown>;
      const payload = key === 'constructor' ? { prototype: POLLUTE, extra } : { ...POLLUTE, extra };
      return { kind: `pollute:${key}`, data: own([...Object.entries(base), [key, payload]]) };
    });
  const nested = fc
    .tuple(
      fc.integer({ min: 10, max: 2500 }),
      fc.constantFrom<'obj' | 'arr' | 'mixed'>('obj', 'arr', 'mixed'),
      fc.constantFrom('root', 'userIds', 'rtpParameters', 'dtlsParameters'),
    )
    .map(([depth, shape, where]) => ({
      kind: `deep:${shape}`,
      data: where === 'root' ? deep(depth, shape) : { [where]: deep(depth, shape) },
    }));
  const huge = fc
    .tuple(fc.integer({ min: 1_000, max: 60_000 }), fc.constantFrom('value', 'multibyte', 'key', 'userIds', 'manyKeys'))
    .map(([n, how]) => {
      const s = 'x'.repeat(n);
      const data =
        how === 'value'
          ? s
          : how === 'multibyte'
            ? { mode: '\u00e9\u{1F4A5}'.repeat(Math.floor(n / 6)) }
            : how === 'key'
              ? { [s]: 1 }
              : how === 'userIds'
                ? { userIds: [s] }
                : wide(Math.floor(n / 12));
      return { kind: `huge:${how}`, data };
    });
  const randomAny = anyValue.map((data) => ({ kind: 'random', data }));

  const dataFor = (method: RequestMethod) =>
    fc.oneof(
      { weight: 6, arbitrary: nearValid(method) },
      { weight: 3, arbitrary: randomAny },
      { weight: 1, arbitrary: binary },
      { weight: 1, arbitrary: polluted },
      { weight: 1, arbitrary: nested },
      { weight: 1, arbitrary: huge },
    );

  const unknownEvent = fc
    .oneof(
      fc.constantFrom(
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        'valueOf',
        'error',
        'connection',
        'message',
        'ping',
        'stage',
        'stage.',
        'stage.JOIN',
        'Stage.join',
        'stage.join ',
        ' stage.join',
        'stage..join',
        'stage.__proto__',
        'joinroom',
        'JOINROOM',
        'produce\u0000',
        'produce\n',
        '\u202Estage.join',
        '\u{1F4A5}',
        '',
        ' ',
        'x'.repeat(5_000),
        'handlers',
        'then',
        'emit',
        'onAny',
        'join',
        'leave',
        'kick',
        'deleteEverything',
      ),
      fc.string({ maxLength: 40 }),
      fc.integer(),
    )
    .filter((e) => typeof e === 'number' || (!Object.hasOwn(requestSchemas, e) && !CLIENT_RESERVED.has(e)));

  const event = fc.oneof(
    {
      weight: 8,
      arbitrary: fc.constantFrom(...METHODS).map((method) => ({ event: method as string | number, method })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(unknownEvent, fc.constantFrom(...METHODS)).map(([event, method]) => ({ event, method })),
    },
  );
  const mode = fc.oneof(
    { weight: 40, arbitrary: fc.constant<Mode>('ack') },
    { weight: 2, arbitrary: fc.constant<Mode>('noData') },
    { weight: 4, arbitrary: fc.constant<Mode>('extra') },
    { weight: 3, arbitrary: fc.constant<Mode>('none') },
    { weight: 1, arbitrary: fc.constant<Mode>('ackNotLast') },
  );
  return fc
    .tuple(fc.nat(clients - 1), event, mode, fc.array(anyValue, { minLength: 1, maxLength: 3 }))
    .chain(([client, { event, method }, mode, extras]) =>
      dataFor(method).map(({ kind, data }): Msg => {
        const args = mode === 'noData' ? [] : mode === 'extra' ? [data, ...extras] : [data];
        return { client, event, args, mode, kind };
      }),
    );
}

/** The hand-written nasty cases: every method with every nasty value, near-valid payloads, valid ones without a proper ack. */
function handWritten(tpl: Partial<Record<RequestMethod, unknown>>, clients: number): Msg[] {
  const out: Msg[] = [];
  let rr = 0;
  const add = (event: string | number, args: unknown[], kind: string, mode: Mode = 'ack', client = rr++ % clients) =>
    out.push({ client, event, args, mode, kind });

  const nasty: unknown[] = [
    null,
    0,
    -1,
    1.5,
    1e308,
    true,
    false,
    '',
    'x',
    'x'.repeat(50_000),
    '\u0000',
    '\u{1F4A5}'.repeat(12_000),
    [],
    [null],
    [[[]]],
    [{}],
    [{}, {}],
    Buffer.alloc(0),
    Buffer.from('{}'),
    Buffer.alloc(50_000, 1),
    new Uint8Array([123, 125]),
    new Uint16Array(10),
    new ArrayBuffer(8),
    own([['__proto__', POLLUTE]]),
    JSON.parse('{"__proto__":{"polluted":"yes","acceptStageRequests":true}}'),
    { constructor: { prototype: POLLUTE } },
    { prototype: POLLUTE },
    own([['__proto__', own([['__proto__', POLLUTE]])]]),
    deep(3000, 'obj'),
    deep(2500, 'arr'),
    deep(3000, 'mixed'),
    wide(3000),
    { toString: 'x', valueOf: 1, toJSON: 'y', hasOwnProperty: 'z', then: 'w' },
    { length: 1, 0: 'a' },
  ];
  for (const method of METHODS) for (const value of nasty) add(method, [value], 'nasty-value');

  const caps = routerCaps as { codecs: Record<string, unknown>[]; headerExtensions: unknown[] };
  const { sendTransportId: tid, producerId: pid, consumerId: cid } = ids;
  const a = rtpParameters('audio', 4242);
  const long = 'x'.repeat(LIMITS.idLength + 1);
  const near: [RequestMethod, unknown][] = [
    ['getRouterRtpCapabilities', { all: true }],
    ['joinRoom', { rtpCapabilities: { ...caps, codecs: caps.codecs.map((c) => ({ ...c, kind: 'data' })) } }],
    ['joinRoom', { rtpCapabilities: { codecs: 'all' } }],
    ['joinRoom', { rtpCapabilities: caps, userId: 'host' }],
    ['joinRoom', { rtpCapabilities: { ...caps, codecs: Array(65).fill(caps.codecs[0]) } }],
    ['joinRoom', { rtpCapabilities: { codecs: [{ kind: 'audio', mimeType: 'x'.repeat(65) }] } }],
    ['joinRoom', { rtpcapabilities: caps }],
    ['joinRoom', { rtpCapabilities: { ...caps, headerExtensions: Array(65).fill({}) } }],
    ['createTransport', { direction: 'SEND' }],
    ['createTransport', { direction: 'both' }],
    ['createTransport', { direction: ['send'] }],
    ['createTransport', { direction: 'send', userId: 'speaker' }],
    ['createTransport', {}],
    ['connectTransport', { transportId: tid, dtlsParameters: { fingerprints: [] } }],
    ['connectTransport', { transportId: tid, dtlsParameters: { ...DTLS, role: 'master' } }],
    ['connectTransport', { transportId: long, dtlsParameters: DTLS }],
    ['connectTransport', { transportId: '', dtlsParameters: DTLS }],
    ['connectTransport', { transportId: 42, dtlsParameters: DTLS }],
    [
      'connectTransport',
      { transportId: tid, dtlsParameters: { fingerprints: [{ algorithm: 'sha-256', value: 'x'.repeat(257) }] } },
    ],
    ['connectTransport', { transportId: tid, dtlsParameters: { fingerprints: Array(9).fill(DTLS.fingerprints[0]) } }],
    ['connectTransport', { transportId: tid }],
    ['produce', { transportId: tid, kind: 'data', rtpParameters: a }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: { ...a, codecs: [] } }],
    [
      'produce',
      { transportId: tid, kind: 'audio', rtpParameters: { ...a, codecs: [{ ...a.codecs[0], payloadType: 111.5 }] } },
    ],
    [
      'produce',
      { transportId: tid, kind: 'audio', rtpParameters: { ...a, codecs: [{ ...a.codecs[0], clockRate: '48000' }] } },
    ],
    [
      'produce',
      {
        transportId: tid,
        kind: 'audio',
        rtpParameters: { ...a, codecs: [{ ...a.codecs[0], mimeType: 'x'.repeat(65) }] },
      },
    ],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: { ...a, encodings: Array(9).fill({ ssrc: 1 }) } }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: { ...a, headerExtensions: Array(33).fill({}) } }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: a, source: 'camera' }],
    ['produce', { kind: 'audio', rtpParameters: a }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: { ...a, mid: 'x'.repeat(65) } }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: { ...a, rtcp: 'x' } }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: a, producerId: pid }],
    ['produce', { transportId: tid, kind: 'audio', rtpParameters: a, userId: 'speaker' }],
    [
      'produce',
      own([
        ...Object.entries({ transportId: tid, kind: 'audio', rtpParameters: a }),
        ['__proto__', { source: 'screenshare' }],
      ]),
    ],
    ['resumeConsumer', { consumerId: '' }],
    ['resumeConsumer', { consumerId: long }],
    ['resumeConsumer', { consumerId: [cid] }],
    ['resumeConsumer', { consumerId: cid, userId: 'watcher' }],
    ['resumeConsumer', { consumerid: cid }],
    ['resumeConsumer', { consumerId: null }],
    ['stage.setMode', { mode: 'open' }],
    ['stage.setMode', { mode: 'CLOSED' }],
    ['stage.setMode', { mode: ['OPEN'] }],
    ['stage.setMode', { mode: 'OPEN', force: true }],
    ['stage.setMode', { mode: 1 }],
    ['stage.setMode', {}],
  ];
  for (const m of ['closeProducer', 'pauseProducer', 'resumeProducer', 'consume'] as const) {
    near.push(
      [m, { producerId: '' }],
      [m, { producerId: long }],
      [m, { producerId: [pid] }],
      [m, { producerId: pid, userId: 'speaker' }],
      [m, { producerid: pid }],
      [m, { producerId: null }],
    );
  }
  for (const m of [
    'leaveRoom',
    'stage.requestAccess',
    'stage.cancelRequestAccess',
    'stage.getAccessRequests',
    'stage.join',
    'stage.leave',
  ] as const) {
    near.push([m, { userId: 'host' }], [m, { force: true }], [m, []], [m, 'please'], [m, null], [m, 0]);
  }
  for (const m of ['stage.grantAccess', 'stage.denyAccess', 'stage.kick'] as const) {
    near.push(
      [m, { userIds: 'requester' }],
      [m, { userIds: Array.from({ length: LIMITS.batchSize + 1 }, (_, i) => `u${i}`) }],
      [m, { userIds: [''] }],
      [m, { userIds: [long] }],
      [m, { userIds: [1] }],
      [m, { userIds: [null] }],
      [m, { userIds: ['requester'], by: 'host' }],
      [m, { userId: ['requester'] }],
      [m, { userIds: { 0: 'requester', length: 1 } }],
      [
        m,
        own([
          ['userIds', ['speaker', 'requester']],
          ['__proto__', POLLUTE],
        ]),
      ],
      [m, { userIds: ['speaker'], constructor: { prototype: POLLUTE } }],
    );
  }
  // every client sends each near-valid payload: the host and the speaker hold the permissions and objects it names
  for (let client = 0; client < clients; client++)
    for (const [method, data] of near) add(method, [data], 'near-valid:hand', 'ack', client);

  const unknown = [
    '__proto__',
    'constructor',
    'toString',
    'error',
    'stage.JOIN',
    'stage.join ',
    '',
    'x'.repeat(5_000),
    12345,
  ];
  for (const event of unknown)
    for (const data of [{}, null, Buffer.from('x'), own([['__proto__', POLLUTE]])]) add(event, [data], 'unknown-event');

  // Valid payloads that would change the stage or the media, sent without a usable ack, with an
  // extra argument, or with the callback not last: the server must refuse them all.
  const index = (name: string) => cast.findIndex((m) => m.name === name);
  const wouldAct: [string, RequestMethod, unknown][] = [
    ['speaker', 'stage.leave', {}],
    ['speaker', 'leaveRoom', {}],
    ['requester', 'leaveRoom', {}],
    ['speaker', 'closeProducer', { producerId: pid }],
    ['speaker', 'pauseProducer', { producerId: pid }],
    ['speaker', 'createTransport', { direction: 'send' }],
    ['host', 'stage.kick', { userIds: ['speaker'] }],
    ['host', 'stage.setMode', { mode: 'INVITE' }],
    ['host', 'stage.setSettings', { audience: 'visible' }],
    ['host', 'stage.grantAccess', { userIds: ['requester'] }],
    ['host', 'stage.denyAccess', { userIds: ['requester'] }],
    ['host', 'stage.join', {}],
    ['requester', 'stage.cancelRequestAccess', {}],
    ['invited', 'stage.join', {}],
    ['invited', 'stage.leave', {}],
    ['watcher', 'consume', { producerId: pid }],
    ['watcher', 'createTransport', { direction: 'recv' }],
    ['lurker', 'joinRoom', { rtpCapabilities: routerCaps }],
  ];
  for (const [who, method, data] of wouldAct) {
    const client = index(who);
    add(method, [data], 'valid-no-ack', 'none', client);
    add(method, [data, data], 'valid-extra-arg', 'extra', client);
    add(method, [data, undefined], 'valid-extra-undefined', 'extra', client);
    add(method, [data], 'valid-ack-not-last', 'ackNotLast', client);
  }
  void tpl;
  return out;
}

// ------------------------------------------------------------------ the tests
interface Sent {
  m: Msg;
  acks: number;
  ackArgs: unknown[][];
  done?: () => void;
}

function isErrorAck(args: unknown[]): boolean {
  if (args.length !== 1) return false;
  const a = args[0] as { ok?: unknown; error?: { code?: unknown; message?: unknown } } | null;
  if (!a || typeof a !== 'object' || a.ok !== false || Object.keys(a).sort().join() !== 'error,ok') return false;
  const e = a.error;
  return (
    !!e &&
    typeof e === 'object' &&
    Object.keys(e).sort().join() === 'code,message' &&
    (ERROR_CODES as readonly unknown[]).includes(e.code) &&
    typeof e.message === 'string'
  );
}

describe('hostile input', () => {
  it('answers 10,000+ malformed and random messages with one typed error each, and changes nothing', async () => {
    const started = performance.now();
    const tpl = templates();
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    // the setup's last audienceCount (sent at most once a second) has left before the count starts
    await new Promise((r) => setTimeout(r, 1100));
    const before = await serverState();
    const receivedBefore = cast.map((m) => m.c.received.length);
    const rawBefore = cast.map((m) => m.rawAcks);

    // ---- build the messages: fast-check with a fixed seed, then the hand-written ones
    const excluded = { valid: 0, oversize: 0, unencodable: 0 };
    const random: Msg[] = [];
    const arb = arbitraries(tpl, cast.length);
    for (let round = 0; random.length < RANDOM_MESSAGES && round < 5; round++) {
      for (const m of fc.sample(arb, { seed: SEED + round, numRuns: RANDOM_MESSAGES + 2_000 })) {
        if (random.length >= RANDOM_MESSAGES) break;
        const wire = onTheWire(m.event, emittedArgs(m));
        if (!wire) excluded.unencodable++;
        else if (wire.frames.some((n) => n > MAX_FRAME)) excluded.oversize++;
        else if (isValidRequest(m, wire.data)) excluded.valid++;
        else random.push(m);
      }
    }
    const hand = handWritten(tpl, cast.length).filter((m) => {
      const wire = onTheWire(m.event, emittedArgs(m));
      expect(wire, `hand-written ${m.kind} ${String(m.event)} must encode`).toBeDefined();
      expect(Math.max(...wire!.frames), `hand-written ${m.kind} ${String(m.event)} must fit`).toBeLessThanOrEqual(
        MAX_FRAME,
      );
      expect(isValidRequest(m, wire!.data), `hand-written ${m.kind} ${String(m.event)} must be refused`).toBe(false);
      return true;
    });
    const messages = [...random, ...hand];
    expect(random.length).toBe(RANDOM_MESSAGES);
    const genMs = performance.now() - started;

    // ---- send: every client works through its own queue, 200 in flight, each ack awaited ≤ 10 s
    const sent: Sent[] = [];
    const unexpectedCalls: string[] = [];
    const perClient = cast.map((_, i) => messages.filter((m) => m.client === i));
    const sendStarted = performance.now();
    await Promise.all(
      perClient.map(async (queue, i) => {
        const socket = cast[i]!.c.socket as unknown as { emit: (...a: unknown[]) => unknown };
        for (let at = 0; at < queue.length; at += 200) {
          const waits: Promise<void>[] = [];
          for (const m of queue.slice(at, at + 200)) {
            const s: Sent = { m, acks: 0, ackArgs: [] };
            sent.push(s);
            if (m.mode === 'none') socket.emit(m.event, ...m.args);
            else if (m.mode === 'ackNotLast')
              socket.emit(m.event, () => unexpectedCalls.push(`${m.kind} ${String(m.event)}`), ...m.args);
            else {
              waits.push(
                new Promise<void>((resolve) => {
                  const timer = setTimeout(resolve, ACK_TIMEOUT_MS);
                  s.done = () => {
                    clearTimeout(timer);
                    resolve();
                  };
                }),
              );
              socket.emit(m.event, ...m.args, (...args: unknown[]) => {
                s.acks++;
                s.ackArgs.push(args);
                s.done?.();
              });
            }
          }
          await Promise.all(waits);
        }
      }),
    );

    // ---- nesting deeper than a socket.io client can encode (its encoder recurses; the server's
    // JSON.parse does not): raw packets with ack ids of our own, each must be answered once too
    const rawDeep = [
      (id: number) => `2${id}["stage.grantAccess",{"userIds":${'['.repeat(25_000)}${']'.repeat(25_000)}}]`,
      (id: number) => `2${id}["stage.join",${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}]`,
      (id: number) => `2${id}["joinRoom",{"rtpCapabilities":${'['.repeat(25_000)}${']'.repeat(25_000)}}]`,
      (id: number) =>
        `2${id}["connectTransport",{"transportId":"t","dtlsParameters":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}]`,
      (id: number) => `2${id}["no.such.method",${'['.repeat(25_000)}${']'.repeat(25_000)}]`,
    ];
    for (const m of cast) rawDeep.forEach((make, k) => m.c.socket.io.engine.write(make(RAW_ID + k)));
    await until(
      () => cast.every((m) => m.rawById.size === rawDeep.length),
      ACK_TIMEOUT_MS,
      'acks of the raw deep packets',
    ).catch(() => undefined);
    // late or duplicate acks would arrive now
    await new Promise((r) => setTimeout(r, 300));
    const sendMs = performance.now() - sendStarted;
    const rawDeepAcks = cast.flatMap((m) => [...m.rawById.values()]);

    // ---- count and check the answers
    const acked = sent.filter((s) => expectsAck(s.m.mode));
    const byCode: Record<string, number> = {};
    const byKind: Record<string, number> = {};
    const bad: string[] = [];
    for (const s of sent) byKind[s.m.kind.split(':')[0]!] = (byKind[s.m.kind.split(':')[0]!] ?? 0) + 1;
    for (const s of acked) {
      if (s.acks !== 1) bad.push(`${s.acks} acks for ${s.m.kind} ${String(s.m.event).slice(0, 40)}`);
      for (const args of s.ackArgs) {
        if (!isErrorAck(args))
          bad.push(`bad ack ${JSON.stringify(args).slice(0, 200)} for ${s.m.kind} ${String(s.m.event).slice(0, 40)}`);
        else {
          const code = (args[0] as { error: { code: string } }).error.code;
          byCode[code] = (byCode[code] ?? 0) + 1;
        }
      }
    }
    for (const acks of rawDeepAcks) {
      if (acks.length !== 1 || !isErrorAck(acks[0]!))
        bad.push(`raw deep packet answered ${JSON.stringify(acks).slice(0, 200)}`);
      else {
        const code = (acks[0]![0] as { error: { code: string } }).error.code;
        byCode[code] = (byCode[code] ?? 0) + 1;
      }
    }
    byKind.rawDeep = cast.length * rawDeep.length;
    const acksReceived = acked.reduce((n, s) => n + s.acks, 0);
    const rawAcks = cast.reduce((n, m, i) => n + m.rawAcks - rawBefore[i]!, 0);
    console.log(
      `fuzz: messages=${sent.length + byKind.rawDeep} (random ${random.length}, hand-written ${hand.length}, raw deep ${byKind.rawDeep}) ` +
        `with-ack=${acked.length + byKind.rawDeep} acks=${acksReceived + rawDeepAcks.length} raw-ack-packets=${rawAcks} ` +
        `without-ack=${sent.length - acked.length} ` +
        `byCode=${JSON.stringify(byCode)} byKind=${JSON.stringify(byKind)} ` +
        `left-out(valid=${excluded.valid}, oversize=${excluded.oversize}, unencodable=${excluded.unencodable}) ` +
        `server-log-lines=${logLines} generate=${Math.round(genMs)}ms send=${Math.round(sendMs)}ms`,
    );

    expect(sent.length).toBeGreaterThanOrEqual(10_000);
    expect(bad.slice(0, 10)).toEqual([]);
    expect(acksReceived).toBe(acked.length);
    expect(rawDeepAcks).toHaveLength(cast.length * rawDeep.length);
    // exactly one ack per request on the wire, none for the others
    expect(rawAcks).toBe(acked.length + cast.length * rawDeep.length);
    expect(unexpectedCalls).toEqual([]);
    expect(byCode.INTERNAL ?? 0).toBe(0);
    expect(byCode.RATE_LIMITED ?? 0).toBe(0);
    expect(errorLogs).toEqual([]);

    // ---- nothing changed, nobody was told anything, nobody was cut off
    expect(await serverState()).toEqual(before);
    // (media-plane reports, such as the active speaker the worker picks among the live audio
    // producers, are not caused by the fuzz)
    const MEDIA_REPORTS = new Set(['activeSpeaker', 'consumerScore', 'producerScore']);
    cast.forEach((m, i) =>
      expect(
        m.c.received.slice(receivedBefore[i]).filter((n) => !MEDIA_REPORTS.has(n.name)),
        `notifications to ${m.name}`,
      ).toEqual([]),
    );
    for (const m of cast) expect(m.c.socket.connected, `${m.name} connected`).toBe(true);
    for (const m of cast.filter((x) => x.name !== 'lurker')) {
      expect(room.participants.get(m.name)?.connected, `${m.name} in the room`).toBe(true);
      expect(room.participants.get(m.name)?.session.id).toBe(m.c.socket.id);
    }
    // and every connection still answers
    for (const m of cast) expect((await m.c.ack('getRouterRtpCapabilities')).ok).toBe(true);

    // ---- no prototype pollution, server and worker alive
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).acceptStageRequests).toBeUndefined();
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', workers: 1 });
    expect(room.worker.closed || room.worker.died).toBe(false);
    expect(() => process.kill(room.worker.pid, 0)).not.toThrow();
    await expect(room.worker.getResourceUsage()).resolves.toBeDefined();
  });

  it('cuts off a socket whose message is over LIMITS.maxMessageBytes; the others and new connections are fine', async () => {
    const others = await serverState();
    for (const [i, payload] of [
      { pad: 'x'.repeat(LIMITS.maxMessageBytes + 100) },
      { pad: '\u{1F4A5}'.repeat(Math.ceil(LIMITS.maxMessageBytes / 4) + 10) }, // small in chars, large in bytes
      Buffer.alloc(LIMITS.maxMessageBytes + 1, 7), // one binary attachment over the limit
    ].entries()) {
      const name = `big-${i}`;
      const big = await connectRaw(server.url, { token: await server.token(name, 'viewer', room.id) });
      await joinRaw(big);
      await big.request('stage.requestAccess');
      const gone = new Promise<string>((resolve) => big.socket.once('disconnect', resolve));
      let answered = false;
      big.socket.emit('stage.cancelRequestAccess', payload, () => (answered = true));
      const reason = await Promise.race([
        gone,
        new Promise<string>((r) => setTimeout(() => r('still connected'), 5000)),
      ]);
      expect(reason, `payload ${i}`).toMatch(/transport close|transport error|server disconnect/);
      expect(answered).toBe(false);
      // reconnectGraceMs is 0 here: the participant leaves the room (and the request queue) at once
      await until(() => !room.participants.has(name) && !room.stage.has(name), 3000, `${name} to leave`);
      big.close();
    }

    // the others did not notice anything but the big ones coming and going
    expect(await serverState()).toEqual(others);
    for (const m of cast) {
      expect(m.c.socket.connected, m.name).toBe(true);
      expect((await m.c.ack('getRouterRtpCapabilities')).ok, m.name).toBe(true);
    }
    // a new connection works, and the same user can come back
    const again = await connectRaw(server.url, { token: await server.token('big-0', 'viewer', room.id) });
    const snapshot = await joinRaw(again);
    expect(snapshot.self.stageStatus).toBe('OFF_STAGE');
    expect((await again.request('stage.requestAccess')).status).toBe('REQUESTED_TO_JOIN_STAGE');
    again.close();
    await until(() => !room.participants.has('big-0'), 3000, 'big-0 to leave');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('cuts off a socket that sends broken socket.io packets; the others are fine', async () => {
    const others = await serverState();
    const garbage = [
      '2["disconnect"]', // reserved event names are a parse error
      '2["connect",{}]',
      '2["newListener","stage.join"]',
      '2{"not":"an array"}',
      '2[',
      '2[{"event":"object"}]',
      '2[]',
      '9',
      '5-["stage.join",{"_placeholder":true,"num":0}]', // a binary event whose attachment never comes, then text
      '\u0000',
    ];
    for (const [i, raw] of garbage.entries()) {
      const name = `garbage-${i}`;
      const c = await connectRaw(server.url, { token: await server.token(name, 'viewer', room.id) });
      await joinRaw(c);
      const gone = new Promise<string>((resolve) => c.socket.once('disconnect', resolve));
      const engine = c.socket.io.engine;
      engine.write(raw);
      if (raw.startsWith('5-')) engine.write('2["stage.join",{}]');
      const reason = await Promise.race([
        gone,
        new Promise<string>((r) => setTimeout(() => r('still connected'), 5000)),
      ]);
      expect(reason, `packet ${JSON.stringify(raw)}`).not.toBe('still connected');
      await until(() => !room.participants.has(name), 3000, `${name} to leave`);
      c.close();
    }
    expect(await serverState()).toEqual(others);
    for (const m of cast) {
      expect(m.c.socket.connected, m.name).toBe(true);
      expect((await m.c.ack('getRouterRtpCapabilities')).ok, m.name).toBe(true);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(errorLogs).toEqual([]);
    const health = await fetch(`${server.url}/healthz`);
    expect(await health.json()).toMatchObject({ status: 'ok', workers: 1 });
  });

  // Well-formed requests whose content the worker refuses (a client's mistake or mischief, not a
  // server fault) must get a client error code, not INTERNAL with an error-level log line and a
  // stack: else any client can fill the logs and the answers lie about whose fault it is.
  it('answers well-formed requests the worker refuses with a client error code, never INTERNAL', async () => {
    const c = await connectRaw(server.url, { token: await server.token('speaker-2', 'speaker', room.id) });
    try {
      await joinRaw(c);
      await c.request('stage.join');
      const t = await c.request('createTransport', { direction: 'send' });
      await c.request('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
      await c.request('produce', { transportId: t.id, kind: 'audio', rtpParameters: rtpParameters('audio', 777) });
      const logsBefore = errorLogs.length;

      const again = await c.ack('connectTransport', { transportId: t.id, dtlsParameters: DTLS });
      const sameSsrc = await c.ack('produce', {
        transportId: t.id,
        kind: 'video',
        rtpParameters: rtpParameters('video', 777),
      });
      const sameMid = await c.ack('produce', {
        transportId: t.id,
        kind: 'video',
        rtpParameters: { ...rtpParameters('video', 778), mid: '0' }, // the audio producer's MID
      });
      const codes = { connectTwice: code(again), duplicateSsrc: code(sameSsrc), duplicateMid: code(sameMid) };
      expect(codes).toEqual({
        connectTwice: 'INVALID_STATE',
        duplicateSsrc: 'INVALID_REQUEST',
        duplicateMid: 'INVALID_REQUEST',
      });
      expect(errorLogs.slice(logsBefore)).toEqual([]);
      expect(room.participants.get('speaker-2')?.producers.size).toBe(1);
      expect(room.worker.closed || room.worker.died).toBe(false);
    } finally {
      c.close();
      await until(() => !room.participants.has('speaker-2'), 3000, 'speaker-2 to leave');
    }
  });
});

function code(a: { ok: boolean; error?: { code: string } }): string {
  return a.ok ? 'ok' : a.error!.code;
}
