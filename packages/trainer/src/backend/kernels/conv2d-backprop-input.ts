import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, type KdSimd, requireKdSimd } from './kd-simd.js';
import { type KernelArgs, release, runWasm } from './wasm-ops.js';

/**
 * Input gradient of a 2-D convolution. Two routes, both faster than tfjs-wasm's plain C++ loop:
 * - col2im (any stride): one GEMM dy · Wᵀ in XNNPACK, then kd-simd adds each tap into its pixel;
 * - at stride 1 with few channels on a large image, dy convolved in XNNPACK with the filter rotated
 *   180° and its in/out channels swapped, which skips col2im's [pixels, kh·kw·ci] buffer.
 * The split is measured (packages/trainer/bench/kernels.bench.ts, docs/results.md).
 */
export function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
    args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`wasm Conv2DBackpropInput supports dataFormat 'NHWC' only, got '${dataFormat}'`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode,
    false, 'channelsLast');
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: n, outChannels: co } = info;

  if (sh > 1 || sw > 1 || info.inChannels >= 128 || oh * ow < 64) {
    return col2imBackpropInput(backend, requireKdSimd(backend), dy, filter, info);
  }
  let spread = dy;
  const lenH = oh;
  const lenW = ow;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = h + kh - 1 - lenH - top;
  const right = w + kw - 1 - lenW - left;
  // Negative padding means rows to drop (trailing zeros of the spread, or pads wider than the kernel).
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    const sizeH = lenH - cropTop - Math.max(0, -bottom);
    const sizeW = lenW - cropLeft - Math.max(0, -right);
    const cropped = runWasm('Slice', backend, { x: spread }, {
      begin: [0, cropTop, cropLeft, 0], size: [n, sizeH, sizeW, co],
    });
    if (spread !== dy) release(backend, spread);
    spread = cropped;
  }
  const rev = runWasm('Reverse', backend, { x: filter }, { dims: [0, 1] });
  const flipped = runWasm('Transpose', backend, { x: rev }, { perm: [0, 1, 3, 2] });
  release(backend, rev);
  const dx = runWasm('Conv2D', backend, { x: spread, filter: flipped }, {
    strides: [1, 1],
    pad: [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]],
    dataFormat: 'NHWC',
    dilations: [1, 1],
  });
  release(backend, flipped);
  if (spread !== dy) release(backend, spread);
  return dx;
}

/**
 * Input gradient as one GEMM and a scatter-add: cols = dy · Wᵀ ([n·oh·ow, kh·kw·ci], a 1×1 convolution
 * in XNNPACK), then kd-simd's col2im adds each tap's column into the input pixel it came from. Any
 * stride and padding; no work on the zeros a strided gradient would otherwise carry.
 */
function col2imBackpropInput(
  backend: BackendWasm,
  simd: KdSimd,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: n, inChannels: ci, outChannels: co } = info;
  const k = kh * kw * ci;
  const w2 = runWasm('Reshape', backend, { x: filter }, { shape: [k, co] });
  const wt = runWasm('Transpose', backend, { x: w2 }, { perm: [1, 0] });
  const f1 = runWasm('Reshape', backend, { x: wt }, { shape: [1, 1, co, k] });
  const cols = runWasm('Conv2D', backend, { x: dy, filter: f1 }, {
    strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1],
  });
  release(backend, w2, wt, f1);
  const dx = backend.makeOutput([n, h, w, ci], 'float32');
  simd.kd_col2im(heapOffset(backend, cols), n, oh, ow, kh, kw, ci, h, w, sh, sw,
    info.padInfo.top, info.padInfo.left, heapOffset(backend, dx));
  release(backend, cols);
  return dx;
}

/** Kernel config that replaces tfjs-wasm's loop-based Conv2DBackpropInput. */
export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as tf.KernelFunc,
};
