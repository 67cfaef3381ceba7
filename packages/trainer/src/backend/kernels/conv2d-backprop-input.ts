import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, release, runWasm } from './wasm-ops.js';

/**
 * Input gradient of a 2-D convolution as one forward convolution in XNNPACK: dy spread out with
 * stride−1 zeros between samples, convolved (stride 1) with the filter rotated 180° and its in/out
 * channels swapped. tfjs-wasm's own kernel is a plain C++ loop.
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

  let spread = dy;
  if (sh > 1 || sw > 1) {
    // Zero-insertion through reshape + pad keeps it to two cheap wasm kernels.
    const r = runWasm('Reshape', backend, { x: dy }, { shape: [n, oh, 1, ow, 1, co] });
    const p = runWasm('PadV2', backend, { x: r }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
      constantValue: 0,
    });
    release(backend, r);
    spread = runWasm('Reshape', backend, { x: p }, { shape: [n, oh * sh, ow * sw, co] });
    release(backend, p);
  }
  const lenH = oh * sh;
  const lenW = ow * sw;
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

/** Kernel config that replaces tfjs-wasm's loop-based Conv2DBackpropInput. */
export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as tf.KernelFunc,
};
