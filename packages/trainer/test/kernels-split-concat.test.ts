import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';

/** Runs `f` on wasm and on cpu; returns both outputs' values and shapes. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ v: number[]; s: number[] }[][]> {
  const out: { v: number[]; s: number[] }[][] = [];
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    out.push(tf.tidy(() => {
      const r = f();
      return (Array.isArray(r) ? r : [r]).map((t) => ({ v: Array.from(t.dataSync()), s: t.shape }));
    }));
  }
  return out;
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('channel Concat and SplitV on wasm (kd-simd block copies) match cpu', () => {
  it.each([
    { shapes: [[2, 3, 4, 3], [2, 3, 4, 5], [2, 3, 4, 8]], axis: 3 },
    { shapes: [[6, 4], [6, 1]], axis: -1 },
    { shapes: [[2, 3, 4, 3], [2, 1, 4, 3]], axis: 1 }, // not the last axis: tfjs-wasm's kernel
  ])('concat $shapes on axis $axis', async ({ shapes, axis }) => {
    const [w, c] = await onBoth(() => tf.concat(shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', i + 1)), axis));
    expect(w).toEqual(c);
  });

  it('concat of int32 tensors keeps the dtype (falls back)', async () => {
    await tf.setBackend('wasm');
    const out = tf.concat([tf.tensor2d([[1, 2]], [1, 2], 'int32'), tf.tensor2d([[3]], [1, 1], 'int32')], 1);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual([1, 2, 3]);
  });

  it.each([
    { shape: [2, 5, 3, 12], sizes: [4, 3, 5], axis: 3 },
    { shape: [7, 9], sizes: [2, -1, 3], axis: -1 },
    { shape: [2, 6, 3, 4], sizes: [2, 4], axis: 1 },
  ])('split $shape into $sizes on axis $axis', async ({ shape, sizes, axis }) => {
    const [w, c] = await onBoth(() => tf.split(tf.randomNormal(shape, 0, 1, 'float32', 9), sizes, axis));
    expect(w).toEqual(c);
  });

  it('gives a channel concat its gradient (a channel split) as on cpu', async () => {
    const [w, c] = await onBoth(() => {
      const a = tf.randomNormal([2, 4, 4, 6], 0, 1, 'float32', 3);
      const b = tf.randomNormal([2, 4, 4, 10], 0, 1, 'float32', 4);
      const wgt = tf.randomNormal([2, 4, 4, 16], 0, 1, 'float32', 5);
      return tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.concat([x, y], 3), wgt)))([a, b]);
    });
    expect(w).toEqual(c);
  });
});
