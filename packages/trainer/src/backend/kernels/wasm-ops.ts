import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** What tfjs passes to every kernel function. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

const originals = new Map<string, tf.KernelFunc>();

/**
 * Remembers the wasm backend's own implementation of `kernelName` before we register ours over it,
 * so a replacement can still fall back to it and the bench can time it.
 */
export function saveOriginalWasmKernel(kernelName: string): tf.KernelFunc | undefined {
  if (!originals.has(kernelName)) {
    const config = tf.getKernel(kernelName, 'wasm');
    if (config === undefined) return undefined;
    originals.set(kernelName, config.kernelFunc);
  }
  return originals.get(kernelName);
}

/** The wasm backend's own implementation of `kernelName` (the saved original when ours replaced it). */
export function wasmKernel(kernelName: string): tf.KernelFunc {
  const saved = originals.get(kernelName);
  if (saved !== undefined) return saved;
  const config = tf.getKernel(kernelName, 'wasm');
  if (config === undefined) throw new Error(`wasm backend has no '${kernelName}' kernel to build on`);
  return config.kernelFunc;
}

/**
 * Runs one of the wasm backend's kernels directly, outside the engine, so that no tape, profiler
 * or tensor tracking is involved; the caller owns the result and frees it with {@link release}.
 */
export function runWasm(
  kernelName: string,
  backend: BackendWasm,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown> = {},
): tf.TensorInfo {
  const out = wasmKernel(kernelName)({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
  if (Array.isArray(out)) throw new Error(`wasm kernel '${kernelName}' returned several outputs`);
  return out;
}

/** Frees intermediates made by {@link runWasm} (reshape outputs share data; the backend counts references). */
export function release(backend: BackendWasm, ...infos: tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}
