/**
 * A token bucket of bytes: `bytesPerSecond` refill, holding at most one second's worth. A cost larger
 * than the bucket is allowed once the bucket is full (it then runs into debt), so a chunk bigger than
 * the per-second budget still goes out, just rarely.
 */
export class ByteBudget {
  readonly bytesPerSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(bytesPerSecond: number, now: () => number = Date.now) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`bytesPerSecond must be > 0, got ${String(bytesPerSecond)}`);
    this.bytesPerSecond = bytesPerSecond;
    this.#now = now;
    this.#tokens = bytesPerSecond;
    this.#at = now();
  }

  #refill(): void {
    const t = this.#now();
    if (t > this.#at) {
      this.#tokens = Math.min(this.bytesPerSecond, this.#tokens + ((t - this.#at) * this.bytesPerSecond) / 1000);
      this.#at = t;
    }
  }

  /** Take `cost` bytes if the budget allows now; true when taken. */
  take(cost: number): boolean {
    this.#refill();
    if (this.#tokens < Math.min(cost, this.bytesPerSecond)) return false;
    this.#tokens -= cost;
    return true;
  }

  /** Milliseconds until `cost` bytes could be taken (0 when now). */
  waitMs(cost: number): number {
    this.#refill();
    const need = Math.min(cost, this.bytesPerSecond) - this.#tokens;
    return need <= 0 ? 0 : Math.ceil((need * 1000) / this.bytesPerSecond);
  }
}
