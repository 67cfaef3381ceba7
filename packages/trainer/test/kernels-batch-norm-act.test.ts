import * as tf from '../src/tf.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { hasFusedBatchNorm, KdBnAct, KdMoments } from '../src/backend/kernels/batch-norm-act.js';
import { batchNormActTrain, silu } from '../src/model/layers.js';
import { relErr } from './rel-err.js';

interface Result {
  y: number[];
  dx: number[];
  dgamma: number[];
  dbeta: number[];
  runningMean: number[];
  runningVar: number[];
}

/** Training-mode BatchNorm(+SiLU) forward and backward of a fixed random input on `backend`. */
async function runBn(backend: string, shape: [number, number, number, number], act: boolean, offset = 0): Promise<Result> {
  await tf.setBackend(backend);
  const c = shape[3];
  const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 11), 3), offset) as tf.Tensor4D;
  const gamma = tf.variable(tf.randomUniform([c], 0.5, 1.5, 'float32', 12), true, `g${backend}${shape}${act}`) as tf.Variable<tf.Rank.R1>;
  const beta = tf.variable(tf.randomNormal([c], 0, 0.5, 'float32', 13), true, `b${backend}${shape}${act}`) as tf.Variable<tf.Rank.R1>;
  const rm = tf.variable(tf.zeros([c]), false);
  const rv = tf.variable(tf.ones([c]), false);
  // A weighted sum makes dy non-uniform, so every term of the backward pass matters.
  const w = tf.randomNormal(shape, 0, 1, 'float32', 14);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(batchNormActTrain(x, gamma, beta, rm, rv, act), w)) as tf.Scalar, [gamma, beta]);
  const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(batchNormActTrain(xi as tf.Tensor4D, gamma, beta, rm, rv, act), w)))(x);
  const y = batchNormActTrain(x, gamma, beta, rm, rv, act);
  value.dispose();
  const out = {
    y: Array.from(y.dataSync()), dx: Array.from(dx.dataSync()),
    dgamma: Array.from(grads[gamma.name]!.dataSync()), dbeta: Array.from(grads[beta.name]!.dataSync()),
    runningMean: Array.from(rm.dataSync()), runningVar: Array.from(rv.dataSync()),
  };
  tf.dispose([x, gamma, beta, rm, rv, w, dx, y, ...Object.values(grads)]);
  return out;
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('kd-simd fused BatchNorm + SiLU (wasm) against the cpu backend', () => {
  it('is the path wasm takes, and cpu keeps the composed ops', async () => {
    await tf.setBackend('wasm');
    expect(hasFusedBatchNorm()).toBe(true);
    await tf.setBackend('cpu');
    expect(hasFusedBatchNorm()).toBe(false);
  });

  it.each([
    { shape: [2, 8, 8, 16] as [number, number, number, number], act: true },
    { shape: [3, 5, 7, 6] as [number, number, number, number], act: true }, // C not a multiple of 4, rows not of the block
    { shape: [4, 16, 16, 32] as [number, number, number, number], act: false },
    { shape: [1, 1, 3, 5] as [number, number, number, number], act: true },
  ])('matches forward, backward and running statistics for $shape act=$act', async ({ shape, act }) => {
    const wasm = await runBn('wasm', shape, act);
    const cpu = await runBn('cpu', shape, act);
    expect(relErr(wasm.y, cpu.y)).toBeLessThan(2e-6);
    expect(relErr(wasm.dx, cpu.dx)).toBeLessThan(2e-5);
    expect(relErr(wasm.dgamma, cpu.dgamma)).toBeLessThan(2e-5);
    expect(relErr(wasm.dbeta, cpu.dbeta)).toBeLessThan(2e-5);
    expect(relErr(wasm.runningMean, cpu.runningMean)).toBeLessThan(1e-6);
    expect(relErr(wasm.runningVar, cpu.runningVar)).toBeLessThan(1e-6);
  });

  it('keeps the variance accurate when the mean is far from zero (two-pass moments)', async () => {
    await tf.setBackend('wasm');
    const x = tf.add(tf.randomNormal([8, 32, 32, 8], 0, 1, 'float32', 3), 1000);
    const [mean, variance] = tf.engine().runKernel(KdMoments, { x }) as tf.Tensor[];
    const ref = await (async () => {
      const v = x.dataSync();
      const m = new Float64Array(8);
      const s = new Float64Array(8);
      for (let i = 0; i < v.length; i++) m[i % 8]! += v[i]!;
      for (let j = 0; j < 8; j++) m[j]! /= v.length / 8;
      for (let i = 0; i < v.length; i++) s[i % 8]! += (v[i]! - m[i % 8]!) ** 2;
      return { m: Array.from(m), s: Array.from(s, (t) => t / (v.length / 8)) };
    })();
    expect(relErr(Array.from(mean!.dataSync()), ref.m)).toBeLessThan(1e-7);
    expect(relErr(Array.from(variance!.dataSync()), ref.s)).toBeLessThan(1e-4);
  });

  it('computes SiLU to float32 precision over the whole range, saturating without NaN', async () => {
    const values = [-200, -90, -87.5, -30, -10, -1, -1e-3, 0, 1e-3, 0.5, 1, 5, 20, 88.5, 200];
    for (let i = 0; i < 200; i++) values.push(-20 + i * 0.2);
    await tf.setBackend('wasm');
    const fused = Array.from(silu(tf.tensor1d(values)).dataSync());
    const exact = values.map((v) => v / (1 + Math.exp(-v)));
    expect(fused.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(fused[i]! - exact[i]!)).toBeLessThanOrEqual(3e-7 * Math.max(1, Math.abs(exact[i]!)));
    }
    // The fused SiLU has a gradient: d/dx x·σ(x).
    const g = Array.from(tf.grad((x: tf.Tensor) => tf.sum(silu(x)))(tf.tensor1d([-2, 0, 3])).dataSync());
    const dsilu = (x: number) => { const s = 1 / (1 + Math.exp(-x)); return s * (1 + x * (1 - s)); };
    expect(relErr(g, [-2, 0, 3].map(dsilu))).toBeLessThan(1e-6);
  });

  it('applies scale and shift per channel without the activation when act is off', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]);
    const y = tf.engine().runKernel(KdBnAct, { x, scale: tf.tensor1d([1, 2, 3, 4, 5]), shift: tf.tensor1d([0, -1, 0, 1, 0.5]) }, { act: false }) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([1, 3, 9, 17, 25.5, 6, 13, 24, 37, 50.5]);
  });
  // SyncBN across real replicas runs this path in test/train-data-parallel.test.ts (N = 2, 3, 4 against the full batch).
});

describe('kd-simd.wasm', () => {
  it('owns no memory of its own: no data segment, and it imports tfjs\'s heap', () => {
    const bytes = readFileSync(fileURLToPath(new URL('../wasm/kd-simd.wasm', import.meta.url)));
    const sections: number[] = [];
    let p = 8;
    const leb = (): number => { let v = 0; let shift = 0; let b: number; do { b = bytes[p++]!; v |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80); return v >>> 0; };
    while (p < bytes.length) {
      const id = bytes[p++]!;
      const size = leb();
      sections.push(id);
      p += size;
    }
    expect(sections).toContain(2); // import (env.memory)
    expect(sections).not.toContain(5); // no memory of its own
    expect(sections).not.toContain(11); // no data segment
  });
});
