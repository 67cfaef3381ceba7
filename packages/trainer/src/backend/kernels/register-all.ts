import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input.js';
import { logSoftmaxConfig } from './log-softmax.js';
import { tileConfig } from './tile.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';
import { saveOriginalWasmKernel } from './wasm-ops.js';

/** Kernels tfjs-backend-wasm 4.22 lacks and training needs. */
const MISSING: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  unsortedSegmentSumConfig,
  logSoftmaxConfig,
];

/** Kernels wasm has but that we replace because ours measured faster (packages/trainer/bench/kernels.bench.ts). */
const FASTER: readonly tf.KernelConfig[] = [conv2DBackpropInputConfig, tileConfig];

let registered = false;

/**
 * Registers kd-edge's training kernels on the 'wasm' backend: the missing ones, and faster
 * replacements composed from wasm's XNNPACK kernels. Safe to call more than once.
 */
export function registerWasmKernels(): void {
  if (registered) return;
  for (const config of MISSING) {
    if (tf.getKernel(config.kernelName, 'wasm') === undefined) tf.registerKernel(config);
  }
  for (const config of FASTER) {
    if (saveOriginalWasmKernel(config.kernelName) !== undefined) {
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    tf.registerKernel(config);
  }
  registered = true;
}

/** Names of the kernels {@link registerWasmKernels} adds or replaces, for logs and docs. */
export const WASM_KERNEL_NAMES: readonly string[] = [...MISSING, ...FASTER].map((c) => c.kernelName);
