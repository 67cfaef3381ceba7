import * as tf from '../tf.js';
import { buildTargets, type LevelGrid } from './build-targets.js';
import { ciou, detached } from './ciou.js';
import { objectnessBalance } from './objectness-balance.js';

/** Loss hyperparameters, ultralytics names (hyp.scratch-low.yaml), before level/class/size scaling. */
export interface LossHyp {
  box: number;
  obj: number;
  cls: number;
  anchor_t: number;
  /** Label smoothing epsilon (0: targets 1 and 0). */
  label_smoothing: number;
}

/** The loss terms of one step; `total` carries gradients, the rest are plain numbers once read. */
export interface YoloLossTerms {
  total: tf.Scalar;
  box: tf.Scalar;
  obj: tf.Scalar;
  cls: tf.Scalar;
}

/**
 * Scales the loss gains the way ultralytics train.py does: box ×3/nl, cls ×nc/80·3/nl,
 * obj ×(imgsz/640)²·3/nl.
 */
export function scaleLossHyp(hyp: LossHyp, nl: number, nc: number, imgsz: number): LossHyp {
  return {
    ...hyp,
    box: hyp.box * 3 / nl,
    cls: hyp.cls * nc / 80 * 3 / nl,
    obj: hyp.obj * (imgsz / 640) ** 2 * 3 / nl,
  };
}

/** Mean binary cross-entropy with logits: max(x,0) − x·y + log(1 + e^−|x|). */
export function bceWithLogits(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.relu(x).sub(x.mul(y)).add(tf.softplus(tf.neg(tf.abs(x)))).mean() as tf.Scalar);
}

/** What the loss needs to know about the model. */
export interface LossModelInfo {
  nc: number;
  na: number;
  strides: number[];
  anchors: number[][];
}

/**
 * The YOLOv5 loss (ultralytics ComputeLoss): CIoU box loss, objectness BCE against the detached
 * IoU, class BCE; per-level objectness balance; total = (box + obj + cls)·batch size.
 * @param preds raw logits per level, [N, ny, nx, na*(5+nc)].
 * @param hyp already scaled with {@link scaleLossHyp}.
 */
export function yoloLoss(
  preds: tf.Tensor4D[],
  targets: Float32Array,
  nTargets: number,
  model: LossModelInfo,
  hyp: LossHyp,
): YoloLossTerms {
  const { nc } = model;
  const no = nc + 5;
  const levels: LevelGrid[] = preds.map((p, i) => ({
    ny: p.shape[1], nx: p.shape[2], stride: model.strides[i], anchors: model.anchors[i],
  }));
  const matches = buildTargets(targets, nTargets, levels, hyp.anchor_t);
  const balance = objectnessBalance(preds.length);
  const cp = 1 - 0.5 * hyp.label_smoothing;
  const cn = 0.5 * hyp.label_smoothing;
  const bs = preds[0].shape[0];

  return tf.tidy(() => {
    let lbox = tf.scalar(0);
    let lobj = tf.scalar(0);
    let lcls = tf.scalar(0);
    preds.forEach((p, i) => {
      const m = matches[i];
      const flat = p.reshape([-1, no]) as tf.Tensor2D;
      const cells = flat.shape[0];
      const objLogit = flat.slice([0, 4], [cells, 1]).reshape([cells]);
      let tobj: tf.Tensor = tf.zeros([cells]);
      if (m.n > 0) {
        const ps = tf.gather(flat, tf.tensor1d(m.rows, 'int32'));
        const pxy = tf.sigmoid(ps.slice([0, 0], [m.n, 2])).mul(2).sub(0.5);
        const pwh = tf.sigmoid(ps.slice([0, 2], [m.n, 2])).mul(2).square().mul(tf.tensor2d(m.anchors, [m.n, 2]));
        const pbox = tf.concat([pxy, pwh], 1) as tf.Tensor2D;
        const iou = ciou(pbox, tf.tensor2d(m.tbox, [m.n, 4]));
        lbox = lbox.add(tf.scalar(1).sub(iou).mean());
        // tobj[b, a, gj, gi] = iou.detach().clamp(0), last match at a cell wins.
        tobj = detached(iou, (v) => tf.scatterND(
          tf.tensor2d(m.objRows, [m.objRows.length, 1], 'int32'),
          tf.gather(tf.relu(v), tf.tensor1d(m.objFrom, 'int32')),
          [cells],
        ));
        if (nc > 1) {
          const pcls = ps.slice([0, 5], [m.n, nc]);
          const t = new Float32Array(m.n * nc).fill(cn);
          for (let k = 0; k < m.n; k++) t[k * nc + m.tcls[k]] = cp;
          lcls = lcls.add(bceWithLogits(pcls, tf.tensor2d(t, [m.n, nc])));
        }
      }
      lobj = lobj.add(bceWithLogits(objLogit, tobj).mul(balance[i]));
    });
    const box = lbox.mul(hyp.box) as tf.Scalar;
    const obj = lobj.mul(hyp.obj) as tf.Scalar;
    const cls = lcls.mul(hyp.cls) as tf.Scalar;
    const total = box.add(obj).add(cls).mul(bs) as tf.Scalar;
    return { total, box, obj, cls };
  });
}
