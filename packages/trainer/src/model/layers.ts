import * as tf from '../tf.js';
import { batchNormSync, combineMoments } from './batch-norm-sync.js';
import { hasFusedBatchNorm, KdBnAct, KdBnActGrad, KdBnGradInput, KdMoments, KdSilu } from '../backend/kernels/batch-norm-act.js';
import type { BottleneckPlan, ConvPlan, LayerPlan } from '@kd-edge/core';

/** BatchNorm epsilon used by YOLOv5 (`initialize_weights`). */
export const BN_EPS = 1e-3;
/** BatchNorm momentum used by YOLOv5, PyTorch convention: running = (1 − m)·running + m·batch. */
export const BN_MOMENTUM = 0.03;

/** Finds a model variable by its state_dict name. */
export type VarLookup = (name: string) => tf.Variable;

type Pad = 'valid' | [[number, number], [number, number], [number, number], [number, number]];

function padOf(p: number): Pad {
  // Explicit padding: TensorFlow's 'same' pads asymmetrically at stride 2, PyTorch pads both sides.
  return p === 0 ? 'valid' : [[0, 0], [p, p], [p, p], [0, 0]];
}

/** SiLU (x·σ(x)), the activation of every YOLOv5 Conv: one fused pass where the backend has it. */
export function silu<T extends tf.Tensor>(x: T): T {
  if (x.dtype === 'float32' && hasFusedBatchNorm()) return tf.engine().runKernel(KdSilu, { x }) as T;
  return tf.mul(x, tf.sigmoid(x));
}

type BatchNormSync = NonNullable<ReturnType<typeof batchNormSync>>;

/** Batch moments across every replica, folded in rank order so all replicas get bit-identical statistics. */
function gatherMoments(sync: BatchNormSync, local: number, mean: Float32Array, variance: Float32Array): { n: number; mean: Float32Array; variance: Float32Array } {
  const c = mean.length;
  const vec = new Float32Array(1 + 2 * c);
  vec[0] = local;
  vec.set(mean, 1);
  vec.set(variance, 1 + c);
  const all = sync.gather(vec);
  let acc = { n: all[0]![0]!, mean: all[0]!.subarray(1, 1 + c), variance: all[0]!.subarray(1 + c) };
  for (const v of all.slice(1)) {
    if (v[0]! === 0) continue;
    const both = acc.n === 0 ? { mean: v.subarray(1, 1 + c), variance: v.subarray(1 + c) }
      : combineMoments(acc.n, acc.mean, acc.variance, v[0]!, v.subarray(1, 1 + c), v.subarray(1 + c));
    acc = { n: acc.n + v[0]!, mean: both.mean, variance: both.variance };
  }
  return acc;
}

/** The element-wise sum of every replica's vector. */
function gatherSum(sync: BatchNormSync, vec: Float32Array): Float32Array {
  const total = new Float32Array(vec.length);
  for (const v of sync.gather(vec)) for (let i = 0; i < vec.length; i++) total[i]! += v[i]!;
  return total;
}

/** running = (1 − m)·running + m·batch, with the unbiased batch variance as PyTorch. */
function updateRunningStats(runningMean: tf.Variable, runningVar: tf.Variable, mean: tf.Tensor, variance: tf.Tensor, n: number): void {
  tf.tidy(() => {
    const m = BN_MOMENTUM;
    runningMean.assign(tf.add(tf.mul(runningMean, 1 - m), tf.mul(mean, m)));
    const unbiased = n > 1 ? tf.mul(variance, n / (n - 1)) : variance;
    runningVar.assign(tf.add(tf.mul(runningVar, 1 - m), tf.mul(unbiased, m)));
  });
}

/**
 * Training-mode BatchNorm over N, H, W followed by SiLU (or nothing when `act` is false): normalises
 * with the batch moments and moves the running statistics towards them (PyTorch uses the unbiased
 * batch variance for running_var). With data-parallel replicas, statistics and the backward's means
 * span all replicas (SyncBN). On wasm the passes are kd-simd's fused kernels (two passes forward
 * after the moments, two backward); elsewhere the same closed-form maths is composed from tfjs ops.
 */
export function batchNormActTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  runningMean: tf.Variable,
  runningVar: tf.Variable,
  act: boolean,
): tf.Tensor4D {
  const run = hasFusedBatchNorm() ? fusedBatchNormAct : composedBatchNormAct;
  return run(x, gamma, beta, runningMean, runningVar, act);
}

function fusedBatchNormAct(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, runningMean: tf.Variable, runningVar: tf.Variable, act: boolean,
): tf.Tensor4D {
  const local = x.shape[0] * x.shape[1] * x.shape[2];
  const sync = batchNormSync();
  const c = x.shape[3];
  let n = local;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [m0, v0] = tf.engine().runKernel(KdMoments, { x: xi }) as tf.Tensor[];
    let mean = m0!.dataSync() as Float32Array;
    let variance = v0!.dataSync() as Float32Array;
    tf.dispose([m0!, v0!]);
    if (sync) ({ n, mean, variance } = gatherMoments(sync, local, mean, variance));
    const meanT = tf.tensor1d(mean);
    const varT = tf.tensor1d(variance);
    updateRunningStats(runningMean, runningVar, meanT, varT, n);
    varT.dispose();
    // z = x·scale + shift folds the normalisation and the affine into one multiply-add per element.
    const gv = g.dataSync() as Float32Array;
    const bv = b.dataSync() as Float32Array;
    const rstd = new Float32Array(c);
    const scale = new Float32Array(c);
    const shift = new Float32Array(c);
    for (let j = 0; j < c; j++) {
      rstd[j] = 1 / Math.sqrt(variance[j]! + BN_EPS);
      scale[j] = gv[j]! * rstd[j]!;
      shift[j] = bv[j]! - mean[j]! * scale[j]!;
    }
    const scaleT = tf.tensor1d(scale);
    const shiftT = tf.tensor1d(shift);
    const rstdT = tf.tensor1d(rstd);
    const y = tf.engine().runKernel(KdBnAct, { x: xi, scale: scaleT, shift: shiftT }, { act }) as tf.Tensor;
    save([xi, scaleT, shiftT, meanT, rstdT]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
        const [sx, sScale, sShift, sMean, sRstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const [dz, sums] = tf.engine().runKernel(KdBnActGrad,
          { x: sx, dy, scale: sScale, shift: sShift, mean: sMean, rstd: sRstd }, { act }) as tf.Tensor[];
        const localSums = sums!.dataSync() as Float32Array;
        // γ and β's own gradients stay local: replicas' parameter gradients are summed afterwards.
        const dbeta = tf.tensor1d(localSums.slice(0, c));
        const dgamma = tf.tensor1d(localSums.slice(c));
        const total = sync ? gatherSum(sync, localSums) : localSums;
        // dx = k·(dz − Σdz/n − x̂·Σdz·x̂/n) with k = γ·rstd and x̂ = (x − mean)·rstd, as a·dz + b·x + k₀.
        const coef = new Float32Array(3 * c);
        for (let j = 0; j < c; j++) {
          const k = scale[j]!;
          const bj = -k * rstd[j]! * total[c + j]! / n;
          coef[j] = k;
          coef[c + j] = bj;
          coef[2 * c + j] = -k * total[j]! / n - bj * mean[j]!;
        }
        const coefT = tf.tensor1d(coef);
        const dx = tf.engine().runKernel(KdBnGradInput, { x: sx, dz: dz!, coef: coefT }) as tf.Tensor;
        tf.dispose([dz!, sums!, coefT]);
        return [dx, dgamma, dbeta];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

function composedBatchNormAct(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, runningMean: tf.Variable, runningVar: tf.Variable, act: boolean,
): tf.Tensor4D {
  const local = x.shape[0] * x.shape[1] * x.shape[2];
  const sync = batchNormSync();
  let n = local;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    let { mean, variance } = tf.moments(xi, [0, 1, 2]);
    if (sync) {
      const all = gatherMoments(sync, local, mean.dataSync() as Float32Array, variance.dataSync() as Float32Array);
      n = all.n;
      tf.dispose([mean, variance]);
      mean = tf.tensor1d(all.mean);
      variance = tf.tensor1d(all.variance);
    }
    updateRunningStats(runningMean, runningVar, mean, variance, n);
    const rstd = tf.rsqrt(tf.add(variance, BN_EPS));
    const xhat = tf.mul(tf.sub(xi, mean), rstd);
    const z = tf.add(tf.mul(xhat, g), b);
    save([xhat, z, g, rstd]);
    return {
      value: act ? tf.mul(z, tf.sigmoid(z)) : z,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
        const [sx, sz, sg, sr] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        let dz = dy;
        if (act) {
          // d/dz z·σ(z) = σ(z)·(1 + z·(1 − σ(z)))
          const s = tf.sigmoid(sz);
          dz = tf.mul(dy, tf.mul(s, tf.add(tf.mul(sz, tf.sub(1, s)), 1)));
        }
        const dbeta = tf.sum(dz, [0, 1, 2]);
        const dgamma = tf.sum(tf.mul(dz, sx), [0, 1, 2]);
        let sumDz: tf.Tensor = dbeta;
        let sumDzX: tf.Tensor = dgamma;
        if (sync) {
          const c = dbeta.size;
          const vec = new Float32Array(2 * c);
          vec.set(dbeta.dataSync() as Float32Array, 0);
          vec.set(dgamma.dataSync() as Float32Array, c);
          const total = gatherSum(sync, vec);
          sumDz = tf.tensor1d(total.subarray(0, c));
          sumDzX = tf.tensor1d(total.subarray(c));
        }
        // dx = γ·rstd·(dz − mean(dz) − x̂·mean(dz·x̂)), the batch-norm backward of Ioffe & Szegedy 2015.
        const centred = tf.sub(tf.sub(dz, tf.div(sumDz, n)), tf.mul(sx, tf.div(sumDzX, n)));
        return [tf.mul(centred, tf.mul(sg, sr)), dgamma, dbeta];
      },
    };
  });
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** Conv module: Conv2d (no bias) → BatchNorm → SiLU. Eval folds BatchNorm into one fused convolution. */
export function convForward(c: ConvPlan, v: VarLookup, x: tf.Tensor4D, training: boolean): tf.Tensor4D {
  const w = v(`${c.prefix}.conv.weight`) as tf.Tensor4D;
  const gamma = v(`${c.prefix}.bn.weight`) as tf.Tensor1D;
  const beta = v(`${c.prefix}.bn.bias`) as tf.Tensor1D;
  const rm = v(`${c.prefix}.bn.running_mean`);
  const rv = v(`${c.prefix}.bn.running_var`);
  const pad = padOf(c.p);
  if (training) return batchNormActTrain(tf.conv2d(x, w, c.s, pad), gamma, beta, rm, rv, c.act);
  const scale = tf.mul(gamma, tf.rsqrt(tf.add(rv, BN_EPS)));
  const bias = tf.sub(beta, tf.mul(rm, scale));
  const y = tf.fused.conv2d({ x, filter: tf.mul(w, scale) as tf.Tensor4D, strides: c.s, pad, bias });
  return c.act ? silu(y) : y;
}

function bottleneckForward(b: BottleneckPlan, v: VarLookup, x: tf.Tensor4D, training: boolean): tf.Tensor4D {
  const y = convForward(b.cv2, v, convForward(b.cv1, v, x, training), training);
  return b.add ? tf.add(x, y) : y;
}

/** Nearest-neighbour upsampling by an integer factor (PyTorch nn.Upsample(mode='nearest')). */
export function upsampleNearest(x: tf.Tensor4D, scale: number): tf.Tensor4D {
  if (scale === 1) return x;
  return tf.image.resizeNearestNeighbor(x, [x.shape[1] * scale, x.shape[2] * scale], false, false);
}

/**
 * Runs one planned layer on its inputs (one tensor, or several for Concat and Detect). Detect returns
 * the raw per-level logits [N, ny, nx, na·(5+nc)].
 */
export function layerForward(
  l: LayerPlan,
  v: VarLookup,
  inputs: tf.Tensor4D[],
  training: boolean,
): tf.Tensor4D | tf.Tensor4D[] {
  const x = inputs[0]!;
  switch (l.type) {
    case 'Conv':
      return convForward(l.conv, v, x, training);
    case 'C3': {
      let a = convForward(l.cv1, v, x, training);
      for (const b of l.m) a = bottleneckForward(b, v, a, training);
      const b = convForward(l.cv2, v, x, training);
      return convForward(l.cv3, v, tf.concat([a, b], 3), training);
    }
    case 'SPPF': {
      const a = convForward(l.cv1, v, x, training);
      const y1 = tf.maxPool(a, l.k, 1, 'same');
      const y2 = tf.maxPool(y1, l.k, 1, 'same');
      const y3 = tf.maxPool(y2, l.k, 1, 'same');
      return convForward(l.cv2, v, tf.concat([a, y1, y2, y3], 3), training);
    }
    case 'Upsample':
      return upsampleNearest(x, l.scale);
    case 'Concat':
      return tf.concat(inputs, 3);
    case 'Detect':
      return l.levels.map((lv, i) =>
        tf.fused.conv2d({
          x: inputs[i]!,
          filter: v(`${lv.prefix}.weight`) as tf.Tensor4D,
          strides: 1,
          pad: 'valid',
          bias: v(`${lv.prefix}.bias`),
        }),
      );
  }
}
