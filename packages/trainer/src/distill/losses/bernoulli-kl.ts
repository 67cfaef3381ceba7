import * as tf from '../../tf.js';

/**
 * Elementwise KL(Bernoulli(σ(t)) ‖ Bernoulli(σ(s))) from logits, written with softplus so that it
 * is stable for large logits and exactly 0 where s = t: with log σ(x) = −softplus(−x),
 * `σ(t)·(softplus(−s) − softplus(−t)) + (1 − σ(t))·(softplus(s) − softplus(t))`. This equals
 * BCE(σ(s), target σ(t)) minus the teacher's entropy; gradients flow to `s` only when `t` is a constant.
 */
export function bernoulliKl(t: tf.Tensor, s: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const q = tf.sigmoid(t);
    const pos = tf.softplus(tf.neg(s)).sub(tf.softplus(tf.neg(t)));
    const neg = tf.softplus(s).sub(tf.softplus(t));
    return q.mul(pos).add(tf.scalar(1).sub(q).mul(neg));
  });
}
