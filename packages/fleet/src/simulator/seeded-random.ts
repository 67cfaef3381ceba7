/**
 * A deterministic uniform [0, 1) generator seeded by a string (mulberry32 over an FNV-1a hash), so each simulated
 * device draws the same jitter and the same injected faults on every run with the same seed.
 * @example const random = seededRandom(`7:sim-nano-001:faults`); random(); // 0.53…
 */
export function seededRandom(seed: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  let state = h >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
