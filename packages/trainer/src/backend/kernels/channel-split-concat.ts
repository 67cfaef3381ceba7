import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, requireKdSimd } from './kd-simd.js';
import { type KernelArgs, wasmKernel } from './wasm-ops.js';

/** Whether `axis` is the last axis of `shape` (negative axes count from the end). */
function isLast(axis: number, rank: number): boolean {
  return (axis < 0 ? axis + rank : axis) === rank - 1;
}

/**
 * SplitV along the channel (last) axis as row-wise block copies in kd-simd. YOLOv5's C3 and SPPF
 * concatenate channels, so their gradients split channels of NHWC tensors: tfjs-wasm slices each part
 * with a general strided Slice. Other axes and dtypes go to tfjs-wasm's own kernel.
 */
export function splitV(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
  const rank = x.shape.length;
  if (x.dtype !== 'float32' || rank < 2 || !isLast(axis, rank)) return wasmKernel(tf.SplitV)(args) as tf.TensorInfo[];
  const simd = requireKdSimd(backend);
  const c = x.shape[rank - 1]!;
  const rows = tf.util.sizeFromShape(x.shape) / Math.max(c, 1);
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, rank - 1);
  let from = 0;
  return sizes.map((width) => {
    const out = backend.makeOutput([...x.shape.slice(0, -1), width], 'float32');
    if (rows > 0 && width > 0) simd.kd_take_cols(heapOffset(backend, x), rows, c, from, width, heapOffset(backend, out));
    from += width;
    return out;
  });
}

/** Concat along the channel (last) axis as row-wise block copies; everything else to tfjs-wasm. */
export function concat(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const inputs = args.inputs as unknown as tf.TensorInfo[];
  const { axis } = args.attrs as unknown as tf.ConcatAttrs;
  const first = inputs[0];
  const rank = first?.shape.length ?? 0;
  if (first === undefined || rank < 2 || !isLast(axis, rank) || inputs.some((t) => t.dtype !== 'float32' || t.shape.length !== rank)) {
    return wasmKernel(tf.Concat)(args) as tf.TensorInfo;
  }
  const lead = first.shape.slice(0, -1);
  if (inputs.some((t) => t.shape.slice(0, -1).some((d, i) => d !== lead[i]))) return wasmKernel(tf.Concat)(args) as tf.TensorInfo;
  const simd = requireKdSimd(backend);
  const c = inputs.reduce((sum, t) => sum + t.shape[rank - 1]!, 0);
  const rows = tf.util.sizeFromShape(lead);
  const out = backend.makeOutput([...lead, c], 'float32');
  let at = 0;
  for (const t of inputs) {
    const width = t.shape[rank - 1]!;
    if (rows > 0 && width > 0) simd.kd_put_cols(heapOffset(backend, t), rows, width, c, at, heapOffset(backend, out));
    at += width;
  }
  return out;
}

/** Kernel configs that replace tfjs-wasm's SplitV and Concat for channel-axis float32 tensors. */
export const splitVConfig: tf.KernelConfig = { kernelName: tf.SplitV, backendName: 'wasm', kernelFunc: splitV as tf.KernelFunc };
export const concatConfig: tf.KernelConfig = { kernelName: tf.Concat, backendName: 'wasm', kernelFunc: concat as tf.KernelFunc };
