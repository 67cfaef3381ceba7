import type { ConvPlan } from '../model/plan.js';
import type { ModelWeights } from '../model/description.js';

/** BatchNorm epsilon of YOLOv5 (`initialize_weights` sets 1e-3). */
export const YOLO_BN_EPS = 1e-3;

/** A convolution ready for ONNX: weight [cout, cin, kh, kw] and a bias. */
export interface FoldedConv {
  weight: Float32Array;
  bias: Float32Array;
  dims: [number, number, number, number];
}

/** Reads a named tensor and checks its size. */
export function takeWeight(weights: ModelWeights, name: string, size: number): Float32Array {
  const w = weights.get(name);
  if (w === undefined) throw new RangeError(`weights: missing ${name}`);
  if (w.length !== size) throw new RangeError(`weights: ${name} has ${w.length} values, expected ${size}`);
  return w;
}

/** [kh, kw, cin, cout] (TensorFlow.js layout) → [cout, cin, kh, kw] (ONNX/PyTorch layout), scaled per output channel. */
export function toOihw(w: Float32Array, k: number, cin: number, cout: number, scale?: Float64Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < cout; o++) {
    const s = scale === undefined ? 1 : scale[o]!;
    for (let i = 0; i < cin; i++) {
      for (let y = 0; y < k; y++) {
        for (let x = 0; x < k; x++) {
          out[((o * cin + i) * k + y) * k + x] = w[((y * k + x) * cin + i) * cout + o]! * s;
        }
      }
    }
  }
  return out;
}

/**
 * Folds a Conv module's BatchNorm into its convolution, as ultralytics' `fuse_conv_and_bn`:
 * w' = w·γ/√(var+ε), b' = β − mean·γ/√(var+ε). The maths runs in float64 and rounds once.
 */
export function foldConvBn(weights: ModelWeights, c: ConvPlan, eps = YOLO_BN_EPS): FoldedConv {
  const p = c.prefix;
  const w = takeWeight(weights, `${p}.conv.weight`, c.k * c.k * c.c1 * c.c2);
  const gamma = takeWeight(weights, `${p}.bn.weight`, c.c2);
  const beta = takeWeight(weights, `${p}.bn.bias`, c.c2);
  const mean = takeWeight(weights, `${p}.bn.running_mean`, c.c2);
  const variance = takeWeight(weights, `${p}.bn.running_var`, c.c2);
  const scale = new Float64Array(c.c2);
  const bias = new Float32Array(c.c2);
  for (let o = 0; o < c.c2; o++) {
    scale[o] = gamma[o]! / Math.sqrt(variance[o]! + eps);
    bias[o] = beta[o]! - mean[o]! * scale[o]!;
  }
  return { weight: toOihw(w, c.k, c.c1, c.c2, scale), bias, dims: [c.c2, c.c1, c.k, c.k] };
}
