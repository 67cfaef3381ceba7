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
  return tf.tidy(() => ciouColumn(box1, box2, eps, 'shared').reshape([-1]) as tf.Tensor1D);
}

/** 1 − {@link ciou}: the box distance of yolo-kd (as the YOLOv5 box loss, per pair). */
export function ciouDistance(box1: tf.Tensor2D, box2: tf.Tensor2D, eps = 1e-7): tf.Tensor1D {
  return tf.tidy(() => tf.scalar(1).sub(ciouColumn(box1, box2, eps, 'per-use')).reshape([-1]) as tf.Tensor1D);
}

type Edge = () => tf.Tensor;

/**
 * CIoU as a column [n, 1]. `edges` says whether each box edge is computed once ('shared', the YOLO
 * loss) or again at each use ('per-use', the KD distance). The values are equal, but the gradient adds
 * up its parts in another order, so float32 rounds differently; gradient descent through CIoU's kinks
 * amplifies that, and distillation's results and tests were made with 'per-use'.
 */
function ciouColumn(box1: tf.Tensor2D, box2: tf.Tensor2D, eps: number, edges: 'shared' | 'per-use'): tf.Tensor2D {
  const [x1, y1, w1, h1] = tf.split(box1, 4, 1) as tf.Tensor2D[];
  const [x2, y2, w2, h2] = tf.split(box2, 4, 1) as tf.Tensor2D[];
  // Low and high edges of each box along x and y, made when called.
  const lowHigh = (c: tf.Tensor2D, s: tf.Tensor2D): Edge[] => [() => c.sub(s.div(2)), () => c.add(s.div(2))];
  let edge = [...lowHigh(x1, w1), ...lowHigh(y1, h1), ...lowHigh(x2, w2), ...lowHigh(y2, h2)];
  if (edges === 'shared') edge = edge.map((f) => f()).map((t) => () => t);
  const [b1x1, b1x2, b1y1, b1y2, b2x1, b2x2, b2y1, b2y2] = edge as [Edge, Edge, Edge, Edge, Edge, Edge, Edge, Edge];
  const iw = tf.relu(tf.minimum(b1x2(), b2x2()).sub(tf.maximum(b1x1(), b2x1())));
  const ih = tf.relu(tf.minimum(b1y2(), b2y2()).sub(tf.maximum(b1y1(), b2y1())));
  const inter = iw.mul(ih);
  const union = w1.mul(h1.add(eps)).add(w2.mul(h2.add(eps))).sub(inter).add(eps);
  const iou = inter.div(union);
  // Enclosing box: its width is the span of both boxes' edges.
  const cw = tf.maximum(b1x2(), b2x2()).sub(tf.minimum(b1x1(), b2x1()));
  const ch = tf.maximum(b1y2(), b2y2()).sub(tf.minimum(b1y1(), b2y1()));
  const c2 = cw.square().add(ch.square()).add(eps);
  const rho2 = x2.sub(x1).square().add(y2.sub(y1).square());
  const v = tf.atan(w2.div(h2.add(eps))).sub(tf.atan(w1.div(h1.add(eps)))).square().mul(4 / (Math.PI * Math.PI));
  // Equal boxes give v = 0 while float32 may round the IoU to 1 + eps: keep the denominator ≥ eps,
  // or alpha is 0/0 = NaN (distillation starts students on exactly such pairs).
  const alpha = detached(v.sub(iou), (d) => v.div(tf.maximum(d.add(1 + eps), eps)));
  return iou.sub(rho2.div(c2).add(v.mul(alpha))) as tf.Tensor2D;
}
