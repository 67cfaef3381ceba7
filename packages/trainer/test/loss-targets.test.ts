import { describe, expect, it } from 'vitest';
import { buildTargets } from '../src/loss/build-targets.js';

const P3 = { ny: 16, nx: 16, stride: 8, anchors: [10, 13, 16, 30, 33, 23] };

describe('buildTargets (ultralytics build_targets)', () => {
  // One box at (0.3, 0.55) size (0.1, 0.2) on a 128 px image: on P3 gxy = (4.8, 8.8), gwh = (1.6, 3.2).
  // All three anchors pass anchor_t = 4 (worst ratio 2.58). gxy%1 = 0.8: no left/up neighbour;
  // (16 - gxy)%1 = 0.2 < 0.5: right and down neighbours. So 3 anchors x 3 cells = 9 matches.
  const t = Float32Array.from([0, 1, 0.3, 0.55, 0.1, 0.2]);
  const [m] = buildTargets(t, 1, [P3], 4.0);

  it('matches every anchor in the centre cell and two neighbours', () => {
    expect(m.n).toBe(9);
    const cells = [...m.rows].map((r) => [Math.floor(r / 3) % 16, Math.floor(r / 48), r % 3]);
    // Order: offset group (centre, right, down), then anchor.
    expect(cells).toEqual([
      [4, 8, 0], [4, 8, 1], [4, 8, 2],
      [5, 8, 0], [5, 8, 1], [5, 8, 2],
      [4, 9, 0], [4, 9, 1], [4, 9, 2],
    ]);
  });

  it('gives xy targets relative to the assigned cell, in (-0.5, 1.5)', () => {
    expect([...m.tbox.subarray(0, 4)].map((v) => +v.toFixed(4))).toEqual([0.8, 0.8, 1.6, 3.2]);
    expect([...m.tbox.subarray(12, 14)].map((v) => +v.toFixed(4))).toEqual([-0.2, 0.8]);
    expect([...m.tbox.subarray(24, 26)].map((v) => +v.toFixed(4))).toEqual([0.8, -0.2]);
    expect([...m.anchors.subarray(0, 6)]).toEqual([1.25, 1.625, 2, 3.75, 4.125, 2.875]);
    expect([...m.tcls]).toEqual(new Array(9).fill(1));
  });

  it('drops anchors whose shape ratio exceeds anchor_t', () => {
    // A 0.95 x 0.02 box: on P3 gwh = (15.2, 0.32); every P3 anchor has a ratio over 4
    // (best: anchor 2, 15.2/4.125 = 3.7 but 2.875/0.32 = 9.0).
    const [p3] = buildTargets(Float32Array.from([0, 0, 0.5, 0.5, 0.95, 0.02]), 1, [P3], 4.0);
    expect(p3.n).toBe(0);
  });

  it('indexes rows by image in the batch and keeps the last match per cell for objectness', () => {
    // Two identical boxes, one per image, plus a duplicate in image 1 (same cell and anchors).
    const two = Float32Array.from([0, 0, 0.3, 0.55, 0.1, 0.2, 1, 0, 0.3, 0.55, 0.1, 0.2, 1, 2, 0.3, 0.55, 0.1, 0.2]);
    const [lv] = buildTargets(two, 3, [P3], 4.0);
    expect(lv.n).toBe(27);
    expect(lv.rows[1]).toBe(lv.rows[0] + 16 * 16 * 3); // same cell and anchor, next target is in image 1
    const img1 = [...lv.rows].filter((r) => r >= 16 * 16 * 3);
    expect(img1.length).toBe(18);
    // 9 distinct cells in each image; duplicates resolved to the later (class 2) target.
    expect(lv.objRows.length).toBe(18);
    for (let k = 0; k < lv.objRows.length; k++) {
      const from = lv.objFrom[k];
      expect(lv.rows[from]).toBe(lv.objRows[k]);
      if (lv.objRows[k] >= 16 * 16 * 3) expect(lv.tcls[from]).toBe(2);
    }
  });
});
