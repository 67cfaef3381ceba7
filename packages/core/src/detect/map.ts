import {
  COCO_IOU_THRESHOLDS,
  COCO_RECALL_THRESHOLDS,
  checkImages,
  groupByClass,
  matchImageClass,
  type ImageClassMatch,
} from './coco-match.js';
import type { Annotation, Detection } from './types.js';

/** One image's predictions and ground truth, in the same pixel space. */
export interface EvalImage {
  detections: readonly Detection[];
  annotations: readonly Annotation[];
}

/** Options of {@link evaluateCoco}. */
export interface CocoEvalOptions {
  /** Detections kept per image and class, highest scores first (default 100, pycocotools' last maxDets). */
  maxDets?: number;
  /** Also return each class's precision-recall curve at IoU 0.5 ({@link CocoEval.prCurves}). */
  prCurves?: boolean;
}

/** COCO figures of one class; AP values are −1 when the class has no (non-crowd) ground truth. */
export interface CocoClassResult {
  cls: number;
  /** Non-crowd ground truths. */
  nGt: number;
  /** Detections evaluated (after the per-image maxDets cut). */
  nDet: number;
  /** AP@[.5:.95]. */
  ap: number;
  /** AP@.5. */
  ap50: number;
  /** AP@.75. */
  ap75: number;
  /** Recall at maxDets, averaged over the ten IoU thresholds. */
  recall: number;
}

/** The pycocotools summary for area 'all'; each figure is −1 when no class has ground truth. */
export interface CocoEval {
  /** AP@[.5:.95] (stats[0]). */
  map: number;
  /** AP@.5 (stats[1]). */
  map50: number;
  /** AP@.75 (stats[2]). */
  map75: number;
  /** AR@maxDets, 100 by default (stats[8]). */
  ar100: number;
  /** One entry per class 0..nc−1, indexed by class. */
  perClass: CocoClassResult[];
  /**
   * With {@link CocoEvalOptions.prCurves}: per class (null without ground truth), the interpolated
   * precision at IoU 0.5 at each of the 101 {@link COCO_RECALL_THRESHOLDS}; its mean is the class's AP50.
   */
  prCurves?: (Float64Array | null)[];
}

interface ClassCurves {
  /** Σ over recall thresholds of the interpolated precision, per IoU threshold. */
  precisionSum: Float64Array;
  /** Final recall per IoU threshold. */
  recall: Float64Array;
  /** Interpolated precision at each recall threshold at the first IoU threshold (0.5). */
  precision50: Float64Array;
}

/** pycocotools `accumulate` for one class and area 'all': null when the class has no non-ignored GT. */
function accumulateClass(matches: readonly ImageClassMatch[], T: number): ClassCurves | null {
  let npig = 0;
  let nd = 0;
  for (const m of matches) {
    npig += m.nGt;
    nd += m.scores.length;
  }
  if (npig === 0) return null;
  // Concatenate in image order, then stable-sort by descending score (numpy mergesort on −score).
  const scores = new Float64Array(nd);
  const owner = new Int32Array(nd);
  const local = new Int32Array(nd);
  let k = 0;
  for (const [mi, m] of matches.entries()) {
    for (let d = 0; d < m.scores.length; d++, k++) {
      scores[k] = m.scores[d];
      owner[k] = mi;
      local[k] = d;
    }
  }
  const order = Array.from({ length: nd }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);

  const R = COCO_RECALL_THRESHOLDS.length;
  const precisionSum = new Float64Array(T);
  const recall = new Float64Array(T);
  const precision50 = new Float64Array(R);
  const rc = new Float64Array(nd);
  const pr = new Float64Array(nd);
  for (let t = 0; t < T; t++) {
    let tp = 0;
    let fp = 0;
    for (let i = 0; i < nd; i++) {
      const m = matches[owner[order[i]]];
      const d = local[order[i]];
      const D = m.scores.length;
      if (!m.ignored[t * D + d]) {
        if (m.matched[t * D + d]) tp++;
        else fp++;
      }
      rc[i] = tp / npig;
      pr[i] = tp / (fp + tp + Number.EPSILON); // np.spacing(1)
    }
    recall[t] = nd ? rc[nd - 1] : 0;
    for (let i = nd - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    // searchsorted(rc, recThrs, 'left'); recall thresholds beyond the last detection keep 0.
    let sum = 0;
    let idx = 0;
    for (let r = 0; r < R; r++) {
      const thr = COCO_RECALL_THRESHOLDS[r];
      while (idx < nd && rc[idx] < thr) idx++;
      if (idx >= nd) break;
      sum += pr[idx];
      if (t === 0) precision50[r] = pr[idx];
    }
    precisionSum[t] = sum;
  }
  return { precisionSum, recall, precision50 };
}

/**
 * COCO bbox evaluation as pycocotools `COCOeval` (area 'all', one maxDets): AP@[.5:.95], AP50,
 * AP75 and AR, overall and per class. Classes without ground truth are reported as −1 and left
 * out of the means; classes with ground truth but no detections count as 0.
 * @example
 * const { map, map50 } = evaluateCoco([{ detections, annotations }], 80);
 */
export function evaluateCoco(images: readonly EvalImage[], nc: number, opts: CocoEvalOptions = {}): CocoEval {
  checkImages(images, nc);
  const maxDets = opts.maxDets ?? 100;
  if (!Number.isInteger(maxDets) || maxDets < 1) throw new RangeError(`maxDets must be a positive integer, got ${maxDets}`);
  const T = COCO_IOU_THRESHOLDS.length;
  const R = COCO_RECALL_THRESHOLDS.length;
  const t75 = COCO_IOU_THRESHOLDS.indexOf(0.75);

  const perClass: CocoClassResult[] = [];
  const prCurves: (Float64Array | null)[] = [];
  let apSum = 0, ap50Sum = 0, ap75Sum = 0, arSum = 0;
  let counted = 0;
  for (const [cls, entries] of groupByClass(images, nc).entries()) {
    const matches = entries.map((e) => matchImageClass(e.dets, e.gts, COCO_IOU_THRESHOLDS, maxDets));
    const curves = accumulateClass(matches, T);
    const nGt = matches.reduce((s, m) => s + m.nGt, 0);
    const nDet = matches.reduce((s, m) => s + m.scores.length, 0);
    prCurves.push(curves?.precision50 ?? null);
    if (!curves) {
      perClass.push({ cls, nGt, nDet, ap: -1, ap50: -1, ap75: -1, recall: -1 });
      continue;
    }
    const ps = curves.precisionSum;
    const apAll = ps.reduce((s, v) => s + v, 0) / (T * R);
    const recall = curves.recall.reduce((s, v) => s + v, 0) / T;
    perClass.push({ cls, nGt, nDet, ap: apAll, ap50: ps[0] / R, ap75: ps[t75] / R, recall });
    apSum += apAll;
    ap50Sum += ps[0] / R;
    ap75Sum += ps[t75] / R;
    arSum += recall;
    counted++;
  }
  // pycocotools averages every precision entry > −1; each counted class has the same T·R entries,
  // so that equals the mean of the per-class APs.
  const extra = opts.prCurves ? { prCurves } : {};
  if (counted === 0) return { map: -1, map50: -1, map75: -1, ar100: -1, perClass, ...extra };
  return { map: apSum / counted, map50: ap50Sum / counted, map75: ap75Sum / counted, ar100: arSum / counted, perClass, ...extra };
}
