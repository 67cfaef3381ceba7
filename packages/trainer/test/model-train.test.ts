import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTrainingGradients } from '../src/backend/register-gradients.js';
import { BN_EPS, batchNormActTrain } from '../src/model/layers.js';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloDescription } from '@kd-edge/core';
import type { DetectionModel } from '../src/model/types.js';

// A narrow yolov5n-shaped model keeps the cpu backend's gradient convolutions quick.
const TINY = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2);

let model: DetectionModel;
let x: tf.Tensor4D;

beforeAll(async () => {
  await tf.setBackend('cpu');
  await ensureTrainingGradients();
  model = createYoloModel(TINY, { seed: 1 });
  x = tf.randomUniform([2, 32, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
});
afterAll(() => {
  model.dispose();
  x.dispose();
});

const snapshot = (m: DetectionModel) => new Map([...m.buffers].map(([k, v]) => [k, v.dataSync().slice()]));

describe('training mode', () => {
  it('leaves no tensors behind across forward+backward, tidy forwards and eval', () => {
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.addN(model.forward(x, true).map((o) => tf.sum(o))) as tf.Scalar,
        [...model.params.values()]);
      expect(Object.keys(grads)).toHaveLength(model.params.size);
      expect(tf.tidy(() => Object.values(grads).every((g) => Number.isFinite(tf.sum(tf.abs(g)).dataSync()[0]!)))).toBe(true);
      value.dispose();
      tf.dispose(grads);
    };
    step(); // first call may create lazily cached tensors
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    for (let i = 0; i < 2; i++) tf.tidy(() => { model.forward(x, true); });
    for (let i = 0; i < 2; i++) tf.tidy(() => { model.forward(x, false); });
    tf.dispose(model.forward(x, false));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gives every parameter a non-zero gradient', () => {
    const { value, grads } = tf.variableGrads(() => tf.addN(model.forward(x, true).map((o) => tf.mean(tf.square(o)))) as tf.Scalar,
      [...model.params.values()]);
    const byName = new Map([...model.params].map(([k, v]) => [v.name, k]));
    const zero = tf.tidy(() => Object.entries(grads).filter(([, g]) => tf.max(tf.abs(g)).dataSync()[0] === 0).map(([n]) => byName.get(n)));
    expect(zero).toEqual([]);
    value.dispose();
    tf.dispose(grads);
  });

  it('updates BatchNorm running stats with momentum 0.03 and the unbiased batch variance', () => {
    const rm0 = model.buffers.get('model.0.bn.running_mean')!.dataSync().slice();
    const rv0 = model.buffers.get('model.0.bn.running_var')!.dataSync().slice();
    tf.dispose(model.forward(x, true));
    const [mean, varUnbiased] = tf.tidy(() => {
      const y = tf.conv2d(x, model.params.get('model.0.conv.weight') as tf.Tensor4D, 2, [[0, 0], [2, 2], [2, 2], [0, 0]]);
      const { mean: m, variance: v } = tf.moments(y, [0, 1, 2]);
      const n = y.shape[0] * y.shape[1] * y.shape[2];
      return [m.dataSync(), tf.mul(v, n / (n - 1)).dataSync()];
    });
    const rm = model.buffers.get('model.0.bn.running_mean')!.dataSync();
    const rv = model.buffers.get('model.0.bn.running_var')!.dataSync();
    for (let c = 0; c < rm.length; c++) {
      expect(rm[c]).toBeCloseTo(0.97 * rm0[c]! + 0.03 * mean[c]!, 5);
      expect(rv[c]).toBeCloseTo(0.97 * rv0[c]! + 0.03 * varUnbiased[c]!, 5);
    }
  });

  it('changes every running stat in training mode and none in eval mode', () => {
    const a = snapshot(model);
    tf.dispose(model.forward(x, false));
    const b = snapshot(model);
    expect(b).toEqual(a);
    tf.dispose(model.forward(x, true));
    const c = snapshot(model);
    const unchanged = [...c].filter(([k, v]) => v.every((e, i) => e === a.get(k)![i])).map(([k]) => k);
    expect(unchanged).toEqual([]);
  });

  it('normalises with batch statistics in training and running statistics in eval', () => {
    const [t, e] = tf.tidy(() => [model.forward(x, true)[0]!.dataSync(), model.forward(x, false)[0]!.dataSync()]);
    expect(t).not.toEqual(e);
  });
});

describe('batchNormActTrain', () => {
  it.each([true, false])('has the gradients of the op-by-op BatchNorm+SiLU (act=%s)', (act) => {
    tf.tidy(() => {
      const x = tf.randomNormal([2, 3, 4, 5], 0.5, 2, 'float32', 11) as tf.Tensor4D;
      const gamma = tf.randomUniform([5], 0.5, 1.5, 'float32', 12) as tf.Tensor1D;
      const beta = tf.randomUniform([5], -1, 1, 'float32', 13) as tf.Tensor1D;
      const dy = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 14);
      const reference = (xi: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => {
        const { mean, variance } = tf.moments(xi, [0, 1, 2]);
        const z = tf.add(tf.mul(tf.div(tf.sub(xi, mean), tf.sqrt(tf.add(variance, BN_EPS))), g), b);
        return tf.sum(tf.mul(act ? tf.mul(z, tf.sigmoid(z)) : z, dy));
      };
      const rm = tf.variable(tf.zeros([5]), false);
      const rv = tf.variable(tf.ones([5]), false);
      const ours = (xi: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D) => tf.sum(tf.mul(batchNormActTrain(xi, g, b, rm, rv, act), dy));
      expect(ours(x, gamma, beta).dataSync()[0]).toBeCloseTo(reference(x, gamma, beta).dataSync()[0]!, 3);
      const want = tf.grads(reference as (...a: tf.Tensor[]) => tf.Tensor)([x, gamma, beta]);
      const got = tf.grads(ours as (...a: tf.Tensor[]) => tf.Tensor)([x, gamma, beta]);
      got.forEach((g, i) => {
        const err = tf.max(tf.abs(tf.sub(g, want[i]!))).dataSync()[0]!;
        const scale = tf.max(tf.abs(want[i]!)).dataSync()[0]!;
        expect(err / scale).toBeLessThan(1e-4);
      });
      rm.dispose();
      rv.dispose();
    });
  });
});
