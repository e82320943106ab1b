/**
 * The thin client library bundled as one ES module (Vite library mode) into a temporary web root
 * with an empty page, so browser tests can drive `joinMeeting` directly in real Chromium
 * without going through any UI: `await import('/stagegate-client.js')` in `page.evaluate`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'vite';

const ROOT = path.resolve(import.meta.dirname, '../..');

export async function buildClientWebRoot(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-webroot-'));
  await build({
    configFile: false,
    logLevel: 'error',
    root: ROOT,
    define: { __STAGEGATE_TEST_HOOKS__: 'true' }, // a test build: window.meeting.__dropConnectionForTests()
    build: {
      outDir: dir,
      emptyOutDir: false,
      target: 'es2022',
      minify: false,
      lib: { entry: path.join(ROOT, 'client/index.ts'), formats: ['es'], fileName: () => 'stagegate-client.js' },
    },
  });
  fs.writeFileSync(
    path.join(dir, 'index.html'),
    '<!doctype html><meta charset="utf-8"><title>test</title><body></body>',
  );
  return dir;
}
