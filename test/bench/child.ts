/** Forks a TypeScript child (through tsx's loader) and talks to it with id-matched IPC messages. */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** The child's ready message (e.g. { url, workerPid }). */
  info: Record<string, unknown>;
  /** Sends { cmd, ...data } and resolves with the child's reply carrying the same id. */
  call<T = Record<string, unknown>>(cmd: string, data?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Asks the child to exit, then kills it if it has not within 3 s. */
  stop(): Promise<void>;
}

export async function forkTs(file: string, args: string[] = [], execArgv: string[] = []): Promise<Child> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const proc = fork(file, args, {
    execArgv: ['--import', tsx, ...execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  let info: Record<string, unknown> = {};
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`child ${file} did not start within 30 s`)), 30_000);
    proc.once('exit', (code) => reject(new Error(`child ${file} exited (${code}) before it was ready`)));
    proc.on('message', (m: Record<string, unknown>) => {
      if (m.ready) {
        info = m;
        clearTimeout(t);
        resolve();
        return;
      }
      const f = pending.get(Number(m.id));
      if (f) {
        pending.delete(Number(m.id));
        f(m);
      }
    });
  });
  await ready;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    pid: proc.pid!,
    info,
    call<T>(cmd: string, data: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const t = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`child: no answer to ${cmd} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, (m) => {
          clearTimeout(t);
          if (typeof m.error === 'string') reject(new Error(m.error));
          else resolve(m as T);
        });
        proc.send({ cmd, id, ...data });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.send({ cmd: 'exit', id: 0 });
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}
