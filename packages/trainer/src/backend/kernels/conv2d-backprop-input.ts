import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, release, runWasm } from './wasm-ops.js';

/**
 * Input gradient of a 2-D convolution as forward convolutions in XNNPACK: at stride 1, dy convolved
 * with the filter rotated 180° and its in/out channels swapped; at larger strides, one such
 * convolution per sub-pixel phase. tfjs-wasm's own kernel is a plain C++ loop.
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

  if (sh > 1 || sw > 1) {
    return subPixelBackpropInput(backend, dy, filter, info);
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

/** The taps of one output phase along one axis: dx[q + s·i] = Σ_t dy[i + c0 + t] · W[k0 − s·t]. */
interface Phase {
  /** Output positions of this phase: ceil((size − q) / s). */
  len: number;
  /** Filter index of tap t = 0 (the largest), and the number of taps. */
  k0: number;
  taps: number;
  /** dy offset of tap 0 (may be negative: zero padding). */
  c0: number;
}

function phases(size: number, stride: number, kernel: number, padBefore: number): Phase[] {
  const out: Phase[] = [];
  for (let q = 0; q < stride; q++) {
    const r = (((q + padBefore) % stride) + stride) % stride;
    const ks: number[] = [];
    for (let k = r; k < kernel; k += stride) ks.push(k);
    const k0 = ks.length ? ks[ks.length - 1]! : 0;
    out.push({ len: Math.ceil((size - q) / stride), k0, taps: ks.length, c0: (q + padBefore - k0) / stride });
  }
  return out;
}

/**
 * Strided input gradient split into stride² sub-pixel phases: each output phase is a stride-1
 * correlation of dy with the filter taps that reach it, so no multiply-add is spent on the zeros a
 * spread-out dy would carry (3/4 of them at stride 2). The phases are interleaved by concat + reshape.
 */
function subPixelBackpropInput(
  backend: BackendWasm,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const { outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, batchSize: n, inChannels: ci, outChannels: co } = info;
  const rows = phases(h, sh, kh, info.padInfo.top);
  const cols = phases(w, sw, kw, info.padInfo.left);
  const hq = Math.ceil(h / sh);
  const wq = Math.ceil(w / sw);
  const rowParts: tf.TensorInfo[] = [];
  for (const pr of rows) {
    const colParts: tf.TensorInfo[] = [];
    for (const pc of cols) colParts.push(phaseOutput(backend, dy, filter, pr, pc, { n, oh, ow, ci, co, sh, sw, hq, wq }));
    const row = runWasm('Concat', backend, colParts as never, { axis: 4 });
    release(backend, ...colParts);
    rowParts.push(row);
  }
  const all = runWasm('Concat', backend, rowParts as never, { axis: 2 });
  release(backend, ...rowParts);
  const full = runWasm('Reshape', backend, { x: all }, { shape: [n, hq * sh, wq * sw, ci] });
  release(backend, all);
  if (hq * sh === h && wq * sw === w) return full;
  const dx = runWasm('Slice', backend, { x: full }, { begin: [0, 0, 0, 0], size: [n, h, w, ci] });
  release(backend, full);
  return dx;
}

/** One phase's gradient, shaped [n, hq, 1, wq, 1, ci] for the interleaving concat. */
function phaseOutput(
  backend: BackendWasm,
  dy: tf.TensorInfo,
  filter: tf.TensorInfo,
  pr: Phase,
  pc: Phase,
  d: { n: number; oh: number; ow: number; ci: number; co: number; sh: number; sw: number; hq: number; wq: number },
): tf.TensorInfo {
  const shape = [d.n, d.hq, 1, d.wq, 1, d.ci];
  if (pr.taps === 0 || pc.taps === 0 || pr.len === 0 || pc.len === 0) {
    return runWasm('Fill', backend, {}, { shape, value: 0, dtype: 'float32' });
  }
  // Sub-filter: taps k0, k0 − s, … (descending), channels swapped to [th, tw, co, ci].
  const ascending = runWasm('StridedSlice', backend, { x: filter }, {
    begin: [pr.k0 - d.sh * (pr.taps - 1), pc.k0 - d.sw * (pc.taps - 1), 0, 0], end: [pr.k0 + 1, pc.k0 + 1, d.ci, d.co],
    strides: [d.sh, d.sw, 1, 1], beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
  });
  const taps = runWasm('Reverse', backend, { x: ascending }, { dims: [0, 1] });
  release(backend, ascending);
  const sub = runWasm('Transpose', backend, { x: taps }, { perm: [0, 1, 3, 2] });
  release(backend, taps);
  // Output i reads dy[i + c0 … i + c0 + taps − 1]: pad (or crop) dy so the conv's window lines up,
  // and make the phase exactly hq × wq long (rows past the phase's own length are cropped later).
  const padT = -pr.c0;
  const padL = -pc.c0;
  const padB = d.hq + pr.taps - 1 - d.oh - padT;
  const padR = d.wq + pc.taps - 1 - d.ow - padL;
  let x = dy;
  if (padT < 0 || padL < 0 || padB < 0 || padR < 0) {
    const top = Math.max(0, -padT);
    const left = Math.max(0, -padL);
    x = runWasm('Slice', backend, { x: dy }, {
      begin: [0, top, left, 0],
      size: [d.n, d.oh - top - Math.max(0, -padB), d.ow - left - Math.max(0, -padR), d.co],
    });
  }
  const y = runWasm('Conv2D', backend, { x, filter: sub }, {
    strides: [1, 1],
    pad: [[0, 0], [Math.max(0, padT), Math.max(0, padB)], [Math.max(0, padL), Math.max(0, padR)], [0, 0]],
    dataFormat: 'NHWC',
    dilations: [1, 1],
  });
  release(backend, sub);
  if (x !== dy) release(backend, x);
  const out = runWasm('Reshape', backend, { x: y }, { shape });
  release(backend, y);
  return out;
}

/** Kernel config that replaces tfjs-wasm's loop-based Conv2DBackpropInput. */
export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as tf.KernelFunc,
};
