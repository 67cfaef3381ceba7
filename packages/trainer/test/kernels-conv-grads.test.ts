import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { relErr } from './rel-err.js';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
interface Case { x: [number, number, number, number]; k: [number, number, number, number]; s: number; pad: Pad }

const CASES: Case[] = [
  { x: [2, 9, 9, 3], k: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 9, 9, 3], k: [3, 3, 3, 4], s: 2, pad: 'same' },
  { x: [2, 10, 10, 3], k: [3, 3, 3, 4], s: 2, pad: 'same' },
  { x: [2, 10, 11, 3], k: [3, 3, 3, 4], s: 2, pad: 'valid' },
  { x: [1, 11, 10, 2], k: [3, 3, 2, 3], s: 1, pad: 'valid' },
  { x: [2, 16, 16, 3], k: [6, 6, 3, 5], s: 2, pad: [[0, 0], [2, 2], [2, 2], [0, 0]] },
  { x: [2, 8, 8, 4], k: [1, 1, 4, 6], s: 1, pad: 'valid' },
  { x: [2, 8, 8, 4], k: [1, 1, 4, 6], s: 2, pad: 'same' },
  { x: [2, 8, 8, 4], k: [5, 5, 4, 2], s: 1, pad: 'same' },
  { x: [2, 8, 9, 4], k: [5, 5, 4, 2], s: 2, pad: 1 },
  { x: [1, 7, 7, 2], k: [3, 3, 2, 2], s: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  // Sub-pixel input gradient: stride 3, a 2×2 kernel at stride 2, and asymmetric explicit pads.
  { x: [1, 13, 12, 2], k: [4, 3, 2, 3], s: 3, pad: 'same' },
  { x: [2, 7, 6, 2], k: [2, 2, 2, 3], s: 2, pad: 'valid' },
  { x: [1, 9, 10, 3], k: [3, 3, 3, 2], s: 2, pad: [[0, 0], [0, 1], [2, 0], [0, 0]] },
  // More input channels, larger kernels, asymmetric pads.
  { x: [2, 9, 9, 6], k: [3, 3, 6, 4], s: 2, pad: 'same' },
  { x: [1, 10, 11, 5], k: [5, 5, 5, 3], s: 1, pad: 'valid' },
  { x: [2, 8, 8, 8], k: [3, 3, 8, 4], s: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
  { x: [2, 16, 16, 8], k: [6, 6, 8, 5], s: 2, pad: [[0, 0], [2, 2], [2, 2], [0, 0]] },
  // kd-simd's GEMM: full 4×8 blocks, 4-wide and scalar column tails (co 12, 33), a k tail (ci 3 with
  // a 1×1 filter), and more pixels than one 256-row chunk; col2im for wide inputs and tiny images.
  { x: [2, 20, 20, 8], k: [3, 3, 8, 16], s: 1, pad: 'same' },
  { x: [3, 12, 12, 16], k: [1, 1, 16, 33], s: 1, pad: 'valid' },
  { x: [2, 17, 15, 3], k: [1, 1, 3, 12], s: 1, pad: 'valid' },
  { x: [4, 8, 8, 16], k: [3, 3, 16, 32], s: 2, pad: 1 },
  { x: [2, 6, 6, 128], k: [3, 3, 128, 8], s: 1, pad: 'same' },
  { x: [2, 4, 4, 20], k: [3, 3, 20, 24], s: 1, pad: 'same' },
];

async function convGrads(backend: 'wasm' | 'cpu', c: Case): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal(c.k, 0, 1, 'float32', 2) as tf.Tensor4D;
    // Squaring makes dy depend on the output, so a wrong dy layout cannot cancel out.
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad)));
    return tf.grads(f)([x, w]).map((g) => g.dataSync() as Float32Array);
  });
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe.each(CASES)('conv2d gradients on wasm match cpu: x $x, filter $k, stride $s, pad $pad', (c) => {
  it('dx and dW agree within 1e-4 relative', async () => {
    const [dxW, dwW] = await convGrads('wasm', c);
    const [dxC, dwC] = await convGrads('cpu', c);
    expect(dxW!.length).toBe(dxC!.length);
    expect(relErr(dxW!, dxC!)).toBeLessThan(1e-4);
    expect(relErr(dwW!, dwC!)).toBeLessThan(1e-4);
  });
});

describe('conv2d gradient kernels, direct calls on wasm', () => {
  it('dimRoundingMode is honoured by the filter gradient', async () => {
    const attrs = { strides: 2, pad: 1, dataFormat: 'NHWC', dimRoundingMode: 'ceil', filterShape: [3, 3, 2, 3] };
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const x = tf.randomNormal([1, 8, 8, 2], 0, 1, 'float32', 3);
      const info = tf.backend_util.computeConv2DInfo([1, 8, 8, 2], [3, 3, 2, 3], 2, 1, 1, 'ceil');
      const dy = tf.randomNormal(info.outShape, 0, 1, 'float32', 4);
      const out = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs) as tf.Tensor;
      return out.dataSync() as Float32Array;
    };
    expect(relErr(await run('wasm'), await run('cpu'))).toBeLessThan(1e-4);
  });

  it('rejects NCHW with a clear message', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 2, 4, 4]);
    const dy = tf.zeros([1, 3, 4, 4]);
    expect(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy },
      { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [1, 1, 2, 3] })).toThrow(/NHWC/);
    const filter = tf.zeros([1, 1, 2, 3]);
    expect(() => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter },
      { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [1, 2, 4, 4] })).toThrow(/NHWC/);
  });

  it('frees every intermediate it makes', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([2, 9, 9, 3]);
    const w = tf.randomNormal([3, 3, 3, 4]);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'));
    tf.dispose(tf.grads(f)([x, w]));
    const before = tf.backend().numDataIds();
    tf.dispose(tf.grads(f)([x, w]));
    expect(tf.backend().numDataIds()).toBe(before);
  });
});
