import type { Detection } from './types.js';

/** Options of {@link nonMaxSuppression}; defaults are ultralytics `non_max_suppression`'s. */
export interface NmsOptions {
  /** Keep candidates with objectness and score above this (default 0.25). */
  confThres?: number;
  /** Suppress a box whose IoU with a kept box of its class exceeds this (default 0.45). */
  iouThres?: number;
  /** Keep at most this many detections (default 300). */
  maxDet?: number;
  /** Emit every class whose score passes `confThres`, not only the best (default false; ignored when nc = 1). */
  multiLabel?: boolean;
  /** Suppress across classes (default false). */
  classAgnostic?: boolean;
  /** Keep at most this many top-scoring candidates before NMS (default 30000). */
  maxNms?: number;
}

function checkProbability(name: string, v: number): void {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${v}`);
}

function checkCount(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
}

/** Grows a typed array to at least `n` elements, keeping its contents. */
function grow<T extends Float32Array | Int32Array>(a: T, n: number): T {
  if (n <= a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

/** The k-th largest (1-based) value of `v`; reorders `v`. */
function kthLargest(v: Float32Array, k: number): number {
  let lo = 0;
  let hi = v.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    // Median of three keeps sorted and constant runs from going quadratic.
    const a = v[lo], b = v[mid], c = v[hi];
    const pivot = a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i] > pivot) i++;
      while (v[j] < pivot) j--;
      if (i <= j) {
        const t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return v[target];
  }
  return v[target];
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const POS_BITS = 2 ** 21;

/**
 * Positions 0..n−1 ordered by score descending, ties by position ascending (a stable sort).
 * For up to 2²¹ float32 scores it sorts packed numeric keys, much faster than a comparator.
 */
function orderByScore(scores: Float32Array, n: number): Int32Array {
  const order = new Int32Array(n);
  if (n < POS_BITS) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      F32[0] = scores[i];
      const bits = U32[0];
      // Order-preserving map of the float's bits to an unsigned integer (flip negatives whole).
      const u = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
      // u·2²¹ + (2²¹ − 1 − i) < 2⁵³ stays exact; ascending keys = descending score, then ascending i.
      keys[i] = (0xffffffff - u) * POS_BITS + i;
    }
    keys.sort();
    for (let i = 0; i < n; i++) order[i] = keys[i] % POS_BITS;
    return order;
  }
  for (let i = 0; i < n; i++) order[i] = i;
  return order.sort((a, b) => scores[b] - scores[a] || a - b);
}

/**
 * Greedy NMS over xyxy boxes in score order: a box is kept unless a kept box of the same group
 * overlaps it with IoU > `iouThres`. Stops after `maxKeep` boxes, which is exact because later
 * boxes never change earlier decisions. Returns positions in `order`.
 */
function greedy(
  boxes: ArrayLike<number>,
  order: ArrayLike<number>,
  groups: ArrayLike<number> | null,
  nGroups: number,
  iouThres: number,
  maxKeep: number,
): number[] {
  const kept: number[] = [];
  const head = new Int32Array(nGroups).fill(-1);
  const next = new Int32Array(Math.min(order.length, maxKeep));
  const kx1 = new Float64Array(next.length);
  const ky1 = new Float64Array(next.length);
  const kx2 = new Float64Array(next.length);
  const ky2 = new Float64Array(next.length);
  const karea = new Float64Array(next.length);
  for (let p = 0; p < order.length && kept.length < maxKeep; p++) {
    const i = order[p];
    const x1 = boxes[4 * i], y1 = boxes[4 * i + 1], x2 = boxes[4 * i + 2], y2 = boxes[4 * i + 3];
    const area = (x2 - x1) * (y2 - y1);
    const g = groups ? groups[i] : 0;
    let suppressed = false;
    for (let k = head[g]; k !== -1; k = next[k]) {
      const w = Math.min(x2, kx2[k]) - Math.max(x1, kx1[k]);
      if (w <= 0) continue;
      const h = Math.min(y2, ky2[k]) - Math.max(y1, ky1[k]);
      if (h <= 0) continue;
      const inter = w * h;
      // torchvision: suppress when inter / union > threshold (strictly).
      if (inter / (area + karea[k] - inter) > iouThres) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    const k = kept.length;
    kx1[k] = x1;
    ky1[k] = y1;
    kx2[k] = x2;
    ky2[k] = y2;
    karea[k] = area;
    next[k] = head[g];
    head[g] = k;
    kept.push(p);
  }
  return kept;
}

/**
 * Plain greedy NMS (torchvision `nms`): `boxes` flat xyxy [n·4], `scores` [n]. Returns the kept
 * indices by descending score (ties in index order); a box is dropped when its IoU with a kept,
 * higher-scoring box exceeds `iouThres`.
 */
export function nmsBoxes(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThres: number): number[] {
  if (boxes.length !== scores.length * 4) {
    throw new RangeError(`boxes must hold 4 values per score: ${boxes.length} values for ${scores.length} scores`);
  }
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return greedy(boxes, order, null, 1, iouThres, n).map((p) => order[p]);
}

/**
 * Ultralytics `non_max_suppression` for one image. `pred` holds decoded rows [A, 5+nc]
 * ([cx, cy, w, h, obj, cls…], see {@link decodeYoloOutputs}); candidates need obj > confThres,
 * scores are obj·cls (float32 as in PyTorch), NMS is class-aware unless `classAgnostic`.
 * Returns at most `maxDet` detections in xyxy pixels, by descending score (ties in row order).
 * @example
 * const dets = nonMaxSuppression(decoded.subarray(0, 25200 * 85), 80, { confThres: 0.001, iouThres: 0.6, multiLabel: true });
 */
export function nonMaxSuppression(pred: Float32Array, nc: number, options: NmsOptions = {}): Detection[] {
  if (!Number.isInteger(nc) || nc < 1) throw new RangeError(`nc must be a positive integer, got ${nc}`);
  const no = 5 + nc;
  if (pred.length % no !== 0) throw new RangeError(`pred must hold rows of 5+nc = ${no} values, got ${pred.length} values`);
  const confThres = options.confThres ?? 0.25;
  const iouThres = options.iouThres ?? 0.45;
  const maxDet = options.maxDet ?? 300;
  const maxNms = options.maxNms ?? 30000;
  checkProbability('confThres', confThres);
  checkProbability('iouThres', iouThres);
  checkCount('maxDet', maxDet);
  checkCount('maxNms', maxNms);
  const multiLabel = (options.multiLabel ?? false) && nc > 1;
  // PyTorch compares the float32 tensor against the threshold cast to float32.
  const ct = Math.fround(confThres);
  const rows = pred.length / no;

  let n = 0;
  let candRow = new Int32Array(1024);
  let candCls = new Int32Array(1024);
  let candScore = new Float32Array(1024);
  const push = (r: number, k: number, score: number) => {
    if (n === candRow.length) {
      candRow = grow(candRow, n + 1);
      candCls = grow(candCls, n + 1);
      candScore = grow(candScore, n + 1);
    }
    candRow[n] = r;
    candCls[n] = k;
    candScore[n++] = score;
  };
  for (let r = 0, base = 0; r < rows; r++, base += no) {
    const obj = pred[base + 4];
    if (!(obj > ct)) continue;
    if (multiLabel) {
      for (let k = 0; k < nc; k++) {
        const s = Math.fround(obj * pred[base + 5 + k]);
        if (s > ct) push(r, k, s);
      }
    } else {
      // First maximal class wins, as torch.max does.
      let best = Math.fround(obj * pred[base + 5]);
      let bestK = 0;
      for (let k = 1; k < nc; k++) {
        const s = Math.fround(obj * pred[base + 5 + k]);
        if (s > best) {
          best = s;
          bestK = k;
        }
      }
      if (best > ct) push(r, bestK, best);
    }
  }
  if (n === 0 || maxDet === 0) return [];

  // Keep the maxNms best, ties at the cut in candidate order (what a stable sort then slice keeps).
  if (n > maxNms) {
    const cut = kthLargest(candScore.slice(0, n), maxNms);
    let above = 0;
    for (let i = 0; i < n; i++) if (candScore[i] > cut) above++;
    let tiesLeft = maxNms - above;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const s = candScore[i];
      if (s > cut || (s === cut && tiesLeft-- > 0)) {
        candRow[m] = candRow[i];
        candCls[m] = candCls[i];
        candScore[m++] = s;
      }
    }
    n = m;
  }

  const order = orderByScore(candScore, n);
  const boxes = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const base = candRow[i] * no;
    const cx = pred[base], cy = pred[base + 1], hw = pred[base + 2] / 2, hh = pred[base + 3] / 2;
    boxes[4 * i] = cx - hw;
    boxes[4 * i + 1] = cy - hh;
    boxes[4 * i + 2] = cx + hw;
    boxes[4 * i + 3] = cy + hh;
  }
  const agnostic = options.classAgnostic ?? false;
  const kept = greedy(boxes, order, agnostic ? null : candCls, agnostic ? 1 : nc, iouThres, maxDet);
  return kept.map((p) => {
    const i = order[p];
    return {
      box: [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]],
      score: candScore[i],
      cls: candCls[i],
    };
  });
}
