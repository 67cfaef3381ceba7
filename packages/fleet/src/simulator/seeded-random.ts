import { seededRandom as seededRandomOf } from '@kd-edge/core/util';

/**
 * A deterministic uniform [0, 1) generator seeded by a string: core's mulberry32, seeded with the string's FNV-1a
 * hash, so each simulated device draws the same jitter and the same injected faults on every run with the same seed.
 * @example const random = seededRandom(`7:sim-nano-001:faults`); random(); // 0.53…
 */
export function seededRandom(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return seededRandomOf(h >>> 0);
}
