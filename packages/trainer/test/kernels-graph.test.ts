import * as tf from '../src/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';

// Every op a YOLOv5 model plus its loss uses, forward and backward, in one small graph.
function buildParams(): Record<string, tf.Variable> {
  const v = (name: string, shape: number[], seed: number, std = 0.3) =>
    tf.variable(tf.randomNormal(shape, 0, std, 'float32', seed), true, name);
  return {
    stem: v('stem', [6, 6, 3, 8], 1, 0.1),
    c3s2: v('c3s2', [3, 3, 8, 8], 2),
    c3s1: v('c3s1', [3, 3, 16, 8], 3),
    c1: v('c1', [1, 1, 8, 8], 4),
    head: v('head', [1, 1, 8, 7], 5),
    gamma: tf.variable(tf.ones([8]), true, 'gamma'),
    beta: tf.variable(tf.zeros([8]), true, 'beta'),
  };
}

function loss(p: Record<string, tf.Variable>, img: tf.Tensor4D): tf.Scalar {
  const bn = (x: tf.Tensor4D): tf.Tensor4D => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-3))), p.gamma!), p.beta!);
  };
  const silu = (x: tf.Tensor4D): tf.Tensor4D => tf.mul(x, tf.sigmoid(x));
  let x = silu(bn(tf.conv2d(img, p.stem as tf.Tensor4D, 2, [[0, 0], [2, 2], [2, 2], [0, 0]]))); // [2,8,8,8]
  const down = silu(tf.batchNorm(tf.conv2d(x, p.c3s2 as tf.Tensor4D, 2, 'same'),
    tf.moments(x, [0, 1, 2]).mean, tf.moments(x, [0, 1, 2]).variance, p.beta!, p.gamma!, 1e-3) as tf.Tensor4D); // [2,4,4,8]
  // Shifting down leaves windows with only negative values, where tfjs-wasm's own MaxPoolGrad fails.
  const pooled = tf.maxPool(tf.sub(down, 0.5) as tf.Tensor4D, 5, 1, 'same');
  const up = tf.image.resizeNearestNeighbor(pooled, [8, 8]);
  x = tf.add(tf.conv2d(tf.concat([x, up], 3), p.c3s1 as tf.Tensor4D, 1, 'same'), tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 8])) as tf.Tensor4D;
  x = tf.conv2d(silu(tf.conv2d(x, p.c1 as tf.Tensor4D, 1, 'valid')), p.head as tf.Tensor4D, 1, 'valid'); // [2,8,8,7]
  const pred = tf.transpose(tf.reshape(x, [2, 64, 7]), [0, 1, 2]);
  const flat = tf.reshape(pred, [128, 7]);
  const picked = tf.gather(flat, tf.tensor1d([3, 17, 17, 90, 127], 'int32'));
  const pickedNd = tf.gatherND(flat, tf.tensor2d([[5, 0], [64, 6], [5, 0]], [3, 2], 'int32'));
  const xy = tf.sub(tf.mul(tf.sigmoid(tf.stridedSlice(picked, [0, 0], [5, 2], [1, 1])), 2), 0.5);
  const wh = tf.pow(tf.mul(tf.sigmoid(tf.slice(picked, [0, 2], [-1, 2])), 2), 2);
  const box = tf.clipByValue(tf.concat([xy, wh], 1), -1, 3);
  const angle = tf.atan(tf.div(tf.slice(box, [0, 2], [-1, 1]), tf.add(tf.slice(box, [0, 3], [-1, 1]), 1e-3)));
  const inter = tf.minimum(box, 1.2);
  const outer = tf.maximum(box, 0.1);
  const iouLike = tf.div(tf.sum(inter, 1), tf.add(tf.sum(outer, 1), 1e-6));
  const objT = tf.where(tf.greater(iouLike, 0.3), iouLike, tf.zerosLike(iouLike));
  const logits = tf.slice(flat, [0, 4], [-1, 1]);
  const bce = tf.mean(tf.sub(tf.softplus(logits), tf.mul(logits, 0.2))); // BCE-with-logits form
  const cls = tf.mean(tf.neg(tf.log(tf.add(tf.sigmoid(tf.slice(picked, [0, 5], [-1, 2])), 1e-7))));
  const expTerm = tf.mean(tf.exp(tf.mul(pickedNd, 0.1)));
  return tf.addN([
    tf.mean(tf.sub(1, objT)), bce, cls, expTerm, tf.mul(tf.mean(tf.square(angle)), 0.1),
  ]) as tf.Scalar;
}

async function gradsOn(backend: 'wasm' | 'cpu'): Promise<Record<string, Float32Array>> {
  await tf.setBackend(backend);
  const params = buildParams();
  const img = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 42) as tf.Tensor4D;
  const { value, grads } = tf.variableGrads(() => loss(params, img), Object.values(params));
  const out: Record<string, Float32Array> = { loss: value.dataSync() as Float32Array };
  for (const [name, g] of Object.entries(grads)) out[name] = g.dataSync() as Float32Array;
  tf.dispose([value, img, ...Object.values(grads), ...Object.values(params)]);
  return out;
}

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('YOLO-like graph: forward and backward on wasm', () => {
  it('gradients of every parameter match the cpu backend within 1e-4 relative', async () => {
    const w = await gradsOn('wasm');
    const c = await gradsOn('cpu');
    expect(Object.keys(w).sort()).toEqual(Object.keys(c).sort());
    for (const name of Object.keys(c)) {
      const a = w[name]!;
      const b = c[name]!;
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < b.length; i++) {
        diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        scale = Math.max(scale, Math.abs(b[i]!));
      }
      expect(scale, `${name} gradient is all zero`).toBeGreaterThan(0);

      expect(diff / scale, name).toBeLessThan(1e-4);
    }
  });
});
