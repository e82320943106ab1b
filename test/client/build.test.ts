/**
 * What the shipped demo pages contain: a production build of client/web with its own Vite config
 * (into a temporary directory) has no test hook and no source maps; the browser tests' own bundle
 * (test/helpers/clientBundle.ts) has the hook.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'vite';
import { afterAll, expect, it } from 'vitest';
import { buildClientWebRoot } from '../helpers/clientBundle.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function files(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile());
}

it('the shipped pages have no test hook and no source maps; the test bundle has the hook', async () => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stagegate-dist-'));
  dirs.push(outDir);
  delete process.env.STAGEGATE_SOURCEMAP;
  await build({
    configFile: path.join(ROOT, 'client/web/vite.config.ts'),
    logLevel: 'error',
    build: { outDir, emptyOutDir: true },
  });
  const shipped = files(outDir);
  expect(shipped.some((f) => f.endsWith('.js'))).toBe(true);
  expect(shipped.filter((f) => f.endsWith('.map'))).toEqual([]);
  for (const f of shipped) {
    const text = fs.readFileSync(f, 'utf8');
    expect(text, f).not.toContain('ForTests');
    expect(text, f).not.toContain('sourceMappingURL');
  }

  const testRoot = await buildClientWebRoot();
  dirs.push(testRoot);
  const bundle = fs.readFileSync(path.join(testRoot, 'stagegate-client.js'), 'utf8');
  expect(bundle).toContain('__dropConnectionForTests');
}, 120_000);
