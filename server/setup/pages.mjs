// The demo pages (a Vite build of client/web into client/dist), rebuilt only when a file under
// client/ or shared/ changed. Used by setup.mjs and by the package build (build.mjs).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { log, run } from './worker.mjs';

function* sourceFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'dist' && entry.name !== 'node_modules') yield* sourceFiles(full);
    } else yield full;
  }
}

export function ensurePages(root) {
  const hash = createHash('sha256');
  for (const dir of ['client', 'shared']) {
    for (const file of [...sourceFiles(path.join(root, dir))].sort()) {
      hash.update(path.relative(root, file)).update(fs.readFileSync(file));
    }
  }
  const digest = hash.digest('hex');
  const stamp = path.join(root, 'client/dist/.build-hash');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === digest) return;
  log('building the demo pages (vite)');
  run('npx', ['vite', 'build', '--config', 'client/web/vite.config.ts'], { cwd: root });
  fs.writeFileSync(stamp, digest);
}
