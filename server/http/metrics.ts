/**
 * Prometheus metrics (prom-client), one registry per Stagegate instance so several can run in
 * one process. Gauges are read from the live rooms at scrape time.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { STAGE_STATUSES } from '../../shared/stage.js';
import type { RoomMedia } from '../media/RoomMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { RoomRegistry } from '../room/RoomRegistry.js';

export interface Metrics {
  registry: Registry;
  /** Counts one signaling request by method and outcome ('ok' or an error code). */
  countRequest(method: string, outcome: string): void;
}

/** `hosted`: cluster mode, this node's parts of other nodes' rooms (routers on this node's workers). */
export function createMetrics(rooms: RoomRegistry, pool: WorkerPool, hosted: () => RoomMedia[] = () => []): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'stagegate_process_' });

  new Gauge({
    name: 'stagegate_rooms',
    help: 'Open rooms',
    registers: [registry],
    collect() {
      this.set(rooms.list().length);
    },
  });
  new Gauge({
    name: 'stagegate_participants',
    help: 'Participants by stage status',
    labelNames: ['stage_status'],
    registers: [registry],
    collect() {
      const counts = Object.fromEntries(STAGE_STATUSES.map((s) => [s, 0]));
      for (const room of rooms.list()) for (const m of room.stage.members()) counts[m.status]! += 1;
      for (const [status, n] of Object.entries(counts)) this.set({ stage_status: status }, n);
    },
  });
  new Gauge({
    name: 'stagegate_producers',
    help: 'Live producers by kind',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const counts = { audio: 0, video: 0 };
      for (const room of rooms.list())
        for (const p of room.participants.values())
          for (const { producer } of p.producers.values()) counts[producer.kind]++;
      for (const [kind, n] of Object.entries(counts)) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: 'stagegate_consumers',
    help: 'Live consumers',
    registers: [registry],
    collect() {
      let n = 0;
      for (const room of rooms.list()) for (const p of room.participants.values()) n += p.consumers.size;
      this.set(n);
    },
  });
  new Gauge({
    name: 'stagegate_worker_consumers',
    help: "Live consumers on each mediasoup worker (participants' and pipe consumers, every room)",
    labelNames: ['pid'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of pool.workers) if (!w.closed && !w.died) this.set({ pid: String(w.pid) }, pool.consumersOn(w));
    },
  });
  new Gauge({
    name: 'stagegate_worker_routers',
    help: "Routers of rooms on each mediasoup worker, by role (origin: producers; edge: viewers fed by pipes), a cluster node's parts of other nodes' rooms included",
    labelNames: ['pid', 'role'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of pool.workers)
        if (!w.closed && !w.died) for (const role of ['origin', 'edge']) this.set({ pid: String(w.pid), role }, 0);
      for (const media of [...rooms.list().map((room) => room.media), ...hosted()])
        for (const r of media.routers()) if (!r.closed) this.inc({ pid: String(r.worker.pid), role: r.role });
    },
  });
  new Gauge({
    name: 'stagegate_worker_cpu_seconds',
    help: 'CPU time (user + system) used by each mediasoup worker',
    labelNames: ['pid'],
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        pool.workers.map(async (w) => {
          if (w.closed || w.died) return;
          const u = await w.getResourceUsage().catch(() => undefined);
          if (u) this.set({ pid: String(w.pid) }, (u.ru_utime + u.ru_stime) / 1000);
        }),
      );
    },
  });
  const requests = new Counter({
    name: 'stagegate_requests_total',
    help: 'Signaling requests by method and outcome (ok or error code)',
    labelNames: ['method', 'outcome'],
    registers: [registry],
  });
  const stageActions = new Counter({
    name: 'stagegate_stage_actions_total',
    help: 'Stage actions by action and result (ok or error code)',
    labelNames: ['action', 'result'],
    registers: [registry],
  });

  return {
    registry,
    countRequest(method, outcome) {
      requests.inc({ method, outcome });
      if (method.startsWith('stage.')) stageActions.inc({ action: method.slice(6), result: outcome });
    },
  };
}
