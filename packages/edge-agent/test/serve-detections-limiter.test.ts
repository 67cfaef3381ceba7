import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DetectionsLimiter } from '../src/serve/detections-limiter.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Offers one frame every `periodMs` for `frames` frames; returns the publication times (relative) and skips. */
function drive(limiter: DetectionsLimiter, periodMs: number, frames: number): { at: number[]; skipped: number[] } {
  const start = Date.now();
  const at: number[] = [];
  const skipped: number[] = [];
  for (let i = 0; i < frames; i++) {
    const d = limiter.offer();
    if (d.publish) {
      at.push(Date.now() - start);
      skipped.push(d.skipped);
    }
    vi.advanceTimersByTime(periodMs);
  }
  return { at, skipped };
}

describe('DetectionsLimiter', () => {
  it('publishes every frame below the limit', () => {
    const { at, skipped } = drive(new DetectionsLimiter({ maxPerSecond: 10 }), 200, 20);
    expect(at).toHaveLength(20);
    expect(skipped.every((s) => s === 0)).toBe(true);
  });

  it('spreads 100 fps down to 5 per second and counts the skipped frames in the next message', () => {
    const limiter = new DetectionsLimiter({ maxPerSecond: 5 });
    const { at, skipped } = drive(limiter, 10, 300);
    // 3 seconds of frames: 5 per second, spaced at least 200 ms less the 50 ms jitter allowance.
    expect(at).toHaveLength(15);
    for (let s = 0; s < 3; s++) expect(at.filter((t) => t >= s * 1000 && t < (s + 1) * 1000)).toHaveLength(5);
    for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(150);
    expect(skipped[0]).toBe(0);
    expect(skipped.slice(1).every((s) => s >= 14 && s <= 25)).toBe(true);
    // Every frame is either published or counted as skipped.
    expect(at.length + skipped.reduce((a, b) => a + b, 0) + limiter.pendingSkipped).toBe(300);
  });

  it('never exceeds the limit in any one-second window, even with jittery arrivals', () => {
    const limiter = new DetectionsLimiter({ maxPerSecond: 10 });
    const at: number[] = [];
    const start = Date.now();
    // Frames at ~10 fps with ±7 ms jitter, then a burst.
    for (let i = 0; i < 100; i++) {
      if (limiter.offer().publish) at.push(Date.now() - start);
      vi.advanceTimersByTime(i % 2 === 0 ? 93 : 107);
    }
    for (let i = 0; i < 50; i++) {
      if (limiter.offer().publish) at.push(Date.now() - start);
      vi.advanceTimersByTime(1);
    }
    for (let i = 0; i < at.length; i++) {
      const inWindow = at.filter((t) => t >= at[i] && t < at[i] + 1000).length;
      expect(inWindow).toBeLessThanOrEqual(10);
    }
    // Jitter around the limit's own rate does not halve the output: nearly every frame of the 10 s goes out.
    expect(at.filter((t) => t < 10_000).length).toBeGreaterThanOrEqual(95);
  });

  it('recovers after the wall clock steps back, and resets on demand', () => {
    const limiter = new DetectionsLimiter({ maxPerSecond: 2 });
    expect(limiter.offer()).toEqual({ publish: true, skipped: 0 });
    expect(limiter.offer()).toEqual({ publish: false });
    expect(limiter.pendingSkipped).toBe(1);
    vi.setSystemTime(Date.now() - 60_000);
    expect(limiter.offer()).toEqual({ publish: true, skipped: 1 });
    expect(limiter.offer()).toEqual({ publish: false });
    limiter.reset();
    expect(limiter.pendingSkipped).toBe(0);
    expect(limiter.offer()).toEqual({ publish: true, skipped: 0 });
  });

  it('passes everything with Infinity and refuses a bad limit', () => {
    const limiter = new DetectionsLimiter({ maxPerSecond: Infinity });
    for (let i = 0; i < 5; i++) expect(limiter.offer()).toEqual({ publish: true, skipped: 0 });
    expect(() => new DetectionsLimiter({ maxPerSecond: 0 })).toThrow(RangeError);
    expect(() => new DetectionsLimiter({ maxPerSecond: Number.NaN })).toThrow(/maxPerSecond/);
  });
});
