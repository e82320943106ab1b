/**
 * Child process for the signaling benchmark: runs one server (argv[2]: `stagegate` or `baseline`)
 * on 127.0.0.1 port 0, so its CPU and memory are its own. Stagegate gets the token secret from
 * BENCH_TOKEN_SECRET (the bench mints the tokens) and one room, `signaling`, in REQUEST mode.
 * Run with --expose-gc. IPC: { cmd: 'stats' } → { memory, cpu }; { cmd: 'gc' }; { cmd: 'exit' }.
 */
import { performance } from 'node:perf_hooks';
import type { Server } from 'socket.io';
import { createStagegate } from '../../server/index.js';
import { createBaselineServer } from './baseline-server.js';

const kind = process.argv[2];
let close: () => Promise<void>;
let url: string;
let workerPid: number;
let ioServer: Server;

if (kind === 'stagegate') {
  const sg = await createStagegate({
    useEnv: false,
    config: { port: 0, numWorkers: 1, logLevel: 'silent', demo: false, tokenSecret: process.env.BENCH_TOKEN_SECRET },
  });
  url = (await sg.listen()).url;
  await sg.rooms.create('signaling', 'REQUEST');
  workerPid = sg.pool.workers[0]!.pid;
  ioServer = sg.io;
  close = () => sg.close();
} else if (kind === 'baseline') {
  const bl = await createBaselineServer();
  url = bl.url;
  workerPid = bl.worker.pid;
  ioServer = bl.io;
  close = () => bl.close();
} else {
  throw new Error(`unknown server kind ${kind}`);
}

/**
 * Server-side request time: from socket.io dispatching a request (its websocket frame parsed) to
 * the handler calling the ack, per method. A socket middleware wraps the ack; the server's own
 * code is untouched. Queueing before the dispatch (a busy event loop) is not in it.
 */
const timings = new Map<string, number[]>();
ioServer.on('connection', (socket) => {
  socket.use((packet, next) => {
    const ack = packet[packet.length - 1];
    if (typeof ack === 'function') {
      const t0 = performance.now();
      const method = String(packet[0]);
      packet[packet.length - 1] = (...a: unknown[]) => {
        let list = timings.get(method);
        if (!list) timings.set(method, (list = []));
        if (list.length < 100_000) list.push(performance.now() - t0);
        (ack as (...x: unknown[]) => void)(...a);
      };
    }
    next();
  });
});
let elu = performance.eventLoopUtilization();

const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { cmd: string; id: number }) => {
  const reply = (data: object) => process.send?.({ id: m.id, ...data });
  if (m.cmd === 'stats') reply({ memory: process.memoryUsage(), cpu: process.cpuUsage() });
  else if (m.cmd === 'timings') {
    // Event-loop utilization since the last call, and the request times collected since then.
    const now = performance.eventLoopUtilization();
    const since = performance.eventLoopUtilization(now, elu);
    elu = now;
    reply({ timings: Object.fromEntries(timings), elu: since.utilization });
    timings.clear();
  } else if (m.cmd === 'gc') {
    gc?.();
    gc?.();
    reply({ gc: !!gc });
  } else if (m.cmd === 'exit') {
    void close().finally(() => process.exit(0));
  }
});
process.on('disconnect', () => void close().finally(() => process.exit(0)));
process.send?.({ id: 0, ready: true, url, workerPid });
