/**
 * `npm start`: the webinar server with its demo pages, on embedded defaults (STAGEGATE_* env
 * variables override them; see the README). Ctrl-C shuts down gracefully.
 */
import { loadConfig } from './config.js';
import { createStagegate } from './index.js';
import { createLogger } from './logger.js';

const logger = (() => {
  try {
    return createLogger(loadConfig().logLevel, Boolean(process.stdout.isTTY));
  } catch {
    return undefined; // createStagegate reports the configuration error below
  }
})();
const stagegate = await createStagegate(logger ? { logger } : {}).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
const { url } = await stagegate.listen().catch(async (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  const { port, host } = stagegate.config;
  console.error(
    code === 'EADDRINUSE'
      ? `Port ${port} on ${host} is already in use (another Stagegate, or another server?).\n` +
          `Stop it, or pick another port: STAGEGATE_PORT=${port + 1} npm start`
      : code === 'EACCES'
        ? `Not allowed to listen on port ${port}. Pick a port above 1023: STAGEGATE_PORT=3000 npm start`
        : `Could not listen on ${host}:${port}: ${err instanceof Error ? err.message : String(err)}`,
  );
  await stagegate.close().catch(() => undefined);
  process.exit(1);
});
const { config, log } = stagegate;

log.info({ url, workers: stagegate.pool.workers.length, demo: config.demo }, 'stagegate listening');
console.log(`
  Stagegate is running.

    Open ${url}/            create a webinar and get host and viewer links
         ${url}/loopback.html  your camera looped back through the SFU
    API  ${url}/api/...     Authorization: Bearer ${config.apiSecret ? '<STAGEGATE_API_SECRET>' : stagegate.apiSecret}
`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1); // a second Ctrl-C forces it
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000).unref();
    stagegate.close().then(() => {
      clearTimeout(force);
      process.exit(0);
    });
  });
}
