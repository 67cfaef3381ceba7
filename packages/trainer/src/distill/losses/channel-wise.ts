import * as tf from '../../tf.js';
import type { FeatureMap } from '../types.js';
import type { FeatureAdapters } from './feature-adapters.js';
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
      const s = student.get(name);
      const t = teacher.get(name);
      if (s === undefined) throw new RangeError(`student: no feature '${name}' (has ${[...student.keys()].join(', ') || 'none'})`);
      if (t === undefined) throw new RangeError(`teacher: no feature '${name}' (has ${[...teacher.keys()].join(', ') || 'none'})`);
      const [sn, h, w, cs] = s.shape;
      const [tn, ct, th, tw] = t.shape;
      const [, , wcs, wct] = adapter.weight.shape;
      if (cs !== wcs) throw new RangeError(`student feature '${name}': ${cs} channels, its adapter takes ${wcs}`);
      if (tn !== sn || ct !== wct || th !== h || tw !== w) {
        throw new RangeError(`teacher feature '${name}': shape [${t.shape.join(', ')}] (NCHW), expected [${sn}, ${wct}, ${h}, ${w}] to match the student's [${s.shape.join(', ')}] (NHWC) and the adapter`);
      }
      if (t.data.length !== tn * ct * th * tw) throw new RangeError(`teacher feature '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`);
      n = sn;
      // Positions along axis 1: [N, H·W, C], a softmax per image and channel.
      const adapted = tf.conv2d(s, adapter.weight, 1, 'valid').add(adapter.bias).reshape([sn, h * w, ct]);
      const target = tf.tensor4d(t.data, t.shape).transpose([0, 2, 3, 1]).reshape([sn, h * w, ct]);
      const logPt = tf.logSoftmax(target.div(tau).transpose([0, 2, 1])) as tf.Tensor3D;
      const logPs = tf.logSoftmax(adapted.div(tau).transpose([0, 2, 1])) as tf.Tensor3D;
      const kl = tf.exp(logPt).mul(logPt.sub(logPs)).sum();
      terms[name] = kl.mul(tau * tau / (sn * ct)) as tf.Scalar;
    }
    let total = tf.addN(Object.values(terms));
    if (opts.scaleByBatch ?? true) total = total.mul(n);
    return { total: total as tf.Scalar, terms };
  });
}
