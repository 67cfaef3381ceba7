import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, wasmKernel } from './wasm-ops.js';

/**
 * Tile by block copies: each innermost row is copied once and then doubled with copyWithin, so the
 * work is a handful of memcpy calls per output block instead of an index computation per element.
 * The BatchNorm gradient tiles a [1,1,1,C] tensor to the whole activation every step.
 */
export function tile(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { reps } = args.attrs as unknown as tf.TileAttrs;
  if (x.dtype === 'string' || x.shape.length === 0) {
    return wasmKernel(tf.Tile)(args) as tf.TensorInfo;
  }
  const shape = x.shape;
  const rank = shape.length;
  const outShape = shape.map((d, i) => d * reps[i]!);
  const out = backend.makeOutput(outShape, x.dtype);
  if (tf.util.sizeFromShape(outShape) === 0) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const srcStrides = tf.util.computeStrides(shape);
  const dstStrides = tf.util.computeStrides(outShape);
  const srcStride = (d: number) => (d === rank - 1 ? 1 : srcStrides[d]!);
  const dstStride = (d: number) => (d === rank - 1 ? 1 : dstStrides[d]!);

  // Fills the first copy of dimension d at dstOff, then repeats that block reps[d] − 1 times.
  const fill = (d: number, srcOff: number, dstOff: number): void => {
    const block = shape[d]! * dstStride(d);
    if (d === rank - 1) {
      dst.set(src.subarray(srcOff, srcOff + shape[d]!), dstOff);
    } else {
      for (let i = 0; i < shape[d]!; i++) fill(d + 1, srcOff + i * srcStride(d), dstOff + i * dstStride(d));
    }
    const total = block * reps[d]!;
    let filled = block;
    while (filled < total) {
      const n = Math.min(filled, total - filled);
      dst.copyWithin(dstOff + filled, dstOff, dstOff + n);
      filled += n;
    }
  };
  fill(0, 0, 0);
  return out;
}

/** Kernel config that replaces tfjs-wasm's element-wise Tile. */
export const tileConfig: tf.KernelConfig = {
  kernelName: tf.Tile,
  backendName: 'wasm',
  kernelFunc: tile as tf.KernelFunc,
};
