import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { silentLogger } from '../src/util/logger.js';
import { KD_DEFAULTS, kdLoss, mixKd } from '../src/distill/losses/kd.js';

beforeAll(async () => { await selectBackend('cpu', silentLogger); });

const S = [[1, 2, 3], [0, 0, 0]];
const T_LOGITS = Float32Array.from([3, 2, 1, 1, 0, -1]);

/** Float64 reference: batch-mean KL(softmax(t/T) ‖ softmax(s/T))·T². */
function refKd(s: number[][], t: number[][], T: number): number {
  const softmax = (x: number[]) => {
    const m = Math.max(...x);
    const e = x.map((v) => Math.exp(v - m));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  };
  let kl = 0;
  s.forEach((row, i) => {
    const ps = softmax(row.map((v) => v / T));
    const pt = softmax(t[i].map((v) => v / T));
    pt.forEach((q, k) => { kl += q * Math.log(q / ps[k]); });
  });
  return kl / s.length * T * T;
}

const value = (x: tf.Tensor) => x.dataSync()[0];

describe('kdLoss', () => {
  it('equals the hand-computed KL of a 2×3 example at T = 1 and T = 4', () => {
    // Values from a float64 computation of the definition.
    expect(value(kdLoss(tf.tensor2d(S), T_LOGITS, { temperature: 1 }))).toBeCloseTo(0.7083187, 5);
    expect(value(kdLoss(tf.tensor2d(S), T_LOGITS, { temperature: 4 }))).toBeCloseTo(0.8239161, 5);
    expect(value(kdLoss(tf.tensor2d(S), T_LOGITS))).toBeCloseTo(0.8239161, 5); // default T = 4
    expect(KD_DEFAULTS).toEqual({ temperature: 4, alpha: 0.7 });
  });

  it('is zero when the student equals the teacher, and positive otherwise', () => {
    expect(value(kdLoss(tf.tensor2d(T_LOGITS, [2, 3]), T_LOGITS, { temperature: 3 }))).toBeCloseTo(0, 6);
    expect(value(kdLoss(tf.tensor2d(S), T_LOGITS, { temperature: 3 }))).toBeGreaterThan(0.1);
  });

  it('scales by T² so that at high T it tends to logit matching (Hinton et al. 2015, §2.1)', () => {
    // Float32 KL is tiny at high T and T² magnifies its rounding: compare relatively.
    const at = (T: number) => value(kdLoss(tf.tensor2d(S), T_LOGITS, { temperature: T }));
    expect(Math.abs(at(20) / refKd(S, [[3, 2, 1], [1, 0, -1]], 20) - 1)).toBeLessThan(1e-3);
    // Limit: Σ (Δ − mean Δ)² / (2·nc) per row, averaged over rows; row Δs are [2, 0, −2] and [1, 0, −1].
    const limit = ((8 / 6) + (2 / 6)) / 2;
    expect(Math.abs(at(20) / limit - 1)).toBeLessThan(1e-3);
    expect(Math.abs(at(10) / limit - 1)).toBeLessThan(3e-3);
    // Without T² the KL would shrink about 4× from T = 10 to 20; with it the loss keeps its size.
    expect(at(20) / at(10)).toBeCloseTo(0.8329516 / 0.8318090, 3);
  });

  it('has the analytic gradient T·(p_s − p_t)/N, agreeing with finite differences, pointing toward the teacher', () => {
    const T = 2;
    const s = tf.tensor2d(S);
    const g = tf.grad((x: tf.Tensor) => kdLoss(x as tf.Tensor2D, T_LOGITS, { temperature: T }))(s).arraySync() as number[][];
    const tRows = [[3, 2, 1], [1, 0, -1]];
    const h = 1e-4;
    for (let i = 0; i < 2; i++) {
      for (let k = 0; k < 3; k++) {
        const up = S.map((r) => [...r]);
        const down = S.map((r) => [...r]);
        up[i][k] += h;
        down[i][k] -= h;
        const numeric = (refKd(up, tRows, T) - refKd(down, tRows, T)) / (2 * h);
        expect(g[i][k]).toBeCloseTo(numeric, 4);
      }
    }
    // Row 0: the teacher prefers class 0, the student class 2: descent raises s0 and lowers s2.
    expect(g[0][0]).toBeLessThan(0);
    expect(g[0][2]).toBeGreaterThan(0);
    // A small descent step lowers the loss.
    const before = value(kdLoss(s, T_LOGITS, { temperature: T }));
    const after = value(kdLoss(s.sub(tf.tensor2d(g).mul(0.1)) as tf.Tensor2D, T_LOGITS, { temperature: T }));
    expect(after).toBeLessThan(before);
  });

  it('treats the teacher as a constant and checks its arguments', () => {
    expect(() => kdLoss(tf.tensor2d(S), new Float32Array(5))).toThrow(RangeError);
    expect(() => kdLoss(tf.tensor2d(S), T_LOGITS, { temperature: 0 })).toThrow(/temperature/);
  });
});

describe('mixKd', () => {
  it('is α·KD + (1−α)·CE, default α = 0.7', () => {
    expect(value(mixKd(tf.scalar(2), tf.scalar(10), 0.25))).toBeCloseTo(0.25 * 10 + 0.75 * 2, 5);
    expect(value(mixKd(tf.scalar(2), tf.scalar(10)))).toBeCloseTo(0.7 * 10 + 0.3 * 2, 5);
    expect(() => mixKd(tf.scalar(2), tf.scalar(10), 1.5)).toThrow(/alpha/);
  });
});
