import type { Annotation, Detection } from './types.js';

/** pycocotools `iouThrs`: `np.linspace(.5, .95, 10)`, built with numpy's float operations. */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(
  Array.from({ length: 10 }, (_, i) => (i === 9 ? 0.95 : i * ((0.95 - 0.5) / 9) + 0.5)),
);

/** pycocotools `recThrs`: `np.linspace(0, 1, 101)`, built with numpy's float operations. */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(
  Array.from({ length: 101 }, (_, i) => (i === 100 ? 1 : i * (1 / 100))),
);

/** pycocotools `evaluateImg` for one image and one class, with area range 'all'. */
export interface ImageClassMatch {
  /** Scores of the kept detections, sorted descending (stable) and truncated to maxDet. */
  scores: Float64Array;
  /** [T·D] row-major: detection d matched at threshold t. */
  matched: Uint8Array;
  /** [T·D] row-major: detection d ignored at threshold t (matched to a crowd GT). */
  ignored: Uint8Array;
  /** Ground truths that are not ignored (not crowd, area within [0, 1e10]). */
  nGt: number;
}

/** Indices of `scores` ordered by descending score; Array.prototype.sort is stable, like numpy's mergesort. */
export function stableOrderDesc(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
}

const AREA_MAX = 1e10;

/**
 * Matches one image's detections to its ground truths of one class as pycocotools does: detections
 * sorted by score (stable) and cut to `maxDet`; crowd GTs ignored and sorted last; at each IoU
 * threshold each detection takes the unmatched GT with the best IoU ≥ t (later GTs win ties),
 * crowd GTs may be matched again and use the detection's area as the union (`maskApi.c` bbIou).
 */
export function matchImageClass(
  dets: readonly Detection[],
  gts: readonly Annotation[],
  iouThrs: readonly number[],
  maxDet: number,
): ImageClassMatch {
  const dOrder = stableOrderDesc(dets.map((d) => d.score)).slice(0, maxDet);
  const D = dOrder.length;
  // A GT is ignored when crowd or outside the area range; ignored GTs go last, each group in
  // input order (numpy's stable argsort of the ignore flags).
  const isIgnored = (a: Annotation): boolean => {
    const area = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]);
    return !!a.crowd || area < 0 || area > AREA_MAX;
  };
  const gOrder: number[] = [];
  for (let g = 0; g < gts.length; g++) if (!isIgnored(gts[g])) gOrder.push(g);
  const nGt = gOrder.length;
  for (let g = 0; g < gts.length; g++) if (isIgnored(gts[g])) gOrder.push(g);
  const G = gOrder.length;
  const T = iouThrs.length;

  const scores = new Float64Array(D);
  // COCO boxes are [x, y, w, h]; bbIou works on that form, so convert the same way a results file would.
  const dx = new Float64Array(D), dy = new Float64Array(D), dw = new Float64Array(D), dh = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    const det = dets[dOrder[d]];
    scores[d] = det.score;
    dx[d] = det.box[0];
    dy[d] = det.box[1];
    dw[d] = det.box[2] - det.box[0];
    dh[d] = det.box[3] - det.box[1];
  }
  const ious = new Float64Array(D * G);
  const crowd = new Uint8Array(G);
  const gtIg = new Uint8Array(G);
  for (let g = 0; g < G; g++) {
    const gt = gts[gOrder[g]];
    const gx = gt.box[0], gy = gt.box[1], gw = gt.box[2] - gt.box[0], gh = gt.box[3] - gt.box[1];
    const ga = gw * gh;
    crowd[g] = gt.crowd ? 1 : 0;
    gtIg[g] = g >= nGt ? 1 : 0;
    for (let d = 0; d < D; d++) {
      const w = Math.min(dw[d] + dx[d], gw + gx) - Math.max(dx[d], gx);
      if (w <= 0) continue;
      const h = Math.min(dh[d] + dy[d], gh + gy) - Math.max(dy[d], gy);
      if (h <= 0) continue;
      const inter = w * h;
      const da = dw[d] * dh[d];
      ious[d * G + g] = inter / (crowd[g] ? da : da + ga - inter);
    }
  }

  const matched = new Uint8Array(T * D);
  const ignored = new Uint8Array(T * D);
  const gtMatched = new Uint8Array(G);
  if (G > 0) {
    for (let t = 0; t < T; t++) {
      gtMatched.fill(0);
      for (let d = 0; d < D; d++) {
        let best = Math.min(iouThrs[t], 1 - 1e-10);
        let m = -1;
        for (let g = 0; g < G; g++) {
          if (gtMatched[g] && !crowd[g]) continue;
          // Once matched to a regular GT, ignored GTs (all after it) are not considered.
          if (m > -1 && !gtIg[m] && gtIg[g]) break;
          const iou = ious[d * G + g];
          if (iou < best) continue;
          best = iou;
          m = g;
        }
        if (m === -1) continue;
        ignored[t * D + d] = gtIg[m];
        matched[t * D + d] = 1;
        gtMatched[m] = 1;
      }
    }
  }
  // pycocotools ignores unmatched detections whose area falls outside the range ([0, 1e10] for 'all').
  for (let d = 0; d < D; d++) {
    const area = dw[d] * dh[d];
    if (!(area < 0 || area > AREA_MAX)) continue;
    for (let t = 0; t < T; t++) if (!matched[t * D + d]) ignored[t * D + d] = 1;
  }
  return { scores, matched, ignored, nGt };
}

/** Checks the arguments shared by the COCO and P/R evaluations. */
export function checkImages(
  images: readonly { detections: readonly Detection[]; annotations: readonly Annotation[] }[],
  nc: number,
): void {
  if (!Number.isInteger(nc) || nc < 1) throw new RangeError(`nc must be a positive integer, got ${nc}`);
  for (const [i, im] of images.entries()) {
    for (const d of im.detections) {
      if (!Number.isInteger(d.cls) || d.cls < 0 || d.cls >= nc) {
        throw new RangeError(`images[${i}].detections has cls ${d.cls}; allowed: integers 0..${nc - 1}`);
      }
    }
    for (const a of im.annotations) {
      if (!Number.isInteger(a.cls) || a.cls < 0 || a.cls >= nc) {
        throw new RangeError(`images[${i}].annotations has cls ${a.cls}; allowed: integers 0..${nc - 1}`);
      }
    }
  }
}

/** Per class, the images holding that class's detections and annotations, in image order. */
export function groupByClass(
  images: readonly { detections: readonly Detection[]; annotations: readonly Annotation[] }[],
  nc: number,
): { dets: Detection[]; gts: Annotation[] }[][] {
  const out: { dets: Detection[]; gts: Annotation[] }[][] = Array.from({ length: nc }, () => []);
  const stamp = new Int32Array(nc).fill(-1);
  const slot: { dets: Detection[]; gts: Annotation[] }[] = new Array(nc);
  for (const [i, im] of images.entries()) {
    const get = (c: number): { dets: Detection[]; gts: Annotation[] } => {
      if (stamp[c] !== i) {
        stamp[c] = i;
        slot[c] = { dets: [], gts: [] };
        out[c].push(slot[c]);
      }
      return slot[c];
    };
    for (const d of im.detections) get(d.cls).dets.push(d);
    for (const a of im.annotations) get(a.cls).gts.push(a);
  }
  return out;
}
