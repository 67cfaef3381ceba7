import { describe, expect, it } from 'vitest';
import { classProbabilities } from '../src/distill/class-probabilities.js';

describe('classProbabilities', () => {
  it('gives σ(obj)·σ(cls) per class for cells above the objectness floor', () => {
    // Two cells of one level, nc = 2: [x, y, w, h, obj, c0, c1].
    const level = Float32Array.from([0, 0, 0, 0, 0, 0, Math.log(3), 0, 0, 0, 0, -10, 5, 5]);
    const p = classProbabilities([level], 2);
    // Cell 1: σ(0) = 0.5; classes σ(0) = 0.5 and σ(ln 3) = 0.75. Cell 2: σ(−10) ≈ 4.5e-5 < 0.01, left out.
    expect(Array.from(p)).toEqual([0.25, 0.375].map((v) => Math.fround(v)));
  });
});
