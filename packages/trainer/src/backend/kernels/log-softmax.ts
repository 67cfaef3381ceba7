import * as tf from '../../tf.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { type KernelArgs, release, runWasm } from './wasm-ops.js';

/**
 * log softmax along `axis`, as (x − max) − log Σ exp(x − max) for stability. tf.logSoftmax in
 * tfjs-core 4.22 is composed from other ops, so this serves direct runKernel callers (converted graphs).
 */
export function logSoftmax(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { logits } = args.inputs as { logits: tf.TensorInfo };
  const { axis } = args.attrs as unknown as tf.LogSoftmaxAttrs;
  const rank = logits.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  const max = runWasm('Max', backend, { x: logits }, { reductionIndices: [ax], keepDims: true });
  const shifted = runWasm('Sub', backend, { a: logits, b: max });
  const e = runWasm('Exp', backend, { x: shifted });
  const s = runWasm('Sum', backend, { x: e }, { axis: [ax], keepDims: true });
  const l = runWasm('Log', backend, { x: s });
  const out = runWasm('Sub', backend, { a: shifted, b: l });
  release(backend, max, shifted, e, s, l);
  return out;
}

/** Kernel config registered on 'wasm', where tfjs 4.22 has no LogSoftmax. */
export const logSoftmaxConfig: tf.KernelConfig = {
  kernelName: tf.LogSoftmax,
  backendName: 'wasm',
  kernelFunc: logSoftmax as tf.KernelFunc,
};
