/**
 * Webhooks: every audit record POSTed as JSON to each configured URL, signed, in order per room,
 * retried with exponential backoff, never blocking the stage.
 *
 * - Body: the record as JSON (`AuditRecord`). Headers: `x-stagegate-timestamp` (Unix seconds of
 *   this attempt), `x-stagegate-signature: v1=<hex HMAC-SHA256(secret, `${timestamp}.${body}`)>`,
 *   `x-stagegate-delivery: <roomId>:<id>` (the same on every retry: receivers drop duplicates).
 * - A 2xx answer delivers it; anything else (a 500, a network error, a time-out) is retried after
 *   0.5 s, 1 s, 2 s... (capped at 60 s), for as long as the server runs: at least once. The next
 *   record of that room waits for it (order per room and URL); other rooms and URLs do not.
 * - Each room and URL has its own queue, bounded (`maxQueued`): past it, the oldest undelivered
 *   record is dropped and logged (a receiver down for long reads the gap back from the audit route).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { StagegateError } from '../../shared/errors.js';
import type { Logger } from '../logger.js';
import type { AuditRecord } from './AuditTrail.js';

export const SIGNATURE_HEADER = 'x-stagegate-signature';
export const TIMESTAMP_HEADER = 'x-stagegate-timestamp';
export const DELIVERY_HEADER = 'x-stagegate-delivery';

export interface WebhookOptions {
  urls: string[];
  secret: string;
  log: Logger;
  /** First retry delay (doubling each time). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** One attempt's time-out. */
  timeoutMs?: number;
  maxQueued?: number;
}

/** `v1=` + hex HMAC-SHA256 over `${timestamp}.${body}`. */
export function signWebhook(body: string, timestamp: number, secret: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Checks a webhook delivery: the signature over `${timestamp}.${body}` with `secret`, and a
 * timestamp no further than `toleranceSeconds` (default 300) from now (an old one is a replay).
 * Returns the record; throws `StagegateError` UNAUTHORIZED saying why otherwise. Pass the raw
 * body exactly as received (not re-serialised JSON).
 */
export function verifyWebhook(opts: {
  body: string | Buffer;
  headers: Record<string, string | string[] | undefined>;
  secret: string;
  toleranceSeconds?: number;
  /** Epoch ms (tests). */
  now?: number;
}): AuditRecord {
  const header = (name: string) => {
    const v = opts.headers[name] ?? opts.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const body = typeof opts.body === 'string' ? opts.body : opts.body.toString('utf8');
  const ts = Number(header(TIMESTAMP_HEADER));
  if (!Number.isInteger(ts)) throw new StagegateError('UNAUTHORIZED', `missing or bad ${TIMESTAMP_HEADER}`);
  const given = Buffer.from(header(SIGNATURE_HEADER) ?? '');
  const want = Buffer.from(signWebhook(body, ts, opts.secret));
  if (given.length !== want.length || !timingSafeEqual(given, want))
    throw new StagegateError('UNAUTHORIZED', 'bad webhook signature');
  const age = Math.abs((opts.now ?? Date.now()) / 1000 - ts);
  if (age > (opts.toleranceSeconds ?? 300))
    throw new StagegateError('UNAUTHORIZED', `webhook timestamp ${Math.round(age)} s away from now: a replay?`);
  return JSON.parse(body) as AuditRecord;
}

interface Queue {
  items: AuditRecord[];
  running: boolean;
}

export class WebhookSender {
  readonly #queues = new Map<string, Queue>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #aborts = new Set<AbortController>();
  #closed = false;

  constructor(private readonly opts: WebhookOptions) {}

  /** Queues `record` for every URL; returns at once. */
  send(record: AuditRecord): void {
    if (this.#closed) return;
    for (const url of this.opts.urls) {
      const key = `${url}\n${record.roomId}`;
      let q = this.#queues.get(key);
      if (!q) this.#queues.set(key, (q = { items: [], running: false }));
      q.items.push(record);
      const max = this.opts.maxQueued ?? 10_000;
      if (q.items.length > max) {
        const dropped = q.items.splice(q.running ? 1 : 0, q.items.length - max);
        this.opts.log.error({ url, roomId: record.roomId, dropped: dropped.length }, 'webhook queue full, dropped');
      }
      if (!q.running) void this.#run(url, key, q);
    }
  }

  /** Stops sending (undelivered records are dropped). */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    for (const a of this.#aborts) a.abort();
    this.#queues.clear();
  }

  async #run(url: string, key: string, q: Queue): Promise<void> {
    q.running = true;
    try {
      while (q.items.length > 0 && !this.#closed) {
        const record = q.items[0]!;
        const body = JSON.stringify(record);
        for (let attempt = 0; !this.#closed; attempt++) {
          if (await this.#post(url, record, body)) break;
          const base = this.opts.retryBaseMs ?? 500;
          const delay = Math.min(this.opts.retryMaxMs ?? 60_000, base * 2 ** Math.min(attempt, 20));
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              this.#timers.delete(t);
              resolve();
            }, delay);
            t.unref();
            this.#timers.add(t);
          });
        }
        if (q.items[0] === record) q.items.shift();
      }
    } finally {
      q.running = false;
      if (q.items.length === 0) this.#queues.delete(key);
    }
  }

  async #post(url: string, record: AuditRecord, body: string): Promise<boolean> {
    const timestamp = Math.floor(Date.now() / 1000);
    const abort = new AbortController();
    this.#aborts.add(abort);
    const timer = setTimeout(() => abort.abort(), this.opts.timeoutMs ?? 10_000);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signWebhook(body, timestamp, this.opts.secret),
          [DELIVERY_HEADER]: `${record.roomId}:${record.id}`,
        },
        body,
        signal: abort.signal,
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      this.opts.log.warn({ url, status: res.status, delivery: `${record.roomId}:${record.id}` }, 'webhook refused');
    } catch (err) {
      if (!this.#closed) this.opts.log.warn({ url, err: String(err) }, 'webhook delivery failed');
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    }
    return false;
  }
}
