/**
 * The clock a Stage runs on. The Stage itself keeps no real timer: it reads `now()` and asks a
 * `StageScheduler` to wake it at its next deadline (a slot warning, a slot end, an `@auto`
 * acceptance lapsing). Tests pass a fake clock; the room passes `realScheduler`.
 */

/** Epoch milliseconds. */
export type Now = () => number;

/**
 * Call `wake` once at (or soon after) epoch ms `at`; returns a function that cancels it. The Stage
 * holds at most one wake-up at a time and cancels it before asking for another.
 */
export type StageScheduler = (at: number, wake: () => void) => () => void;

/** setTimeout's longest delay; a later deadline wakes the Stage early, and it asks again. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** A scheduler on the process's timers (setTimeout; unref'd so it never keeps the process alive). */
export function realScheduler(now: Now = Date.now): StageScheduler {
  return (at, wake) => {
    const timer = setTimeout(wake, Math.min(MAX_DELAY_MS, Math.max(0, at - now())));
    timer.unref?.();
    return () => clearTimeout(timer);
  };
}

/** At most one armed wake-up on a scheduler (none without one): re-arming at the same time keeps it. */
export class Alarm {
  private armed: { at: number; cancel: () => void } | undefined;

  constructor(private readonly schedule: StageScheduler | undefined) {}

  /** Wake `wake` at `at`, cancelling any other wake-up; `undefined` disarms. */
  set(at: number | undefined, wake: () => void): void {
    if (!this.schedule || this.armed?.at === at) return;
    this.armed?.cancel();
    this.armed = undefined;
    if (at === undefined) return;
    const armed = { at, cancel: () => {} };
    this.armed = armed;
    armed.cancel = this.schedule(at, () => {
      if (this.armed !== armed) return; // cancelled meanwhile
      this.armed = undefined;
      wake();
    });
  }
}
