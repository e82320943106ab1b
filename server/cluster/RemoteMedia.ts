/**
 * Media across cluster nodes: a viewer's receive transport on the node its socket is connected to
 * (its media node), fed from the room's node through a PipeTransport pair between the two nodes'
 * routers. The room's node (the owner) keeps the stage, every producer and every decision
 * (gating, holds, one consumer per producer); the media node only executes.
 *
 * - **Owner side** (`forRoom`, a `RemoteMediaPort` of the room's RoomMedia): a receive transport
 *   of a participant whose socket is on node N is created on N by a media RPC over the cluster's
 *   Redis channels, and the room gets a proxy (`RemoteTransport`, then `RemoteConsumer`s) with the
 *   members of mediasoup's objects it uses: calls become RPCs, N's events come back to it.
 * - **Pipes**: one per (producer, node), created by the first consume on that node (one promise):
 *   a PipeTransport on each side (`listenInfo` = the node's RTC address), each connected to the
 *   other, `consume` on the owner's origin and `produce` with the same id on N's router. It closes
 *   with the producer (stage exit, kick, leave, slot end, its transport), both sides. A paused
 *   producer (a host's hold, the speaker's mute) forwards nothing through its pipe consumer, and
 *   the piped producer on N is paused as well (N's consumers see `producerPaused`).
 * - **Media node side** (`handle`): per room, a RoomMedia of its own on this node's workers
 *   (placement and in-node pipes as on one node), the transports, consumers and pipes the owner
 *   asked for. Dropped when the owner closes the room or dies, or another node takes it.
 * - A node that dies takes its part: the owner drops its pipes there (its sockets' participants
 *   are dropped by the cluster, grace period as usual).
 *
 * Producers stay on the owner (a speaker connected to another node sends to the owner's RTC
 * address); a send transport on the speaker's node is not built.
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type { Logger } from '../logger.js';
import { RoomMedia, type RemoteMediaPort, type RtcOptions, type TransportAppData } from '../media/RoomMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';

/** Media RPC bodies (owner → media node), and events (media node → owner). */
export type MediaRpc =
  | { t: 'media.transport'; roomId: string; appData: TransportAppData }
  | { t: 'media.connect'; transportId: string; dtlsParameters: ms.DtlsParameters }
  | { t: 'media.closeTransport'; transportId: string }
  | { t: 'media.pipe'; roomId: string; producerId: string }
  | {
      t: 'media.pipeConnect';
      producerId: string;
      ip: string;
      port: number;
      kind: ms.MediaKind;
      rtpParameters: ms.RtpParameters;
      paused: boolean;
    }
  | { t: 'media.pipePause'; producerId: string; paused: boolean }
  | { t: 'media.pipeClose'; producerId: string }
  | {
      t: 'media.consume';
      transportId: string;
      producerId: string;
      rtpCapabilities: ms.RtpCapabilities;
      paused: boolean;
    }
  | { t: 'media.consumer'; consumerId: string; call: ConsumerCall; arg?: unknown }
  | { t: 'media.closeRoom'; roomId: string }
  | { t: 'media.event'; target: 'transport' | 'consumer'; id: string; event: string; data?: unknown };

type ConsumerCall = 'pause' | 'resume' | 'requestKeyFrame' | 'setPreferredLayers' | 'setPriority' | 'close';

/** The cluster's RPC (Cluster.ts): requests answered by the node, and one-way messages (in order). */
export interface MediaBus {
  request(node: string, body: MediaRpc): Promise<unknown>;
  send(node: string, body: MediaRpc): void;
}

export interface RemoteMediaOptions {
  bus: MediaBus;
  pool: WorkerPool;
  rtc: RtcOptions;
  maxConsumersPerRouter: number;
  log: Logger;
}

interface TransportInfo {
  id: string;
  iceParameters: ms.IceParameters;
  iceCandidates: ms.IceCandidate[];
  dtlsParameters: ms.DtlsParameters;
}

interface ConsumerInfo {
  id: string;
  producerId: string;
  kind: ms.MediaKind;
  type: ms.ConsumerType;
  rtpParameters: ms.RtpParameters;
  paused: boolean;
  producerPaused: boolean;
  score: ms.ConsumerScore;
  preferredLayers: ms.ConsumerLayers | undefined;
  currentLayers: ms.ConsumerLayers | undefined;
}

/** Owner side: one producer piped to one node. */
interface OwnerPipe {
  roomId: string;
  creating: Promise<void>;
  transport?: ms.PipeTransport;
  closed: boolean;
}

/** Media node side: the part of a room this node serves for its owner. */
interface Hosted {
  roomId: string;
  owner: string;
  media: Promise<RoomMedia>;
  worker: ms.Worker;
}

export class RemoteMedia {
  readonly #opts: RemoteMediaOptions;
  readonly #log: Logger;
  // owner side
  readonly #transports = new Map<string, RemoteTransport>();
  readonly #consumers = new Map<string, RemoteConsumer>();
  /** Producer id → node → pipe. */
  readonly #pipes = new Map<string, Map<string, OwnerPipe>>();
  /** Room id → the nodes that have a part of it (told when it closes). */
  readonly #nodesOf = new Map<string, Set<string>>();
  // media node side
  readonly #hosted = new Map<string, Hosted>();
  readonly #hostTransports = new Map<string, { transport: ms.Transport; hosted: Hosted }>();
  readonly #hostConsumers = new Map<string, { consumer: ms.Consumer; hosted: Hosted }>();
  readonly #hostPipes = new Map<string, { transport: ms.PipeTransport; producer?: ms.Producer; hosted: Hosted }>();

  constructor(opts: RemoteMediaOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  // ================================================================== owner side
  /** The port of one room this node owns (set as `room.media.remote`). */
  forRoom(roomId: string, media: RoomMedia): RemoteMediaPort {
    return {
      createTransport: (node, appData) => this.#createTransport(roomId, node, appData),
      owns: (t) => t instanceof RemoteTransport && this.#transports.get(t.id) === t,
      prepareConsume: (t, producer) =>
        this.#ensurePipe(roomId, media, producer, (t as unknown as RemoteTransport).node),
      close: () => this.#roomClosed(roomId),
    };
  }

  async #createTransport(roomId: string, node: string, appData: TransportAppData): Promise<ms.Transport> {
    const nodes = this.#nodesOf.get(roomId) ?? new Set<string>();
    this.#nodesOf.set(roomId, nodes.add(node));
    const info = (await this.#opts.bus.request(node, { t: 'media.transport', roomId, appData })) as TransportInfo;
    const transport = new RemoteTransport(info, roomId, node, { ...appData }, this);
    this.#transports.set(info.id, transport);
    return transport as unknown as ms.Transport;
  }

  /** The producer on `node`: its pipe there, made by the first consumer (one promise per producer and node). */
  #ensurePipe(roomId: string, media: RoomMedia, producer: ms.Producer, node: string): Promise<void> {
    if (producer.closed) return Promise.reject(closedMeanwhile(producer.id));
    let perNode = this.#pipes.get(producer.id);
    if (!perNode) {
      const created = new Map<string, OwnerPipe>();
      this.#pipes.set(producer.id, created);
      producer.observer.once('close', () => this.#unpipe(producer.id));
      perNode = created;
    }
    const existing = perNode.get(node);
    if (existing) return existing.creating;
    const pipe: OwnerPipe = { roomId, creating: Promise.resolve(), closed: false };
    pipe.creating = this.#openPipe(roomId, media, producer, node, pipe);
    perNode.set(node, pipe);
    const map = perNode;
    pipe.creating.catch(() => {
      if (map.get(node) === pipe) map.delete(node);
    });
    return pipe.creating;
  }

  async #openPipe(
    roomId: string,
    media: RoomMedia,
    producer: ms.Producer,
    node: string,
    pipe: OwnerPipe,
  ): Promise<void> {
    const { bus } = this.#opts;
    const gone = () => pipe.closed || producer.closed;
    // the media node's side first: its address for ours to send to
    const remote = (await bus.request(node, { t: 'media.pipe', roomId, producerId: producer.id })) as {
      ip: string;
      port: number;
    };
    if (gone()) throw this.#abandon(node, producer, undefined);
    let transport: ms.PipeTransport | undefined;
    try {
      transport = await media.router.createPipeTransport({
        listenInfo: this.#listenInfo(),
        appData: { pipeTo: node, producerId: producer.id },
      });
      pipe.transport = transport;
      if (gone()) throw closedMeanwhile(producer.id);
      await transport.connect({ ip: remote.ip, port: remote.port });
      const consumer = await transport.consume({ producerId: producer.id });
      const paused = consumer.producerPaused;
      await bus.request(node, {
        t: 'media.pipeConnect',
        producerId: producer.id,
        ip: transport.tuple.localAddress,
        port: transport.tuple.localPort,
        kind: consumer.kind,
        rtpParameters: consumer.rtpParameters,
        paused,
      });
      if (gone() || consumer.closed) throw closedMeanwhile(producer.id);
      // a hold (or the speaker's mute) pauses the piped producer there too
      consumer.observer.on('pause', () =>
        bus.send(node, { t: 'media.pipePause', producerId: producer.id, paused: true }),
      );
      consumer.observer.on('resume', () =>
        bus.send(node, { t: 'media.pipePause', producerId: producer.id, paused: false }),
      );
      if (consumer.producerPaused !== paused) {
        bus.send(node, { t: 'media.pipePause', producerId: producer.id, paused: consumer.producerPaused });
      }
      this.#log.debug({ producerId: producer.id, node }, 'producer piped to another node');
    } catch (err) {
      throw this.#abandon(node, producer, transport, err);
    }
  }

  /** A pipe that could not be made, or whose producer closed meanwhile: both sides closed. */
  #abandon(node: string, producer: ms.Producer, transport: ms.PipeTransport | undefined, err?: unknown): unknown {
    transport?.close();
    this.#opts.bus.send(node, { t: 'media.pipeClose', producerId: producer.id });
    return err === undefined || producer.closed ? closedMeanwhile(producer.id) : err;
  }

  /** The producer closed: every pipe of it closes, on both sides (the consumers there close with it). */
  #unpipe(producerId: string): void {
    const perNode = this.#pipes.get(producerId);
    if (!perNode) return;
    this.#pipes.delete(producerId);
    for (const [node, pipe] of perNode) {
      pipe.closed = true;
      pipe.transport?.close();
      this.#opts.bus.send(node, { t: 'media.pipeClose', producerId });
    }
  }

  #roomClosed(roomId: string): void {
    for (const node of this.#nodesOf.get(roomId) ?? []) this.#opts.bus.send(node, { t: 'media.closeRoom', roomId });
    this.#nodesOf.delete(roomId);
    for (const t of [...this.#transports.values()]) if (t.roomId === roomId) t.gone();
  }

  /** Owner side: `node` died. Its pipes close here; its transports are gone. */
  nodeGone(node: string): void {
    for (const perNode of this.#pipes.values()) {
      const pipe = perNode.get(node);
      if (!pipe) continue;
      perNode.delete(node);
      pipe.closed = true;
      pipe.transport?.close();
    }
    for (const t of [...this.#transports.values()]) if (t.node === node) t.gone();
    for (const nodes of this.#nodesOf.values()) nodes.delete(node);
  }

  /** Owner side: the nodes with a part of a room of this node (checked for life by the cluster). */
  nodes(): Set<string> {
    return new Set([...this.#nodesOf.values()].flatMap((n) => [...n]));
  }

  /** Media node side: the rooms this node has a part of, with their owner. */
  hostedRooms(): { roomId: string; owner: string }[] {
    return [...this.#hosted.values()].map(({ roomId, owner }) => ({ roomId, owner }));
  }

  /** @internal (proxies) */
  call(node: string, body: MediaRpc): Promise<unknown> {
    return this.#opts.bus.request(node, body);
  }

  /** @internal (proxies) */
  tell(node: string, body: MediaRpc): void {
    this.#opts.bus.send(node, body);
  }

  /** @internal (proxies) */
  forgetTransport(t: RemoteTransport): void {
    if (this.#transports.get(t.id) === t) this.#transports.delete(t.id);
  }

  /** @internal (proxies) */
  trackConsumer(c: RemoteConsumer): void {
    this.#consumers.set(c.id, c);
    c.observer.once('close', () => {
      if (this.#consumers.get(c.id) === c) this.#consumers.delete(c.id);
    });
  }

  #event(from: string, body: Extract<MediaRpc, { t: 'media.event' }>): void {
    if (body.target === 'transport') {
      const t = this.#transports.get(body.id);
      if (t && t.node === from && body.event === 'close') t.gone();
      return;
    }
    const c = this.#consumers.get(body.id);
    if (c && c.node === from) c.event(body.event, body.data);
  }

  // ================================================================== media node side
  /** A media RPC from `from` (answered with the value). */
  async handle(from: string, body: MediaRpc): Promise<unknown> {
    switch (body.t) {
      case 'media.event':
        return this.#event(from, body);
      case 'media.transport': {
        const hosted = this.#host(body.roomId, from);
        const media = await hosted.media;
        const transport = (await media.createTransport({
          userId: body.appData.userId,
          direction: 'recv',
        })) as ms.WebRtcTransport;
        if (this.#hosted.get(body.roomId) !== hosted) {
          transport.close();
          throw new StagegateError('INVALID_STATE', 'the room moved while the transport was created');
        }
        this.#hostTransports.set(transport.id, { transport, hosted });
        transport.observer.once('close', () => {
          this.#hostTransports.delete(transport.id);
          this.#tellOwner(hosted, { t: 'media.event', target: 'transport', id: transport.id, event: 'close' });
        });
        return {
          id: transport.id,
          iceParameters: transport.iceParameters,
          iceCandidates: transport.iceCandidates,
          dtlsParameters: transport.dtlsParameters,
        } satisfies TransportInfo;
      }
      case 'media.connect': {
        const { transport } = this.#hostTransport(body.transportId, from);
        await transport.connect({ dtlsParameters: body.dtlsParameters });
        return {};
      }
      case 'media.closeTransport':
        this.#hostTransports.get(body.transportId)?.transport.close();
        return {};
      case 'media.pipe': {
        const hosted = this.#host(body.roomId, from);
        const media = await hosted.media;
        this.#hostPipes.get(body.producerId)?.transport.close();
        const transport = await media.router.createPipeTransport({
          listenInfo: this.#listenInfo(),
          appData: { pipeFrom: from, producerId: body.producerId },
        });
        if (this.#hosted.get(body.roomId) !== hosted) {
          transport.close();
          throw new StagegateError('INVALID_STATE', 'the room moved while the pipe was created');
        }
        const entry = { transport, hosted };
        this.#hostPipes.set(body.producerId, entry);
        transport.observer.once('close', () => {
          if (this.#hostPipes.get(body.producerId) === entry) this.#hostPipes.delete(body.producerId);
        });
        return { ip: transport.tuple.localAddress, port: transport.tuple.localPort };
      }
      case 'media.pipeConnect': {
        const entry = this.#hostPipes.get(body.producerId);
        if (!entry || entry.hosted.owner !== from) throw closedMeanwhile(body.producerId);
        await entry.transport.connect({ ip: body.ip, port: body.port });
        const producer = await entry.transport.produce({
          id: body.producerId,
          kind: body.kind,
          rtpParameters: body.rtpParameters,
          paused: body.paused,
        });
        entry.producer = producer;
        if (entry.transport.closed) throw closedMeanwhile(body.producerId);
        return {};
      }
      case 'media.pipePause': {
        const producer = this.#hostPipes.get(body.producerId)?.producer;
        if (producer && !producer.closed) await (body.paused ? producer.pause() : producer.resume());
        return {};
      }
      case 'media.pipeClose':
        this.#hostPipes.get(body.producerId)?.transport.close();
        return {};
      case 'media.consume': {
        const { transport, hosted } = this.#hostTransport(body.transportId, from);
        const producer = this.#hostPipes.get(body.producerId)?.producer;
        if (!producer || producer.closed) throw closedMeanwhile(body.producerId);
        const media = await hosted.media;
        await media.prepareConsume(transport, producer, body.rtpCapabilities);
        const consumer = await transport.consume({
          producerId: body.producerId,
          rtpCapabilities: body.rtpCapabilities,
          paused: body.paused,
          appData: { userId: transport.appData.userId },
        });
        this.#hostConsumers.set(consumer.id, { consumer, hosted });
        const tell = (event: string, data?: unknown) =>
          this.#tellOwner(hosted, { t: 'media.event', target: 'consumer', id: consumer.id, event, data });
        consumer.on('producerclose', () => tell('producerclose'));
        consumer.on('transportclose', () => tell('transportclose'));
        consumer.on('producerpause', () => tell('producerpause'));
        consumer.on('producerresume', () => tell('producerresume'));
        consumer.on('score', (score) => tell('score', score));
        consumer.on('layerschange', (layers) => tell('layerschange', layers ?? null));
        consumer.observer.once('close', () => this.#hostConsumers.delete(consumer.id));
        return {
          id: consumer.id,
          producerId: consumer.producerId,
          kind: consumer.kind,
          type: consumer.type,
          rtpParameters: consumer.rtpParameters,
          paused: consumer.paused,
          producerPaused: consumer.producerPaused,
          score: consumer.score,
          preferredLayers: consumer.preferredLayers,
          currentLayers: consumer.currentLayers,
        } satisfies ConsumerInfo;
      }
      case 'media.consumer': {
        const entry = this.#hostConsumers.get(body.consumerId);
        if (!entry || entry.hosted.owner !== from) {
          if (body.call === 'close') return {};
          throw new StagegateError('NOT_FOUND', `no consumer ${body.consumerId} on this node`);
        }
        const { consumer } = entry;
        switch (body.call) {
          case 'pause':
            await consumer.pause();
            break;
          case 'resume':
            await consumer.resume();
            break;
          case 'requestKeyFrame':
            await consumer.requestKeyFrame();
            break;
          case 'setPreferredLayers':
            await consumer.setPreferredLayers(body.arg as ms.ConsumerLayers);
            break;
          case 'setPriority':
            await consumer.setPriority(Number(body.arg));
            break;
          case 'close':
            consumer.close();
            break;
        }
        return { paused: consumer.paused, preferredLayers: consumer.preferredLayers ?? null };
      }
      case 'media.closeRoom': {
        const hosted = this.#hosted.get(body.roomId);
        if (hosted && hosted.owner === from) this.dropRoom(body.roomId);
        return {};
      }
    }
  }

  /** Media node side: this node's part of the room closes (owner gone, room closed or taken here). */
  dropRoom(roomId: string): void {
    const hosted = this.#hosted.get(roomId);
    if (!hosted) return;
    this.#hosted.delete(roomId);
    hosted.media.then(
      (media) => media.close(),
      () => undefined,
    );
    this.#opts.pool.release(hosted.worker);
    this.#log.info({ roomId, owner: hosted.owner }, "dropped this node's media of a room");
  }

  /** The room's part here, for `owner` (a new owner replaces what an older one left). */
  #host(roomId: string, owner: string): Hosted {
    const existing = this.#hosted.get(roomId);
    if (existing?.owner === owner) return existing;
    if (existing) this.dropRoom(roomId);
    const { pool, rtc, maxConsumersPerRouter, log } = this.#opts;
    const worker = pool.acquire();
    const media = RoomMedia.create(worker, { pool, rtc, maxConsumersPerRouter, log: log.child({ roomId, owner }) });
    const hosted: Hosted = { roomId, owner, media, worker };
    this.#hosted.set(roomId, hosted);
    media.then(
      (m) => {
        if (this.#hosted.get(roomId) !== hosted) m.close();
      },
      () => this.#hosted.get(roomId) === hosted && this.dropRoom(roomId),
    );
    return hosted;
  }

  #hostTransport(transportId: string, from: string): { transport: ms.Transport; hosted: Hosted } {
    const entry = this.#hostTransports.get(transportId);
    if (!entry || entry.hosted.owner !== from || entry.transport.closed) {
      throw new StagegateError('INVALID_STATE', 'your recv transport is gone; create a new one');
    }
    return entry;
  }

  #tellOwner(hosted: Hosted, body: MediaRpc): void {
    if (this.#hosted.get(hosted.roomId) === hosted) this.#opts.bus.send(hosted.owner, body);
  }

  #listenInfo(): ms.TransportListenInfo {
    const { listenIp, announcedAddress } = this.#opts.rtc;
    return announcedAddress ? { protocol: 'udp', ip: listenIp, announcedAddress } : { protocol: 'udp', ip: listenIp };
  }

  // ================================================================== inspection
  /** Owner side: the live pipes of a room's producers, with their node. */
  #ownerPipes(roomId: string): { producerId: string; node: string }[] {
    return [...this.#pipes].flatMap(([producerId, perNode]) =>
      [...perNode].flatMap(([node, p]) =>
        p.roomId === roomId && p.transport && !p.transport.closed ? [{ producerId, node }] : [],
      ),
    );
  }

  /** This node's media, per room: owned rooms' routers and this node's parts of others' (`GET /api/node/media`). */
  async describe(owned: { id: string; media: RoomMedia }[]): Promise<unknown[]> {
    type Pipe = { producerId: string; node: string; paused?: boolean };
    const parts: { roomId: string; role: 'owner' | 'media'; owner?: string; pipes: Pipe[]; media: RoomMedia }[] =
      owned.map((r) => ({ roomId: r.id, role: 'owner', pipes: this.#ownerPipes(r.id), media: r.media }));
    for (const h of this.#hosted.values()) {
      const media = await h.media.catch(() => undefined);
      const pipes = [...this.#hostPipes]
        .filter(([, p]) => p.hosted === h)
        .map(([producerId, p]) => ({ producerId, node: h.owner, ...(p.producer && { paused: p.producer.paused }) }));
      if (media) parts.push({ roomId: h.roomId, role: 'media', owner: h.owner, pipes, media });
    }
    return Promise.all(
      parts.map(async ({ media, ...part }) => ({
        ...part,
        participants: media.placement().participants,
        routers: await Promise.all(
          media
            .routers()
            .filter((r) => !r.closed)
            .map(async (r) => {
              const dump = await r.router.dump();
              return {
                ...r.counts(),
                transportIds: dump.transportIds,
                producerIds: dump.mapProducerIdConsumerIds.map((e) => e.key),
                consumerIds: dump.mapConsumerIdProducerId.map((e) => e.key),
              };
            }),
        ),
      })),
    );
  }
}

/** Owner side: a receive transport on another node, as the room uses a mediasoup transport. */
class RemoteTransport {
  readonly id: string;
  readonly iceParameters: ms.IceParameters;
  readonly iceCandidates: ms.IceCandidate[];
  readonly dtlsParameters: ms.DtlsParameters;
  readonly observer = new EventEmitter();
  readonly #consumers = new Set<RemoteConsumer>();
  #closed = false;

  constructor(
    info: TransportInfo,
    readonly roomId: string,
    readonly node: string,
    readonly appData: Record<string, unknown>,
    readonly remote: RemoteMedia,
  ) {
    this.id = info.id;
    this.iceParameters = info.iceParameters;
    this.iceCandidates = info.iceCandidates;
    this.dtlsParameters = info.dtlsParameters;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async connect({ dtlsParameters }: { dtlsParameters: ms.DtlsParameters }): Promise<void> {
    await this.remote.call(this.node, { t: 'media.connect', transportId: this.id, dtlsParameters });
  }

  async consume(opts: {
    producerId: string;
    rtpCapabilities: ms.RtpCapabilities;
    paused?: boolean;
    appData?: Record<string, unknown>;
  }): Promise<ms.Consumer> {
    if (this.#closed) throw new StagegateError('INVALID_STATE', 'the receive transport closed');
    const info = (await this.remote.call(this.node, {
      t: 'media.consume',
      transportId: this.id,
      producerId: opts.producerId,
      rtpCapabilities: opts.rtpCapabilities,
      paused: opts.paused ?? false,
    })) as ConsumerInfo;
    const consumer = new RemoteConsumer(info, this.node, opts.appData ?? {}, this.remote);
    this.remote.trackConsumer(consumer);
    if (this.#closed) consumer.event('transportclose');
    else {
      this.#consumers.add(consumer);
      consumer.observer.once('close', () => this.#consumers.delete(consumer));
    }
    return consumer as unknown as ms.Consumer;
  }

  close(): void {
    if (this.#closed) return;
    this.remote.tell(this.node, { t: 'media.closeTransport', transportId: this.id });
    this.gone();
  }

  /** Closed (here, or on its node): its consumers close with it. */
  gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.remote.forgetTransport(this);
    for (const c of [...this.#consumers]) c.event('transportclose');
    this.observer.emit('close');
  }
}

/** Owner side: a consumer on another node, as the room uses a mediasoup consumer. */
class RemoteConsumer extends EventEmitter {
  readonly id: string;
  readonly producerId: string;
  readonly kind: ms.MediaKind;
  readonly type: ms.ConsumerType;
  readonly rtpParameters: ms.RtpParameters;
  readonly observer = new EventEmitter();
  paused: boolean;
  producerPaused: boolean;
  score: ms.ConsumerScore;
  preferredLayers: ms.ConsumerLayers | undefined;
  currentLayers: ms.ConsumerLayers | undefined;
  #closed = false;

  constructor(
    info: ConsumerInfo,
    readonly node: string,
    readonly appData: Record<string, unknown>,
    readonly remote: RemoteMedia,
  ) {
    super();
    this.id = info.id;
    this.producerId = info.producerId;
    this.kind = info.kind;
    this.type = info.type;
    this.rtpParameters = info.rtpParameters;
    this.paused = info.paused;
    this.producerPaused = info.producerPaused;
    this.score = info.score;
    this.preferredLayers = info.preferredLayers;
    this.currentLayers = info.currentLayers;
  }

  get closed(): boolean {
    return this.#closed;
  }

  pause = () => this.#call('pause');
  resume = () => this.#call('resume');
  requestKeyFrame = () => this.#call('requestKeyFrame');
  setPreferredLayers = (layers: ms.ConsumerLayers) => this.#call('setPreferredLayers', layers);
  setPriority = (priority: number) => this.#call('setPriority', priority);

  close(): void {
    if (this.#closed) return;
    this.remote.tell(this.node, { t: 'media.consumer', consumerId: this.id, call: 'close' });
    this.#closed = true;
    this.observer.emit('close');
  }

  async #call(call: ConsumerCall, arg?: unknown): Promise<void> {
    if (this.#closed) throw new StagegateError('INVALID_STATE', `consumer ${this.id} closed`);
    const state = (await this.remote.call(this.node, { t: 'media.consumer', consumerId: this.id, call, arg })) as {
      paused: boolean;
      preferredLayers: ms.ConsumerLayers | null;
    };
    this.paused = state.paused;
    this.preferredLayers = state.preferredLayers ?? undefined;
  }

  /** An event of the consumer on its node. */
  event(event: string, data?: unknown): void {
    if (this.#closed) return;
    switch (event) {
      case 'producerclose':
      case 'transportclose':
        this.#closed = true;
        this.emit(event);
        this.observer.emit('close');
        return;
      case 'producerpause':
      case 'producerresume':
        this.producerPaused = event === 'producerpause';
        this.emit(event);
        return;
      case 'score':
        this.score = data as ms.ConsumerScore;
        this.emit('score', this.score);
        return;
      case 'layerschange':
        this.currentLayers = (data ?? undefined) as ms.ConsumerLayers | undefined;
        this.emit('layerschange', this.currentLayers);
        return;
    }
  }
}

function closedMeanwhile(producerId: string): StagegateError {
  return new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
}
