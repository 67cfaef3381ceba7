/**
 * AutoAnchor (ultralytics YOLOv5 v7.0 `utils/autoanchor.py`): measures how well a model's anchors
 * fit a dataset's label shapes and, when the best possible recall is low, evolves new anchors by
 * k-means on whitened shapes followed by a genetic search. Plain CPU maths over typed arrays,
 * reproducible from a seed.
 */
import { silentLogger, type Logger } from '../util/logger.js';
import { Rng } from './rng.js';

const PREFIX = 'AutoAnchor: ';
/** BPR at or below which check_anchors recomputes anchors. */
const RECOMPUTE_BPR = 0.98;
/** scipy.cluster.vq.kmeans defaults as ultralytics calls them. */
const KMEANS_RESTARTS = 30;
const KMEANS_THRESH = 1e-5;
/** Safety net only: Lloyd iterations converge long before this. */
const KMEANS_MAX_STEPS = 1000;
/** Genetic search: per-coordinate mutation probability and sigma (kmean_anchors). */
const MUTATION_PROB = 0.9;
const MUTATION_SIGMA = 0.1;

/** Label shapes in pixels, flattened `[w0, h0, w1, h1, …]`, or as `[w, h]` pairs. */
export type ShapeInput = ArrayLike<number> | readonly (readonly [number, number])[];

/** A dataset as AutoAnchor sees it: each image's size and its labels' normalised sizes. */
export interface AnchorData {
  /** Each image's original size, `[width, height]` in pixels. */
  shapes: readonly (readonly [number, number])[];
  /** Each image's labels' `[w, h]`, normalised to that image (0..1); same length as `shapes`. */
  labels: readonly (readonly (readonly [number, number])[])[];
}

/** Fit of a set of anchors to label shapes (check_anchors' `metric`). */
export interface AnchorFit {
  /** Best possible recall: fraction of labels with at least one anchor within the ratio threshold. */
  bpr: number;
  /** Anchors above threshold: mean number of anchors per label within the ratio threshold. */
  aat: number;
}

/** Options of {@link labelShapes}. */
export interface LabelShapesOptions {
  /** Training image size: each image is scaled so its longest side is this. */
  imgsz: number;
  /** Multiply each image's shapes by a random scale in [0.9, 1.1] (check_anchors' augment); default false. */
  scaleJitter?: boolean;
  /** Seed of the scale jitter; default 0. */
  seed?: number;
}

/** Options of {@link kmeanAnchors}. */
export interface KmeanAnchorsOptions {
  /** Number of anchors; default 9. */
  n?: number;
  /** Training image size, the range of the random fallback init; default 640. */
  imgsz?: number;
  /** Anchor–label ratio threshold (hyp `anchor_t`); default 4. */
  thr?: number;
  /** Generations of the genetic search; default 1000. */
  gen?: number;
  /** Seed of k-means' initial points and of the mutations; default 0. */
  seed?: number;
  logger?: Logger;
}

/** Options of {@link checkAnchors}. */
export interface CheckAnchorsOptions {
  /** Training image size; default 640. */
  imgsz?: number;
  /** Anchor–label ratio threshold (hyp `anchor_t`); default 4. */
  thr?: number;
  /** Seed of the scale jitter, k-means and the genetic search; default 0. */
  seed?: number;
  /** Generations of the genetic search; default 1000. */
  gen?: number;
  logger?: Logger;
}

/** Result of {@link checkAnchors}. */
export interface CheckAnchorsResult extends AnchorFit {
  /** The anchors to use, in pixels, per level flattened `[w0, h0, …]`: the new ones when `changed`, else the given ones. */
  anchors: number[][];
  /** True when the anchors were replaced. */
  changed: boolean;
  /** ultralytics' closing line: the good-fit report, or which anchors were kept after recomputing. */
  message: string;
  /** Fit of the given anchors; `bpr`/`aat` above are the returned anchors' fit. */
  initial: AnchorFit;
}

/** Flattens shapes to a Float32Array `[w0, h0, …]` (the dtype ultralytics measures in). */
function toFlat(wh: ShapeInput, name: string): Float32Array {
  if (wh instanceof Float32Array) {
    if (wh.length % 2) throw new RangeError(`${name}: flattened [w, h] list must have even length, got ${wh.length}`);
    return wh;
  }
  const first = wh.length > 0 ? (wh as ArrayLike<unknown>)[0] : undefined;
  if (first !== undefined && typeof first !== 'number') {
    const pairs = wh as readonly (readonly [number, number])[];
    const out = new Float32Array(pairs.length * 2);
    pairs.forEach((p, i) => { out[2 * i] = p[0]; out[2 * i + 1] = p[1]; });
    return out;
  }
  if (wh.length % 2) throw new RangeError(`${name}: flattened [w, h] list must have even length, got ${wh.length}`);
  return Float32Array.from(wh as ArrayLike<number>);
}

/** Per-label best ratio metric and count of anchors above `1/thr`, by exact division as torch does. */
function fitOf(anchors: Float64Array, wh: Float32Array, thr: number): AnchorFit {
  const nl = wh.length / 2;
  if (nl === 0) return { bpr: 0, aat: 0 };
  const na = anchors.length / 2;
  const t = 1 / thr;
  let recalled = 0;
  let above = 0;
  for (let i = 0; i < nl; i++) {
    const w = wh[2 * i]!, h = wh[2 * i + 1]!;
    let best = 0;
    for (let j = 0; j < na; j++) {
      const rw = w / anchors[2 * j]!, rh = h / anchors[2 * j + 1]!;
      const xw = Math.min(rw, 1 / rw), xh = Math.min(rh, 1 / rh);
      const x = xw < xh ? xw : xh;
      if (x > t) above++;
      if (x > best) best = x;
    }
    if (best > t) recalled++;
  }
  return { bpr: recalled / nl, aat: above / nl };
}

/**
 * Best possible recall and anchors-above-threshold of anchors on label shapes, as ultralytics'
 * check_anchors: per label and anchor x = min over w, h of min(r, 1/r) with r = label/anchor;
 * `bpr` = share of labels whose best x > 1/thr, `aat` = mean count of anchors with x > 1/thr.
 * Empty label sets give zeros.
 * @example const { bpr, aat } = bestPossibleRecall([10, 13, 16, 30, 33, 23], labelWh, 4);
 */
export function bestPossibleRecall(anchorsPx: ShapeInput, whs: ShapeInput, thr = 4): AnchorFit {
  if (!(thr > 0)) throw new RangeError(`bestPossibleRecall: thr must be > 0, got ${thr}`);
  return fitOf(Float64Array.from(toFlat(anchorsPx, 'anchorsPx')), toFlat(whs, 'whs'), thr);
}

/**
 * Label sizes in pixels as ultralytics computes them: each image's `[w, h]` scaled so its longest
 * side is `imgsz`, optionally times a seeded random scale in [0.9, 1.1] per image, times each
 * label's normalised `[w, h]`. Returns all labels flattened `[w0, h0, …]`, unfiltered.
 */
export function labelShapes(data: AnchorData, options: LabelShapesOptions): Float32Array {
  const { imgsz, scaleJitter = false, seed = 0 } = options;
  if (!(imgsz > 0)) throw new RangeError(`labelShapes: imgsz must be > 0, got ${imgsz}`);
  if (data.shapes.length !== data.labels.length) {
    throw new RangeError(`labelShapes: data.shapes (${data.shapes.length}) and data.labels (${data.labels.length}) must have one entry per image`);
  }
  let total = 0;
  for (const l of data.labels) total += l.length;
  const out = new Float32Array(total * 2);
  const rng = new Rng(seed);
  let k = 0;
  data.shapes.forEach(([w, h], i) => {
    if (!(w > 0 && h > 0)) throw new RangeError(`labelShapes: data.shapes[${i}] must be a positive [width, height], got [${w}, ${h}]`);
    // One draw per image, labelled or not, as np.random.uniform(size=(n_images, 1)).
    const s = scaleJitter ? rng.uniform(0.9, 1.1) : 1;
    const f = (imgsz * s) / Math.max(w, h);
    for (const [lw, lh] of data.labels[i]!) {
      out[k++] = lw * w * f;
      out[k++] = lh * h * f;
    }
  });
  return out;
}

/** Indices of `k` distinct points among `n`, uniformly (partial Fisher–Yates). */
function choose(n: number, k: number, rng: Rng): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = 0; i < k; i++) {
    const j = rng.int(i, n - 1);
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return idx.subarray(0, k);
}

/**
 * One Lloyd run as scipy's `_kmeans`: assign, move codes to their members' mean, drop codes with
 * no members, until the mean Euclidean distortion stops falling by more than the threshold.
 */
function lloyd(pts: Float64Array, init: Float64Array): { book: Float64Array; dist: number } {
  const n = pts.length / 2;
  let book = init;
  let prev = Infinity;
  let dist = Infinity;
  for (let step = 0; step < KMEANS_MAX_STEPS; step++) {
    const k = book.length / 2;
    const sx = new Float64Array(k), sy = new Float64Array(k), cnt = new Int32Array(k);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const x = pts[2 * i]!, y = pts[2 * i + 1]!;
      let bj = 0, bd = Infinity;
      for (let j = 0; j < k; j++) {
        const dx = x - book[2 * j]!, dy = y - book[2 * j + 1]!;
        const d = dx * dx + dy * dy;
        if (d < bd) { bd = d; bj = j; }
      }
      total += Math.sqrt(bd);
      sx[bj] += x; sy[bj] += y; cnt[bj]++;
    }
    dist = total / n;
    let kept = 0;
    for (let j = 0; j < k; j++) if (cnt[j]! > 0) kept++;
    const next = new Float64Array(kept * 2);
    for (let j = 0, m = 0; j < k; j++) {
      if (cnt[j]! === 0) continue;
      next[2 * m] = sx[j]! / cnt[j]!;
      next[2 * m + 1] = sy[j]! / cnt[j]!;
      m++;
    }
    book = next;
    const diff = prev - dist;
    prev = dist;
    if (!(diff > KMEANS_THRESH)) break;
  }
  return { book, dist };
}

/**
 * scipy.cluster.vq.kmeans(pts, k, iter=30): the lowest-distortion codebook of 30 Lloyd runs, each
 * started from k distinct random points. May return fewer than k codes when clusters empty.
 */
function kmeans(pts: Float64Array, k: number, rng: Rng): Float64Array {
  let best: Float64Array = new Float64Array(0);
  let bestDist = Infinity;
  for (let r = 0; r < KMEANS_RESTARTS; r++) {
    const init = new Float64Array(k * 2);
    choose(pts.length / 2, k, rng).forEach((p, j) => { init[2 * j] = pts[2 * p]!; init[2 * j + 1] = pts[2 * p + 1]!; });
    const { book, dist } = lloyd(pts, init);
    if (dist < bestDist) { bestDist = dist; best = book; }
  }
  return best;
}

/**
 * kmean_anchors' fitness: mean over labels of the best anchor's ratio metric, counted only where
 * it beats `t`. Multiplies by precomputed reciprocals, as this runs once per generation.
 */
function fitness(k: Float64Array, w: Float32Array, h: Float32Array, iw: Float64Array, ih: Float64Array, t: number): number {
  const na = k.length / 2;
  const aw = new Float64Array(na), ah = new Float64Array(na), iaw = new Float64Array(na), iah = new Float64Array(na);
  for (let j = 0; j < na; j++) {
    aw[j] = k[2 * j]!; ah[j] = k[2 * j + 1]!;
    iaw[j] = 1 / aw[j]!; iah[j] = 1 / ah[j]!;
  }
  const n = w.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!, hi = h[i]!, iwi = iw[i]!, ihi = ih[i]!;
    let best = 0;
    for (let j = 0; j < na; j++) {
      let x = wi * iaw[j]!;
      const a = aw[j]! * iwi;
      if (a < x) x = a;
      const b = hi * iah[j]!;
      if (b < x) x = b;
      const c = ah[j]! * ihi;
      if (c < x) x = c;
      if (x > best) best = x;
    }
    if (best > t) sum += best;
  }
  return n > 0 ? sum / n : 0;
}

/** Sorts `[w, h]` pairs small to large by area. */
function sortByArea(k: Float64Array): Float64Array {
  const order = Array.from({ length: k.length / 2 }, (_, j) => j);
  order.sort((a, b) => k[2 * a]! * k[2 * a + 1]! - k[2 * b]! * k[2 * b + 1]!);
  const out = new Float64Array(k.length);
  order.forEach((j, m) => { out[2 * m] = k[2 * j]!; out[2 * m + 1] = k[2 * j + 1]!; });
  return out;
}

/** kmean_anchors' closing report of anchors on all label shapes. */
function report(k: Float64Array, wh0: Float32Array, thr: number, imgsz: number): string {
  const t = 1 / thr;
  const nl = wh0.length / 2, na = k.length / 2;
  let recalled = 0, above = 0, sumX = 0, sumBest = 0, sumPast = 0;
  for (let i = 0; i < nl; i++) {
    const w = wh0[2 * i]!, h = wh0[2 * i + 1]!;
    let best = 0;
    for (let j = 0; j < na; j++) {
      const rw = w / k[2 * j]!, rh = h / k[2 * j + 1]!;
      const x = Math.min(rw, 1 / rw, rh, 1 / rh);
      sumX += x;
      if (x > t) { above++; sumPast += x; }
      if (x > best) best = x;
    }
    sumBest += best;
    if (best > t) recalled++;
  }
  const pairs = Array.from({ length: na }, (_, j) => `${Math.round(k[2 * j]!)},${Math.round(k[2 * j + 1]!)}`).join(', ');
  const mean = (s: number, c: number) => (c > 0 ? s / c : NaN).toFixed(3);
  return `${PREFIX}thr=${t.toFixed(2)}: ${(nl ? recalled / nl : NaN).toFixed(4)} best possible recall, ${(nl ? (above / nl) : NaN).toFixed(2)} anchors past thr\n` +
    `${PREFIX}n=${na}, img_size=${imgsz}, metric_all=${mean(sumX, nl * na)}/${mean(sumBest, nl)}-mean/best, past_thr=${mean(sumPast, above)}-mean: ${pairs}`;
}

/**
 * Anchors evolved for label shapes, as ultralytics' kmean_anchors: labels with both sides under
 * 2 px are dropped, k-means (scipy's, 30 restarts) on std-whitened shapes seeds `n` anchors (random
 * in [0, imgsz) when there are fewer shapes than `n` or k-means finds fewer clusters), then a
 * genetic search keeps mutations that raise the mean best ratio metric. A side whose spread is 0
 * is whitened by 1 rather than failing over to the random init. Returns `[w, h]` pairs in pixels,
 * sorted small to large by area.
 * @example const anchors = kmeanAnchors(labelShapes(data, { imgsz: 640 }), { n: 9, imgsz: 640, seed: 0 });
 */
export function kmeanAnchors(whs: ShapeInput, options: KmeanAnchorsOptions = {}): [number, number][] {
  const { n = 9, imgsz = 640, thr = 4, gen = 1000, seed = 0, logger = silentLogger } = options;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`kmeanAnchors: n must be a positive integer, got ${n}`);
  if (!(imgsz > 0)) throw new RangeError(`kmeanAnchors: imgsz must be > 0, got ${imgsz}`);
  if (!(thr > 0)) throw new RangeError(`kmeanAnchors: thr must be > 0, got ${thr}`);
  if (!Number.isInteger(gen) || gen < 0) throw new RangeError(`kmeanAnchors: gen must be a non-negative integer, got ${gen}`);
  const wh0 = toFlat(whs, 'whs');
  const t = 1 / thr;

  let tiny = 0, kept = 0;
  for (let i = 0; i < wh0.length; i += 2) {
    if (wh0[i]! < 3 || wh0[i + 1]! < 3) tiny++;
    if (wh0[i]! >= 2 || wh0[i + 1]! >= 2) kept++;
  }
  if (tiny) logger.warn(`${PREFIX}Extremely small objects found: ${tiny} of ${wh0.length / 2} labels are <3 pixels in size`);
  const w = new Float32Array(kept), h = new Float32Array(kept);
  for (let i = 0, m = 0; i < wh0.length; i += 2) {
    if (wh0[i]! >= 2 || wh0[i + 1]! >= 2) { w[m] = wh0[i]!; h[m] = wh0[i + 1]!; m++; }
  }

  const kmRng = Rng.derive(seed, 1);
  const gaRng = Rng.derive(seed, 2);
  logger.info(`${PREFIX}Running kmeans for ${n} anchors on ${kept} points...`);
  let k: Float64Array | null = null;
  if (n <= kept) {
    const s = [std(w), std(h)].map((v) => (v > 0 ? v : 1)) as [number, number];
    const pts = new Float64Array(kept * 2);
    for (let i = 0; i < kept; i++) { pts[2 * i] = w[i]! / s[0]; pts[2 * i + 1] = h[i]! / s[1]; }
    const book = kmeans(pts, n, kmRng);
    if (book.length === n * 2) {
      k = new Float64Array(n * 2);
      for (let j = 0; j < n; j++) { k[2 * j] = book[2 * j]! * s[0]; k[2 * j + 1] = book[2 * j + 1]! * s[1]; }
    }
  }
  if (!k) {
    logger.warn(`${PREFIX}switching strategies from kmeans to random init`);
    const r = Array.from({ length: n * 2 }, () => kmRng.next()).sort((a, b) => a - b);
    k = Float64Array.from(r, (v) => v * imgsz);
  }
  k = sortByArea(k);

  const iw = Float64Array.from(w, (v) => 1 / v), ih = Float64Array.from(h, (v) => 1 / v);
  let f = fitness(k, w, h, iw, ih, t);
  const kg = new Float64Array(k.length);
  for (let g = 0; g < gen; g++) {
    // Mutate until at least one coordinate changes, so no generation re-tests the parent.
    let changed = false;
    while (!changed) {
      const u = gaRng.next();
      for (let c = 0; c < k.length; c++) {
        const m = gaRng.next() < MUTATION_PROB ? 1 : 0;
        const v = Math.min(3, Math.max(0.3, m * u * gaRng.normal() * MUTATION_SIGMA + 1));
        if (v !== 1) changed = true;
        kg[c] = Math.max(2, k[c]! * v);
      }
    }
    const fg = fitness(kg, w, h, iw, ih, t);
    if (fg > f) {
      f = fg;
      k.set(kg);
      logger.debug(`${PREFIX}Evolving anchors with Genetic Algorithm: fitness = ${f.toFixed(4)}`);
    }
  }
  k = sortByArea(k);
  logger.info(report(k, wh0, thr, imgsz));
  return Array.from({ length: n }, (_, j) => [k[2 * j]!, k[2 * j + 1]!] as [number, number]);
}

/** Population standard deviation (numpy's default, ddof=0). */
function std(v: Float32Array): number {
  if (v.length === 0) return 0;
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let ss = 0;
  for (const x of v) ss += (x - mean) ** 2;
  return Math.sqrt(ss / v.length);
}

/**
 * Anchors split into levels shaped like `like`, with the level order reversed when their mean
 * area runs against the stride order (ultralytics check_anchor_order).
 */
function orderLevels(flat: Float64Array, like: readonly (readonly number[])[], strides: readonly number[]): number[][] {
  let o = 0;
  const levels = like.map((l) => Array.from(flat.subarray(o, (o += l.length))));
  const area = (l: number[]) => {
    let s = 0;
    for (let j = 0; j < l.length; j += 2) s += l[j]! * l[j + 1]!;
    return s / (l.length / 2);
  };
  const da = area(levels[levels.length - 1]!) - area(levels[0]!);
  const ds = strides[strides.length - 1]! - strides[0]!;
  if (da !== 0 && Math.sign(da) !== Math.sign(ds)) levels.reverse();
  return levels;
}

/**
 * ultralytics check_anchors: measures the anchors' best possible recall on the dataset's label
 * sizes (with per-image scale jitter); above 0.98 they are kept, otherwise `n` = all anchors are
 * evolved with {@link kmeanAnchors} and replace the old ones only if their BPR is higher, split
 * into levels small to large along the stride order. Anchors are in pixels, per level flattened.
 * @example
 * const r = checkAnchors([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
 *   [8, 16, 32], { shapes, labels }, { imgsz: 640, seed: 0, logger });
 * if (r.changed) model.setAnchors(r.anchors);
 */
export function checkAnchors(
  anchorsPx: readonly (readonly number[])[],
  strides: readonly number[],
  data: AnchorData,
  options: CheckAnchorsOptions = {},
): CheckAnchorsResult {
  const { imgsz = 640, thr = 4, seed = 0, gen = 1000, logger = silentLogger } = options;
  if (anchorsPx.length === 0 || anchorsPx.length !== strides.length) {
    throw new RangeError(`checkAnchors: anchorsPx must have one level per stride, got ${anchorsPx.length} levels and ${strides.length} strides`);
  }
  anchorsPx.forEach((l, i) => {
    if (l.length === 0 || l.length % 2) throw new RangeError(`checkAnchors: anchorsPx[${i}] must be a non-empty flattened [w, h] list, got length ${l.length}`);
  });
  const old = Float64Array.from(anchorsPx.flat());
  const wh = labelShapes(data, { imgsz, scaleJitter: true, seed });
  const initial = fitOf(old, wh, thr);
  const s = `${PREFIX}${initial.aat.toFixed(2)} anchors/target, ${initial.bpr.toFixed(3)} Best Possible Recall (BPR). `;
  const keep = (message: string): CheckAnchorsResult =>
    ({ ...initial, anchors: anchorsPx.map((l) => [...l]), changed: false, message, initial });

  if (wh.length === 0) {
    const message = `${PREFIX}no labels, proceeding with current anchors`;
    logger.warn(message);
    return keep(message);
  }
  if (initial.bpr > RECOMPUTE_BPR) {
    const message = `${s}Current anchors are a good fit to dataset ✅`;
    logger.info(message);
    return keep(message);
  }
  logger.warn(`${s}Anchors are a poor fit to dataset ⚠️, attempting to improve...`);
  const na = old.length / 2;
  const evolved = kmeanAnchors(labelShapes(data, { imgsz }), { n: na, imgsz, thr, gen, seed, logger });
  const flat = Float64Array.from(evolved.flat());
  const fit = fitOf(flat, wh, thr);
  if (fit.bpr > initial.bpr) {
    const message = `${PREFIX}Done ✅ (optional: update model *.yaml to use these anchors in the future)`;
    logger.info(message);
    return { ...fit, anchors: orderLevels(flat, anchorsPx, strides), changed: true, message, initial };
  }
  const message = `${PREFIX}Done ⚠️ (original anchors better than new anchors, proceeding with original anchors)`;
  logger.warn(message);
  return keep(message);
}
