import * as tf from '../src/tf.js';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convForward, upsampleNearest } from '../src/model/layers.js';
import { countParams } from '@kd-edge/core';
import { createYoloModel } from '../src/model/yolo.js';
import { yoloDescription } from '@kd-edge/core';
import type { DetectionModel } from '../src/model/types.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('createYoloModel (yolov5n, cpu)', () => {
  let model: DetectionModel;
  beforeAll(() => {
    model = createYoloModel(yoloDescription('n', 80));
  });
  afterAll(() => model.dispose());

  it('allocates exactly the counted parameters and names them as ultralytics state_dict', () => {
    expect(model.paramCount()).toBe(1_872_157);
    expect(model.paramCount()).toBe(countParams(model.description));
    const names = [...model.params.keys()];
    expect(names.slice(0, 3)).toEqual(['model.0.conv.weight', 'model.0.bn.weight', 'model.0.bn.bias']);
    for (const n of ['model.2.cv1.conv.weight', 'model.2.m.0.cv1.conv.weight', 'model.2.m.0.cv2.bn.bias', 'model.4.m.1.cv2.conv.weight',
      'model.9.cv1.conv.weight', 'model.9.cv2.bn.weight', 'model.23.cv3.conv.weight', 'model.24.m.0.weight', 'model.24.m.2.bias']) {
      expect(model.params.has(n), n).toBe(true);
    }
    expect(names.at(-1)).toBe('model.24.m.2.bias');
    expect([...model.buffers.keys()].slice(0, 2)).toEqual(['model.0.bn.running_mean', 'model.0.bn.running_var']);
    expect(model.buffers.size).toBe(2 * [...model.params.keys()].filter((n) => n.endsWith('.bn.weight')).length);
    expect([...model.buffers.values()].every((v) => !v.trainable)).toBe(true);
    expect([...model.params.values()].every((v) => v.trainable)).toBe(true);
    expect(model.params.get('model.0.conv.weight')!.shape).toEqual([6, 6, 3, 16]);
    expect(model.params.get('model.24.m.0.weight')!.shape).toEqual([1, 1, 64, 255]);
    expect(model.params.get('model.24.m.2.weight')!.shape).toEqual([1, 1, 256, 255]);
  });

  it('exposes levels, strides and pixel anchors', () => {
    expect([model.nl, model.na, model.nc]).toEqual([3, 3, 80]);
    expect(model.strides).toEqual([8, 16, 32]);
    expect(model.anchors[2]).toEqual([116, 90, 156, 198, 373, 326]);
  });

  it('initialises like PyTorch plus the YOLOv5 Detect bias prior', () => {
    const w = model.params.get('model.1.conv.weight')!.dataSync();
    const bound = 1 / Math.sqrt(3 * 3 * 16);
    expect(Math.max(...w)).toBeLessThanOrEqual(bound);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-bound);
    expect(Math.max(...w)).toBeGreaterThan(0.9 * bound);
    expect([...model.params.get('model.0.bn.weight')!.dataSync()].every((v) => v === 1)).toBe(true);
    expect([...model.params.get('model.0.bn.bias')!.dataSync()].every((v) => v === 0)).toBe(true);
    expect([...model.buffers.get('model.0.bn.running_var')!.dataSync()].every((v) => v === 1)).toBe(true);
    const b = model.params.get('model.24.m.2.bias')!.dataSync(); // stride 32
    const fan = 1 / Math.sqrt(256);
    for (let a = 0; a < 3; a++) {
      expect(Math.abs(b[a * 85 + 4]! - Math.log(8 / (640 / 32) ** 2))).toBeLessThanOrEqual(fan + 1e-6);
      expect(Math.abs(b[a * 85 + 5]! - Math.log(0.6 / (80 - 0.99)))).toBeLessThanOrEqual(fan + 1e-6);
      expect(Math.abs(b[a * 85]!)).toBeLessThanOrEqual(fan);
    }
  });

  it('gives [N, H/s, W/s, na·(5+nc)] per level, also for non-square inputs', () => {
    for (const [h, w] of [[64, 64], [96, 128]] as const) {
      const outs = tf.tidy(() => model.forward(tf.zeros([1, h, w, 3]) as tf.Tensor4D, false));
      expect(outs.map((o) => o.shape)).toEqual([[1, h / 8, w / 8, 255], [1, h / 16, w / 16, 255], [1, h / 32, w / 32, 255]]);
      expect(outs.every((o) => o.dtype === 'float32')).toBe(true);
      tf.dispose(outs);
    }
  });

  it('rejects inputs that are not NHWC with sides divisible by 32', () => {
    expect(() => model.forward(tf.zeros([1, 3, 64, 64]) as tf.Tensor4D, false)).toThrow(/channels/);
    expect(() => model.forward(tf.zeros([1, 48, 64, 3]) as tf.Tensor4D, false)).toThrow(/multiples of 32/);
  });
});

describe('output shapes for other sizes and class counts', () => {
  it.each([
    [1, 128, 128],
    [3, 160, 96],
  ])('nc=%i at %i×%i', (nc, h, w) => {
    const m = createYoloModel(yoloDescription('n', nc));
    const outs = tf.tidy(() => m.forward(tf.zeros([1, h, w, 3]) as tf.Tensor4D, false));
    const c = 3 * (5 + nc);
    expect(outs.map((o) => o.shape)).toEqual([[1, h / 8, w / 8, c], [1, h / 16, w / 16, c], [1, h / 32, w / 32, c]]);
    tf.dispose(outs);
    m.dispose();
  });
});

describe('seeding', () => {
  it('is reproducible for a seed and differs across seeds', () => {
    const d = yoloDescription({ depth_multiple: 0.33, width_multiple: 0.125 }, 2);
    const [a, b, c] = [createYoloModel(d, { seed: 5 }), createYoloModel(d, { seed: 5 }), createYoloModel(d, { seed: 6 })];
    const w = (m: DetectionModel) => m.params.get('model.8.m.0.cv2.conv.weight')!.dataSync();
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('layer semantics', () => {
  it('pads a stride-2 3×3 conv on both sides as PyTorch does', () => {
    // Eval-mode Conv with identity BatchNorm and no activation, against a direct PyTorch-style conv.
    const w = tf.variable(tf.tensor4d(Array.from({ length: 9 }, (_, i) => i + 1), [3, 3, 1, 1]));
    const vars = new Map<string, tf.Variable>([
      ['c.conv.weight', w],
      ['c.bn.weight', tf.variable(tf.ones([1]))],
      ['c.bn.bias', tf.variable(tf.zeros([1]))],
      ['c.bn.running_mean', tf.variable(tf.zeros([1]), false)],
      ['c.bn.running_var', tf.variable(tf.fill([1], 1 - 1e-3), false)],
    ]);
    const x = Array.from({ length: 16 }, (_, i) => i);
    const y = tf.tidy(() => convForward({ prefix: 'c', c1: 1, c2: 1, k: 3, s: 2, p: 1, act: false }, (n) => vars.get(n)!,
      tf.tensor4d(x, [1, 4, 4, 1]), false).dataSync());
    const expected: number[] = [];
    for (const oy of [0, 1]) for (const ox of [0, 1]) {
      let s = 0;
      for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
        if (iy >= 0 && iy < 4 && ix >= 0 && ix < 4) s += x[iy * 4 + ix]! * (ky * 3 + kx + 1);
      }
      expected.push(s);
    }
    expect([...y].map((v) => Math.round(v * 1e3) / 1e3)).toEqual(expected);
    vars.forEach((v) => v.dispose());
  });

  it('upsamples by nearest neighbour, each pixel to a 2×2 block', () => {
    const y = tf.tidy(() => upsampleNearest(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]), 2).dataSync());
    expect([...y]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });
});
