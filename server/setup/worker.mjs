// Getting the mediasoup worker binary (Node built-ins only). Shared by the repository's set-up
// (setup.mjs, npm's prestart/pretest) and by `stagegate setup` in an app that depends on
// Stagegate (cli.mjs): the same cache and the same build from source.
//
// The official prebuilt binary when it can be downloaded, else a build from source against
// Debian's libraries (build-worker.sh). Either way the binary is cached outside any project,
// keyed by mediasoup version, platform, arch and kernel major, and copied to
// <mediasoup>/worker/out/Release/mediasoup-worker where mediasoup looks for it.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const log = (msg) => console.log(`[setup] ${msg}`);

export function fail(msg) {
  console.error(`\n[setup] ${msg}\n`);
  process.exit(1);
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
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
export function ensureDebs(pkgs, why) {
  const missing = missingDebs(pkgs);
  if (missing.length === 0) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (!isRoot) {
    fail(
      `${why} needs Debian packages that are not installed: ${missing.join(' ')}\n` +
        `[setup] Run this once, then the same command again:\n\n` +
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

// ---------------------------------------------------------------- mediasoup worker
/**
 * The directory of the mediasoup package that code in `fromDir` imports (Node's own
 * resolution: the app's node_modules for an installed Stagegate, the repository's otherwise).
 */
export function mediasoupDir(fromDir) {
  let entry;
  try {
    entry = createRequire(path.join(fromDir, 'package.json')).resolve('mediasoup');
  } catch {
    fail(`mediasoup is not installed (looked from ${fromDir}); run npm install first`);
  }
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'mediasoup') return dir;
  }
  return fail(`no package.json of mediasoup above ${entry}`);
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

/**
 * Makes `<msDir>/worker/out/Release/mediasoup-worker` a worker binary that runs: kept when it
 * already does, else copied from the cache, filled first from a download or a source build.
 */
export async function ensureWorker(msDir) {
  const { version } = JSON.parse(fs.readFileSync(path.join(msDir, 'package.json'), 'utf8'));
  const target = path.join(msDir, 'worker/out/Release/mediasoup-worker');
  if (workerRuns(target)) return target;

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
  return target;
}
