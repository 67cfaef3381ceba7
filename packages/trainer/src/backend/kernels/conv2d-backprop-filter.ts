import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapOffset, requireKdSimd } from './kd-simd.js';
import { type KernelArgs, release } from './wasm-ops.js';

/**
 * Filter gradient of a 2-D convolution: dW = colsᵀ · dy, with cols = im2col(x) ([pixels, kh·kw·ci];
 * x itself for a plain 1×1 convolution) and dy seen as [pixels, co], both in kd-simd (native/kd-simd.c).
 * The product is long and thin (pixels ≫ kh·kw·ci, co), the shape XNNPACK's convolution and tfjs-wasm's
 * BatchMatMul handle worst; kd-simd's GEMM streams chunks of rows through a 4×8 register block.
 */
export function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only, got '${dataFormat}'`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode,
    false, 'channelsLast');
  const simd = requireKdSimd(backend);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: n, inChannels: ci, outChannels: co } = info;
  const { top, left } = info.padInfo;
  const k = kh * kw * ci;
  const m = n * oh * ow;
  const plain = kh === 1 && kw === 1 && sh === 1 && sw === 1 && top === 0 && left === 0 && oh === h && ow === w;
  const cols = plain ? x : backend.makeOutput([m, k], 'float32');
  if (!plain) {
    simd.kd_im2col(heapOffset(backend, x), n, h, w, ci, kh, kw, sh, sw, top, left, oh, ow, heapOffset(backend, cols));
  }
  const dw = backend.makeOutput([kh, kw, ci, co], 'float32');
  simd.kd_gemm_tn(heapOffset(backend, cols), k, heapOffset(backend, dy), co, m, k, co, heapOffset(backend, dw));
  if (!plain) release(backend, cols);
  return dw;
}

/** Kernel config registered on 'wasm', where tfjs 4.22 has no Conv2DBackpropFilter. */
export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as tf.KernelFunc,
};
