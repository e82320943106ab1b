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
// That part is worker.mjs, shared with `stagegate setup` (cli.mjs) for apps that install
// Stagegate; the demo pages' build is pages.mjs, shared with the package build (build.mjs).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePages } from './pages.mjs';
import { ensureDebs, ensureWorker, log, mediasoupDir, run as runIn } from './worker.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const wantBrowser = process.argv.includes('--browser');
const started = Date.now();

const run = (cmd, args, opts = {}) => runIn(cmd, args, { cwd: ROOT, ...opts });

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

// ---------------------------------------------------------------- Chromium (tests only)
function ensureBrowser() {
  // Debian's redis-server: the cluster tests start their own instances on free loopback ports.
  if (!process.env.STAGEGATE_REDIS_SERVER) ensureDebs(['redis-server'], 'the cluster tests');
  if (process.env.STAGEGATE_CHROMIUM) return;
  // Debian's chromium; Playwright's own browser download cannot work without internet.
  ensureDebs(['chromium'], 'the browser tests');
}

ensureNodeModules();
await ensureWorker(mediasoupDir(ROOT));
ensurePages(ROOT);
if (wantBrowser) ensureBrowser();
const secs = ((Date.now() - started) / 1000).toFixed(1);
log(`ready in ${secs} s`);
