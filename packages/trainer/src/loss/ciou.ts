import * as tf from '../tf.js';

/**
 * `fn(x)` computed off the gradient tape: its gradient with respect to x is zero (torch's
 * `.detach()` / `no_grad`). Ops inside `fn` need no gradient of their own.
 */
export function detached<T extends tf.Tensor>(x: tf.Tensor, fn: (x: tf.Tensor) => T): T {
  const op = tf.customGrad(((input: tf.Tensor) => ({
    value: fn(input),
    gradFunc: () => tf.zerosLike(input),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as T;
}

/**
 * Complete IoU of boxes given as [n, 4] (cx, cy, w, h), Zheng et al. 2020; the alpha term is
 * treated as a constant, as in ultralytics' `bbox_iou(..., CIoU=True)`.
 */
export function ciou(box1: tf.Tensor2D, box2: tf.Tensor2D, eps = 1e-7): tf.Tensor1D {
  return tf.tidy(() => {
    const [x1, y1, w1, h1] = tf.split(box1, 4, 1) as tf.Tensor2D[];
    const [x2, y2, w2, h2] = tf.split(box2, 4, 1) as tf.Tensor2D[];
    const b1x1 = x1.sub(w1.div(2)), b1x2 = x1.add(w1.div(2));
    const b1y1 = y1.sub(h1.div(2)), b1y2 = y1.add(h1.div(2));
    const b2x1 = x2.sub(w2.div(2)), b2x2 = x2.add(w2.div(2));
    const b2y1 = y2.sub(h2.div(2)), b2y2 = y2.add(h2.div(2));
    const iw = tf.relu(tf.minimum(b1x2, b2x2).sub(tf.maximum(b1x1, b2x1)));
    const ih = tf.relu(tf.minimum(b1y2, b2y2).sub(tf.maximum(b1y1, b2y1)));
    const inter = iw.mul(ih);
    const union = w1.mul(h1.add(eps)).add(w2.mul(h2.add(eps))).sub(inter).add(eps);
    const iou = inter.div(union);
    const cw = tf.maximum(b1x2, b2x2).sub(tf.minimum(b1x1, b2x1));
    const ch = tf.maximum(b1y2, b2y2).sub(tf.minimum(b1y1, b2y1));
    const c2 = cw.square().add(ch.square()).add(eps);
    const rho2 = x2.sub(x1).square().add(y2.sub(y1).square());
    const v = tf.atan(w2.div(h2.add(eps))).sub(tf.atan(w1.div(h1.add(eps)))).square().mul(4 / (Math.PI * Math.PI));
    // Equal boxes give v = 0 while float32 may round the IoU to 1 + eps: keep the denominator ≥ eps,
    // or alpha is 0/0 = NaN (distillation starts students on exactly such pairs).
    const alpha = detached(v.sub(iou), (d) => v.div(tf.maximum(d.add(1 + eps), eps)));
    return iou.sub(rho2.div(c2).add(v.mul(alpha))).reshape([-1]) as tf.Tensor1D;
  });
}
