import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { silentLogger } from '../src/util/logger.js';
import { createFeatureAdapters, type FeatureAdapters } from '../src/distill/losses/feature-adapters.js';
import { featureLoss } from '../src/distill/losses/feature.js';
import { gtImitationMask, teacherScoreMask } from '../src/distill/losses/imitation-mask.js';
import type { FeatureMap } from '../src/distill/types.js';
import { seededRandom } from '@kd-edge/core';

beforeAll(async () => { await selectBackend('cpu', silentLogger); });

const value = (x: tf.Tensor) => x.dataSync()[0];
const C = 4;
const H = 8;
const W = 8;

/** Random NHWC student features and the same values as an NCHW teacher map. */
function features(n: number, seed: number): { s: tf.Tensor4D; t: FeatureMap } {
  const rand = seededRandom(seed);
  const nhwc = Float32Array.from({ length: n * H * W * C }, () => rand() * 2 - 1);
  return { s: tf.tensor4d(nhwc, [n, H, W, C]), t: toNchw(nhwc, n) };
}
function toNchw(nhwc: Float32Array, n: number): FeatureMap {
  const data = new Float32Array(nhwc.length);
  for (let b = 0; b < n; b++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) {
    data[((b * C + c) * H + y) * W + x] = nhwc[((b * H + y) * W + x) * C + c];
  }
  return { data, shape: [n, C, H, W] };
}
function identity(adapters: FeatureAdapters, name: string): void {
  const a = adapters.get(name)!;
  a.weight.assign(tf.eye(C).reshape([1, 1, C, C]) as tf.Tensor4D);
  a.bias.assign(tf.zeros([C]));
}
/** The student moved by d in every channel at cell (b, y, x). */
function bumped(s: tf.Tensor4D, b: number, y: number, x: number, d: number): tf.Tensor4D {
  const data = Float32Array.from(s.dataSync());
  for (let c = 0; c < C; c++) data[((b * H + y) * W + x) * C + c] += d;
  return tf.tensor4d(data, s.shape);
}

// One box at the centre of image 0, a quarter of the image wide: grid cells 3..4 (x and y), 2..5 dilated.
const GT = { targets: Float32Array.from([0, 0, 0.5, 0.5, 0.25, 0.25]), nTargets: 1 };

describe('featureLoss', () => {
  it('is zero for equal features through an identity adapter, with every mask', () => {
    const { s, t } = features(2, 1);
    const adapters = createFeatureAdapters([{ name: 'p3', studentC: C, teacherC: C }], 0);
    identity(adapters, 'p3');
    const level = { data: new Float32Array(2 * H * W * 6).fill(1), ny: H, nx: W };
    for (const mask of ['gt', 'teacher-score', 'none'] as const) {
      const l = featureLoss(new Map([['p3', s]]), new Map([['p3', t]]), adapters, { mask, gt: GT, teacherScore: { levels: [level], na: 1 } });
      expect(value(l.total)).toBeCloseTo(0, 7);
    }
    adapters.dispose();
  });

  it("with mask 'gt' counts only cells under a box (dilated by 1), normalised by cells × channels", () => {
    const { s, t } = features(2, 2);
    const adapters = createFeatureAdapters([{ name: 'p3', studentC: C, teacherC: C }], 0);
    identity(adapters, 'p3');
    const loss = (st: tf.Tensor4D, scaleByBatch = true) =>
      featureLoss(new Map([['p3', st]]), new Map([['p3', t]]), adapters, { mask: 'gt', gt: GT, scaleByBatch });
    // Outside the mask: a corner of image 0, and anywhere in image 1 (which has no box).
    expect(value(loss(bumped(s, 0, 0, 0, 3)).total)).toBeCloseTo(0, 7);
    expect(value(loss(bumped(s, 1, 3, 3, 3)).total)).toBeCloseTo(0, 7);
    // Inside: C·d² / (16 cells · C), per image; total × batch 2.
    const inside = loss(bumped(s, 0, 2, 5, 2));
    expect(value(inside.terms.p3)).toBeCloseTo(4 / 16, 6);
    expect(value(inside.total)).toBeCloseTo(2 * 4 / 16, 6);
    expect(value(loss(bumped(s, 0, 2, 5, 2), false).total)).toBeCloseTo(4 / 16, 6);
    expect(value(loss(bumped(s, 0, 1, 5, 2)).total)).toBeCloseTo(0, 7);
    adapters.dispose();
  });

  it("with mask 'none' is the mean squared error over every element", () => {
    const { s, t } = features(1, 3);
    const adapters = createFeatureAdapters([{ name: 'p3', studentC: C, teacherC: C }], 0);
    identity(adapters, 'p3');
    const l = featureLoss(new Map([['p3', bumped(s, 0, 7, 7, 2)]]), new Map([['p3', t]]), adapters, { mask: 'none' });
    expect(value(l.total)).toBeCloseTo(C * 4 / (H * W * C), 6);
    adapters.dispose();
  });

  it("with mask 'teacher-score' weighs cells by the teacher's detection score", () => {
    const { s, t } = features(1, 4);
    const adapters = createFeatureAdapters([{ name: 'p3', studentC: C, teacherC: C }], 0);
    identity(adapters, 'p3');
    // One anchor, nc = 1: score σ(obj)·σ(cls) is σ(2)·σ(1) at cell (4, 4) and ≈ 0 elsewhere.
    const data = new Float32Array(H * W * 6);
    for (let c = 0; c < H * W; c++) { data[c * 6 + 4] = -20; data[c * 6 + 5] = -20; }
    data[(4 * W + 4) * 6 + 4] = 2;
    data[(4 * W + 4) * 6 + 5] = 1;
    const opts = { mask: 'teacher-score' as const, teacherScore: { levels: [{ data, ny: H, nx: W }, { data: new Float32Array(24), ny: 2, nx: 2 }], na: 1 } };
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const at = (y: number, x: number) => value(featureLoss(new Map([['p3', bumped(s, 0, y, x, 2)]]), new Map([['p3', t]]), adapters, opts).total);
    // Σ score < 1, so the divisor is max(Σ score, 1)·C = C.
    expect(at(4, 4)).toBeCloseTo(sig(2) * sig(1) * 4, 5);
    expect(at(0, 0)).toBeLessThan(1e-6);
    adapters.dispose();
  });

  it('gives the adapters and the student non-zero gradients', () => {
    const { s } = features(1, 5);
    const teacher = toNchw(Float32Array.from(s.dataSync(), (v) => v * 2 + 0.5), 1);
    const adapters = createFeatureAdapters([{ name: 'p3', studentC: C, teacherC: C }], 7);
    const f = () => featureLoss(new Map([['p3', s]]), new Map([['p3', teacher]]), adapters, { mask: 'gt', gt: GT }).total;
    const { grads } = tf.variableGrads(f, adapters.variables());
    expect(Object.keys(grads)).toHaveLength(2);
    for (const g of Object.values(grads)) expect(value(g.abs().max())).toBeGreaterThan(1e-4);
    const gs = tf.grad((x: tf.Tensor) => featureLoss(new Map([['p3', x as tf.Tensor4D]]), new Map([['p3', teacher]]), adapters, { mask: 'gt', gt: GT }).total)(s);
    expect(value(gs.abs().max())).toBeGreaterThan(1e-4);
    // A few descent steps on the adapter fit it to the teacher.
    const before = value(f());
    // The teacher is 2·student + 0.5, which a 1×1 adapter can represent exactly.
    for (let k = 0; k < 30; k++) {
      const { grads: g } = tf.variableGrads(f, adapters.variables());
      for (const v of adapters.variables()) v.assign(v.sub(g[v.name].mul(1)));
    }
    expect(value(f())).toBeLessThan(before * 0.1);
    adapters.dispose();
  });

  it('maps student channels onto teacher channels and checks shapes and names', () => {
    const n = 1;
    const s = tf.ones([n, H, W, 3]) as tf.Tensor4D;
    const t: FeatureMap = { data: new Float32Array(n * 5 * H * W), shape: [n, 5, H, W] };
    const adapters = createFeatureAdapters([{ name: 'p4', studentC: 3, teacherC: 5 }], 0);
    expect(value(featureLoss(new Map([['p4', s]]), new Map([['p4', t]]), adapters, { mask: 'none' }).total)).toBeGreaterThan(0);
    expect(() => featureLoss(new Map(), new Map([['p4', t]]), adapters, { mask: 'none' })).toThrow(/student: no feature 'p4'/);
    const wrong: FeatureMap = { data: new Float32Array(n * 5 * 4 * 4), shape: [n, 5, 4, 4] };
    expect(() => featureLoss(new Map([['p4', s]]), new Map([['p4', wrong]]), adapters, { mask: 'none' })).toThrow(/teacher feature 'p4'/);
    expect(() => featureLoss(new Map([['p4', s]]), new Map([['p4', t]]), adapters, { mask: 'gt' })).toThrow(/opts.gt/);
    adapters.dispose();
  });
});

describe('createFeatureAdapters', () => {
  it('is seeded, uses ±1/√c_in, and frees its variables', () => {
    const before = tf.memory().numTensors;
    const a = createFeatureAdapters([{ name: 'a', studentC: 16, teacherC: 8 }, { name: 'b', studentC: 4, teacherC: 4 }], 3);
    const b = createFeatureAdapters([{ name: 'a', studentC: 16, teacherC: 8 }, { name: 'b', studentC: 4, teacherC: 4 }], 3);
    expect(a.get('a')!.weight.shape).toEqual([1, 1, 16, 8]);
    expect(a.get('a')!.bias.shape).toEqual([8]);
    expect(Array.from(a.get('a')!.weight.dataSync())).toEqual(Array.from(b.get('a')!.weight.dataSync()));
    expect(Math.max(...Array.from(a.get('a')!.weight.dataSync(), Math.abs))).toBeLessThanOrEqual(0.25);
    expect(a.variables()).toHaveLength(4);
    a.dispose();
    b.dispose();
    expect(a.size).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => createFeatureAdapters([{ name: 'a', studentC: 0, teacherC: 4 }], 0)).toThrow(/studentC/);
    expect(() => createFeatureAdapters([{ name: 'a', studentC: 2, teacherC: 4 }, { name: 'a', studentC: 2, teacherC: 4 }], 0)).toThrow(/twice/);
  });
});

describe('imitation masks', () => {
  const cells = (m: Float32Array, w: number) => [...m].flatMap((v, i) => (v > 0 ? [[Math.floor(i / w), i % w]] : []));

  it('covered cells dilated by one, clipped at the border, per image', () => {
    const m = gtImitationMask(2, 8, 8, { targets: Float32Array.from([1, 0, 0.0625, 0.0625, 0.125, 0.125]), nTargets: 1 });
    // Box covers cell (0, 0) of image 1 (grid x 0..1); dilation adds (0..1, 0..1).
    expect(cells(m.subarray(0, 64), 8)).toEqual([]);
    expect(cells(m.subarray(64), 8)).toEqual([[0, 0], [0, 1], [1, 0], [1, 1]]);
    expect(cells(gtImitationMask(1, 8, 8, GT), 8)).toHaveLength(16);
  });

  it("with anchors follows the paper's IoU > ψ·max rule", () => {
    // 4×4 grid of a 32 px image; one anchor of one cell (8 px).
    const one = { imageSize: [32, 32] as [number, number], anchors: [8, 8] };
    // A box exactly on cell (1, 1): only that anchor overlaps it well (IoU 1; neighbours 0).
    expect(cells(gtImitationMask(1, 4, 4, { ...one, targets: Float32Array.from([0, 0, 1.5 / 4, 1.5 / 4, 0.25, 0.25]), nTargets: 1 }), 4)).toEqual([[1, 1]]);
    // A 2×2-cell box centred on a cell corner: four anchors inside it at IoU 1/4 each.
    const corner = { ...one, targets: Float32Array.from([0, 0, 0.5, 0.5, 0.5, 0.5]), nTargets: 1 };
    expect(cells(gtImitationMask(1, 4, 4, corner), 4)).toEqual([[1, 1], [1, 2], [2, 1], [2, 2]]);
    // A box of 1.5 cells on cell (1, 1)'s centre: IoU 1/2.25 there, 0.25/3 = 1/12 at the four sides
    // and 0.0625/3.1875 at the corners; ψ = 0.5 keeps the centre, ψ = 0.15 (cut 0.067) adds the sides.
    const wide = { ...one, targets: Float32Array.from([0, 0, 1.5 / 4, 1.5 / 4, 1.5 / 4, 1.5 / 4]), nTargets: 1 };
    expect(cells(gtImitationMask(1, 4, 4, wide), 4)).toEqual([[1, 1]]);
    expect(cells(gtImitationMask(1, 4, 4, { ...wide, psi: 0.15 }), 4)).toEqual([[0, 1], [1, 0], [1, 1], [1, 2], [2, 1]]);
    expect(() => gtImitationMask(1, 4, 4, { targets: GT.targets, nTargets: 1, anchors: [8, 8] })).toThrow(/imageSize/);
    expect(() => gtImitationMask(1, 4, 4, { targets: Float32Array.from([3, 0, 0.5, 0.5, 0.1, 0.1]), nTargets: 1 })).toThrow(/image 3/);
  });

  it('teacher score is the best anchor of σ(obj)·max σ(cls)', () => {
    // 1×1 grid, two anchors, nc = 2.
    const data = Float32Array.from([0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 2, -1, 0]);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    expect(teacherScoreMask({ data, ny: 1, nx: 1 }, 1, 2)[0]).toBeCloseTo(Math.max(sig(0) * sig(3), sig(2) * sig(0)), 6);
  });
});
