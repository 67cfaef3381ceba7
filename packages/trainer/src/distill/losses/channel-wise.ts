import * as tf from '../../tf.js';
import type { FeatureMap } from '../types.js';
import { adaptedPair, type FeatureAdapters } from './feature-adapters.js';
import type { FeatureLossTerms } from './feature.js';

/** Options of {@link channelWiseLoss}. */
export interface ChannelWiseOptions {
  /** Softmax temperature τ over each channel's positions; default 4 (mmyolo's YOLO-neck setting). */
  temperature?: number;
  /** Multiply `total` by the batch size, as yoloLoss does with its total (default true). */
  scaleByBatch?: boolean;
}

/**
 * Channel-wise distillation (Shu et al., ICCV 2021): each channel of a feature map becomes a
 * distribution over its H·W positions (softmax at temperature τ); the student's channels, mapped onto
 * the teacher's by the 1×1 adapter, learn the teacher's distributions through
 * τ²·KL(teacher ‖ student), averaged over images and channels. It teaches where each channel fires,
 * not its scale, so it needs no mask. Terms per feature name, and their sum (× batch size unless told
 * not to).
 * @example
 * const c = channelWiseLoss(student.features, teacherOut.features, adapters, { temperature: 4 });
 */
export function channelWiseLoss(
  student: Map<string, tf.Tensor4D>,
  teacher: Map<string, FeatureMap>,
  adapters: FeatureAdapters,
  opts: ChannelWiseOptions = {},
): FeatureLossTerms {
  const tau = opts.temperature ?? 4;
  if (!(Number.isFinite(tau) && tau > 0)) throw new RangeError(`opts.temperature: expected a number > 0, got ${String(tau)}`);
  if (adapters.size === 0) throw new RangeError('adapters: expected at least one feature adapter');
  return tf.tidy(() => {
    const terms: Record<string, tf.Scalar> = {};
    let n = 0;
    for (const [name, adapter] of adapters) {
      const pair = adaptedPair(name, adapter, student, teacher);
      const { n: sn, h, w, c: ct } = pair;
      n = sn;
      // Positions along the last axis: [N, C, H·W], a softmax per image and channel.
      const adapted = pair.adapted.reshape([sn, h * w, ct]).transpose([0, 2, 1]);
      const target = pair.target.reshape([sn, h * w, ct]).transpose([0, 2, 1]);
      const logPt = tf.logSoftmax(target.div(tau)) as tf.Tensor3D;
      const logPs = tf.logSoftmax(adapted.div(tau)) as tf.Tensor3D;
      const kl = tf.exp(logPt).mul(logPt.sub(logPs)).sum();
      terms[name] = kl.mul(tau * tau / (sn * ct)) as tf.Scalar;
    }
    let total = tf.addN(Object.values(terms));
    if (opts.scaleByBatch ?? true) total = total.mul(n);
    return { total: total as tf.Scalar, terms };
  });
}
