import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, type KdSimd, requireKdSimd } from './kd-simd.js';
import type { KernelArgs } from './wasm-ops.js';

/**
 * Kernel names of the fused BatchNorm + SiLU passes (wasm only; src/model/layers.ts composes the same
 * maths from tfjs ops on every other backend). Activations are NHWC, seen as [rows, C].
 */
export const KdMoments = 'KdMoments';
export const KdBnAct = 'KdBnAct';
export const KdBnActGrad = 'KdBnActGrad';
export const KdBnGradInput = 'KdBnGradInput';
export const KdSilu = 'KdSilu';

interface Ctx {
  backend: BackendWasm;
  simd: KdSimd;
}

function ctx(args: KernelArgs): Ctx {
  const backend = args.backend as BackendWasm;
  return { backend, simd: requireKdSimd(backend) };
}

const ptr = heapOffset;

function rowsAndChannels(x: tf.TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1]!;
  return [c === 0 ? 0 : tf.util.sizeFromShape(x.shape) / c, c];
}

/** Runs `fn` with scratch for 2·c float64 sums on the heap (8-byte aligned), freed afterwards. */
function withSums(backend: BackendWasm, c: number, fn: (acc: number) => void): void {
  const heap = backend.wasm as unknown as { _malloc(n: number): number; _free(p: number): void };
  const p = heap._malloc(16 * c + 8) >>> 0;
  try {
    fn((p + 7) & ~7);
  } finally {
    heap._free(p);
  }
}

/** x → [mean, variance] per channel (biased variance, as tf.moments). */
function moments(args: KernelArgs): tf.TensorInfo[] {
  const { backend, simd } = ctx(args);
  const { x } = args.inputs as { x: tf.TensorInfo };
  const [rows, c] = rowsAndChannels(x);
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  withSums(backend, c, (acc) => simd.kd_moments(ptr(backend, x), rows, c, ptr(backend, mean), ptr(backend, variance), acc));
  return [mean, variance];
}

/** (x, scale, shift) → act(x·scale + shift) per channel; attrs.act: SiLU or identity. */
function bnAct(args: KernelArgs): tf.TensorInfo {
  const { backend, simd } = ctx(args);
  const { x, scale, shift } = args.inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; shift: tf.TensorInfo };
  const [rows, c] = rowsAndChannels(x);
  const y = backend.makeOutput(x.shape, 'float32');
  simd.kd_bn_act(ptr(backend, x), rows, c, ptr(backend, scale), ptr(backend, shift), args.attrs?.act ? 1 : 0, ptr(backend, y));
  return y;
}

/** (x, dy, scale, shift, mean, rstd) → [dz, sums]: dz = dy·act′(z) and sums = [Σdz | Σdz·x̂] per channel. */
function bnActGrad(args: KernelArgs): tf.TensorInfo[] {
  const { backend, simd } = ctx(args);
  const { x, dy, scale, shift, mean, rstd } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, c] = rowsAndChannels(x!);
  const dz = backend.makeOutput(x!.shape, 'float32');
  const sums = backend.makeOutput([2 * c], 'float32');
  withSums(backend, c, (acc) => simd.kd_bn_act_grad(
    ptr(backend, x!), ptr(backend, dy!), rows, c, ptr(backend, scale!), ptr(backend, shift!),
    ptr(backend, mean!), ptr(backend, rstd!), args.attrs?.act ? 1 : 0, ptr(backend, dz), ptr(backend, sums), acc));
  return [dz, sums];
}

/** (x, dz, coef [a | b | k]) → dx = a·dz + b·x + k per channel. */
function bnGradInput(args: KernelArgs): tf.TensorInfo {
  const { backend, simd } = ctx(args);
  const { x, dz, coef } = args.inputs as { x: tf.TensorInfo; dz: tf.TensorInfo; coef: tf.TensorInfo };
  const [rows, c] = rowsAndChannels(x);
  const dx = backend.makeOutput(x.shape, 'float32');
  simd.kd_bn_grad_input(ptr(backend, x), ptr(backend, dz), rows, c, ptr(backend, coef), ptr(backend, dx));
  return dx;
}

/** x → x·σ(x) in one pass. */
function siluKernel(args: KernelArgs): tf.TensorInfo {
  const { backend, simd } = ctx(args);
  const { x } = args.inputs as { x: tf.TensorInfo };
  const y = backend.makeOutput(x.shape, 'float32');
  simd.kd_silu(ptr(backend, x), tf.util.sizeFromShape(x.shape), ptr(backend, y));
  return y;
}

const wasmConfig = (kernelName: string, kernelFunc: (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelConfig =>
  ({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc });

/** The fused BatchNorm + SiLU kernels, registered on 'wasm' when kd-simd.wasm loads. */
export const batchNormActConfigs: readonly tf.KernelConfig[] = [
  wasmConfig(KdMoments, moments),
  wasmConfig(KdBnAct, bnAct),
  wasmConfig(KdBnActGrad, bnActGrad),
  wasmConfig(KdBnGradInput, bnGradInput),
  wasmConfig(KdSilu, siluKernel),
];

/** Whether the active backend runs the fused BatchNorm kernels. */
export function hasFusedBatchNorm(): boolean {
  return tf.getKernel(KdBnAct, tf.getBackend()) !== undefined;
}
