/**
 * A small synchronous emitter that queues events and delivers them in order, used by Stage.
 *
 * - `enqueue` only records; `flush` delivers everything queued, oldest first.
 * - Re-entrant: an action taken inside a listener queues its events, and the outer `flush`
 *   delivers them after the ones already queued, so every listener sees changes in order.
 * - A throwing listener is reported through `onError`; the other listeners still run.
 */
type Listener = (payload: never) => void;

export class EventQueue<Events extends { [E in keyof Events]: Listener }> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();
  private readonly queue: Array<() => void> = [];
  private flushing = false;

  constructor(private readonly onError: (error: unknown, event: keyof Events) => void) {}

  /** Subscribe; returns the function that unsubscribes. */
  on<E extends keyof Events>(event: E, listener: Events[E]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const registered: Set<Listener> = set;
    registered.add(listener);
    return () => {
      registered.delete(listener);
    };
  }

  /** Queue one event; nothing is delivered until `flush`. */
  enqueue<E extends keyof Events>(event: E, payload: Parameters<Events[E]>[0]): void {
    this.queue.push(() => {
      for (const listener of [...(this.listeners.get(event) ?? [])]) {
        try {
          (listener as (p: Parameters<Events[E]>[0]) => void)(payload);
        } catch (error) {
          this.report(error, event);
        }
      }
    });
  }

  /** Deliver every queued event, in order. A no-op when called from inside a listener. */
  flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let deliver = this.queue.shift(); deliver; deliver = this.queue.shift()) deliver();
    } finally {
      this.flushing = false;
    }
  }

  private report(error: unknown, event: keyof Events): void {
    try {
      this.onError(error, event);
    } catch {
      // The reporter itself failed: nothing sensible left to do.
    }
  }
}
