import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { KernelArgs } from './wasm-ops.js';

/**
 * MaxPool gradient: each dy goes to the first maximum of its window (row-major, as the cpu backend
 * and TensorFlow pick it). Replaces tfjs-wasm 4.22's MaxPoolGrad, which measured wrong whenever
 * every value in a window is negative (it seems to start its running max at 0) — common after
 * SiLU, e.g. in YOLOv5's SPPF.
 */
export function maxPoolGrad(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out);
  dx.fill(0);
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  const rowStride = inWidth * c;
  const imageStride = inHeight * rowStride;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const base = b * imageStride;
    for (let oy = 0; oy < outHeight; oy++) {
      const y0 = Math.max(0, oy * sh - top);
      const y1 = Math.min(inHeight, oy * sh - top + fh);
      for (let ox = 0; ox < outWidth; ox++) {
        const x0 = Math.max(0, ox * sw - left);
        const x1 = Math.min(inWidth, ox * sw - left + fw);
        for (let ch = 0; ch < c; ch++, o++) {
          let best = -Infinity;
          let at = -1;
          for (let y = y0; y < y1; y++) {
            for (let xx = x0; xx < x1; xx++) {
              const idx = base + y * rowStride + xx * c + ch;
              if (x[idx]! > best || at < 0) {
                best = x[idx]!;
                at = idx;
              }
            }
          }
          if (at >= 0) dx[at]! += g[o]!;
        }
      }
    }
  }
  return out;
}

/** Kernel config that replaces tfjs-wasm's MaxPoolGrad (wrong for all-negative windows). */
export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as tf.KernelFunc,
};
