/** Options of {@link DetectionsLimiter}. */
export interface DetectionsLimiterOptions {
  /** Publications per second on average, and at most ⌈maxPerSecond⌉ in any one-second window; `Infinity` publishes every frame. */
  maxPerSecond: number;
  /** Milliseconds clock (default `Date.now`, which fake timers control). */
  now?: () => number;
}

/** The limiter's answer for one frame. */
export type LimiterDecision =
  | { publish: true; /** Frames dropped since the previous publication, for the message's `skipped`. */ skipped: number }
  | { publish: false };

/**
 * Rate-limits detection messages: `maxPerSecond` on average and never more than ⌈maxPerSecond⌉ in any
 * one-second window, spread out rather than bunched (each publication wants 1/maxPerSecond s after the
 * previous one, with a quarter of that allowed as jitter so that frames arriving just early at the
 * limit's own rate are not halved). Frames held back are counted and reported with the next publication.
 * @example
 * const limiter = new DetectionsLimiter({ maxPerSecond: 5 });
 * const d = limiter.offer();
 * if (d.publish) publish({ ...message, ...(d.skipped > 0 ? { skipped: d.skipped } : {}) });
 */
export class DetectionsLimiter {
  readonly maxPerSecond: number;
  readonly #now: () => number;
  readonly #interval: number;
  /** Most publications in one second: ⌈maxPerSecond⌉. */
  readonly #window: number;
  /** Times of the last publications, at most maxPerSecond of them (a ring). */
  readonly #recent: number[] = [];
  #next = -Infinity;
  #skipped = 0;

  constructor(options: DetectionsLimiterOptions) {
    const max = options?.maxPerSecond;
    if (typeof max !== 'number' || !(max > 0)) throw new RangeError(`maxPerSecond must be a number > 0 (or Infinity), got ${max}`);
    this.maxPerSecond = max;
    this.#now = options.now ?? Date.now;
    this.#interval = 1000 / max;
    this.#window = Math.ceil(max);
  }

  /** Frames held back since the last publication. */
  get pendingSkipped(): number {
    return this.#skipped;
  }

  /** Asks whether the frame arriving now may be published; a `false` counts it as skipped. */
  offer(): LimiterDecision {
    if (this.maxPerSecond === Infinity) return { publish: true, skipped: 0 };
    const t = this.#now();
    // A wall clock stepped backwards would otherwise hold every frame back until it caught up.
    if (this.#recent.length > 0 && t < this.#recent[this.#recent.length - 1]) {
      this.#recent.length = 0;
      this.#next = -Infinity;
    }
    const jitter = this.#interval / 4;
    const windowFull = this.#recent.length >= this.#window && t - this.#recent[0] < 1000;
    if (t < this.#next - jitter || windowFull) {
      this.#skipped++;
      return { publish: false };
    }
    // Schedule from the ideal time, not the arrival, so early-by-jitter frames do not drift the rate up.
    this.#next = Math.max(this.#next, t) + this.#interval;
    this.#recent.push(t);
    if (this.#recent.length > this.#window) this.#recent.shift();
    const skipped = this.#skipped;
    this.#skipped = 0;
    return { publish: true, skipped };
  }

  /** Forgets the history (after a pause, say), keeping nothing skipped. */
  reset(): void {
    this.#recent.length = 0;
    this.#next = -Infinity;
    this.#skipped = 0;
  }
}
