import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const root = import.meta.dirname;

/** The demo pages: plain TypeScript, no framework; the thin client library is imported from ../. */
export default defineConfig({
  root,
  logLevel: 'warn',
  build: {
    outDir: resolve(root, '../dist'),
    emptyOutDir: true,
    sourcemap: true,
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
