import { checkImages, groupByClass, matchImageClass } from './coco-match.js';
import type { EvalImage } from './map.js';

/** Precision and recall of one class at the chosen confidence (0 for a class without ground truth). */
export interface ClassPrecisionRecall {
  cls: number;
  precision: number;
  recall: number;
}

/** The result of {@link precisionRecall}: means over the classes that have ground truth. */
export interface PrecisionRecall {
  precision: number;
  recall: number;
  /** Mean over those classes of the per-class F1 at `confidence`. */
  f1: number;
  /** The confidence on ultralytics' 1000-point grid that maximises the smoothed mean F1. */
  confidence: number;
  /** One entry per class 0..nc−1, indexed by class. */
  perClass: ClassPrecisionRecall[];
  /** The curves over confidence, when asked for with {@link PrecisionRecallOptions.curves}. */
  curves?: ConfidenceCurves;
}

/** Options of {@link precisionRecall}. */
export interface PrecisionRecallOptions {
  /** Also return the per-class P, R and F1 curves over confidence (what P_curve.png and its kin plot). */
  curves?: boolean;
}

/**
 * Per-class precision, recall and F1 over ultralytics' confidence grid (`ap_per_class`'s p, r, f1
 * before they are read at one confidence). Entries are indexed by class, null for a class without
 * ground truth; a class with ground truth but no detections has all-zero curves.
 */
export interface ConfidenceCurves {
  /** The grid: `linspace(0, 1, 1000)`. */
  confidence: Float64Array;
  precision: (Float64Array | null)[];
  recall: (Float64Array | null)[];
  f1: (Float64Array | null)[];
  /** Index into the grid of {@link PrecisionRecall.confidence}, where the reported figures are read. */
  best: number;
}

const GRID = 1000;
// ultralytics smooth(y, 0.1): nf = round(len(y)·f·2) // 2 + 1 = 101 filter taps.
const TAPS = Math.floor(Math.round(GRID * 0.1 * 2) / 2) + 1;
const EPS = 1e-16;

/**
 * numpy `interp(x, xp, fp, left, right)` for increasing `xp` (repeats allowed; the last of equal
 * `xp` wins, as numpy's binary search does). Right of the range it returns fp[last].
 */
function interp(x: number, xp: Float64Array, fp: Float64Array, left: number): number {
  const n = xp.length;
  if (x < xp[0]) return left;
  if (x > xp[n - 1]) return fp[n - 1];
  // Last j with xp[j] <= x.
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x >= xp[mid]) lo = mid + 1;
    else hi = mid;
  }
  const j = lo - 1;
  if (j === n - 1 || xp[j] === x) return fp[j];
  const slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
  return slope * (x - xp[j]) + fp[j];
}

/**
 * Precision and recall as ultralytics `ap_per_class` reports them: per class, the P and R curves
 * over confidence are sampled on `linspace(0, 1, 1000)`, and all classes are read at the single
 * confidence maximising the box-filtered (fraction 0.1) mean F1. A detection is a true positive when
 * greedily matched (COCO rules, highest score first) to a same-class GT at IoU ≥ `iouThres`;
 * detections matched to crowd GTs are dropped, crowd GTs are not counted.
 * @example
 * const { precision, recall } = precisionRecall(images, 80);
 */
export function precisionRecall(
  images: readonly EvalImage[], nc: number, iouThres = 0.5, options: PrecisionRecallOptions = {},
): PrecisionRecall {
  checkImages(images, nc);
  if (!(iouThres >= 0 && iouThres <= 1)) throw new RangeError(`iouThres must be within [0, 1], got ${iouThres}`);
  const px = Float64Array.from({ length: GRID }, (_, i) => (i === GRID - 1 ? 1 : i * (1 / (GRID - 1))));

  const labelled: number[] = [];
  const p: Float64Array[] = [];
  const r: Float64Array[] = [];
  for (const [cls, entries] of groupByClass(images, nc).entries()) {
    let nl = 0;
    const conf: number[] = [];
    const tp: number[] = [];
    for (const e of entries) {
      const m = matchImageClass(e.dets, e.gts, [iouThres], Infinity);
      nl += m.nGt;
      for (let d = 0; d < m.scores.length; d++) {
        if (m.ignored[d]) continue;
        conf.push(m.scores[d]);
        tp.push(m.matched[d]);
      }
    }
    if (nl === 0) continue;
    labelled.push(cls);
    const pc = new Float64Array(GRID);
    const rcur = new Float64Array(GRID);
    p.push(pc);
    r.push(rcur);
    const np = conf.length;
    if (np === 0) continue;
    // Image-ordered lists stable-sorted by score equal ultralytics' global sort filtered by class.
    const order = Array.from({ length: np }, (_, i) => i).sort((a, b) => conf[b] - conf[a]);
    const negConf = new Float64Array(np);
    const recall = new Float64Array(np);
    const precision = new Float64Array(np);
    let tpc = 0;
    let fpc = 0;
    for (let i = 0; i < np; i++) {
      const o = order[i];
      if (tp[o]) tpc++;
      else fpc++;
      negConf[i] = -conf[o];
      recall[i] = tpc / (nl + EPS);
      precision[i] = tpc / (tpc + fpc);
    }
    for (let j = 0; j < GRID; j++) {
      rcur[j] = interp(-px[j], negConf, recall, 0);
      pc[j] = interp(-px[j], negConf, precision, 1);
    }
  }

  const perClass: ClassPrecisionRecall[] = Array.from({ length: nc }, (_, cls) => ({ cls, precision: 0, recall: 0 }));
  const f1 = p.map((pc, c) => pc.map((pv, j) => (2 * pv * r[c][j]) / (pv + r[c][j] + EPS)));
  const k = labelled.length;
  const curvesAt = (best: number): ConfidenceCurves => {
    const byClass = (arrays: Float64Array[]): (Float64Array | null)[] => {
      const out: (Float64Array | null)[] = new Array<Float64Array | null>(nc).fill(null);
      labelled.forEach((cls, c) => { out[cls] = arrays[c]; });
      return out;
    };
    return { confidence: px, precision: byClass(p), recall: byClass(r), f1: byClass(f1), best };
  };
  if (k === 0) return { precision: 0, recall: 0, f1: 0, confidence: 0, perClass, ...(options.curves ? { curves: curvesAt(0) } : {}) };

  const meanF1 = new Float64Array(GRID);
  for (let j = 0; j < GRID; j++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += f1[c][j];
    meanF1[j] = s / k;
  }
  // smooth(): pad with the edge values, then a 'valid' box filter; argmax keeps the first maximum.
  const half = TAPS >> 1;
  const padded = new Float64Array(GRID + 2 * half);
  padded.fill(meanF1[0], 0, half);
  padded.set(meanF1, half);
  padded.fill(meanF1[GRID - 1], half + GRID);
  const w = 1 / TAPS;
  let best = 0;
  let bestValue = -Infinity;
  for (let j = 0; j < GRID; j++) {
    let s = 0;
    for (let m = 0; m < TAPS; m++) s += padded[j + m] * w;
    if (s > bestValue) {
      bestValue = s;
      best = j;
    }
  }

  let ps = 0, rs = 0, fs = 0;
  for (let c = 0; c < k; c++) {
    perClass[labelled[c]] = { cls: labelled[c], precision: p[c][best], recall: r[c][best] };
    ps += p[c][best];
    rs += r[c][best];
    fs += f1[c][best];
  }
  return { precision: ps / k, recall: rs / k, f1: fs / k, confidence: px[best], perClass, ...(options.curves ? { curves: curvesAt(best) } : {}) };
}
