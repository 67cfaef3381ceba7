import { seededRandom } from '@kd-edge/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Backoff, backoffDelay, resolveBackoffOptions } from '../src/mqtt/backoff.js';

const OPTIONS = { baseMs: 100, maxMs: 5000, factor: 2 };

describe('backoffDelay', () => {
  it('scales the jitter ceiling as base * factor^attempt, capped at max', () => {
    const almostOne = (): number => 1 - Number.EPSILON;
    const ceilings = [0, 1, 2, 3, 5, 6, 7, 20, 2000].map((n) => backoffDelay(n, OPTIONS, almostOne) + 1);
    expect(ceilings).toEqual([100, 200, 400, 800, 3200, 5000, 5000, 5000, 5000]);
  });

  it('is full jitter: a random of 0 gives no delay and the delay is random * ceiling', () => {
    expect(backoffDelay(4, OPTIONS, () => 0)).toBe(0);
    expect(backoffDelay(2, OPTIONS, () => 0.5)).toBe(200);
    expect(backoffDelay(10, OPTIONS, () => 0.25)).toBe(1250);
  });

  it('stays in [0, ceiling) and spreads over it with a seeded generator (reproducibly)', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const delays = Array.from({ length: 4000 }, () => backoffDelay(3, OPTIONS, a));
    expect(delays).toEqual(Array.from({ length: 4000 }, () => backoffDelay(3, OPTIONS, b)));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(800);
    const mean = delays.reduce((s, d) => s + d, 0) / delays.length;
    // Uniform on [0, 800): mean 400; lockstep reconnects (no jitter) would give 800 every time.
    expect(mean).toBeGreaterThan(370);
    expect(mean).toBeLessThan(430);
    expect(delays.filter((d) => d < 400).length / delays.length).toBeCloseTo(0.5, 1);
  });

  it('fills in defaults and refuses bad options and attempts', () => {
    expect(resolveBackoffOptions({ baseMs: 50 })).toEqual({ baseMs: 50, maxMs: 60_000, factor: 2 });
    expect(() => backoffDelay(0, { baseMs: -1 })).toThrow(/baseMs/);
    expect(() => backoffDelay(0, { baseMs: 100, maxMs: 10 })).toThrow(/maxMs/);
    expect(() => backoffDelay(0, { factor: 0.5 })).toThrow(/factor/);
    expect(() => backoffDelay(-1, OPTIONS)).toThrow(RangeError);
    expect(() => backoffDelay(1.5, OPTIONS)).toThrow(/attempt/);
    expect(() => backoffDelay(0, OPTIONS, () => 1)).toThrow(/random/);
  });
});

describe('Backoff (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs the callback after exactly the computed delay, growing per attempt until reset', () => {
    vi.useFakeTimers();
    const backoff = new Backoff(OPTIONS, () => 0.5);
    const fired: number[] = [];
    const expected = [50, 100, 200, 400];
    for (const [i, delay] of expected.entries()) {
      expect(backoff.schedule(() => fired.push(i))).toBe(delay);
      expect(backoff.pending).toBe(true);
      vi.advanceTimersByTime(delay - 1);
      expect(fired).toEqual(expected.slice(0, i).map((_, j) => j));
      vi.advanceTimersByTime(1);
      expect(fired).toContain(i);
      expect(backoff.pending).toBe(false);
    }
    expect(backoff.attempt).toBe(4);
    backoff.reset();
    expect(backoff.attempt).toBe(0);
    expect(backoff.schedule(() => fired.push(99))).toBe(50);
    vi.advanceTimersByTime(50);
    expect(fired.at(-1)).toBe(99);
  });

  it('cancel() and a second schedule() drop the waiting callback', () => {
    vi.useFakeTimers();
    const backoff = new Backoff({ baseMs: 1000, maxMs: 1000, factor: 1 }, () => 0.5);
    const fired: string[] = [];
    backoff.schedule(() => fired.push('first'));
    backoff.schedule(() => fired.push('second'));
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['second']);
    backoff.schedule(() => fired.push('third'));
    backoff.cancel();
    expect(backoff.pending).toBe(false);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['second']);
  });
});
