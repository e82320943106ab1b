/**
 * A deterministic clock for Stage tests: `now` and a `schedule` that only fires when the test
 * advances time. Timers fire in time order (ties: the order they were set), each at its own time.
 */
import type { StageScheduler } from '../../server/stage/clock.js';

export class FakeClock {
  private timers: Array<{ at: number; wake: () => void; id: number }> = [];
  private seq = 0;

  constructor(public t = 1_000_000) {}

  readonly now = (): number => this.t;

  readonly schedule: StageScheduler = (at, wake) => {
    const id = ++this.seq;
    this.timers.push({ at, wake, id });
    return () => {
      this.timers = this.timers.filter((timer) => timer.id !== id);
    };
  };

  /** How many timers are armed. */
  get armed(): number {
    return this.timers.length;
  }

  /** When the earliest armed timer is due. */
  get nextAt(): number | undefined {
    return this.earliest()?.at;
  }

  /** Move time forward by `ms`, firing every timer due on the way at its own time. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let next = this.earliest(); next && next.at <= end; next = this.earliest()) {
      this.timers = this.timers.filter((timer) => timer !== next);
      this.t = Math.max(this.t, next.at);
      next.wake();
    }
    this.t = end;
  }

  private earliest(): { at: number; wake: () => void; id: number } | undefined {
    let best: { at: number; wake: () => void; id: number } | undefined;
    for (const timer of this.timers) if (!best || timer.at < best.at) best = timer;
    return best;
  }
}
