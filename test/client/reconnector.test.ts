/**
 * The reconnect loop alone (no network): backoff, deadline, permanent refusals, cancel.
 */
import { describe, expect, test, vi } from 'vitest';
import { StagegateError } from '../../client/index.js';
import { BACKOFF_MAX_MS, Reconnector, backoffMs } from '../../client/Reconnector.js';

describe('backoffMs', () => {
  test('250 ms doubling up to 4 s from the second attempt, jittered by at most 20 %', () => {
    expect([2, 3, 4, 5, 6, 7, 20].map((n) => backoffMs(n, () => 0.5))).toEqual([
      250, 500, 1000, 2000, 4000, 4000, 4000,
    ]);
    expect(backoffMs(2, () => 0)).toBe(200);
    expect(backoffMs(2, () => 0.999)).toBeLessThanOrEqual(300);
    expect(backoffMs(9, () => 0.999)).toBe(BACKOFF_MAX_MS);
  });
});

function reconnector(timeoutMs: number, attempt: (n: number) => Promise<void>) {
  const attempts: number[] = [];
  const r = new Reconnector({ timeoutMs, onAttempt: (n) => attempts.push(n), attempt });
  return { r, attempts };
}

describe('Reconnector', () => {
  test('retries until an attempt succeeds', async () => {
    const { r, attempts } = reconnector(5_000, async (n) => {
      if (n < 3) throw new StagegateError('DISCONNECTED', 'down');
    });
    const started = Date.now();
    expect(await r.run()).toEqual({ ok: true, attempt: 3 });
    expect(attempts).toEqual([1, 2, 3]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200 + 400 - 20); // two backoffs
  });

  test('gives up at the deadline, also with an attempt still running', async () => {
    const { r, attempts } = reconnector(300, () => new Promise<void>(() => undefined));
    const started = Date.now();
    const result = await r.run();
    expect(result).toMatchObject({ ok: false, cancelled: false, error: { code: 'DISCONNECTED' } });
    expect(Date.now() - started).toBeLessThan(600);
    expect(attempts).toEqual([1]);
  });

  test('stops at once on a refusal that retrying cannot fix', async () => {
    const { r, attempts } = reconnector(5_000, () =>
      Promise.reject(new StagegateError('UNAUTHORIZED', 'token expired')),
    );
    expect(await r.run()).toMatchObject({ ok: false, cancelled: false, error: { code: 'UNAUTHORIZED' } });
    expect(attempts).toEqual([1]);
  });

  test('cancel() during a backoff ends it without another attempt', async () => {
    const { r, attempts } = reconnector(5_000, () => Promise.reject(new StagegateError('DISCONNECTED', 'down')));
    const running = r.run();
    await new Promise((resolve) => setTimeout(resolve, 50));
    r.cancel();
    expect(await running).toEqual({ ok: false, cancelled: true });
    expect(attempts).toEqual([1]);
  });

  test('starts no attempt at the deadline when the clock reads a millisecond early on waking (fake clock)', async () => {
    // A timer may fire when Date.now() still reads 1 ms before the time it was set for: the loop
    // then started an attempt right at the deadline (the flaky "fifth attempt" of reconnect.test).
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // backoffs 250, 500, 1000 ms
    try {
      const { r, attempts } = reconnector(1_000, () => Promise.reject(new StagegateError('DISCONNECTED', 'down')));
      const running = r.run();
      // attempts at 0, 250 and 750 ms; the next backoff (1000 ms) ends after the deadline (1000 ms).
      // During that last wait the wall clock steps back 1 ms.
      setTimeout(() => vi.setSystemTime(Date.now() - 1), 800);
      await vi.advanceTimersByTimeAsync(1_500);
      expect(await running).toMatchObject({ ok: false, cancelled: false, error: { code: 'DISCONNECTED' } });
      expect(attempts).toEqual([1, 2, 3]);
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  });
});
