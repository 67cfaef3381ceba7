/**
 * Seeded random streams for reproducible augmentation and shuffling: core's mulberry32 seeded by a
 * hash of (seed, epoch, index, …), so any sample can be regenerated on its own, in any worker, in
 * any order.
 */
import { seededRandom } from '@kd-edge/core';

/** murmur3's 32-bit finaliser: a cheap bijective mix, good enough to decorrelate derived seeds. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of integers into one 32-bit seed; different lists give unrelated seeds. */
export function hashSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Fold in high bits too, so seeds above 2^32 still matter.
    h = fmix32((h ^ (p >>> 0)) + Math.imul(0x632be5ab, Math.floor(p / 4294967296) | 0));
  }
  return h;
}

/** Seeded pseudo-random generator with the helpers augmentation needs. */
export class Rng {
  private readonly draw: () => number;

  /** A generator whose stream depends only on `seed` (any integer). */
  constructor(seed: number) {
    this.draw = seededRandom(hashSeed(seed));
  }

  /** A generator for one (seed, epoch, index, …) tuple, independent of any other tuple. */
  static derive(...parts: number[]): Rng {
    return new Rng(hashSeed(...parts));
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.draw();
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array, uniformly. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('choice: items must not be empty');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Standard normal sample (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}
