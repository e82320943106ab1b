#!/usr/bin/env node
// Stagegate's set-up step, run by npm's prestart/pretest (Node built-ins only: it runs before
// node_modules exists). Idempotent and quick when nothing is missing.
//
//   node server/setup/setup.mjs            npm dependencies + mediasoup worker
//   node server/setup/setup.mjs --browser  the same + Chromium for the browser tests
//
// The mediasoup worker: the official prebuilt binary when it can be downloaded, else a build
// from source against Debian's libraries (build-worker.sh). Either way the binary is cached
// outside the repo, keyed by mediasoup version, platform, arch and kernel major, and copied to
// node_modules/mediasoup/worker/out/Release/mediasoup-worker where mediasoup looks for it.
import { spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const wantBrowser = process.argv.includes('--browser');
const started = Date.now();

const log = (msg) => console.log(`[setup] ${msg}`);

function fail(msg) {
  console.error(`\n[setup] ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) fail(`'${cmd} ${args.join(' ')}' failed (exit ${r.status ?? r.signal})`);
}

// ---------------------------------------------------------------- Debian packages
const isRoot = process.getuid?.() === 0;

function missingDebs(pkgs) {
  return pkgs.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
}

let aptUpdated = false;
function ensureDebs(pkgs, why) {
  const missing = missingDebs(pkgs);
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!isRoot) {
    fail(
      `${why} needs Debian packages that are not installed: ${missing.join(' ')}\n` +
        `[setup] Run this once, then the same npm command again:\n\n` +
        `    sudo apt-get update && sudo ${cmd}`,
    );
  }
  log(`installing Debian packages for ${why}: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    run('apt-get', ['update', '-q'], { env });
    aptUpdated = true;
  }
  run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
}

// ---------------------------------------------------------------- npm dependencies
function ensureNodeModules() {
  const lock = path.join(ROOT, 'package-lock.json');
  const stamp = path.join(ROOT, 'node_modules', '.stagegate-install');
  const hash = createHash('sha256').update(fs.readFileSync(lock)).digest('hex');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash) return;
  log('installing npm dependencies (npm ci)');
  // mediasoup's own postinstall would try GitHub, then pip/meson downloads: both unreachable
  // on machines without internet. Setting MEDIASOUP_WORKER_BIN makes it skip; the worker is
  // handled below.
  run('npm', ['ci', '--no-audit', '--no-fund'], {
    env: { ...process.env, MEDIASOUP_WORKER_BIN: 'provided-by-stagegate-setup' },
  });
  fs.writeFileSync(stamp, hash);
}

// ---------------------------------------------------------------- mediasoup worker
function mediasoupVersion() {
  const pkg = path.join(ROOT, 'node_modules', 'mediasoup', 'package.json');
  return JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
}

/** mediasoup-worker exits with 41 when run without MEDIASOUP_VERSION: proof that it loads. */
function workerRuns(bin) {
  if (!fs.existsSync(bin)) return false;
  const r = spawnSync(bin, [], { stdio: 'ignore', env: {}, timeout: 10_000 });
  return r.status === 41;
}

async function downloadPrebuilt(version, tarName, dest) {
  const url = `https://github.com/versatica/mediasoup/releases/download/${version}/${tarName}`;
  log(`trying the official prebuilt worker: ${url}`);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
    if (!res.ok) {
      log(`no prebuilt worker (HTTP ${res.status})`);
      return false;
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-prebuilt-'));
    fs.writeFileSync(path.join(tmp, 'w.tgz'), Buffer.from(await res.arrayBuffer()));
    execFileSync('tar', ['xzf', 'w.tgz'], { cwd: tmp });
    const bin = path.join(tmp, 'mediasoup-worker');
    fs.chmodSync(bin, 0o755);
    if (!workerRuns(bin)) {
      log('the prebuilt worker does not run on this machine');
      return false;
    }
    fs.copyFileSync(bin, dest);
    return true;
  } catch (err) {
    log(`prebuilt worker not reachable (${err.cause?.code ?? err.name}): building it from source`);
    return false;
  }
}

async function ensureWorker() {
  const version = mediasoupVersion();
  const target = path.join(ROOT, 'node_modules/mediasoup/worker/out/Release/mediasoup-worker');
  if (workerRuns(target)) return;

  const kernel = os.platform() === 'linux' ? `-kernel${os.release().split('.')[0]}` : '';
  const key = `mediasoup-worker-${version}-${os.platform()}-${os.arch()}${kernel}`;
  const cacheDir = path.join(
    process.env.STAGEGATE_CACHE_DIR ?? process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'),
    process.env.STAGEGATE_CACHE_DIR ? '' : 'stagegate',
  );
  const cached = path.join(cacheDir, key);
  fs.mkdirSync(cacheDir, { recursive: true });

  if (!workerRuns(cached)) {
    if (!(await downloadPrebuilt(version, `${key}.tgz`, cached))) {
      ensureDebs(
        [
          'build-essential',
          'pkg-config',
          'python3-venv',
          'libssl-dev',
          'libuv1-dev',
          'libsrtp2-dev',
          'libusrsctp-dev',
          'libabsl-dev',
          'libflatbuffers-dev',
          'flatbuffers-compiler',
          'nlohmann-json3-dev',
        ],
        'building the mediasoup worker',
      );
      log(`building mediasoup-worker ${version} from source (cached afterwards in ${cacheDir})`);
      run('bash', [path.join(HERE, 'build-worker.sh'), version, cached]);
    }
    if (!workerRuns(cached)) fail(`the mediasoup worker at ${cached} does not run`);
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(cached, target);
  fs.chmodSync(target, 0o755);
  log(`mediasoup worker ${version} ready (${cached})`);
}

// ---------------------------------------------------------------- Chromium (tests only)
function ensureBrowser() {
  // Debian's redis-server: the cluster tests start their own instances on free loopback ports.
  if (!process.env.STAGEGATE_REDIS_SERVER) ensureDebs(['redis-server'], 'the cluster tests');
  if (process.env.STAGEGATE_CHROMIUM) return;
  // Debian's chromium; Playwright's own browser download cannot work without internet.
  ensureDebs(['chromium'], 'the browser tests');
}

// ---------------------------------------------------------------- demo pages (Vite build)
function* sourceFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'dist' && entry.name !== 'node_modules') yield* sourceFiles(full);
    } else yield full;
  }
}

function ensurePages() {
  const hash = createHash('sha256');
  for (const dir of ['client', 'shared']) {
    for (const file of [...sourceFiles(path.join(ROOT, dir))].sort()) {
      hash.update(path.relative(ROOT, file)).update(fs.readFileSync(file));
    }
  }
  const digest = hash.digest('hex');
  const stamp = path.join(ROOT, 'client/dist/.build-hash');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === digest) return;
  log('building the demo pages (vite)');
  run('npx', ['vite', 'build', '--config', 'client/web/vite.config.ts']);
  fs.writeFileSync(stamp, digest);
}

ensureNodeModules();
await ensureWorker();
ensurePages();
if (wantBrowser) ensureBrowser();
const secs = ((Date.now() - started) / 1000).toFixed(1);
log(`ready in ${secs} s`);
