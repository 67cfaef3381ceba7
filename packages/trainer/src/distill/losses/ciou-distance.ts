import * as tf from '../../tf.js';
import { detached } from '../../loss/ciou.js';

/**
 * 1 − CIoU of boxes [n, 4] (cx, cy, w, h), Zheng et al. 2020, as the YOLOv5 box loss computes it
 * (alpha a constant), but with alpha's denominator kept ≥ eps. Equal boxes are the expected case in
 * distillation (a student started from its teacher), and there v = 0 while float32 may round the IoU
 * to 1 + eps, which makes loss/ciou.ts's alpha 0/0 = NaN.
 */
export function ciouDistance(box1: tf.Tensor2D, box2: tf.Tensor2D, eps = 1e-7): tf.Tensor1D {
  return tf.tidy(() => {
    const [x1, y1, w1, h1] = tf.split(box1, 4, 1) as tf.Tensor2D[];
    const [x2, y2, w2, h2] = tf.split(box2, 4, 1) as tf.Tensor2D[];
    const iw = tf.relu(tf.minimum(x1.add(w1.div(2)), x2.add(w2.div(2))).sub(tf.maximum(x1.sub(w1.div(2)), x2.sub(w2.div(2)))));
    const ih = tf.relu(tf.minimum(y1.add(h1.div(2)), y2.add(h2.div(2))).sub(tf.maximum(y1.sub(h1.div(2)), y2.sub(h2.div(2)))));
    const inter = iw.mul(ih);
    const union = w1.mul(h1.add(eps)).add(w2.mul(h2.add(eps))).sub(inter).add(eps);
    const iou = inter.div(union);
    // Enclosing box: its width is the span of both boxes' edges.
    const cw = tf.maximum(x1.add(w1.div(2)), x2.add(w2.div(2))).sub(tf.minimum(x1.sub(w1.div(2)), x2.sub(w2.div(2))));
    const ch = tf.maximum(y1.add(h1.div(2)), y2.add(h2.div(2))).sub(tf.minimum(y1.sub(h1.div(2)), y2.sub(h2.div(2))));
    const c2 = cw.square().add(ch.square()).add(eps);
    const rho2 = x2.sub(x1).square().add(y2.sub(y1).square());
    const v = tf.atan(w2.div(h2.add(eps))).sub(tf.atan(w1.div(h1.add(eps)))).square().mul(4 / (Math.PI * Math.PI));
    const alpha = detached(v.sub(iou), (d) => v.div(tf.maximum(d.add(1 + eps), eps)));
    return tf.scalar(1).sub(iou.sub(rho2.div(c2).add(v.mul(alpha)))).reshape([-1]) as tf.Tensor1D;
  });
}
