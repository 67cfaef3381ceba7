import { decodeYoloOutputs, DEFAULT_ANCHORS, exportOnnx, planYolo, yoloDescription, type ModelWeights } from '@kd-edge/core';
import { describe, expect, it } from 'vitest';
import { anchorsFromGraph } from '../src/import/graph-anchors.js';
import { clampedLogit, invertDecoded, LOGIT_LIMIT, P_MIN, rawLevelToNhwc } from '../src/distill/teacher/head-logits.js';
import { uniform } from './model-fixtures.js';

describe('clampedLogit', () => {
  it('inverts the sigmoid and clamps at ±ln((1−1e-6)/1e-6)', () => {
    expect(LOGIT_LIMIT).toBeCloseTo(13.8155, 4);
    expect(clampedLogit(0.5)).toBe(0);
    expect(clampedLogit(1 / (1 + Math.exp(-3)))).toBeCloseTo(3, 12);
    expect(clampedLogit(1)).toBe(LOGIT_LIMIT);
    expect(clampedLogit(0)).toBe(-LOGIT_LIMIT);
    expect(clampedLogit(1 - 1e-7)).toBe(LOGIT_LIMIT);
    expect(clampedLogit(2e-6)).toBeCloseTo(Math.log(2e-6 / (1 - 2e-6)), 12);
    expect(clampedLogit(-0.1)).toBe(clampedLogit(P_MIN));
    expect(clampedLogit(Number.NaN)).toBeNaN();
  });
});

describe('invertDecoded', () => {
  it('undoes core\'s decoder (float32) within the decode bound, rows level, anchor, y, x', () => {
    const [n, nc] = [2, 3];
    const no = nc + 5;
    const levels = [8, 16, 32].map((stride, l) => ({ ny: 64 / stride, nx: 96 / stride, stride, anchors: DEFAULT_ANCHORS[l]! }));
    const logits = levels.map((lv, l) => uniform(n * lv.ny * lv.nx * 3 * no, 11 + l, -9, 9));
    const decoded = decodeYoloOutputs(levels.map((lv, l) => ({ ...lv, data: logits[l]! })), n, nc);
    const out = levels.map((lv) => new Float32Array(n * lv.ny * lv.nx * 3 * no));
    invertDecoded(decoded, n, nc, levels, out, 0);
    levels.forEach((lv, l) => {
      for (let i = 0; i < out[l]!.length; i++) {
        const z = logits[l]![i]!;
        const s = 1 / (1 + Math.exp(-z));
        // 4 ulps of 1 on σ (+ the grid sum's rounding for x/y), amplified by dz/dσ.
        const delta = 4 * 2 ** -24 + (i % no < 2 ? 2 ** -25 * (Math.max(lv.ny, lv.nx) + 1.5) : 0);
        expect(Math.abs(out[l]![i]! - z)).toBeLessThanOrEqual(delta / (s * (1 - s)));
      }
    });
  });

  it('writes at the given image offset', () => {
    const lv = { ny: 1, nx: 1, stride: 8, anchors: [10, 20] };
    const out = [new Float32Array(2 * 6)];
    // σ = ½ everywhere: cx = (1 − 0.5 + 0)·8 = 4, w = 1·10.
    invertDecoded(Float32Array.from([4, 4, 10, 20, 0.5, 0.5]), 1, 1, [lv], out, 1);
    expect(Array.from(out[0]!.subarray(0, 6))).toEqual([0, 0, 0, 0, 0, 0]);
    for (const v of out[0]!.subarray(6)) expect(Math.abs(v)).toBeLessThan(1e-12);
  });
});

describe('rawLevelToNhwc', () => {
  it('maps [N, na, ny, nx, no] to [N, ny, nx, na·no] with channel a·no + k', () => {
    const [m, na, ny, nx, no] = [2, 3, 2, 4, 6];
    const raw = Float32Array.from({ length: m * na * ny * nx * no }, (_, i) => i);
    const out = new Float32Array(raw.length);
    rawLevelToNhwc(raw, m, na, ny, nx, no, out, 0);
    for (let b = 0; b < m; b++) for (let a = 0; a < na; a++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) for (let k = 0; k < no; k++) {
      expect(out[(((b * ny + y) * nx + x) * na + a) * no + k]).toBe(raw[(((b * na + a) * ny + y) * nx + x) * no + k]);
    }
  });
});

describe('anchorsFromGraph', () => {
  const desc = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 1, [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18]]);
  // Zero weights are enough: only the graph's structure and constants matter here.
  const zeros: ModelWeights = new Map(planYolo(desc).specs.map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))]));

  it('finds the anchor grids of a decoded export in level order, and none in a raw one', () => {
    const decoded = exportOnnx(desc, zeros, { imgsz: 64 });
    expect(anchorsFromGraph(decoded, 3)).toEqual(desc.anchors);
    expect(anchorsFromGraph(decoded, 4)).toBeUndefined();
    expect(anchorsFromGraph(exportOnnx(desc, zeros, { imgsz: 64, raw: true }), 3)).toBeUndefined();
  });
});
