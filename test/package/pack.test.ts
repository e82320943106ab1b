/**
 * The package as an app gets it: `npm pack` (npm's prepack builds dist/), the tarball installed
 * into a temporary plain-JavaScript app with the README's commands, `npx stagegate setup`, then
 * an app that serves, mints a token and lets a client join; `stagegate start`; the shipped
 * type declarations; and a Vite page that bundles `stagegate/client` for the browser.
 *
 * Real parts: npm (from its cache, else the registry), the packed tarball, the cached mediasoup
 * worker (~/.cache/stagegate, filled by the repository's own setup), a real server on port 0,
 * the thin client in Node with mediasoup-client's FakeHandler (Node has no WebRTC), Vite.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The README's install commands, run here as written (TARBALL: the packed file). */
const INSTALL_SERVER = 'MEDIASOUP_WORKER_BIN=skip npm install TARBALL';
const SETUP_WORKER = 'npx stagegate setup';

/**
 * The environment of a command a user would type: without the npm_* variables of the outer
 * `npm test` (npm_config_local_prefix would point a nested npm at this repository) and
 * without vitest's (NODE_ENV=test changes what Vite builds). Registry and cache settings stay.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_cafile']);
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('npm_') && !keep.has(key)) continue;
    if (key === 'INIT_CWD' || key === 'NODE_ENV' || key === 'TEST' || key.startsWith('VITEST')) continue;
    if (key.startsWith('STAGEGATE_') && key !== 'STAGEGATE_CACHE_DIR') continue;
    if (key === 'MEDIASOUP_WORKER_BIN') continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

interface Output {
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command line through the shell (as typed); rejects with its output on failure. */
function sh(line: string, cwd: string, timeoutMs = 180_000, env = userEnv()): Promise<Output> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(
      '/bin/sh',
      ['-c', line],
      { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`\`${line}\` in ${cwd} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve({ stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

let work: string;
let tarball: string;
let app: string;
let entries: { mode: string; path: string }[];

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-pack-'));
  const packed = await sh(`npm pack --pack-destination ${work}`, ROOT);
  const name = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!name) throw new Error(`npm pack wrote no tarball:\n${packed.stdout}\n${packed.stderr}`);
  tarball = path.join(work, name);
  const listing = await sh(`tar tvzf ${tarball}`, work);
  entries = listing.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      return { mode: fields[0]!, path: fields[fields.length - 1]! };
    });
  console.log(
    `[pack] ${name}: ${entries.length} files, ${(fs.statSync(tarball).size / 1024).toFixed(0)} KB (${packed.ms} ms with the build)`,
  );

  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'stagegate-pack-app', private: true, type: 'module' }, null, 2),
  );
  const installed = await sh(
    `${INSTALL_SERVER.replace('TARBALL', tarball)} --prefer-offline --no-audit --no-fund`,
    app,
  );
  console.log(`[pack] npm install of the tarball: ${installed.ms} ms`);
}, 300_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('the README shows the commands this test runs', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Server API (embedding)'), readme.indexOf('## HTTP API'));
    for (const line of [INSTALL_SERVER.replace('TARBALL', ''), SETUP_WORKER]) {
      expect(section).toContain(line);
    }
  });

  it('the tarball carries built JavaScript, type declarations, the pages and the bin; no tests, benchmarks, screenshots or sources', () => {
    const paths = entries.map((e) => e.path.replace(/^package\//, ''));
    for (const entry of ['server', 'client', 'shared']) {
      expect(paths).toContain(`dist/${entry}/index.js`);
      expect(paths).toContain(`dist/${entry}/index.d.ts`);
    }
    expect(paths).toContain('dist/server/main.js');
    expect(paths).toContain('server/cli.mjs');
    expect(paths).toContain('server/setup/worker.mjs');
    expect(paths).toContain('server/setup/build-worker.sh');
    expect(paths).toContain('client/dist/index.html');
    expect(paths).toContain('package.json');
    expect(paths).toContain('README.md');
    expect(paths.filter((p) => /(^|\/)(test|bench)|screenshots|\.build-hash/.test(p))).toEqual([]);
    expect(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
    // make-shims.sh is run directly by build-worker.sh
    expect(entries.find((e) => e.path === 'package/server/setup/make-shims.sh')?.mode).toMatch(/^-rwx/);
  });

  it('`npx stagegate setup` puts the cached mediasoup worker into the app', async () => {
    const bin = path.join(app, 'node_modules/mediasoup/worker/out/Release/mediasoup-worker');
    // mediasoup's postinstall was skipped (MEDIASOUP_WORKER_BIN): no worker before setup
    expect(fs.existsSync(bin)).toBe(false);
    // npm_config_yes=false: npx must never fetch some other "stagegate" from the registry
    const { stdout, ms } = await sh(SETUP_WORKER, app, 120_000, userEnv({ npm_config_yes: 'false' }));
    expect(stdout).toContain(`mediasoup worker in place: ${bin}`);
    expect(fs.statSync(bin).mode & 0o111).not.toBe(0);
    console.log(`[pack] npx stagegate setup: ${ms} ms`);
  }, 150_000);

  it('a plain-JavaScript app serves, mints a token and lets a client join a room', async () => {
    fs.writeFileSync(
      path.join(app, 'app.mjs'),
      `
import { createStagegate } from 'stagegate/server';
import { joinMeeting, StagegateError } from 'stagegate/client';
import { ERROR_CODES } from 'stagegate/shared';
// a dependency of stagegate; FakeHandler because Node has no WebRTC
import { FakeHandler } from 'mediasoup-client';
import * as fakeParameters from 'mediasoup-client/fakeParameters';

const stagegate = await createStagegate({ config: { port: 0, numWorkers: 1, logLevel: 'silent' } });
const { url } = await stagegate.listen();
await stagegate.rooms.create('webinar-1', 'REQUEST');
const token = await stagegate.tokens.mint({ userId: 'u1', name: 'Ada', roomId: 'webinar-1', preset: 'viewer' });
const meeting = await joinMeeting({ url, token, handlerFactory: FakeHandler.createFactory(fakeParameters) });
const page = await fetch(url + '/');
const html = await page.text();
console.log(JSON.stringify({
  roomId: meeting.roomId,
  self: { id: meeting.self.id, name: meeting.self.name, stageStatus: meeting.self.stageStatus },
  connectionState: meeting.connectionState,
  inRoom: stagegate.rooms.get('webinar-1').participants.has('u1'),
  page: { status: page.status, stagegate: html.includes('<title>Stagegate') },
  errors: typeof StagegateError === 'function' && ERROR_CODES.includes('UNAUTHORIZED'),
}));
await meeting.leave();
await stagegate.close();
`,
    );
    const { stdout } = await sh('node app.mjs', app, 60_000);
    const result = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(result).toEqual({
      roomId: 'webinar-1',
      self: { id: 'u1', name: 'Ada', stageStatus: 'OFF_STAGE' },
      connectionState: 'connected',
      inRoom: true,
      page: { status: 200, stagegate: true },
      errors: true,
    });
  }, 90_000);

  it('`stagegate start` runs the server configured by STAGEGATE_* variables and stops on SIGTERM', async () => {
    const child = spawn(path.join(app, 'node_modules/.bin/stagegate'), ['start'], {
      cwd: app,
      env: userEnv({ STAGEGATE_PORT: '0', STAGEGATE_NUM_WORKERS: '1', STAGEGATE_DEMO: 'false' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('exit', (code) => resolve(code));
      child.on('error', reject);
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL printed in 30 s:\n${output}`)), 30_000);
        const look = () => {
          const m = /http:\/\/127\.0\.0\.1:\d+/.exec(output);
          if (m) {
            clearTimeout(timer);
            resolve(m[0]);
          }
        };
        child.stdout.on('data', look);
        exited.then(
          () => reject(new Error(`stagegate start exited:\n${output}`)),
          (err: unknown) => reject(err),
        );
      });
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok', workers: 1 });
      // STAGEGATE_DEMO=false reached the server: the demo routes are off
      expect((await fetch(`${url}/demo/rooms`, { method: 'POST' })).status).toBe(404);
      expect((await fetch(`${url}/`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);

  it('the shipped type declarations type-check an app using stagegate/server and stagegate/client', async () => {
    const dir = path.join(app, 'typed');
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2023', 'DOM'],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          typeRoots: [path.join(ROOT, 'node_modules/@types')],
          types: ['node'],
        },
        files: ['app.mts'],
      }),
    );
    fs.writeFileSync(
      path.join(dir, 'app.mts'),
      `
import { createStagegate, type Stagegate } from 'stagegate/server';
import { joinMeeting, type Meeting, type StageStatus } from 'stagegate/client';
import { ERROR_CODES, type ErrorCode } from 'stagegate/shared';

const stagegate: Stagegate = await createStagegate({ config: { port: 0 } });
const token: string = await stagegate.tokens.mint({ userId: 'u1', name: 'Ada', roomId: 'r', preset: 'viewer' });
const meeting: Meeting = await joinMeeting({ url: 'http://127.0.0.1:3000', token });
const status: StageStatus = meeting.stage.status;
const code: ErrorCode = ERROR_CODES[0];
// @ts-expect-error: the types are real, not any
const wrong: number = meeting.stage.status;
export { status, code, wrong };
`,
    );
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    await sh(`node ${tsc} -p tsconfig.json`, dir, 60_000);
  }, 90_000);

  it('a Vite app bundles stagegate/client for the browser without node-only code', async () => {
    const web = path.join(app, 'web');
    fs.mkdirSync(web);
    fs.writeFileSync(
      path.join(web, 'index.html'),
      '<!doctype html><html><body><script type="module" src="./main.js"></script></body></html>\n',
    );
    fs.writeFileSync(
      path.join(web, 'main.js'),
      `import { joinMeeting } from 'stagegate/client';
const params = new URLSearchParams(location.search);
const meeting = await joinMeeting({ url: location.origin, token: params.get('token') });
meeting.stage.on('stageStatusUpdate', ({ new: status }) => (document.body.dataset.status = status));
`,
    );
    // Vite from this repository's devDependencies: the same bits as the app's `npm install -D vite`, offline
    const vite = path.join(ROOT, 'node_modules/vite/bin/vite.js');
    const { stdout, stderr } = await sh(`node ${vite} build --logLevel warn`, web, 90_000);
    expect(`${stdout}${stderr}`).not.toMatch(/externalized for browser compatibility/);
    const assets = path.join(web, 'dist/assets');
    const js = fs
      .readdirSync(assets)
      .filter((f) => f.endsWith('.js'))
      .map((f) => fs.readFileSync(path.join(assets, f), 'utf8'))
      .join('\n');
    expect(js).toContain('stageStatusUpdate'); // the client is in the bundle
    expect(js).toContain('mediasoup-client'); // and its WebRTC handling
    expect(js).not.toMatch(/["'`]node:|__vite-browser-external|mediasoup-worker|createWorker/);
  }, 120_000);
});
