import * as tf from '../../tf.js';
import { ciouDistance } from '../../loss/ciou.js';
import { objectnessBalance } from '../../loss/objectness-balance.js';
import { bernoulliKl } from './bernoulli-kl.js';
import { KD_DEFAULTS, checkTemperature } from './kd.js';

/** How class logits are distilled: one softmax over the classes, or an independent sigmoid per class. */
export type YoloKdClsMode = 'softmax' | 'sigmoid';

/** How the box term compares decoded boxes: 1 − CIoU (as the YOLOv5 box loss) or L2. */
export type YoloKdBoxMode = 'ciou' | 'l2';

/** Options of {@link yoloKdLoss}. */
export interface YoloKdOptions {
  /** Temperature T of the objectness and class KL (default 4); KL terms are scaled by T². */
  temperature?: number;
  /** Default 'sigmoid', the way YOLOv5 trains its classes (independent BCE). */
  clsMode?: YoloKdClsMode;
  /** Default 'ciou'. */
  boxMode?: YoloKdBoxMode;
  /**
   * Gains of the three terms, the loss's counterparts of hyp obj/cls/box. Pass the same scaled
   * gains as the hard loss (`scaleLossHyp(hyp, nl, nc, imgsz)`), so each KD term is weighed like its
   * hard twin; default hyp.scratch-low's unscaled { obj: 1, cls: 0.5, box: 0.05 }.
   */
  weights?: { obj?: number; cls?: number; box?: number };
  /** Anchors per level in pixels, [w0, h0, w1, h1, …] (as HeadGeometry). */
  anchors: number[][];
  /** Stride per level in pixels (as HeadGeometry). */
  strides: number[];
  /** Objectness weight per level; default {@link objectnessBalance} (as yoloLoss). */
  balance?: number[];
}

/** Terms of {@link yoloKdLoss}: `obj`, `cls`, `box` with their gains applied; `total` = their sum × batch size. */
export interface YoloKdTerms {
  total: tf.Scalar;
  obj: tf.Scalar;
  cls: tf.Scalar;
  box: tf.Scalar;
}

/** One level of teacher logits, NHWC [N, ny, nx, na·(5+nc)] flattened (TeacherOutput.levels). */
export interface TeacherLevel {
  data: Float32Array;
  ny: number;
  nx: number;
}

const DEFAULT_GAINS = { obj: 1.0, cls: 0.5, box: 0.05 };

/**
 * Detection logit distillation on YOLOv5 head logits, reduced the way yoloLoss reduces its terms so
 * that `α·λ` means the same for both. Per level and anchor cell:
 * - obj: binary KL(σ(t/T) ‖ σ(s/T))·T², mean over all cells, × the level's balance;
 * - cls: KL·T² between class distributions (softmax: categorical KL summed over classes; sigmoid:
 *   per-class Bernoulli KL averaged over classes), weighted by the teacher's objectness σ(t_obj)
 *   (Mehta and Ozturk 2018); skipped when nc = 1, as yoloLoss does;
 * - box: 1 − CIoU (or L2 of [pxy, pwh/anchor]) between the student's and the teacher's boxes decoded
 *   as the YOLOv5 loss does (pxy = 2σ−0.5, pwh = (2σ)²·anchor, grid units), weighted by σ(t_obj).
 * Weighted terms are divided by max(Σσ(t_obj), 1) per level: the teacher's expected number of
 * positives stands in for the hard loss's number of matches, and a teacher that sees nothing gives
 * a near-zero term rather than an average over background. Levels are summed; the gains apply and
 * `total` is multiplied by the batch size, as in yoloLoss.
 * @example
 * const kd = yoloKdLoss(student.levels, teacherOut.levels, { anchors: model.anchors, strides: model.strides });
 */
export function yoloKdLoss(student: tf.Tensor4D[], teacher: TeacherLevel[], opts: YoloKdOptions): YoloKdTerms {
  const T = checkTemperature(opts.temperature ?? KD_DEFAULTS.temperature, 'opts.temperature');
  const clsMode = opts.clsMode ?? 'sigmoid';
  if (clsMode !== 'softmax' && clsMode !== 'sigmoid') throw new RangeError(`opts.clsMode: expected 'softmax' or 'sigmoid', got '${String(clsMode)}'`);
  const boxMode = opts.boxMode ?? 'ciou';
  if (boxMode !== 'ciou' && boxMode !== 'l2') throw new RangeError(`opts.boxMode: expected 'ciou' or 'l2', got '${String(boxMode)}'`);
  const gains = { ...DEFAULT_GAINS, ...opts.weights };
  for (const k of ['obj', 'cls', 'box'] as const) {
    if (!(Number.isFinite(gains[k]) && gains[k] >= 0)) throw new RangeError(`opts.weights.${k}: expected a finite number ≥ 0, got ${String(gains[k])}`);
  }
  const nl = student.length;
  if (nl === 0) throw new RangeError('student: expected at least one level');
  if (teacher.length !== nl) throw new RangeError(`teacher: expected ${nl} levels like the student, got ${teacher.length}`);
  if (opts.anchors.length !== nl) throw new RangeError(`opts.anchors: expected ${nl} levels, got ${opts.anchors.length}`);
  if (opts.strides.length !== nl) throw new RangeError(`opts.strides: expected ${nl} levels, got ${opts.strides.length}`);
  const balance = opts.balance ?? objectnessBalance(nl);
  if (balance.length !== nl) throw new RangeError(`opts.balance: expected ${nl} values, got ${balance.length}`);
  const bs = student[0].shape[0];
  const T2 = T * T;

  return tf.tidy(() => {
    let lobj = tf.scalar(0);
    let lcls = tf.scalar(0);
    let lbox = tf.scalar(0);
    student.forEach((s, i) => {
      const { na, no, cells } = checkLevel(s, teacher[i], opts.anchors[i], opts.strides[i], i, bs);
      const nc = no - 5;
      const tData = teacher[i].data;
      const sp = s.reshape([cells, no]) as tf.Tensor2D;
      const tp = tf.tensor2d(tData, [cells, no]);
      const col = (x: tf.Tensor2D, k: number, n: number): tf.Tensor2D => x.slice([0, k], [cells, n]);

      const objKl = bernoulliKl(col(tp, 4, 1).div(T), col(sp, 4, 1).div(T));
      lobj = lobj.add(objKl.mean().mul(T2 * balance[i]));

      // The teacher's objectness at T = 1 (its actual confidence) weighs the cls and box terms.
      const w = new Float32Array(cells);
      let wSum = 0;
      for (let r = 0; r < cells; r++) {
        w[r] = 1 / (1 + Math.exp(-tData[r * no + 4]));
        wSum += w[r];
      }
      const wt = tf.tensor1d(w);
      const denom = Math.max(wSum, 1);

      if (nc > 1) {
        const sc = col(sp, 5, nc).div(T);
        const tc = col(tp, 5, nc).div(T);
        let perCell: tf.Tensor;
        if (clsMode === 'softmax') {
          const logPt = tf.logSoftmax(tc);
          perCell = tf.exp(logPt).mul(logPt.sub(tf.logSoftmax(sc))).sum(1);
        } else {
          perCell = bernoulliKl(tc, sc).mean(1);
        }
        lcls = lcls.add(perCell.mul(wt).sum().div(denom).mul(T2));
      }

      const sBox = decode(col(sp, 0, 4));
      const tBox = decode(col(tp, 0, 4));
      let perBox: tf.Tensor;
      if (boxMode === 'ciou') {
        // Rows run anchor-fastest, so the per-anchor sizes (grid units) repeat every na rows.
        const anchorGrid = tf.tile(tf.tensor2d(opts.anchors[i].map((v) => v / opts.strides[i]), [na, 2]), [cells / na, 1]);
        const toGrid = (b: tf.Tensor2D) => tf.concat([col(b, 0, 2), col(b, 2, 2).mul(anchorGrid)], 1) as tf.Tensor2D;
        perBox = ciouDistance(toGrid(sBox), toGrid(tBox));
      } else {
        // wh relative to the anchor, so that big and small anchors and all levels weigh alike.
        perBox = sBox.sub(tBox).square().mean(1);
      }
      lbox = lbox.add(perBox.mul(wt).sum().div(denom));
    });
    const obj = lobj.mul(gains.obj) as tf.Scalar;
    const cls = lcls.mul(gains.cls) as tf.Scalar;
    const box = lbox.mul(gains.box) as tf.Scalar;
    const total = obj.add(cls).add(box).mul(bs) as tf.Scalar;
    return { total, obj, cls, box };
  });
}

/** [x, y, w, h] logits → [pxy, pwh/anchor] = [2σ − 0.5, (2σ)²] (ultralytics ComputeLoss). */
function decode(logits: tf.Tensor2D): tf.Tensor2D {
  const sig = tf.sigmoid(logits).mul(2);
  const n = logits.shape[0];
  return tf.concat([sig.slice([0, 0], [n, 2]).sub(0.5), sig.slice([0, 2], [n, 2]).square()], 1) as tf.Tensor2D;
}

function checkLevel(s: tf.Tensor4D, t: TeacherLevel, anchors: number[], stride: number, i: number, bs: number) {
  if (s.rank !== 4) throw new RangeError(`student[${i}]: expected NHWC rank 4, got shape [${s.shape.join(', ')}]`);
  const [n, ny, nx, ch] = s.shape;
  if (n !== bs) throw new RangeError(`student[${i}]: batch ${n} differs from level 0's ${bs}`);
  const na = anchors.length / 2;
  if (!Number.isInteger(na) || na < 1) throw new RangeError(`opts.anchors[${i}]: expected [w0, h0, w1, h1, …], got ${anchors.length} values`);
  if (!(Number.isFinite(stride) && stride > 0)) throw new RangeError(`opts.strides[${i}]: expected a number > 0, got ${String(stride)}`);
  const no = ch / na;
  if (!Number.isInteger(no) || no < 6) throw new RangeError(`student[${i}]: ${ch} channels are not ${na} anchors × (5 + nc)`);
  if (t.ny !== ny || t.nx !== nx) throw new RangeError(`teacher[${i}]: grid ${t.ny}×${t.nx} differs from the student's ${ny}×${nx}`);
  if (t.data.length !== n * ny * nx * ch) {
    throw new RangeError(`teacher[${i}]: expected ${n * ny * nx * ch} values ([${n}, ${ny}, ${nx}, ${ch}]), got ${t.data.length}; teacher and student must share nc and anchors`);
  }
  return { na, no, cells: n * ny * nx * na };
}
