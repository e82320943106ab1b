/**
 * `npm start` (server/main.ts) as a process: the banner shows a generated API secret exactly once,
 * and never a configured one.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TSX = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');

/** Starts main.ts, returns everything it printed once the banner is out, then stops it. */
async function start(env: Record<string, string>): Promise<{ output: string; url: string }> {
  const child = spawn(process.execPath, [TSX, 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      STAGEGATE_PORT: '0',
      STAGEGATE_NUM_WORKERS: '1',
      STAGEGATE_LOG_LEVEL: 'info',
      STAGEGATE_API_SECRET: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner within 30 s:\n${output}`)), 30_000);
      const check = () => {
        if (!/API {2}\S+/.test(output)) return;
        clearTimeout(timer);
        resolve();
      };
      child.stdout.on('data', check);
      child.once('exit', (code) => reject(new Error(`exited ${code}:\n${output}`)));
    });
    await new Promise((r) => setTimeout(r, 300)); // anything printed right after the banner
    const url = /Open (http:\/\/\S+)\//.exec(output)![1]!;
    return { output, url };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

it('prints a generated API secret exactly once', async () => {
  const { output } = await start({});
  const secret = /Authorization: Bearer (\S+)/.exec(output)?.[1];
  expect(secret).toMatch(/^[\w-]{24,}$/);
  expect(output.split(secret!).length - 1).toBe(1);
});

it('never prints a configured API secret', async () => {
  const secret = 'configured-secret-0123456789';
  const { output } = await start({ STAGEGATE_API_SECRET: secret });
  expect(output).toContain('Authorization: Bearer <STAGEGATE_API_SECRET>');
  expect(output).not.toContain(secret);
  expect(output).not.toContain('configured-secret');
});

it('a busy port says which variable to set, without a stack trace, and exits 1', async () => {
  // the port taken by another server on the same address (as a second `npm start` finds it)
  const net = await import('node:net');
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '0.0.0.0', r));
  const port = (busy.address() as { port: number }).port;
  try {
    const child = spawn(process.execPath, [TSX, 'server/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, STAGEGATE_PORT: String(port), STAGEGATE_HOST: '0.0.0.0', STAGEGATE_NUM_WORKERS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(1);
    expect(output).toContain(`Port ${port} on 0.0.0.0 is already in use`);
    expect(output).toContain(`STAGEGATE_PORT=${port + 1} npm start`);
    expect(output).not.toMatch(/EADDRINUSE|\n\s+at /);
  } finally {
    busy.close();
  }
}, 40_000);
