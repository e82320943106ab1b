/**
 * The token bucket behind every rate limit, on a clock the test moves (no timing involved): the
 * exact number of requests that pass for a given rate, burst and elapsed time. The flood test in
 * test/reliability/ratelimit.test.ts checks the same limits end to end, with a margin.
 */
import { expect, it } from 'vitest';
import { TokenBucket } from '../../server/signaling/rateLimit.js';

function bucket(rate: number, burst: number) {
  const clock = { ms: 0 };
  const b = new TokenBucket(rate, burst, () => clock.ms);
  const takeAll = (max = 10_000) => {
    let n = 0;
    while (n < max && b.take()) n++;
    return n;
  };
  return { clock, b, takeAll };
}

it('passes the burst at once, then exactly rate × elapsed', () => {
  const { clock, b, takeAll } = bucket(5, 20); // the stage-action defaults
  expect(takeAll()).toBe(20);
  expect(b.take()).toBe(false);
  clock.ms += 199;
  expect(b.take()).toBe(false); // 0.995 of a token
  clock.ms += 1;
  expect(b.take()).toBe(true);
  expect(b.take()).toBe(false);
  clock.ms += 1000;
  expect(takeAll()).toBe(5);
  // a flood that keeps trying every 5 ms for 1.2 s gets burst-free 5/s: 6 more
  let through = 0;
  for (let t = 0; t < 1200; t += 5) {
    clock.ms += 5;
    for (let i = 0; i < 10; i++) if (b.take()) through++;
  }
  expect(through).toBe(6);
});

it('refills up to the burst only, however long the pause', () => {
  const { clock, takeAll } = bucket(100, 200); // the generic defaults
  expect(takeAll()).toBe(200);
  clock.ms += 60_000;
  expect(takeAll()).toBe(200);
  clock.ms += 500;
  expect(takeAll()).toBe(50);
});
