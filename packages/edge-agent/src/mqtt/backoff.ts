/** Shape of the reconnect delays: `baseMs * factor^attempt`, capped at `maxMs`, then jittered. */
export interface BackoffOptions {
  /** Ceiling of the first delay in milliseconds (default 1000). */
  baseMs?: number;
  /** Largest ceiling in milliseconds (default 60000). */
  maxMs?: number;
  /** Growth of the ceiling per failed attempt (default 2). */
  factor?: number;
}

/** {@link BackoffOptions} with every default filled in. */
export type ResolvedBackoffOptions = Required<BackoffOptions>;

/** Defaults of {@link BackoffOptions}. */
export const DEFAULT_BACKOFF: ResolvedBackoffOptions = { baseMs: 1000, maxMs: 60_000, factor: 2 };

/** Fills in the defaults of `options` and checks them; throws RangeError naming the bad field. */
export function resolveBackoffOptions(options: BackoffOptions = {}): ResolvedBackoffOptions {
  const resolved = { ...DEFAULT_BACKOFF, ...stripUndefined(options) };
  if (!Number.isFinite(resolved.baseMs) || resolved.baseMs < 0) {
    throw new RangeError(`backoff.baseMs must be a finite number >= 0, got ${resolved.baseMs}`);
  }
  if (!Number.isFinite(resolved.maxMs) || resolved.maxMs < resolved.baseMs) {
    throw new RangeError(`backoff.maxMs must be a finite number >= baseMs (${resolved.baseMs}), got ${resolved.maxMs}`);
  }
  if (!Number.isFinite(resolved.factor) || resolved.factor < 1) {
    throw new RangeError(`backoff.factor must be a finite number >= 1, got ${resolved.factor}`);
  }
  return resolved;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry), with "full jitter": uniform on
 * [0, min(maxMs, baseMs * factor^attempt)), so a fleet that lost its broker together does not return in lockstep.
 * @example backoffDelay(3, { baseMs: 100, maxMs: 5000, factor: 2 }, Math.random) // somewhere in [0, 800)
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt must be an integer >= 0, got ${attempt}`);
  const { baseMs, maxMs, factor } = resolveBackoffOptions(options);
  // factor^attempt overflows to Infinity after enough failures; the cap keeps the ceiling finite.
  const ceiling = Math.min(maxMs, baseMs * factor ** attempt);
  const u = random();
  if (!(u >= 0 && u < 1)) throw new RangeError(`random() must return a number in [0, 1), got ${u}`);
  return Math.floor(u * ceiling);
}

/**
 * Counts failed attempts and runs one callback at a time after the next backoff delay; `reset()` after a success
 * starts the ramp again. Timers come from the global setTimeout, so fake timers drive it in tests.
 */
export class Backoff {
  readonly options: ResolvedBackoffOptions;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #random: () => number;

  constructor(options: BackoffOptions = {}, random: () => number = Math.random) {
    this.options = resolveBackoffOptions(options);
    this.#random = random;
  }

  /** Failed attempts since the last reset (the exponent of the next delay). */
  get attempt(): number {
    return this.#attempt;
  }

  /** Whether a callback is waiting for its timer. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /** The next delay, advancing the attempt counter. */
  next(): number {
    const delay = backoffDelay(this.#attempt, this.options, this.#random);
    this.#attempt += 1;
    return delay;
  }

  /** Runs `fn` after the next delay and returns that delay; a callback already waiting is replaced. */
  schedule(fn: () => void): number {
    this.cancel();
    const delay = this.next();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      fn();
    }, delay);
    return delay;
  }

  /** Drops the waiting callback, if any. */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Back to the first (shortest) delay, after a successful connection. */
  reset(): void {
    this.#attempt = 0;
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
