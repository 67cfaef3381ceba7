import { describe, expect, it } from 'vitest';
import { decodeYoloOutputs, decodedRowCount } from '../src/detect/decode.js';

const L3 = Math.log(3); // σ(ln 3) = 0.75, σ(−ln 3) = 0.25, σ(0) = 0.5

describe('decodeYoloOutputs', () => {
  // nc = 1 → 6 channels per anchor. Level 0: 1x2 grid, 2 anchors, stride 8. Level 1: 1x1 grid, 1 anchor, stride 16.
  const nc = 1;
  const no = 6;
  const level0 = new Float32Array(2 * 1 * 2 * 2 * no); // [N=2, ny=1, nx=2, 2·6]
  const level1 = new Float32Array(2 * 1 * 1 * 1 * no); // [N=2, 1, 1, 6]
  // Image 0, cell (y 0, x 1), anchor 1: channel base = ((0·1 + 0)·2 + 1)·12 + 1·6
  const c = 1 * 12 + 6;
  level0.set([L3, 0, 0, L3, -L3, L3], c);
  // Image 1 (offset 6 in level 1), its only cell and anchor.
  level1.set([-L3, L3, -L3, 0, L3, -L3], 6);
  const levels = [
    { data: level0, ny: 1, nx: 2, stride: 8, anchors: [10, 13, 20, 30] },
    { data: level1, ny: 1, nx: 1, stride: 16, anchors: [100, 90] },
  ];
  const out = decodeYoloOutputs(levels, 2, nc);
  const row = (img: number, r: number): number[] => Array.from(out.subarray((img * 5 + r) * no, (img * 5 + r + 1) * no));

  it('has Σ na·ny·nx rows per image', () => {
    expect(decodedRowCount(levels)).toBe(5);
    expect(out.length).toBe(2 * 5 * no);
  });

  it('orders rows by level, anchor, y, x and applies the YOLOv5 formulas', () => {
    // With every logit 0: σ = 0.5 → xy = (1 − 0.5 + grid)·stride, wh = 1²·anchor, obj = cls = 0.5.
    const expected0: number[][] = [
      [4, 4, 10, 13, 0.5, 0.5], // level 0, anchor 0, x 0
      [12, 4, 10, 13, 0.5, 0.5], // level 0, anchor 0, x 1
      [4, 4, 20, 30, 0.5, 0.5], // level 0, anchor 1, x 0
      // level 0, anchor 1, x 1: σx 0.75 → (1.5 − 0.5 + 1)·8 = 16; σh 0.75 → 1.5²·30 = 67.5; obj 0.25, cls 0.75
      [16, 4, 20, 67.5, 0.25, 0.75],
      [8, 8, 100, 90, 0.5, 0.5], // level 1
    ];
    const expected1: number[][] = [
      [4, 4, 10, 13, 0.5, 0.5],
      [12, 4, 10, 13, 0.5, 0.5],
      [4, 4, 20, 30, 0.5, 0.5],
      [12, 4, 20, 30, 0.5, 0.5],
      // σx 0.25 → (0.5 − 0.5 + 0)·16 = 0; σy 0.75 → 1·16 = 16; σw 0.25 → 0.5²·100 = 25; h 90; obj 0.75; cls 0.25
      [0, 16, 25, 90, 0.75, 0.25],
    ];
    for (let r = 0; r < 5; r++) {
      row(0, r).forEach((v, k) => expect(v).toBeCloseTo(expected0[r][k], 5));
      row(1, r).forEach((v, k) => expect(v).toBeCloseTo(expected1[r][k], 5));
    }
  });

  it('rejects data that does not fit the declared shape', () => {
    expect(() => decodeYoloOutputs([{ ...levels[0], data: new Float32Array(5) }], 2, nc)).toThrow(/levels\[0\]\.data/);
    expect(() => decodeYoloOutputs(levels, 2, 0)).toThrow(RangeError);
    expect(() => decodeYoloOutputs([{ ...levels[0], anchors: [1, 2, 3] }], 2, nc)).toThrow(/anchors/);
  });
});
