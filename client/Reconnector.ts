/**
 * The retry loop of a reconnect: attempt, back off, give up at a deadline.
 *
 * - Attempt 1 starts at once; attempt n > 1 after an exponential backoff of 250 ms doubling up
 *   to 4 s (with ±20 % jitter, so that a room full of clients does not come back in lockstep).
 * - It gives up `timeoutMs` after `run()` was called (an attempt still in flight then is
 *   abandoned: the caller tears everything down; an attempt whose backoff would end at or after
 *   the deadline is not started), or at once on a refusal that retrying cannot
 *   fix: UNAUTHORIZED (token expired or no longer valid), FORBIDDEN, NOT_FOUND (the room is gone).
 * - `cancel()` stops it (the meeting was left, or the server said goodbye); `run()` then
 *   resolves with `{ ok: false, cancelled: true }`.
 */
import type { ErrorCode, StagegateError } from '../shared/errors.js';
import { stagegateError, toStagegateError } from './errors.js';

export interface ReconnectorOptions {
  /** Give up this long after `run()`; > 0. */
  timeoutMs: number;
  /** Called right before each attempt, with its number (1, 2, ...). */
  onAttempt(attempt: number): void;
  /** One attempt; resolves when the connection is back and in sync. */
  attempt(attempt: number): Promise<void>;
}

export type ReconnectResult =
  | { ok: true; attempt: number }
  | { ok: false; cancelled: false; error: StagegateError }
  | { ok: false; cancelled: true };

export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 4_000;
/** Refusals that another attempt would get again. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND']);

/** The wait before attempt `attempt` (> 1), jittered. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 2));
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (0.8 + 0.4 * random())));
}

export class Reconnector {
  readonly #opts: ReconnectorOptions;
  #cancelled = false;
  /** Wakes the loop up early (cancel). */
  #wake: (() => void) | undefined;

  constructor(opts: ReconnectorOptions) {
    this.#opts = opts;
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  cancel(): void {
    this.#cancelled = true;
    this.#wake?.();
  }

  async run(): Promise<ReconnectResult> {
    const { timeoutMs } = this.#opts;
    const deadline = Date.now() + timeoutMs;
    let last: StagegateError = stagegateError('DISCONNECTED', 'the connection was lost');
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        // Decided before sleeping: a backoff that ends at or after the deadline means no more
        // attempts (waking up for it and reading the clock again let a timer that fires a
        // millisecond early start one right at the deadline).
        const wait = backoffMs(attempt);
        const left = deadline - Date.now();
        await this.#sleep(Math.min(wait, left));
        if (this.#cancelled) return { ok: false, cancelled: true };
        if (wait >= left) return this.#gaveUp(last, timeoutMs);
      }
      if (this.#cancelled) return { ok: false, cancelled: true };
      if (Date.now() >= deadline) return this.#gaveUp(last, timeoutMs);
      this.#opts.onAttempt(attempt);
      if (this.#cancelled) return { ok: false, cancelled: true }; // a listener left the meeting
      const outcome = await this.#race(this.#opts.attempt(attempt), deadline - Date.now());
      if (this.#cancelled) return { ok: false, cancelled: true };
      if (outcome === 'ok') return { ok: true, attempt };
      if (outcome === 'deadline') return this.#gaveUp(last, timeoutMs);
      last = outcome;
      if (PERMANENT.has(last.code)) return { ok: false, cancelled: false, error: last };
    }
  }

  #gaveUp(last: StagegateError, timeoutMs: number): ReconnectResult {
    const error = stagegateError(
      last.code === 'TIMEOUT' ? 'TIMEOUT' : 'DISCONNECTED',
      `could not reconnect within ${timeoutMs} ms: ${last.message}`,
      last,
    );
    return { ok: false, cancelled: false, error };
  }

  /** The attempt's outcome, or 'deadline' if it is still running after `ms` (or on cancel). */
  #race(attempt: Promise<void>, ms: number): Promise<'ok' | 'deadline' | StagegateError> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), Math.max(0, ms));
      this.#wake = () => resolve('deadline');
    });
    const outcome = attempt.then(
      () => 'ok' as const,
      (err: unknown) => toStagegateError(err),
    );
    return Promise.race([outcome, deadline]).finally(() => {
      clearTimeout(timer);
      this.#wake = undefined;
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => (this.#wake = undefined));
  }
}
