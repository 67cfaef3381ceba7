import * as tf from '../../tf.js';
import { combineLosses } from './registry.js';

/** Defaults of classification KD: temperature T and the KD weight α (Hinton et al. 2015). */
export const KD_DEFAULTS = { temperature: 4, alpha: 0.7 } as const;

/** Options of {@link kdLoss}. */
export interface KdOptions {
  /** Softmax temperature T > 0 (default 4). */
  temperature?: number;
}

/** Checks a temperature option: finite and positive. */
export function checkTemperature(t: number, param = 'temperature'): number {
  if (!(Number.isFinite(t) && t > 0)) throw new RangeError(`${param}: expected a finite number > 0, got ${String(t)}`);
  return t;
}

/**
 * Classification KD (Hinton et al. 2015): `KL(softmax(t/T) ‖ softmax(s/T))·T²`, summed over classes
 * and averaged over the batch (torch's `reduction='batchmean'`). The teacher is a constant; the
 * gradient flows to `studentLogits` only.
 * @example
 * const kd = kdLoss(student.logits, teacherOut.logits, { temperature: 4 });
 * const loss = mixKd(crossEntropy, kd, 0.7);
 */
export function kdLoss(studentLogits: tf.Tensor2D, teacherLogits: Float32Array, opts: KdOptions = {}): tf.Scalar {
  const T = checkTemperature(opts.temperature ?? KD_DEFAULTS.temperature, 'opts.temperature');
  if (studentLogits.rank !== 2) throw new RangeError(`studentLogits: expected rank 2 [N, nc], got shape [${studentLogits.shape.join(', ')}]`);
  const [n, nc] = studentLogits.shape;
  if (teacherLogits.length !== n * nc) {
    throw new RangeError(`teacherLogits: expected ${n}·${nc} = ${n * nc} values for student logits [${n}, ${nc}], got ${teacherLogits.length}`);
  }
  return tf.tidy(() => {
    const logPt = tf.logSoftmax(tf.tensor2d(teacherLogits, [n, nc]).div(T));
    const logPs = tf.logSoftmax(studentLogits.div(T));
    // Hinton et al. 2015, §2: the soft-target gradients scale as 1/T², so T² keeps them comparable.
    return tf.exp(logPt).mul(logPt.sub(logPs)).sum().div(n).mul(T * T) as tf.Scalar;
  });
}

/**
 * Hinton's mix of the soft and hard objectives: `α·kd + (1−α)·hard` (default α = 0.7); the same as
 * `combineLosses(hard, kd, alpha, 1)`.
 */
export function mixKd(hard: tf.Scalar, kd: tf.Scalar, alpha: number = KD_DEFAULTS.alpha): tf.Scalar {
  return combineLosses(hard, kd, alpha, 1);
}
