import * as tf from '../../tf.js';
import '@tensorflow/tfjs-backend-wasm';
import { batchNormActConfigs } from './batch-norm-act.js';
import { concatConfig, splitVConfig } from './channel-split-concat.js';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input.js';
import { logSoftmaxConfig } from './log-softmax.js';
import { maxPoolGradConfig } from './max-pool-grad.js';
import { resizeNearestNeighborGradCpuConfig } from './resize-nearest-neighbor-grad-cpu.js';
import { tileConfig } from './tile.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';
import { kdSimdAvailable } from './kd-simd.js';
import { saveOriginalWasmKernel } from './wasm-ops.js';

/** Kernels tfjs-backend-wasm 4.22 lacks and training needs. */
const MISSING: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  unsortedSegmentSumConfig,
  logSoftmaxConfig,
];

/**
 * Kernels wasm has but that we replace: faster (packages/trainer/bench/kernels.bench.ts) or, for
 * MaxPoolGrad, correct where wasm's is not.
 */
const REPLACED: readonly tf.KernelConfig[] = [conv2DBackpropInputConfig, tileConfig, maxPoolGradConfig, splitVConfig, concatConfig];

let registered = false;

/**
 * Registers kd-edge's training kernels on the 'wasm' backend: the missing ones, faster replacements
 * built from XNNPACK and kd-simd.wasm, and the fused BatchNorm + SiLU. Safe to call more than once.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  if (!kdSimdAvailable()) {
    throw new Error('kd-simd.wasm (the SIMD training kernels in packages/trainer/wasm/) is missing or this runtime lacks WebAssembly SIMD');
  }
  for (const config of MISSING) {
    if (tf.getKernel(config.kernelName, 'wasm') === undefined) tf.registerKernel(config);
  }
  for (const config of REPLACED) {
    const original = tf.getKernel(config.kernelName, 'wasm');
    if (original !== undefined) {
      saveOriginalWasmKernel(config.kernelName);
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    // The original still needs its setup (it binds its wasm export) when the backend starts, since
    // ours falls back to it and the bench times it.
    tf.registerKernel({ ...config, setupFunc: original?.setupFunc });
  }
  // Fused BatchNorm + SiLU (native/kd-simd.c); other backends compose the same maths from tfjs ops.
  for (const config of batchNormActConfigs) {
    if (tf.getKernel(config.kernelName, 'wasm') === undefined) tf.registerKernel(config);
  }
  registered = true;
}

let cpuFixed = false;

/**
 * Replaces tfjs-backend-cpu 4.22 kernels that give wrong results (ResizeNearestNeighborGrad with
 * batch > 1), so the cpu backend can serve as the reference. Safe to call more than once.
 */
export function registerCpuKernelFixes(): void {
  if (cpuFixed) return;
  for (const config of [resizeNearestNeighborGradCpuConfig]) {
    if (tf.getKernel(config.kernelName, 'cpu') !== undefined) tf.unregisterKernel(config.kernelName, 'cpu');
    tf.registerKernel(config);
  }
  cpuFixed = true;
}
