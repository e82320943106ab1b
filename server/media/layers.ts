/**
 * Per-viewer video: which simulcast layer fits a tile, and a per-key throttle for the quality
 * notifications (consumer and producer scores).
 *
 * Layer sizes: the thin client publishes a camera as up to three simulcast encodings, each half
 * the size of the next (scaleResolutionDownBy 4, 2, 1 of a 1280x720 camera: 320, 640 and 1280
 * wide; two layers from a 640x480 one: 320 and 640). The server never sees the resolution
 * itself, so it assumes that ladder: layer i is LOW_LAYER_WIDTH * 2^i wide, and the preferred
 * layer is the smallest whose width covers the tile (in device pixels, as the client reports
 * them). A tile larger than the top layer gets the top layer; mediasoup's bandwidth estimation
 * may still send a lower one when the viewer's downlink cannot carry it.
 */
import type { types as ms } from 'mediasoup';

/** Width of the lowest simulcast layer the ladder assumes (see above). */
export const LOW_LAYER_WIDTH = 320;

/** Spatial and temporal layers a consumer can select from (1 and 1 for a plain stream). */
export function layersOf(consumer: ms.Consumer): { spatial: number; temporal: number } {
  const mode = consumer.rtpParameters.encodings?.[0]?.scalabilityMode ?? '';
  const m = /^[LS](\d+)T(\d+)/.exec(mode);
  return m ? { spatial: Number(m[1]), temporal: Number(m[2]) } : { spatial: 1, temporal: 1 };
}

/**
 * The spatial layer (0 = lowest) for a tile of `width` x `height` device pixels when the consumer
 * has `spatialLayers`. The size that matters is the larger of the width and the 16:9 width of the
 * height (a tall tile showing a cropped 16:9 video needs that many pixels).
 */
export function layerForSize(spatialLayers: number, width: number, height: number): number {
  const need = Math.max(width, Math.round((height * 16) / 9));
  for (let layer = 0; layer < spatialLayers - 1; layer++) {
    const layerWidth = LOW_LAYER_WIDTH * 2 ** layer;
    if (need <= layerWidth) return layer;
  }
  return spatialLayers - 1;
}

/**
 * Calls `send` at most once per `intervalMs` per key: the first value at once, then the latest
 * of a burst when the interval ends (so the last state always arrives).
 */
export class Throttle<T> {
  readonly #slots = new Map<string, { timer: NodeJS.Timeout; pending?: T }>();

  constructor(
    readonly intervalMs: number,
    private readonly send: (key: string, value: T) => void,
  ) {}

  push(key: string, value: T): void {
    const slot = this.#slots.get(key);
    if (slot) {
      slot.pending = value;
      return;
    }
    this.send(key, value);
    this.#arm(key);
  }

  #arm(key: string): void {
    const timer = setTimeout(() => {
      const slot = this.#slots.get(key);
      this.#slots.delete(key);
      if (slot && slot.pending !== undefined) {
        this.send(key, slot.pending);
        this.#arm(key);
      }
    }, this.intervalMs);
    timer.unref();
    this.#slots.set(key, { timer });
  }

  /** Forget a key (its object closed): nothing more is sent for it. */
  drop(key: string): void {
    const slot = this.#slots.get(key);
    if (slot) clearTimeout(slot.timer);
    this.#slots.delete(key);
  }

  clear(): void {
    for (const key of [...this.#slots.keys()]) this.drop(key);
  }
}
