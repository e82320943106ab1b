/**
 * A pool of mediasoup workers, one per core by default. Rooms are placed on the least loaded
 * worker. A worker that dies is reported through `onWorkerDied`; the pool replaces it.
 */
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
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

  /** The live worker with the fewest rooms; counts the new room on it. */
  acquire(): ms.Worker {
    const live = this.#workers.filter((w) => !w.closed && !w.died);
    if (live.length === 0) throw new Error('no live mediasoup worker');
    const worker = live.reduce((a, b) => ((this.#load.get(a) ?? 0) <= (this.#load.get(b) ?? 0) ? a : b));
    this.#load.set(worker, (this.#load.get(worker) ?? 0) + 1);
    return worker;
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

  async #spawn(): Promise<ms.Worker> {
    const { rtcMinPort, rtcMaxPort, logLevel } = this.#opts;
    return mediasoup.createWorker({ logLevel, rtcMinPort, rtcMaxPort });
  }

  #adopt(worker: ms.Worker, replaceOnDeath = true): void {
    const { logger } = this.#opts;
    this.#workers.push(worker);
    this.#load.set(worker, 0);
    logger.info({ pid: worker.pid }, 'mediasoup worker started');
    worker.on('died', (error) => {
      logger.error({ pid: worker.pid, err: error }, 'mediasoup worker died');
      this.#workers.splice(this.#workers.indexOf(worker), 1);
      this.#load.delete(worker);
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
          this.#opts.onWorkerDied?.(worker, undefined);
        },
      );
    });
  }
}
