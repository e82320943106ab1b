import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines (for log collectors); `pretty` prints readable lines instead (npm start in a
 * terminal), through pino-pretty in a worker thread.
 */
export function createLogger(level: string = 'info', pretty = false): Logger {
  return pino({
    name: 'stagegate',
    level,
    base: undefined,
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { ignore: 'name', translateTime: 'HH:MM:ss.l' } } }
      : {}),
  });
}
