/**
 * A pool of mediasoup workers, one per core by default. Rooms are placed on the least loaded
 * worker. A worker that dies is reported through `onWorkerDied`; the pool replaces it. The pool
 * counts the live consumers of every worker (of every room, pipe consumers included) from
 * mediasoup's observer events: a room's media plane puts a new router on the least busy worker.
 */
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { StagegateError } from '../../shared/errors.js';
import type { Logger } from '../logger.js';

export interface WorkerPoolOptions {
  numWorkers: number;
  rtcMinPort: number;
  rtcMaxPort: number;
  logLevel: ms.WorkerLogLevel;
  logger: Logger;
  /** Called after a worker died and was replaced (its routers are gone). */
  onWorkerDied?: (dead: ms.Worker, replacement: ms.Worker | undefined) => void;
}

export class WorkerPool {
  readonly #opts: WorkerPoolOptions;
  readonly #workers: ms.Worker[] = [];
  /** Rooms placed per worker, to pick the least loaded one. */
  readonly #load = new Map<ms.Worker, number>();
  /** Live consumers per worker, every router and transport included. */
  readonly #consumers = new Map<ms.Worker, number>();
  /** Waiting for a live worker (`live()`): resolved when one is adopted, or the replacement failed. */
  readonly #waiting: (() => void)[] = [];
  #closed = false;

  private constructor(opts: WorkerPoolOptions) {
    this.#opts = opts;
  }

  /** Creates the pool with `numWorkers` workers (or adopts existing workers: see `fromWorkers`). */
  static async create(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    const workers = await Promise.all(Array.from({ length: opts.numWorkers }, () => pool.#spawn()));
    for (const w of workers) pool.#adopt(w);
    return pool;
  }

  /** Wraps workers the embedding app created; the pool does not replace them when they die. */
  static fromWorkers(
    workers: ms.Worker[],
    logger: Logger,
    onWorkerDied?: WorkerPoolOptions['onWorkerDied'],
  ): WorkerPool {
    const opts = {
      numWorkers: workers.length,
      rtcMinPort: 0,
      rtcMaxPort: 0,
      logLevel: 'warn' as const,
      logger,
      onWorkerDied,
    };
    const pool = new WorkerPool(opts);
    for (const w of workers) pool.#adopt(w, false);
    return pool;
  }

  get workers(): readonly ms.Worker[] {
    return this.#workers;
  }

  /** Resolves when a worker is live (at once, but while the only one is being replaced). */
  live(): Promise<void> {
    if (this.#closed || this.#workers.some((w) => !w.closed && !w.died)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** The live worker with the fewest rooms; counts the new room on it. */
  acquire(): ms.Worker {
    const live = this.#workers.filter((w) => !w.closed && !w.died);
    if (live.length === 0) throw new StagegateError('INVALID_STATE', 'the media server is recovering; try again');
    const worker = live.reduce((a, b) => ((this.#load.get(a) ?? 0) <= (this.#load.get(b) ?? 0) ? a : b));
    this.#load.set(worker, (this.#load.get(worker) ?? 0) + 1);
    return worker;
  }

  /** Live consumers on `worker` (0 for a worker the pool does not know). */
  consumersOn(worker: ms.Worker): number {
    return this.#consumers.get(worker) ?? 0;
  }

  /** The live workers, fewest consumers first (ties: fewest rooms, then pool order). */
  byLoad(): ms.Worker[] {
    const live = this.#workers.filter((w) => !w.closed && !w.died);
    const key = (w: ms.Worker) => [this.consumersOn(w), this.#load.get(w) ?? 0] as const;
    return live
      .map((w, i) => ({ w, i, k: key(w) }))
      .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.i - b.i)
      .map((x) => x.w);
  }

  release(worker: ms.Worker): void {
    const n = this.#load.get(worker);
    if (n !== undefined) this.#load.set(worker, Math.max(0, n - 1));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.close();
  }

  #countConsumers(worker: ms.Worker): void {
    this.#consumers.set(worker, 0);
    const add = (n: number) => {
      const now = this.#consumers.get(worker);
      if (now !== undefined) this.#consumers.set(worker, now + n);
    };
    worker.observer.on('newrouter', (router) =>
      router.observer.on('newtransport', (transport) =>
        transport.observer.on('newconsumer', (consumer) => {
          add(1);
          consumer.observer.once('close', () => add(-1));
        }),
      ),
    );
  }

  async #spawn(): Promise<ms.Worker> {
    const { rtcMinPort, rtcMaxPort, logLevel } = this.#opts;
    return mediasoup.createWorker({ logLevel, rtcMinPort, rtcMaxPort });
  }

  #adopt(worker: ms.Worker, replaceOnDeath = true): void {
    const { logger } = this.#opts;
    this.#workers.push(worker);
    this.#load.set(worker, 0);
    this.#countConsumers(worker);
    for (const resolve of this.#waiting.splice(0)) resolve();
    logger.info({ pid: worker.pid }, 'mediasoup worker started');
    worker.on('died', (error) => {
      logger.error({ pid: worker.pid, err: error }, 'mediasoup worker died');
      this.#workers.splice(this.#workers.indexOf(worker), 1);
      this.#load.delete(worker);
      this.#consumers.delete(worker);
      if (this.#closed || !replaceOnDeath) {
        this.#opts.onWorkerDied?.(worker, undefined);
        return;
      }
      this.#spawn().then(
        (replacement) => {
          if (this.#closed) return replacement.close();
          this.#adopt(replacement);
          this.#opts.onWorkerDied?.(worker, replacement);
        },
        (err: unknown) => {
          logger.error({ err }, 'could not replace the dead mediasoup worker');
          for (const resolve of this.#waiting.splice(0)) resolve();
          this.#opts.onWorkerDied?.(worker, undefined);
        },
      );
    });
  }
}
