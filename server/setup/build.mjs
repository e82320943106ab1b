// `npm run build`, also run by npm's prepack: what the package ships that is built.
//   dist/         JavaScript and type declarations of server/, client/, shared/ (tsconfig.build.json)
//   client/dist/  the demo pages `stagegate start` serves (pages.mjs, rebuilt only when stale)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePages } from './pages.mjs';
import { log, run } from './worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

fs.rmSync(path.join(ROOT, 'dist'), { recursive: true, force: true });
log('compiling dist/ (tsc -p tsconfig.build.json)');
run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT });
ensurePages(ROOT);
log('built dist/ and client/dist/');
