/**
 * What a browser may do across origins, and the headers every page carries.
 *
 * - Origin: a request that carries an `Origin` header (every cross-site browser request that
 *   could change something does) is accepted only from the server's own origin or from
 *   `allowedOrigins`. "Own origin" is decided by comparing the Origin's host (and port) with the
 *   request's `Host` header, so it also holds behind a proxy that forwards `Host` (nginx:
 *   `proxy_set_header Host $host`); the scheme is not compared, since a TLS-terminating proxy
 *   talks plain HTTP to us. Requests without `Origin` (backends, curl, Node clients) are not
 *   browser requests and pass. The same rule guards socket.io (engine `allowRequest` and a
 *   namespace middleware) and every state-changing HTTP route.
 * - CORS: only configured origins get `Access-Control-Allow-Origin` (never an echo of any origin).
 * - JSON routes refuse any other Content-Type (415): a cross-site form or `text/plain` POST, which
 *   browsers send without a preflight, never reaches a handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StagegateError } from '../../shared/errors.js';

/** A StagegateError answered with a specific HTTP status (413, 415) instead of its code's default. */
export class HttpError extends StagegateError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super('INVALID_REQUEST', message);
  }
}

/** True when the request may come from `origin`: no Origin (not a browser), the server's own, or a configured one. */
export function originAllowed(
  headers: { origin?: string | undefined; host?: string | undefined },
  allowedOrigins: readonly string[],
): boolean {
  const { origin, host } = headers;
  if (origin === undefined) return true;
  if (allowedOrigins.includes(origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file://) and garbage
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return host !== undefined && sameHost(url, host);
}

/** Origin host:port against a Host header; a missing port means the scheme's default. */
function sameHost(origin: URL, hostHeader: string): boolean {
  let host: URL;
  try {
    host = new URL(`${origin.protocol}//${hostHeader}`);
  } catch {
    return false;
  }
  return host.host === origin.host;
}

/** A cross-origin request from a configured origin: the CORS answer headers, else none. */
export function corsHeaders(req: IncomingMessage, allowedOrigins: readonly string[]): Record<string, string> {
  const origin = req.headers.origin;
  if (origin === undefined || !allowedOrigins.includes(origin)) return {};
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/**
 * Guards /api and /demo: refuses a foreign Origin (403 FORBIDDEN) and answers CORS preflights
 * from configured origins. Returns true when it answered the request itself.
 */
export function guardRequest(req: IncomingMessage, res: ServerResponse, allowedOrigins: readonly string[]): boolean {
  if (req.method === 'OPTIONS') {
    const cors = corsHeaders(req, allowedOrigins);
    if (!cors['access-control-allow-origin']) throw new StagegateError('FORBIDDEN', 'origin not allowed');
    res
      .writeHead(204, {
        ...cors,
        'access-control-allow-methods': 'GET, POST, PUT, DELETE',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': '600',
      })
      .end();
    return true;
  }
  if (!originAllowed(req.headers, allowedOrigins)) {
    throw new StagegateError('FORBIDDEN', `origin ${String(req.headers.origin).slice(0, 100)} not allowed`);
  }
  for (const [name, value] of Object.entries(corsHeaders(req, allowedOrigins))) res.setHeader(name, value);
  return false;
}

/** JSON routes: anything but `application/json` is refused with 415 before the body is read. */
export function requireJson(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, 'Content-Type must be application/json');
}

/**
 * Headers of every page: scripts, styles and connections from this origin only (the demo pages
 * have no inline script or style), never framed, no referrer (the host link carries its key).
 */
export const PAGE_HEADERS: Record<string, string> = pageHeaders([]);

/**
 * The page headers, with `connect-src` also allowing `origins` (their http(s) and ws(s) forms):
 * the allowed browser origins, so a page may reach another node of a cluster.
 */
export function pageHeaders(origins: readonly string[]): Record<string, string> {
  const peers = origins.flatMap((o) => [o, o.replace(/^http/, 'ws')]);
  return {
    'content-security-policy': [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data: blob:",
      "media-src 'self' blob: mediastream:",
      ["connect-src 'self'", ...peers].join(' '),
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; '),
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
  };
}
