import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { relErr } from './rel-err.js';

/** Runs `f` on wasm and on cpu and returns both results as plain arrays with their shapes. */
async function onBoth(f: () => tf.Tensor): Promise<[{ v: number[]; s: number[] }, { v: number[]; s: number[] }]> {
  const out: { v: number[]; s: number[] }[] = [];
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    out.push(tf.tidy(() => {
      const t = f();
      return { v: Array.from(t.dataSync()), s: t.shape };
    }));
  }
  return [out[0]!, out[1]!];
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('UnsortedSegmentSum on wasm', () => {
  it.each([
    { x: [6], ids: [0, 2, 2, -1, 1, 0], n: 3 },
    { x: [5, 4], ids: [3, 0, 3, 1, 1], n: 4 },
    { x: [4, 2, 3], ids: [1, 1, 0, 5], n: 2 },
  ])('matches cpu for x $x, ids $ids', async ({ x, ids, n }) => {
    const [w, c] = await onBoth(() =>
      tf.unsortedSegmentSum(tf.randomNormal(x, 0, 1, 'float32', 7), tf.tensor1d(ids, 'int32'), n));
    expect(w.s).toEqual(c.s);
    expect(relErr(w.v, c.v)).toBeLessThan(1e-6);
  });

  it('sums int32 data exactly and drops negative ids', async () => {
    await tf.setBackend('wasm');
    const out = tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4], 'int32'), tf.tensor1d([1, -1, 1, 0], 'int32'), 2);
    expect(out.dtype).toBe('int32');
    expect(Array.from(out.dataSync())).toEqual([4, 4]);
  });

  it('gives tf.gather a gradient that matches cpu, repeated indices summed', async () => {
    const [w, c] = await onBoth(() => {
      const params = tf.randomNormal([6, 3], 0, 1, 'float32', 8);
      const idx = tf.tensor1d([1, 4, 4, 0, 4], 'int32');
      return tf.grad((p: tf.Tensor) => tf.sum(tf.square(tf.gather(p, idx))))(params);
    });
    expect(relErr(w.v, c.v)).toBeLessThan(1e-5);
    expect(w.v.slice(6, 9).every((v) => v === 0)).toBe(true); // row 2 never gathered
  });
});

describe('LogSoftmax kernel on wasm', () => {
  it.each([{ shape: [4, 7], axis: -1 }, { shape: [2, 3, 5], axis: 2 }, { shape: [3, 4], axis: 0 }])(
    'matches log(softmax) on cpu for $shape axis $axis', async ({ shape, axis }) => {
      await tf.setBackend('wasm');
      const x = tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 9), 20);
      const viaKernel = tf.engine().runKernel(tf.LogSoftmax, { logits: x }, { axis }) as tf.Tensor;
      const xs = x.arraySync();
      await tf.setBackend('cpu');
      const ref = tf.tidy(() => {
        const xc = tf.tensor(xs as number[]);
        const m = tf.max(xc, axis, true);
        return tf.sub(tf.sub(xc, m), tf.log(tf.sum(tf.exp(tf.sub(xc, m)), axis, true)));
      });
      expect(viaKernel.shape).toEqual(ref.shape);
      expect(relErr(viaKernel.dataSync(), ref.dataSync())).toBeLessThan(1e-5);
    });
});

describe('Tile on wasm (block-copy replacement)', () => {
  it.each([
    { shape: [1, 1, 1, 5], reps: [3, 4, 2, 1] },
    { shape: [2, 3], reps: [2, 3] },
    { shape: [3], reps: [4] },
    { shape: [2, 1, 3, 2], reps: [1, 3, 2, 2] },
    { shape: [2, 2, 1, 1, 2], reps: [2, 1, 3, 2, 1] },
    { shape: [2, 3], reps: [1, 1] },
  ])('matches cpu for $shape x $reps', async ({ shape, reps }) => {
    const [w, c] = await onBoth(() => tf.tile(tf.randomNormal(shape, 0, 1, 'float32', 10), reps));
    expect(w.s).toEqual(c.s);
    expect(w.v).toEqual(c.v);
  });

  it('tiles int32 and bool', async () => {
    await tf.setBackend('wasm');
    expect(tf.tile(tf.tensor2d([1, 2], [1, 2], 'int32'), [2, 2]).arraySync()).toEqual([[1, 2, 1, 2], [1, 2, 1, 2]]);
    const b = tf.tile(tf.tensor1d([true, false], 'bool'), [2]);
    expect(b.dtype).toBe('bool');
    expect(Array.from(b.dataSync())).toEqual([1, 0, 1, 0]);
  });
});

describe('gradients tfjs-core 4.22 lacks', () => {
  it('gatherND sends dy back to the gathered positions, duplicates summed', async () => {
    await tf.setBackend('wasm');
    const p = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const idx = tf.tensor2d([[0, 1], [2, 0], [0, 1]], [3, 2], 'int32');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gatherND(x, idx), tf.tensor1d([1, 10, 100]))))(p);
    expect(g.arraySync()).toEqual([[0, 101], [0, 0], [10, 0]]);
  });

  it('stridedSlice sends dy back to begin + i·stride', async () => {
    await tf.setBackend('wasm');
    const x = tf.reshape(tf.range(0, 24, 1, 'float32'), [2, 3, 4]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.stridedSlice(t, [0, 1, 0], [2, 3, 4], [1, 1, 2]), 2)))(x);
    const expected = new Array(24).fill(0);
    for (const b of [0, 1]) for (const r of [1, 2]) for (const c of [0, 2]) expected[b * 12 + r * 4 + c] = 2;
    expect(Array.from(g.dataSync())).toEqual(expected);
  });

  it('stridedSlice with shrinkAxisMask and ellipsis (x[..., 2]) is differentiable', async () => {
    await tf.setBackend('wasm');
    const x = tf.ones([2, 3, 4]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.stridedSlice(t, [0, 2], [0, 3], [1, 1], 0, 0, 1, 0, 2)))(x);
    const v = g.arraySync() as number[][][];
    expect(v.flat(2).reduce((a, b) => a + b, 0)).toBe(6);
    expect(v[1]![2]![2]).toBe(1);
    expect(v[1]![2]![3]).toBe(0);
  });

  it('comparisons inside the tape have zero gradient instead of throwing', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor1d([1, -2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.where(tf.greater(t, 0), tf.mul(t, 2), tf.mul(t, 3))))(a);
    expect(Array.from(g.dataSync())).toEqual([2, 3, 2]);
  });
});

describe('MaxPoolGrad on wasm (replacement)', () => {
  it.each([
    { x: [2, 4, 4, 8], k: 2, s: 2, pad: 'valid' as const },
    { x: [2, 6, 6, 3], k: 5, s: 1, pad: 'same' as const },
    { x: [1, 7, 5, 2], k: 3, s: 2, pad: 'same' as const },
  ])('matches cpu for x $x, k $k, s $s, $pad, including all-negative windows', async ({ x, k, s, pad }) => {
    const [w, c] = await onBoth(() => {
      // Shifted so that many windows hold only negative values.
      const input = tf.sub(tf.randomNormal(x, 0, 1, 'float32', 11), 1) as tf.Tensor4D;
      const dyW = tf.randomNormal(tf.maxPool(input, k, s, pad).shape, 0, 1, 'float32', 12);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, k, s, pad), dyW)))(input);
    });
    expect(relErr(w.v, c.v)).toBeLessThan(1e-6);
  });
});

describe('ResizeNearestNeighborGrad on cpu (replacement)', () => {
  it('sums each 2x2 block into its source pixel for batch > 1', async () => {
    await tf.setBackend('cpu');
    const dy = tf.reshape(tf.range(0, 2 * 4 * 4, 1, 'float32'), [2, 4, 4, 1]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [4, 4]), dy)))(
      tf.zeros([2, 2, 2, 1]));
    // Image 1 starts at 16: block sums are 4·16 more than image 0's.
    expect(Array.from(g.dataSync())).toEqual([10, 18, 42, 50, 74, 82, 106, 114]);
  });
});
