#!/usr/bin/env node
// The `stagegate` command of the installed package (plain JavaScript: it has to run before
// anything is built or any worker exists).
//
//   stagegate setup   get the mediasoup worker: cached binary, else official prebuilt, else a
//                     build from source (server/setup/worker.mjs, the same as `npm run setup`)
//   stagegate start   the webinar server with its demo pages, configured like `npm start`
//                     (STAGEGATE_* environment variables; see the README)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureWorker, fail, log, mediasoupDir } from './setup/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `usage: stagegate <command>

  setup   get the mediasoup worker (cached in ~/.cache/stagegate; run after every npm install)
  start   run the webinar server with its demo pages (STAGEGATE_* environment variables)
`;

const command = process.argv[2];
switch (command) {
  case 'setup': {
    // the mediasoup that Stagegate's server imports: the app's node_modules
    const bin = await ensureWorker(mediasoupDir(ROOT));
    log(`mediasoup worker in place: ${bin}`);
    break;
  }
  case 'start': {
    await ensureWorker(mediasoupDir(ROOT)); // what npm's prestart does for `npm start`
    const main = path.join(ROOT, 'dist/server/main.js');
    if (!fs.existsSync(main)) fail(`${main} is missing: build it with \`npm run build\` (or use \`npm start\`)`);
    await import(pathToFileURL(main).href);
    break;
  }
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(USAGE);
    break;
  default:
    process.stderr.write(`stagegate: unknown command "${command}"\n\n${USAGE}`);
    process.exit(2);
}
