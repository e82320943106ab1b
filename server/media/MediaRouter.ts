/**
 * One router of a room on one mediasoup worker: the room's origin (where producers are created)
 * or an edge (viewers' receive transports, fed by pipes from the origin). It counts what the
 * worker holds for it from mediasoup's observer events, so placement reads the worker's truth:
 * transports, consumers (pipe consumers included), producers and pipe producers.
 *
 * Its pipe transports (created by `router.pipeToRouter`, one pair per origin and edge) close
 * when the last pipe through them closes: `pipeOpened()` / `pipeClosed()` keep that count,
 * pipes still being created included, so nothing is left in `router.dump()` once every piped
 * producer closed.
 */
import type { types as ms } from 'mediasoup';
import { MEDIA_CODECS } from './rtp.js';

/** How often the active speaker is re-evaluated (mediasoup's default is 300 ms). */
const SPEAKER_INTERVAL_MS = 300;

export type RouterRole = 'origin' | 'edge';

export interface RouterCounts {
  id: string;
  role: RouterRole;
  workerPid: number;
  /** WebRTC (or bench-made plain) transports of participants; pipe transports not counted. */
  transports: number;
  /** Every consumer in the router: participants' and pipe consumers (on the origin). */
  consumers: number;
  /** Producers of participants (origin). */
  producers: number;
  /** Producers piped in from the origin (edge). */
  pipeProducers: number;
  /** Pipe transports (one per origin–edge pair while any pipe is open). */
  pipeTransports: number;
}

export class MediaRouter {
  /** Resolves once the worker created the router. */
  readonly ready: Promise<ms.Router>;
  /**
   * The origin's ActiveSpeakerObserver (the room's audio producers are added to it as they are
   * created; a closed producer leaves it in the worker); undefined on an edge.
   */
  readonly speakers: Promise<ms.ActiveSpeakerObserver> | undefined;
  /** Receive transports being created on this router right now (placement counts them). */
  pending = 0;
  #router: ms.Router | undefined;
  #closed = false;
  #consumers = 0;
  #producers = 0;
  #pipeProducers = 0;
  /** Pipes open or being opened through this (edge) router. */
  #pipes = 0;
  readonly #pipeTransports = new Set<ms.Transport>();
  /** Participants' transports → their consumers (recv) or producers (send). */
  readonly #transports = new Map<ms.Transport, number>();

  constructor(
    readonly worker: ms.Worker,
    readonly role: RouterRole,
  ) {
    this.ready = worker.createRouter({ mediaCodecs: MEDIA_CODECS, appData: { role } }).then((router) => {
      this.#router = router;
      if (this.#closed) router.close();
      else this.#observe(router);
      return router;
    });
    if (role === 'origin') {
      this.speakers = this.ready.then((router) =>
        router.createActiveSpeakerObserver({ interval: SPEAKER_INTERVAL_MS }),
      );
      this.speakers.catch(() => undefined); // the router failed or closed: `ready` reports it
    }
  }

  /** The mediasoup router; only after `ready`. */
  get router(): ms.Router {
    if (!this.#router) throw new Error('router not ready');
    return this.#router;
  }

  get closed(): boolean {
    return this.#closed || !!this.#router?.closed;
  }

  get consumers(): number {
    return this.#consumers;
  }

  get producers(): number {
    return this.#producers;
  }

  /**
   * Consumers this router carries or is about to: its consumers, plus `perViewer` for every
   * receive transport with no consumer yet and every one being created (a viewer who just
   * arrived consumes the stage's producers next).
   */
  load(perViewer: number): number {
    let idle = this.pending;
    for (const [t, n] of this.#transports) if (n === 0 && t.appData.direction === 'recv') idle++;
    return this.#consumers + idle * perViewer;
  }

  /** Participants' transports on this router (not the pipe transports). */
  transports(): ms.Transport[] {
    return [...this.#transports.keys()];
  }

  /** A pipe into this router starts being created. */
  pipeOpened(): void {
    this.#pipes++;
  }

  /** A pipe closed (or failed): the last one takes the pipe transports with it. */
  pipeClosed(): void {
    this.#pipes = Math.max(0, this.#pipes - 1);
    if (this.#pipes > 0) return;
    // Closing one side closes its partner in the origin (mediasoup's pipeToRouter wiring).
    for (const t of [...this.#pipeTransports]) t.close();
  }

  counts(): RouterCounts {
    return {
      id: this.#router?.id ?? '',
      role: this.role,
      workerPid: this.worker.pid,
      transports: this.#transports.size,
      consumers: this.#consumers,
      producers: this.#producers,
      pipeProducers: this.#pipeProducers,
      pipeTransports: this.#pipeTransports.size,
    };
  }

  /** Closes the router and everything in it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#router?.close();
  }

  #observe(router: ms.Router): void {
    router.observer.on('newtransport', (t) => {
      const pipe = t.type === 'pipe';
      if (pipe) this.#pipeTransports.add(t);
      else this.#transports.set(t, 0);
      const bump = (n: number) => {
        const now = this.#transports.get(t);
        if (now !== undefined) this.#transports.set(t, now + n);
      };
      t.observer.on('newconsumer', (c) => {
        this.#consumers++;
        bump(1);
        c.observer.once('close', () => {
          this.#consumers--;
          bump(-1);
        });
      });
      t.observer.on('newproducer', (p) => {
        if (pipe) this.#pipeProducers++;
        else this.#producers++;
        p.observer.once('close', () => (pipe ? this.#pipeProducers-- : this.#producers--));
      });
      t.observer.once('close', () => {
        this.#pipeTransports.delete(t);
        // A closing router keeps the list: whose transports a dead worker took (RoomMedia).
        if (!router.closed) this.#transports.delete(t);
      });
    });
  }
}
