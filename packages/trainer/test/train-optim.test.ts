import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { paramGroupOf } from '../src/train/param-groups.js';
import { interp, lrLambda, warmupStep } from '../src/train/schedule.js';
import { clipGradNorm, NesterovSgd } from '../src/train/sgd.js';

beforeAll(async () => { await tf.setBackend('cpu'); });

describe('NesterovSgd', () => {
  it('follows PyTorch SGD(nesterov=True) step by step, with decay on weights only', () => {
    const w = tf.variable(tf.tensor1d([1, -2]), true, 'opt-test.conv.weight');
    const b = tf.variable(tf.tensor1d([0.5]), true, 'opt-test.bias');
    const opt = new NesterovSgd(new Map([['m.0.conv.weight', w], ['m.0.conv.bias', b]]), 0.1, 0.9, 0.01);
    // Reference by hand: d = g + wd p; buf = d (first) then 0.9 buf + d; p -= lr (d + 0.9 buf).
    let pw = [1, -2], pb = 0.5, bw = [0, 0], bb = 0;
    const g = [0.3, -0.1], gb = 0.2;
    for (let step = 0; step < 3; step++) {
      opt.step({ 'm.0.conv.weight': tf.tensor1d(g), 'm.0.conv.bias': tf.scalar(gb).reshape([1]) });
      const d = pw.map((p, i) => g[i] + 0.01 * p);
      bw = step === 0 ? d : bw.map((v, i) => 0.9 * v + d[i]);
      pw = pw.map((p, i) => p - 0.1 * (d[i] + 0.9 * bw[i]));
      bb = step === 0 ? gb : 0.9 * bb + gb;
      pb = pb - 0.1 * (gb + 0.9 * bb);
    }
    const got = w.dataSync();
    expect(got[0]).toBeCloseTo(pw[0], 6);
    expect(got[1]).toBeCloseTo(pw[1], 6);
    expect(b.dataSync()[0]).toBeCloseTo(pb, 6);
    opt.dispose();
  });

  it('does not leak tensors from step to step', () => {
    const w = tf.variable(tf.ones([4, 4]), true, 'leak.conv.weight');
    const opt = new NesterovSgd(new Map([['x.conv.weight', w]]), 0.1, 0.9, 0.01);
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const g = tf.onesLike(w);
      opt.step({ 'x.conv.weight': g });
      g.dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    opt.dispose();
  });

  it('clips the global gradient norm to max_norm', () => {
    const { grads, norm } = clipGradNorm({ a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }, 1);
    expect(norm).toBeCloseTo(5, 5);
    const n2 = Math.hypot(...grads.a.dataSync(), ...grads.b.dataSync());
    expect(n2).toBeCloseTo(1, 4);
  });
});

describe('parameter groups and schedules', () => {
  it('groups like smart_optimizer: biases, weights with decay, BatchNorm weights', () => {
    expect(paramGroupOf('model.24.m.0.bias')).toBe(0);
    expect(paramGroupOf('model.0.bn.bias')).toBe(0);
    expect(paramGroupOf('model.0.conv.weight')).toBe(1);
    expect(paramGroupOf('model.24.m.0.weight')).toBe(1);
    expect(paramGroupOf('model.2.m.0.cv1.bn.weight')).toBe(2);
  });

  it('linear and cosine lambdas go from 1 to lrf', () => {
    const lin = lrLambda('linear', 10, 0.01);
    expect(lin(0)).toBe(1);
    expect(lin(10)).toBeCloseTo(0.01, 10);
    expect(lin(5)).toBeCloseTo(0.505, 10);
    const cos = lrLambda('cosine', 10, 0.01);
    expect(cos(0)).toBeCloseTo(1, 10);
    expect(cos(10)).toBeCloseTo(0.01, 10);
    expect(cos(5)).toBeCloseTo(0.505, 10);
  });

  it('warms up: bias lr falls from 0.1, others rise from 0, momentum from 0.8, accumulate to 4', () => {
    const w = { iterations: 100, warmupBiasLr: 0.1, warmupMomentum: 0.8, momentum: 0.937, accumulateTarget: 4 };
    const s0 = warmupStep(0, 0.01, w);
    expect(s0.lrs).toEqual([0.1, 0, 0]);
    expect(s0.momentum).toBeCloseTo(0.8, 10);
    expect(s0.accumulate).toBe(1);
    const s50 = warmupStep(50, 0.01, w);
    expect(s50.lrs[0]).toBeCloseTo(0.055, 10);
    expect(s50.lrs[1]).toBeCloseTo(0.005, 10);
    expect(s50.accumulate).toBe(2); // numpy rounds 2.5 to even
    expect(warmupStep(100, 0.01, w).accumulate).toBe(4);
    expect(interp(150, [0, 100], [1, 4])).toBe(4);
  });
});
