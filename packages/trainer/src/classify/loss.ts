import * as tf from '../tf.js';

/** ultralytics' default label smoothing ε of classification (`--label-smoothing 0.1`). */
export const LABEL_SMOOTHING = 0.1;

function checkSmoothing(eps: number): void {
  if (!(Number.isFinite(eps) && eps >= 0 && eps <= 1)) throw new RangeError(`smoothing: expected a number in [0, 1], got ${String(eps)}`);
}

/**
 * Cross-entropy with label smoothing as torch's `nn.CrossEntropyLoss(label_smoothing=ε)` computes it:
 * the target of each image is `(1 − ε)·onehot + ε/nc`, the loss `−Σ_c q_c·log softmax(z)_c`, averaged
 * over the batch (Szegedy et al. 2016, §7).
 * @example
 * const loss = smoothedCrossEntropy(model.forward(x, true), batch.labels, 0.1);
 */
export function smoothedCrossEntropy(logits: tf.Tensor2D, labels: Int32Array, smoothing = LABEL_SMOOTHING): tf.Scalar {
  checkSmoothing(smoothing);
  const [n, nc] = logits.shape;
  if (labels.length !== n) throw new RangeError(`labels: expected ${n} labels for logits [${n}, ${nc}], got ${labels.length}`);
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const target = tf.oneHot(tf.tensor1d(labels, 'int32'), nc).mul(1 - smoothing).add(smoothing / nc);
    return tf.neg(target.mul(logp).sum()).div(n) as tf.Scalar;
  });
}

/**
 * The same loss per image, in float64 from logits held in memory (row-major [n, nc]): for validation,
 * where the logits may come from ONNX Runtime.
 */
export function smoothedCrossEntropyValues(logits: ArrayLike<number>, labels: ArrayLike<number>, nc: number, smoothing = LABEL_SMOOTHING): Float64Array {
  checkSmoothing(smoothing);
  const n = labels.length;
  if (logits.length !== n * nc) throw new RangeError(`logits: expected ${n}·${nc} values, got ${logits.length}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * nc;
    let max = -Infinity;
    for (let c = 0; c < nc; c++) max = Math.max(max, logits[o + c]!);
    let sum = 0;
    let mean = 0;
    for (let c = 0; c < nc; c++) {
      sum += Math.exp(logits[o + c]! - max);
      mean += logits[o + c]!;
    }
    const lse = max + Math.log(sum);
    // −Σ q_c (z_c − lse) with q = (1−ε)·onehot + ε/nc.
    out[i] = (1 - smoothing) * (lse - logits[o + labels[i]!]!) + smoothing * (lse - mean / nc);
  }
  return out;
}
