import { describe, expect, it } from 'vitest';
import { pseudoLabels, withTargets } from '../src/distill/pseudo-labels.js';
import type { TeacherOutput } from '../src/distill/types.js';

const NC = 3;
const NO = 5 + NC;
const geometry = { nc: NC, strides: [8], anchors: [[10, 13, 16, 30]] };

/** One level of 4×4 cells, 2 anchors, 2 images; every objectness −10 except the given cells. */
function teacher(hits: { b: number; y: number; x: number; a: number; cls: number; obj?: number }[]): TeacherOutput {
  const data = new Float32Array(2 * 4 * 4 * 2 * NO);
  for (let i = 0; i < data.length; i += NO) data[i + 4] = -10;
  for (const h of hits) {
    const o = (((h.b * 4 + h.y) * 4 + h.x) * 2 + h.a) * NO;
    data[o + 4] = h.obj ?? 10;
    data[o + 5 + h.cls] = 10;
  }
  return { levels: [{ data, ny: 4, nx: 4 }], ms: 0 };
}

describe('pseudoLabels', () => {
  it("turns the teacher's confident detections on the listed images into normalised targets", () => {
    // σ(0) = 0.5: centre (0.5 + cell)·8, size = the anchor.
    const out = teacher([{ b: 1, y: 2, x: 2, a: 0, cls: 2 }, { b: 0, y: 1, x: 1, a: 1, cls: 1 }, { b: 1, y: 0, x: 0, a: 0, cls: 0, obj: -1 }]);
    const rows = Array.from(pseudoLabels(out, geometry, 2, 32, 32, [1], { conf: 0.5 }));
    expect(rows).toHaveLength(6); // image 0 is not listed; the weak box (σ(−1) = 0.27) is below 0.5
    const [b, cls, cx, cy, w, h] = rows;
    expect([b, cls]).toEqual([1, 2]);
    expect(cx).toBeCloseTo(20 / 32, 5);
    expect(cy).toBeCloseTo(20 / 32, 5);
    expect(w).toBeCloseTo(10 / 32, 5);
    expect(h).toBeCloseTo(13 / 32, 5);
    // A low threshold keeps the weak box too; both images listed.
    const all = pseudoLabels(out, geometry, 2, 32, 32, [0, 1], { conf: 0.1 });
    expect(all.length / 6).toBe(3);
    expect(() => pseudoLabels(out, geometry, 2, 32, 32, [2])).toThrow(/not an image of a batch of 2/);
    expect(() => pseudoLabels({ ms: 0 }, geometry, 2, 32, 32, [0])).toThrow(/no detection levels/);
  });

  it('clips boxes to the image and merges them into the targets in image order', () => {
    const rows = pseudoLabels(teacher([{ b: 0, y: 0, x: 0, a: 1, cls: 1 }]), geometry, 2, 32, 32, [0]);
    const [, , cx, cy, w, h] = Array.from(rows);
    // The 16×30 anchor centred on (4, 4) reaches past the top-left corner: [−4, −11, 12, 19] → [0, 0, 12, 19].
    expect([cx! * 32, cy! * 32, w! * 32, h! * 32].map((v) => Math.round(v * 1000) / 1000)).toEqual([6, 9.5, 12, 19]);
    const merged = withTargets(Float32Array.from([0, 2, 0.5, 0.5, 0.1, 0.1, 1, 0, 0.2, 0.2, 0.1, 0.1]), 2, Float32Array.from([0, 1, 0.3, 0.3, 0.2, 0.2]));
    expect(merged.nTargets).toBe(3);
    expect(Array.from(merged.targets.filter((_, i) => i % 6 === 0))).toEqual([0, 0, 1]);
    expect(withTargets(new Float32Array(0), 0, new Float32Array(0)).nTargets).toBe(0);
  });
});
