/**
 * Media across cluster nodes. A participant's transports are on the node its socket is connected
 * to (its media node): a producer lives on the node of its speaker, a viewer's consumers on the
 * viewer's node, and a producer reaches another node through a PipeTransport pair between the two
 * nodes' routers. The room's node (the owner) keeps the stage and every decision (gating, holds,
 * one consumer per producer); the media nodes execute, and the owner orchestrates the pipes.
 *
 * - **Owner side** (`forRoom`: the `RemoteMediaPort` of a room's RoomMedia): a transport of a
 *   participant whose socket is on node N is created on N by a media RPC over the cluster's Redis
 *   channels, and the room gets proxies (`RemoteTransport`, `RemoteProducer`, `RemoteConsumer`)
 *   with the members of mediasoup's objects it uses: calls become RPCs, N's events come back.
 * - **Pipes**: one per (producer, destination node), made by the first consume there (one
 *   promise), orchestrated by the owner: a PipeTransport on the destination (`pipeIn`), one on
 *   the producer's node connected to it, consuming the producer (`pipeOut`), then the
 *   destination's connected and producing with the same id (`pipeConnect`). `listenInfo` is each
 *   node's RTC address. A pipe closes with its producer (stage exit, kick, leave, slot end, its
 *   transport), on both nodes. A paused producer (a host's hold, the speaker's mute) forwards
 *   nothing into its pipes, and the producer's node pauses the piped copies too (ordered by a
 *   sequence number, as its messages and the owner's travel on different channels).
 * - The owner itself is one of these nodes: a producer on another node that a viewer on the
 *   owner consumes (or the active speaker observer needs: audio is piped to the owner) is piped
 *   into the owner's origin router; a producer on the owner reaches other nodes the same way.
 * - **Media node side** (`handle`): per room a site, a RoomMedia of its own on this node's
 *   workers (placement and in-node pipes as on one node); dropped when the owner closes the room,
 *   dies, or another node takes it. A node that dies takes its part: the owner drops its
 *   producers and transports there (the cluster drops its sockets' participants) and the pipes
 *   from and to it.
 */
import { EventEmitter } from 'node:events';
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type { Logger } from '../logger.js';
import { RoomMedia, type RemoteMediaPort, type RtcOptions, type TransportAppData } from '../media/RoomMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import { producerOptions } from '../media/rtp.js';

/** Media RPC bodies (owner → media node, producer's node → destination), and events (media node → owner). */
export type MediaRpc =
  | { t: 'media.transport'; roomId: string; appData: TransportAppData }
  | { t: 'media.connect'; transportId: string; dtlsParameters: ms.DtlsParameters }
  | { t: 'media.closeTransport'; transportId: string }
  | {
      t: 'media.produce';
      transportId: string;
      kind: ms.MediaKind;
      rtpParameters: ms.RtpParameters;
      appData: Record<string, unknown>;
    }
  | { t: 'media.producer'; producerId: string; call: 'pause' | 'resume' | 'close' }
  | { t: 'media.pipeIn'; roomId: string; producerId: string; from: string }
  | { t: 'media.pipeOut'; roomId: string; producerId: string; to: string; ip: string; port: number }
  | ({ t: 'media.pipeConnect'; producerId: string } & PipeOut)
  | { t: 'media.pipePause'; producerId: string; paused: boolean; seq: number }
  | { t: 'media.pipeClose'; producerId: string }
  | { t: 'media.pipeOutClose'; producerId: string; to: string }
  | {
      t: 'media.consume';
      transportId: string;
      producerId: string;
      rtpCapabilities: ms.RtpCapabilities;
      paused: boolean;
    }
  | { t: 'media.consumer'; consumerId: string; call: ConsumerCall; arg?: unknown }
  | { t: 'media.closeRoom'; roomId: string }
  | { t: 'media.dropped'; roomId: string }
  | { t: 'media.event'; target: 'transport' | 'producer' | 'consumer'; id: string; event: string; data?: unknown };

type ConsumerCall = 'pause' | 'resume' | 'requestKeyFrame' | 'setPreferredLayers' | 'setPriority' | 'close';

/** What the producer's node answers to `pipeOut`: its pipe's address and the stream. */
interface PipeOut {
  ip: string;
  port: number;
  kind: ms.MediaKind;
  rtpParameters: ms.RtpParameters;
  paused: boolean;
  seq: number;
}

/** The cluster's RPC (Cluster.ts): requests answered by the node, and one-way messages (in order per sender). */
export interface MediaBus {
  request(node: string, body: MediaRpc): Promise<unknown>;
  send(node: string, body: MediaRpc): void;
}

export interface RemoteMediaOptions {
  nodeId: string;
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

interface ProducerInfo {
  id: string;
  kind: ms.MediaKind;
  type: ms.ProducerType;
  rtpParameters: ms.RtpParameters;
  paused: boolean;
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

/** Owner side: one producer piped from its node to another. */
interface OwnerPipe {
  roomId: string;
  from: string;
  creating: Promise<void>;
  closed: boolean;
}

/** A node's part of a room: the owner's own RoomMedia, or one made here for another owner. */
interface Site {
  roomId: string;
  owner: string;
  media: Promise<RoomMedia>;
  /** Made here for another owner (this node acquired its worker). */
  hosted?: { worker: ms.Worker };
  /** `media`, once made. */
  ready?: RoomMedia;
}

type Side = ms.Producer | RemoteProducer;

export class RemoteMedia {
  readonly #opts: RemoteMediaOptions;
  readonly #self: string;
  readonly #log: Logger;
  // owner side
  readonly #transports = new Map<string, RemoteTransport>();
  readonly #producers = new Map<string, RemoteProducer>();
  readonly #consumers = new Map<string, RemoteConsumer>();
  /** Producer id → destination node → pipe. */
  readonly #pipes = new Map<string, Map<string, OwnerPipe>>();
  /** Room id → the other nodes that have a part of it (told when it closes). */
  readonly #nodesOf = new Map<string, Set<string>>();
  // every node: its parts of rooms, and what it made in them for the owner
  readonly #sites = new Map<string, Site>();
  readonly #hostTransports = new Map<string, { transport: ms.Transport; site: Site }>();
  readonly #hostProducers = new Map<string, { producer: ms.Producer; site: Site }>();
  readonly #hostConsumers = new Map<string, { consumer: ms.Consumer; site: Site }>();
  /** Producer id → its pipe into this node. */
  readonly #inPipes = new Map<
    string,
    { transport: ms.PipeTransport; producer?: ms.Producer; site: Site; from: string; seq: number; paused?: boolean }
  >();
  /** `producerId>node` → its pipe out of this node. */
  readonly #outPipes = new Map<string, { transport: ms.PipeTransport; site: Site; producerId: string; to: string }>();

  constructor(opts: RemoteMediaOptions) {
    this.#opts = opts;
    this.#self = opts.nodeId;
    this.#log = opts.log;
  }

  // ================================================================== owner side
  /** The port of one room this node owns (set as `room.media.remote`). */
  forRoom(roomId: string, media: RoomMedia): RemoteMediaPort {
    this.#sites.set(roomId, { roomId, owner: this.#self, media: Promise.resolve(media) });
    return {
      createTransport: (node, appData) => this.#createTransport(roomId, node, appData),
      owns: (t) => t instanceof RemoteTransport && this.#transports.get(t.id) === t,
      ownsProducer: (p) => p instanceof RemoteProducer,
      prepareConsume: (t, producer) => this.#prepareConsume(roomId, t, producer as Side),
      pipeHome: async (producer) => {
        await this.#ensurePipe(roomId, producer as Side, this.#self);
        return this.#localCopy(producer.id);
      },
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

  /**
   * `producer` consumable on `transport`'s node: piped there once. The piped copy when the
   * transport is on this node (the room's in-node placement goes on with it), else undefined.
   */
  async #prepareConsume(roomId: string, t: ms.Transport, producer: Side): Promise<ms.Producer | undefined> {
    const to = t instanceof RemoteTransport ? t.node : this.#self;
    const from = producer instanceof RemoteProducer ? producer.node : this.#self;
    if (from !== to) await this.#ensurePipe(roomId, producer, to);
    if (to !== this.#self) return undefined;
    return from === this.#self ? (producer as ms.Producer) : this.#localCopy(producer.id);
  }

  #localCopy(producerId: string): ms.Producer {
    const copy = this.#inPipes.get(producerId)?.producer;
    if (!copy || copy.closed) throw closedMeanwhile(producerId);
    return copy;
  }

  /** The producer on node `to`: its pipe there, made by the first consumer (one promise per producer and node). */
  #ensurePipe(roomId: string, producer: Side, to: string): Promise<void> {
    if (producer.closed) return Promise.reject(closedMeanwhile(producer.id));
    let perNode = this.#pipes.get(producer.id);
    if (!perNode) {
      const created = new Map<string, OwnerPipe>();
      this.#pipes.set(producer.id, created);
      (producer.observer as EventEmitter).once('close', () => this.#unpipe(producer.id));
      perNode = created;
    }
    const existing = perNode.get(to);
    if (existing) return existing.creating;
    const from = producer instanceof RemoteProducer ? producer.node : this.#self;
    const pipe: OwnerPipe = { roomId, from, creating: Promise.resolve(), closed: false };
    pipe.creating = this.#openPipe(roomId, producer, from, to, pipe);
    perNode.set(to, pipe);
    const map = perNode;
    pipe.creating.catch(() => {
      if (map.get(to) === pipe) map.delete(to);
    });
    return pipe.creating;
  }

  async #openPipe(roomId: string, producer: Side, from: string, to: string, pipe: OwnerPipe): Promise<void> {
    const producerId = producer.id;
    const gone = () => pipe.closed || producer.closed;
    try {
      const at = (await this.#at(to, { t: 'media.pipeIn', roomId, producerId, from })) as { ip: string; port: number };
      if (gone()) throw closedMeanwhile(producerId);
      const out = (await this.#at(from, { t: 'media.pipeOut', roomId, producerId, to, ...at })) as PipeOut;
      if (gone()) throw closedMeanwhile(producerId);
      await this.#at(to, { t: 'media.pipeConnect', producerId, ...out });
      if (gone()) throw closedMeanwhile(producerId);
      this.#log.debug({ producerId, from, to }, 'producer piped to another node');
    } catch (err) {
      this.#tellAt(to, { t: 'media.pipeClose', producerId });
      this.#tellAt(from, { t: 'media.pipeOutClose', producerId, to });
      throw producer.closed ? closedMeanwhile(producerId) : err;
    }
  }

  /**
   * The producer closed: its pipes are forgotten here. They close on their nodes by themselves:
   * the producer's node closes its side with the pipe consumer and tells the destination
   * (`pipeOut`), whose copy closes with the consumers fed by it.
   */
  #unpipe(producerId: string): void {
    const perNode = this.#pipes.get(producerId);
    if (!perNode) return;
    this.#pipes.delete(producerId);
    for (const pipe of perNode.values()) pipe.closed = true;
  }

  #closePipe(producerId: string, to: string, pipe: OwnerPipe): void {
    pipe.closed = true;
    this.#tellAt(to, { t: 'media.pipeClose', producerId });
    this.#tellAt(pipe.from, { t: 'media.pipeOutClose', producerId, to });
  }

  #roomClosed(roomId: string): void {
    for (const node of this.#nodesOf.get(roomId) ?? []) this.#opts.bus.send(node, { t: 'media.closeRoom', roomId });
    this.#nodesOf.delete(roomId);
    if (this.#sites.get(roomId)?.owner === this.#self) this.#sites.delete(roomId);
    for (const t of [...this.#transports.values()]) if (t.roomId === roomId) t.gone();
    for (const [producerId, perNode] of [...this.#pipes]) {
      for (const [to, pipe] of perNode) if (pipe.roomId === roomId) perNode.delete(to);
      if (perNode.size === 0) this.#pipes.delete(producerId);
    }
  }

  /**
   * Owner side: `node` dropped its part of `roomId` (it judged this owner gone: a heartbeat it
   * missed while this node was starved of CPU, say; or the part's worker died). Its transports
   * and producers there are gone, and the pipes from and to it: the next consumer there gets a
   * new pipe, not the dead one; their participants are told to set their media up again.
   */
  #partDropped(roomId: string, node: string): void {
    if (this.#sites.get(roomId)?.owner !== this.#self) return;
    const lost = [...this.#transports.values()].filter((t) => t.roomId === roomId && t.node === node);
    for (const t of lost) t.gone();
    // their participants set their media up again (after a missed heartbeat the node also
    // dropped the sockets it relayed: those reconnect and set it up anyway)
    this.#transportsLost(roomId, lost);
    for (const [producerId, perNode] of [...this.#pipes]) {
      for (const [to, pipe] of [...perNode]) {
        if (pipe.roomId !== roomId || (to !== node && pipe.from !== node)) continue;
        perNode.delete(to);
        this.#closePipe(producerId, to, pipe);
      }
    }
    this.#nodesOf.get(roomId)?.delete(node);
    this.#log.warn({ roomId, node }, 'a node dropped its part of a room of this node');
  }

  /** @internal (proxies): a transport closed on its node without this owner asking (its worker died). */
  transportLost(t: RemoteTransport): void {
    this.#transportsLost(t.roomId, [t]);
  }

  /** Transports of a room of this node went away on their node by themselves: the room resets their participants. */
  #transportsLost(roomId: string, transports: RemoteTransport[]): void {
    const site = this.#sites.get(roomId);
    if (site?.owner !== this.#self || transports.length === 0) return;
    site.media.then(
      (media) => media.transportsLost(new Set(transports.map((t) => t.id))),
      () => undefined,
    );
  }

  /** Owner side: `node` died. Its transports and producers are gone, and the pipes from and to it. */
  nodeGone(node: string): void {
    for (const t of [...this.#transports.values()]) if (t.node === node) t.gone();
    for (const [producerId, perNode] of this.#pipes) {
      for (const [to, pipe] of [...perNode]) {
        if (to !== node && pipe.from !== node) continue;
        perNode.delete(to);
        this.#closePipe(producerId, to, pipe);
      }
    }
    for (const nodes of this.#nodesOf.values()) nodes.delete(node);
  }

  /** Owner side: the nodes with a part of a room of this node (checked for life by the cluster). */
  nodes(): Set<string> {
    return new Set([...this.#nodesOf.values()].flatMap((n) => [...n]));
  }

  /** Media node side: the media of this node's parts of other owners' rooms (`/metrics`). */
  hostedMedia(): RoomMedia[] {
    return [...this.#sites.values()].flatMap((s) => (s.hosted && s.ready ? [s.ready] : []));
  }

  /** Media node side: the rooms this node has a part of for another owner. */
  hostedRooms(): { roomId: string; owner: string }[] {
    return [...this.#sites.values()].filter((s) => s.hosted).map(({ roomId, owner }) => ({ roomId, owner }));
  }

  /** A request to `node`: a local call when it is this node. */
  #at(node: string, body: MediaRpc): Promise<unknown> {
    return node === this.#self ? this.handle(this.#self, body) : this.#opts.bus.request(node, body);
  }

  #tellAt(node: string, body: MediaRpc): void {
    if (node !== this.#self) return this.#opts.bus.send(node, body);
    this.handle(this.#self, body).catch((err: unknown) => this.#log.debug({ err, t: body.t }, 'local media call'));
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
  forget(proxy: RemoteTransport | RemoteProducer | RemoteConsumer): void {
    const map: Map<string, unknown> =
      proxy instanceof RemoteTransport
        ? this.#transports
        : proxy instanceof RemoteProducer
          ? this.#producers
          : this.#consumers;
    if (map.get(proxy.id) === proxy) map.delete(proxy.id);
  }

  /** @internal (proxies) */
  track(proxy: RemoteProducer | RemoteConsumer): void {
    if (proxy instanceof RemoteProducer) this.#producers.set(proxy.id, proxy);
    else this.#consumers.set(proxy.id, proxy);
  }

  #event(from: string, body: Extract<MediaRpc, { t: 'media.event' }>): void {
    const proxy =
      body.target === 'transport'
        ? this.#transports.get(body.id)
        : body.target === 'producer'
          ? this.#producers.get(body.id)
          : this.#consumers.get(body.id);
    if (proxy && proxy.node === from) proxy.event(body.event, body.data);
  }

  // ================================================================== media node side
  /** A media RPC from `from` (answered with the value). */
  async handle(from: string, body: MediaRpc): Promise<unknown> {
    switch (body.t) {
      case 'media.event':
        return this.#event(from, body);
      case 'media.dropped':
        return this.#partDropped(body.roomId, from);
      case 'media.transport': {
        const site = this.#host(body.roomId, from);
        const media = await site.media;
        const { userId, direction } = body.appData;
        const transport = (await media.createTransport({ userId, direction })) as ms.WebRtcTransport;
        if (this.#sites.get(body.roomId) !== site) {
          transport.close();
          throw new StagegateError('INVALID_STATE', 'the room moved while the transport was created');
        }
        this.#hostTransports.set(transport.id, { transport, site });
        transport.observer.once('close', () => {
          this.#hostTransports.delete(transport.id);
          this.#tellOwner(site, { t: 'media.event', target: 'transport', id: transport.id, event: 'close' });
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
      case 'media.produce': {
        const { transport, site } = this.#hostTransport(body.transportId, from);
        const producer = await transport.produce({
          kind: body.kind,
          rtpParameters: body.rtpParameters,
          appData: body.appData,
          ...producerOptions(body.kind),
        });
        this.#hostProducers.set(producer.id, { producer, site });
        const tell = (event: string, data?: unknown) =>
          this.#tellOwner(site, { t: 'media.event', target: 'producer', id: producer.id, event, data });
        producer.on('transportclose', () => tell('transportclose'));
        producer.on('score', (score) => tell('score', score));
        producer.observer.once('close', () => {
          this.#hostProducers.delete(producer.id);
          tell('close');
        });
        return {
          id: producer.id,
          kind: producer.kind,
          type: producer.type,
          rtpParameters: producer.rtpParameters,
          paused: producer.paused,
        } satisfies ProducerInfo;
      }
      case 'media.producer': {
        const entry = this.#hostProducers.get(body.producerId);
        if (!entry || entry.site.owner !== from) {
          if (body.call === 'close') return {};
          throw new StagegateError('NOT_FOUND', `no producer ${body.producerId} on this node`);
        }
        if (body.call === 'close') entry.producer.close();
        else await (body.call === 'pause' ? entry.producer.pause() : entry.producer.resume());
        return { paused: entry.producer.paused };
      }
      case 'media.pipeIn': {
        const site = this.#host(body.roomId, from);
        const media = await site.media;
        this.#inPipes.get(body.producerId)?.transport.close();
        const transport = await media.router.createPipeTransport({
          listenInfo: this.#listenInfo(),
          appData: { pipeFrom: body.from, producerId: body.producerId },
        });
        if (this.#sites.get(body.roomId) !== site) {
          transport.close();
          throw new StagegateError('INVALID_STATE', 'the room moved while the pipe was created');
        }
        const entry = { transport, site, from: body.from, seq: -1 };
        this.#inPipes.set(body.producerId, entry);
        transport.observer.once('close', () => {
          if (this.#inPipes.get(body.producerId) === entry) this.#inPipes.delete(body.producerId);
        });
        return { ip: transport.tuple.localAddress, port: transport.tuple.localPort };
      }
      case 'media.pipeOut': {
        const site = this.#sites.get(body.roomId);
        if (!site || site.owner !== from) throw closedMeanwhile(body.producerId);
        const media = await site.media;
        const key = `${body.producerId}>${body.to}`;
        this.#outPipes.get(key)?.transport.close();
        const transport = await media.router.createPipeTransport({
          listenInfo: this.#listenInfo(),
          appData: { pipeTo: body.to, producerId: body.producerId },
        });
        const entry = { transport, site, producerId: body.producerId, to: body.to };
        this.#outPipes.set(key, entry);
        transport.observer.once('close', () => {
          if (this.#outPipes.get(key) === entry) this.#outPipes.delete(key);
        });
        try {
          await transport.connect({ ip: body.ip, port: body.port });
          const consumer = await transport.consume({ producerId: body.producerId });
          // the producer's pause and close reach its copy there (a sequence: the owner's calls travel apart)
          let seq = 0;
          const pause = (paused: boolean) =>
            this.#tellAt(body.to, { t: 'media.pipePause', producerId: body.producerId, paused, seq: ++seq });
          consumer.observer.on('pause', () => pause(true));
          consumer.observer.on('resume', () => pause(false));
          consumer.observer.once('close', () => {
            transport.close();
            this.#tellAt(body.to, { t: 'media.pipeClose', producerId: body.producerId });
          });
          return {
            ip: transport.tuple.localAddress,
            port: transport.tuple.localPort,
            kind: consumer.kind,
            rtpParameters: consumer.rtpParameters,
            paused: consumer.producerPaused,
            seq,
          } satisfies PipeOut;
        } catch (err) {
          transport.close();
          throw err;
        }
      }
      case 'media.pipeConnect': {
        const entry = this.#inPipes.get(body.producerId);
        if (!entry || entry.site.owner !== from) throw closedMeanwhile(body.producerId);
        await entry.transport.connect({ ip: body.ip, port: body.port });
        // a pause that came first (from the producer's node) is newer than this state
        if (body.seq > entry.seq) [entry.seq, entry.paused] = [body.seq, body.paused];
        const producer = await entry.transport.produce({
          id: body.producerId,
          kind: body.kind,
          rtpParameters: body.rtpParameters,
          paused: entry.paused ?? body.paused,
        });
        entry.producer = producer;
        if (entry.transport.closed) throw closedMeanwhile(body.producerId);
        if (entry.paused !== undefined && entry.paused !== producer.paused)
          await (entry.paused ? producer.pause() : producer.resume());
        return {};
      }
      case 'media.pipePause': {
        const entry = this.#inPipes.get(body.producerId);
        if (!entry || entry.from !== from || body.seq <= entry.seq) return {};
        [entry.seq, entry.paused] = [body.seq, body.paused];
        const producer = entry.producer;
        if (producer && !producer.closed) await (body.paused ? producer.pause() : producer.resume());
        return {};
      }
      case 'media.pipeClose':
        this.#inPipes.get(body.producerId)?.transport.close();
        return {};
      case 'media.pipeOutClose':
        this.#outPipes.get(`${body.producerId}>${body.to}`)?.transport.close();
        return {};
      case 'media.consume': {
        const { transport, site } = this.#hostTransport(body.transportId, from);
        const producer =
          this.#hostProducers.get(body.producerId)?.producer ?? this.#inPipes.get(body.producerId)?.producer;
        if (!producer || producer.closed) throw closedMeanwhile(body.producerId);
        const media = await site.media;
        await media.prepareConsume(transport, producer, body.rtpCapabilities);
        const consumer = await transport.consume({
          producerId: body.producerId,
          rtpCapabilities: body.rtpCapabilities,
          paused: body.paused,
          appData: { userId: transport.appData.userId },
        });
        this.#hostConsumers.set(consumer.id, { consumer, site });
        const tell = (event: string, data?: unknown) =>
          this.#tellOwner(site, { t: 'media.event', target: 'consumer', id: consumer.id, event, data });
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
        if (!entry || entry.site.owner !== from) {
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
        if (this.#sites.get(body.roomId)?.owner === from) this.dropRoom(body.roomId);
        return {};
      }
    }
  }

  /** Media node side: this node's part of a room made for another owner closes (owner gone, room closed or taken here). */
  dropRoom(roomId: string): void {
    const site = this.#sites.get(roomId);
    if (!site?.hosted) return;
    this.#sites.delete(roomId);
    site.media.then(
      (media) => media.close(),
      () => undefined,
    );
    this.#opts.pool.release(site.hosted.worker);
    // the owner may be alive after all (a missed heartbeat): it forgets what it had here
    this.#opts.bus.send(site.owner, { t: 'media.dropped', roomId });
    this.#log.info({ roomId, owner: site.owner }, "dropped this node's media of a room");
  }

  /** The room's part here, for `owner` (this node's own room, or made here; a new owner replaces an older one's). */
  #host(roomId: string, owner: string): Site {
    const existing = this.#sites.get(roomId);
    if (existing?.owner === owner) return existing;
    if (existing && !existing.hosted) throw new StagegateError('INVALID_STATE', `room ${roomId} is on this node`);
    if (existing) this.dropRoom(roomId);
    const { pool, rtc, maxConsumersPerRouter, log } = this.#opts;
    const worker = pool.acquire();
    const media = RoomMedia.create(worker, { pool, rtc, maxConsumersPerRouter, log: log.child({ roomId, owner }) });
    const site: Site = { roomId, owner, media, hosted: { worker } };
    this.#sites.set(roomId, site);
    media.then(
      (m) => {
        if (this.#sites.get(roomId) !== site) return m.close();
        site.ready = m;
        // Its worker died: the part, its transports and pipes are gone. Once a worker is live
        // again, the part is dropped and the owner told (media.dropped): it resets its
        // participants here, whose new transports make a new part on that worker. Their
        // transports' closes are not told before (#tellOwner: a reset then would find no worker).
        m.router.on('workerclose', () => {
          log.warn({ roomId, owner, workerPid: worker.pid }, "the worker of this node's part of a room died");
          void pool.live().then(() => this.#sites.get(roomId) === site && this.dropRoom(roomId));
        });
      },
      () => this.#sites.get(roomId) === site && this.dropRoom(roomId),
    );
    return site;
  }

  #hostTransport(transportId: string, from: string): { transport: ms.Transport; site: Site } {
    const entry = this.#hostTransports.get(transportId);
    if (!entry || entry.site.owner !== from || entry.transport.closed) {
      throw new StagegateError('INVALID_STATE', 'your transport is gone; create a new one');
    }
    return entry;
  }

  #tellOwner(site: Site, body: MediaRpc): void {
    // A part whose worker died tells nothing (its transports' closes) until it is dropped (#host).
    if (this.#sites.get(site.roomId) === site && !site.hosted?.worker.died) this.#opts.bus.send(site.owner, body);
  }

  #listenInfo(): ms.TransportListenInfo {
    const { listenIp, announcedAddress } = this.#opts.rtc;
    return announcedAddress ? { protocol: 'udp', ip: listenIp, announcedAddress } : { protocol: 'udp', ip: listenIp };
  }

  // ================================================================== inspection
  /** This node's media, per room: its own rooms' and its parts of others' (`GET /api/node/media`). */
  async describe(): Promise<unknown[]> {
    return Promise.all(
      [...this.#sites.values()].map(async (site) => {
        const media = await site.media.catch(() => undefined);
        const pipes = [
          ...[...this.#outPipes.values()]
            .filter((p) => p.site === site)
            .map((p) => ({ producerId: p.producerId, node: p.to, direction: 'out' })),
          ...[...this.#inPipes]
            .filter(([, p]) => p.site === site)
            .map(([producerId, p]) => ({
              producerId,
              node: p.from,
              direction: 'in',
              ...(p.producer && { paused: p.producer.paused }),
            })),
        ];
        return {
          roomId: site.roomId,
          role: site.hosted ? 'media' : 'owner',
          owner: site.owner,
          pipes,
          participants: media?.placement().participants ?? {},
          routers: await Promise.all(
            (media?.routers() ?? [])
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
        };
      }),
    );
  }
}

/** Owner side: a transport on another node, as the room uses a mediasoup transport. */
class RemoteTransport {
  readonly id: string;
  readonly iceParameters: ms.IceParameters;
  readonly iceCandidates: ms.IceCandidate[];
  readonly dtlsParameters: ms.DtlsParameters;
  readonly observer = new EventEmitter();
  readonly #children = new Set<RemoteProducer | RemoteConsumer>();
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

  async produce(opts: {
    kind: ms.MediaKind;
    rtpParameters: ms.RtpParameters;
    appData?: Record<string, unknown>;
  }): Promise<ms.Producer> {
    if (this.#closed) throw new StagegateError('INVALID_STATE', 'the send transport closed');
    const appData = opts.appData ?? {};
    const info = (await this.remote.call(this.node, {
      t: 'media.produce',
      transportId: this.id,
      kind: opts.kind,
      rtpParameters: opts.rtpParameters,
      appData,
    })) as ProducerInfo;
    return this.#adopt(new RemoteProducer(info, this.node, appData, this.remote)) as unknown as ms.Producer;
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
    return this.#adopt(new RemoteConsumer(info, this.node, opts.appData ?? {}, this.remote)) as unknown as ms.Consumer;
  }

  #adopt<T extends RemoteProducer | RemoteConsumer>(child: T): T {
    this.remote.track(child);
    if (this.#closed) child.event('transportclose');
    else {
      this.#children.add(child);
      child.observer.once('close', () => this.#children.delete(child));
    }
    return child;
  }

  close(): void {
    if (this.#closed) return;
    this.remote.tell(this.node, { t: 'media.closeTransport', transportId: this.id });
    this.gone();
  }

  /** Closed (here, or on its node, or its node died): its producers and consumers close with it. */
  gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.remote.forget(this);
    for (const c of [...this.#children]) c.event('transportclose');
    this.observer.emit('close');
  }

  event(event: string): void {
    if (event !== 'close' || this.#closed) return;
    // closed there by itself (its worker died): the room resets its participant's media
    this.gone();
    this.remote.transportLost(this);
  }
}

/** Owner side: a producer on another node (its speaker's), as the room uses a mediasoup producer. */
class RemoteProducer extends EventEmitter {
  readonly id: string;
  readonly kind: ms.MediaKind;
  readonly type: ms.ProducerType;
  readonly rtpParameters: ms.RtpParameters;
  readonly observer = new EventEmitter();
  paused: boolean;
  #closed = false;

  constructor(
    info: ProducerInfo,
    readonly node: string,
    readonly appData: Record<string, unknown>,
    readonly remote: RemoteMedia,
  ) {
    super();
    this.id = info.id;
    this.kind = info.kind;
    this.type = info.type;
    this.rtpParameters = info.rtpParameters;
    this.paused = info.paused;
  }

  get closed(): boolean {
    return this.#closed;
  }

  pause = () => this.#call('pause');
  resume = () => this.#call('resume');

  close(): void {
    if (this.#closed) return;
    this.remote.tell(this.node, { t: 'media.producer', producerId: this.id, call: 'close' });
    this.#gone();
  }

  async #call(call: 'pause' | 'resume'): Promise<void> {
    if (this.#closed) throw new StagegateError('INVALID_STATE', `producer ${this.id} closed`);
    const state = (await this.remote.call(this.node, { t: 'media.producer', producerId: this.id, call })) as {
      paused: boolean;
    };
    this.paused = state.paused;
  }

  #gone(): void {
    this.#closed = true;
    this.remote.forget(this);
    this.observer.emit('close');
  }

  /** An event of the producer on its node. */
  event(event: string, data?: unknown): void {
    if (this.#closed) return;
    if (event === 'transportclose') {
      this.#gone();
      this.emit('transportclose');
    } else if (event === 'close') this.#gone();
    else if (event === 'score') this.emit('score', data);
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
    this.#gone();
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

  #gone(): void {
    this.#closed = true;
    this.remote.forget(this);
    this.observer.emit('close');
  }

  /** An event of the consumer on its node. */
  event(event: string, data?: unknown): void {
    if (this.#closed) return;
    switch (event) {
      case 'producerclose':
      case 'transportclose':
        this.#gone();
        this.emit(event);
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
