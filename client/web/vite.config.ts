import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const root = import.meta.dirname;

/** The demo pages: plain TypeScript, no framework; the thin client library is imported from ../. */
export default defineConfig({
  root,
  logLevel: 'warn',
  // test hooks (client/Meeting.ts) are compiled out of the shipped pages
  define: { __STAGEGATE_TEST_HOOKS__: 'false' },
  build: {
    outDir: resolve(root, '../dist'),
    emptyOutDir: true,
    // no source maps in the shipped pages unless asked for (STAGEGATE_SOURCEMAP=true)
    sourcemap: process.env.STAGEGATE_SOURCEMAP === 'true',
    target: 'es2022',
    rollupOptions: {
      input: {
        index: resolve(root, 'index.html'),
        host: resolve(root, 'host.html'),
        viewer: resolve(root, 'viewer.html'),
        loopback: resolve(root, 'loopback.html'),
      },
    },
  },
});
