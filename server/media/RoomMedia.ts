/**
 * The media plane of one room: its routers on the process's mediasoup workers, where each
 * transport goes, and the pipes between routers. It knows nothing of the stage: the room
 * decides who may send and receive, then asks here for a transport and for a producer to be
 * made consumable on a receive transport's router.
 *
 * - **Origin**: one router on the worker the registry chose for the room. Every send transport,
 *   so every producer, is there.
 * - **Edges**: at most one router per other worker, created when placement first needs it.
 * - **Placement** of a receive transport: the router with the least load (consumers, counting a
 *   viewer who has not consumed yet as one consumer per producer of the room) among those below
 *   `maxConsumersPerRouter`, the origin first on a tie; when all are full, a new edge on the
 *   worker with the fewest consumers in the process; when every worker has one, the least
 *   loaded router. A participant's send and receive transports may so be on different workers.
 * - **Pipes**: the first consume of a producer on an edge pipes it there (`pipeToRouter`, the
 *   producer's id kept); concurrent first consumers share one pipe (one promise per producer and
 *   edge). A pipe closes with its producer, right when the producer closes, and the pipe
 *   transports with the last pipe (MediaRouter). A pipe finished after its producer closed is
 *   closed at once.
 * - **Worker death**: a dead edge takes its transports; `onEdgeLost` tells the room whose they
 *   were (so does `transportsLost` for transports on another node that went away). A dead origin
 *   is the registry's business (`moveOrigin`), or in cluster mode, for a room's part on another
 *   node, that node's (it drops the part).
 */
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type { Logger } from '../logger.js';
import { MediaRouter, type RouterCounts } from './MediaRouter.js';
import { SOCKET_BUFFER_BYTES } from './rtp.js';
import type { WorkerPool } from './WorkerPool.js';

export interface RtcOptions {
  listenIp: string;
  announcedAddress?: string | undefined;
}

export interface TransportAppData {
  userId: string;
  direction: 'send' | 'recv';
  /** Cluster mode: the node the participant's socket is on, when not this one (see `remote`). */
  node?: string | undefined;
  [key: string]: unknown;
}

/**
 * Cluster mode (server/cluster/RemoteMedia.ts): transports of participants connected to other
 * nodes are there, and producers are piped between nodes. Without it everything is local.
 */
export interface RemoteMediaPort {
  /** A transport on `node`: a proxy with the members of `ms.Transport` the room uses. */
  createTransport(node: string, appData: TransportAppData): Promise<ms.Transport>;
  /** Whether `transport` is one of this port's proxies. */
  owns(transport: ms.Transport): boolean;
  /** Whether `producer` is one of this port's proxies (a producer on another node). */
  ownsProducer(producer: ms.Producer): boolean;
  /**
   * Makes `producer` consumable on `transport`'s node (pipes it there once). Resolves to the
   * producer as it is on this node's origin when the transport is here, else undefined.
   */
  prepareConsume(transport: ms.Transport, producer: ms.Producer): Promise<ms.Producer | undefined>;
  /** A producer on another node, piped into this node's origin (for the active speaker observer). */
  pipeHome(producer: ms.Producer): Promise<ms.Producer>;
  /** The room's media closed: every node drops its part. */
  close(): void;
}

/**
 * Makes a transport on the router placement chose. The default makes a WebRtcTransport; an
 * embedding app or a benchmark may make another kind (a PlainTransport for an RTP tool).
 */
export type TransportFactory = (router: ms.Router, appData: TransportAppData) => Promise<ms.Transport>;

export interface RoomMediaOptions {
  pool: WorkerPool;
  rtc: RtcOptions;
  /** Consumers a router of the room carries before placement opens one on another worker. */
  maxConsumersPerRouter: number;
  log: Logger;
}

export interface MediaPlacement {
  routers: RouterCounts[];
  /** Per participant with a transport: the id of the router of each. */
  participants: Record<string, { send?: string; recv?: string }>;
}

interface Pipe {
  creating: Promise<ms.Producer>;
  producer?: ms.Producer;
}

export class RoomMedia {
  #origin: MediaRouter;
  readonly #edges = new Map<ms.Worker, MediaRouter>();
  /** Producer id → edge → its pipe there (being created, or live). */
  readonly #pipes = new Map<string, Map<MediaRouter, Pipe>>();
  readonly #routerOf = new WeakMap<ms.Transport, MediaRouter>();
  readonly #lostListeners: ((transportIds: Set<string>) => void)[] = [];
  readonly #speakerListeners: ((producer: ms.Producer) => void)[] = [];
  #closed = false;
  /** Cluster mode: receive transports of participants connected to other nodes go there. */
  remote: RemoteMediaPort | undefined;

  private constructor(
    origin: MediaRouter,
    readonly opts: RoomMediaOptions,
  ) {
    this.#origin = origin;
    this.#wireSpeakers(origin);
  }

  static async create(worker: ms.Worker, opts: RoomMediaOptions): Promise<RoomMedia> {
    const origin = new MediaRouter(worker, 'origin');
    await origin.ready;
    return new RoomMedia(origin, opts);
  }

  /** The origin router (producers, send transports); its RTP capabilities are every router's. */
  get router(): ms.Router {
    return this.#origin.router;
  }

  get worker(): ms.Worker {
    return this.#origin.worker;
  }

  /** Origin first, then the edges in creation order (ready or not). */
  routers(): MediaRouter[] {
    return [this.#origin, ...this.#edges.values()];
  }

  /** The router a transport made here is on. */
  routerOf(transport: ms.Transport): MediaRouter | undefined {
    return this.#routerOf.get(transport);
  }

  /**
   * Called with transports that went away by themselves (their owners need a reset): those an
   * edge took when its worker died, and (cluster mode) those another node lost.
   */
  onEdgeLost(listener: (transportIds: Set<string>) => void): void {
    this.#lostListeners.push(listener);
  }

  /** Transports on another node went away by themselves (its worker died, it dropped its part). */
  transportsLost(transportIds: Set<string>): void {
    if (transportIds.size === 0) return;
    for (const listener of this.#lostListeners) listener(transportIds);
  }

  // ------------------------------------------------------------------ active speaker
  /** Called with the audio producer that became the dominant speaker (origin's observer). */
  onDominantSpeaker(listener: (producer: ms.Producer) => void): void {
    this.#speakerListeners.push(listener);
  }

  /** Adds an audio producer (on the origin) to the active speaker observer. */
  async observeSpeaker(producer: ms.Producer): Promise<void> {
    // cluster mode: a producer on another node is observed as piped here
    if (this.remote?.ownsProducer(producer)) producer = await this.remote.pipeHome(producer);
    const observer = await this.#origin.speakers;
    if (!observer || observer.closed || producer.closed) return;
    await observer.addProducer({ producerId: producer.id }).catch((err: unknown) => {
      if (!producer.closed && !observer.closed) throw err;
    });
  }

  #wireSpeakers(origin: MediaRouter): void {
    origin.speakers?.then(
      (observer) =>
        observer.on('dominantspeaker', ({ producer }) => {
          if (this.#origin !== origin || producer.closed) return;
          for (const listener of this.#speakerListeners) listener(producer);
        }),
      () => undefined,
    );
  }

  // ------------------------------------------------------------------ transports
  /** A send transport on the origin, or a receive transport where placement says. */
  async createTransport(appData: TransportAppData, make: TransportFactory = this.#webRtc): Promise<ms.Transport> {
    this.#assertOpen();
    if (this.remote && appData.node) {
      return this.remote.createTransport(appData.node, appData);
    }
    const recv = appData.direction === 'recv';
    const target = recv ? this.#place() : this.#origin;
    if (recv) target.pending++;
    let transport: ms.Transport;
    try {
      transport = await make(await target.ready, appData);
    } finally {
      if (recv) target.pending--;
    }
    if (target.closed || this.#closed) {
      transport.close();
      throw new StagegateError('INVALID_STATE', 'the media server worker went away while the transport was created');
    }
    this.#routerOf.set(transport, target);
    return transport;
  }

  readonly #webRtc: TransportFactory = (router, appData) => {
    const { listenIp, announcedAddress } = this.opts.rtc;
    const buffers = { recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES };
    const listen = announcedAddress ? { ip: listenIp, announcedAddress, ...buffers } : { ip: listenIp, ...buffers };
    return router.createWebRtcTransport({
      listenInfos: [
        { protocol: 'udp', ...listen },
        { protocol: 'tcp', ...listen },
      ],
      preferUdp: true,
      appData,
    });
  };

  // ------------------------------------------------------------------ consuming
  /**
   * Makes `producer` (on the origin) consumable on `transport`'s router with these
   * capabilities: checks the capabilities, and pipes the producer there on an edge.
   */
  async prepareConsume(
    transport: ms.Transport,
    producer: ms.Producer,
    rtpCapabilities: ms.RtpCapabilities,
  ): Promise<void> {
    if (this.remote && (this.remote.owns(transport) || this.remote.ownsProducer(producer))) {
      if (transport.closed) throw new StagegateError('INVALID_STATE', 'your recv transport is gone; create a new one');
      // on another node: piped there, consumed there; here: consumed as piped into the origin
      const here = await this.remote.prepareConsume(transport, producer);
      if (!here) return;
      producer = here;
    }
    const at = this.#routerOf.get(transport);
    if (!at || at.closed || transport.closed) {
      throw new StagegateError('INVALID_STATE', 'your recv transport is gone; create a new one');
    }
    if (!this.#origin.router.canConsume({ producerId: producer.id, rtpCapabilities })) {
      throw new StagegateError('UNSUPPORTED', 'your RTP capabilities cannot receive this producer');
    }
    if (at !== this.#origin) await this.#pipe(producer, at);
  }

  #pipe(producer: ms.Producer, edge: MediaRouter): Promise<ms.Producer> {
    if (producer.closed) return Promise.reject(closedMeanwhile(producer.id));
    let perEdge = this.#pipes.get(producer.id);
    if (!perEdge) {
      const created = new Map<MediaRouter, Pipe>();
      this.#pipes.set(producer.id, created);
      producer.observer.once('close', () => this.#unpipe(producer.id));
      perEdge = created;
    }
    const existing = perEdge.get(edge);
    if (existing) return existing.creating;
    const pipe: Pipe = { creating: this.#openPipe(producer, edge) };
    perEdge.set(edge, pipe);
    const map = perEdge;
    pipe.creating.then(
      (pp) => {
        pipe.producer = pp;
        pp.observer.once('close', () => {
          if (map.get(edge) === pipe) map.delete(edge);
        });
      },
      () => {
        if (map.get(edge) === pipe) map.delete(edge);
      },
    );
    return pipe.creating;
  }

  async #openPipe(producer: ms.Producer, edge: MediaRouter): Promise<ms.Producer> {
    const origin = this.#origin;
    edge.pipeOpened();
    let pipeProducer: ms.Producer;
    try {
      const router = await edge.ready;
      ({ pipeProducer } = (await origin.router.pipeToRouter({ producerId: producer.id, router })) as {
        pipeProducer: ms.Producer;
      });
    } catch (err) {
      edge.pipeClosed();
      if (producer.closed || edge.closed || origin.closed) throw closedMeanwhile(producer.id);
      throw err;
    }
    pipeProducer.observer.once('close', () => edge.pipeClosed());
    // The producer closed, or its edge or origin went away, while the pipe was made.
    if (producer.closed || edge.closed || origin !== this.#origin || !this.#pipes.has(producer.id)) {
      pipeProducer.close();
      throw closedMeanwhile(producer.id);
    }
    this.opts.log.debug({ producerId: producer.id, edgeWorkerPid: edge.worker.pid }, 'producer piped to an edge');
    return pipeProducer;
  }

  /** The producer closed: close its pipes now (their consumers close with them). */
  #unpipe(producerId: string): void {
    const perEdge = this.#pipes.get(producerId);
    if (!perEdge) return;
    this.#pipes.delete(producerId);
    for (const pipe of perEdge.values()) {
      if (pipe.producer) pipe.producer.close();
      else pipe.creating.then((pp) => pp.close()).catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ placement
  #place(): MediaRouter {
    const max = this.opts.maxConsumersPerRouter;
    const perViewer = Math.max(1, this.#origin.producers);
    const live = this.routers().filter((r) => !r.closed);
    const least = (rs: MediaRouter[]) => rs.reduce((a, b) => (b.load(perViewer) < a.load(perViewer) ? b : a));
    const below = live.filter((r) => r.load(perViewer) < max);
    if (below.length > 0) return least(below);
    const free = this.opts.pool.byLoad().find((w) => w !== this.#origin.worker && !this.#edges.has(w));
    if (free) return this.#openEdge(free);
    if (live.length === 0) throw new StagegateError('INVALID_STATE', 'the media server is recovering; try again');
    return least(live);
  }

  #openEdge(worker: ms.Worker): MediaRouter {
    const edge = new MediaRouter(worker, 'edge');
    this.#edges.set(worker, edge);
    const forget = () => {
      if (this.#edges.get(worker) === edge) this.#edges.delete(worker);
    };
    edge.ready.then(
      (router) => {
        router.on('workerclose', () => this.#edgeLost(edge));
        this.opts.log.info({ workerPid: worker.pid }, 'room router opened on another worker');
      },
      (err: unknown) => {
        forget();
        this.opts.log.error({ err, workerPid: worker.pid }, 'could not create a router on another worker');
      },
    );
    return edge;
  }

  #edgeLost(edge: MediaRouter): void {
    if (this.#edges.get(edge.worker) !== edge) return;
    this.#edges.delete(edge.worker);
    const lost = new Set(edge.transports().map((t) => t.id));
    this.opts.log.warn({ workerPid: edge.worker.pid, transports: lost.size }, 'an edge worker of the room died');
    this.transportsLost(lost);
  }

  // ------------------------------------------------------------------ lifecycle
  /**
   * A new origin on `worker` (the old one's worker died): every router of the room closes, with
   * every transport, producer, consumer and pipe.
   */
  async moveOrigin(worker: ms.Worker): Promise<void> {
    const next = new MediaRouter(worker, 'origin');
    await next.ready;
    if (this.#closed) return next.close();
    const old = this.routers();
    this.#origin = next;
    this.#wireSpeakers(next);
    this.#edges.clear();
    this.#pipes.clear();
    for (const r of old) r.close();
  }

  placement(): MediaPlacement {
    const participants: MediaPlacement['participants'] = {};
    for (const r of this.routers()) {
      if (r.closed) continue;
      const id = r.counts().id;
      for (const t of r.transports()) {
        const { userId, direction } = t.appData as Partial<TransportAppData>;
        if (!userId || (direction !== 'send' && direction !== 'recv')) continue;
        (participants[userId] ??= {})[direction] = id;
      }
    }
    return {
      routers: this.routers()
        .filter((r) => !r.closed)
        .map((r) => r.counts()),
      participants,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.remote?.close();
    for (const r of this.routers()) r.close();
    this.#edges.clear();
    this.#pipes.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StagegateError('NOT_FOUND', 'the room is closed');
  }
}

function closedMeanwhile(producerId: string): StagegateError {
  return new StagegateError('NOT_FOUND', `producer ${producerId} closed meanwhile`);
}
