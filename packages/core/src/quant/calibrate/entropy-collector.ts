import { checkBatch } from './check-batch.js';
import type { RangeCollector, TensorRange } from './types.js';
import { ValueHistogram } from './value-histogram.js';

/** Options of {@link EntropyCollector}; defaults are ORT `create_calibrator`'s for `CalibrationMethod.Entropy`. */
export interface EntropyOptions {
  /** Bins of the first batch's histogram over [-max|x|, max|x|] (default 128). */
  numBins?: number;
  /** Bins the candidate distributions are merged into, the int8 levels (default 128). */
  numQuantizedBins?: number;
}

const EPS = 1e-4;

/**
 * ORT's `smooth_distribution` in float32: zeros become eps, and eps·zeros/nonzeros is taken off the non-zero bins.
 * Null when every bin is zero.
 */
function smooth(p: Float64Array): Float64Array | null {
  let zeros = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === 0) zeros++;
  const nonzeros = p.length - zeros;
  if (nonzeros === 0) return null;
  const f = Math.fround;
  const eps1 = f(-((EPS * zeros) / nonzeros));
  const eps = f(EPS);
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = p[i] === 0 ? eps : f(f(p[i]) + eps1);
  return out;
}

/** numpy's float32 `sum`: pairwise summation in float32 (8 accumulators per block of at most 128), from 0. */
function sum32(a: Float64Array, start: number, n: number): number {
  const f = Math.fround;
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res = f(res + a[start + i]);
    return res;
  }
  if (n <= 128) {
    const r = a.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = f(r[j] + a[start + i + j]);
    }
    let res = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; i < n; i++) res = f(res + a[start + i]);
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return f(sum32(a, start, half) + sum32(a, start + half, n - half));
}

/**
 * `scipy.stats.entropy(p, q)` on float32 arrays, as ORT calls it: p and q normalised by their float32 sums,
 * `rel_entr` computed in double and rounded to float32, summed in float32. Candidates of nearly equal KL are common
 * on flat histograms, so the float32 rounding decides which one ORT picks; it is reproduced here.
 */
function klDivergence32(p: Float64Array, q: Float64Array): number {
  const f = Math.fround;
  const n = p.length;
  const sp = sum32(p, 0, n);
  const sq = sum32(q, 0, n);
  const terms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const pk = f(p[i] / sp);
    const qk = f(q[i] / sq);
    terms[i] = pk > 0 && qk > 0 ? f(pk * Math.log(pk / qk)) : pk === 0 && qk >= 0 ? 0 : Infinity;
  }
  return sum32(terms, 0, n);
}

/**
 * ORT's `get_entropy_threshold`: for i in [nq/2, nbins/2] the window [zero - i, zero + i + 1) is a candidate; p is the
 * window with the outlier counts added to its end bins, q the window merged into nq bins (remainder into the last)
 * and spread back over each group as the integer-truncated mean of p's non-zero bins. The candidate with the least
 * KL(p‖q) gives (edges[start], edges[end]), clamped to the observed [min, max].
 */
export function entropyThreshold(h: ValueHistogram, numQuantizedBins: number): TensorRange {
  const hist = h.counts;
  const n = hist.length;
  const zero = Math.floor(n / 2);
  const halfQ = Math.floor(numQuantizedBins / 2);
  if (halfQ > zero) {
    throw new RangeError(
      `numQuantizedBins ${numQuantizedBins} is too large for a histogram of ${n} bins (needs nq/2 <= bins/2)`,
    );
  }
  // prefix[k] = sum of hist[0..k)
  const prefix = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) prefix[k + 1] = prefix[k] + hist[k];
  const quantized = new Float64Array(numQuantizedBins);
  let best = Infinity;
  let bestStart = zero - halfQ;
  let bestEnd = Math.min(zero + halfQ + 1, n);
  for (let i = halfQ; i <= zero; i++) {
    const start = zero - i;
    const end = Math.min(zero + i + 1, n);
    const size = end - start;
    const p = hist.slice(start, end);
    p[0] += prefix[start];
    p[size - 1] += prefix[n] - prefix[end];
    const merged = Math.floor(size / numQuantizedBins);
    for (let b = 0; b < numQuantizedBins; b++) {
      quantized[b] = prefix[start + (b + 1) * merged] - prefix[start + b * merged];
    }
    quantized[numQuantizedBins - 1] += prefix[end] - prefix[start + numQuantizedBins * merged];
    const q = new Float64Array(size);
    for (let b = 0; b < numQuantizedBins; b++) {
      const s = b * merged;
      let norm = 0;
      for (let k = s; k < s + merged; k++) if (p[k] !== 0) norm++;
      // ORT writes the mean into an int64 array: it is truncated, and it fills the zero bins of p as well.
      if (norm !== 0) q.fill(Math.trunc(quantized[b] / norm), s, s + merged);
    }
    const ps = smooth(p);
    const qs = smooth(q);
    const kl = ps && qs ? klDivergence32(ps, qs) : Infinity;
    if (kl < best) {
      best = kl;
      bestStart = start;
      bestEnd = end;
    }
  }
  let lo = h.edges[bestStart];
  let hi = h.edges[bestEnd];
  if (lo < h.min) lo = h.min;
  if (hi > h.max) hi = h.max;
  return { min: lo, max: hi };
}

/**
 * ORT's entropy (KL) calibration. With the defaults (128 bins, 128 quantized bins) there is a single candidate, the
 * full [-max|x|, max|x|] clamped to [min, max], unless a later batch with a larger max|x| has widened the histogram;
 * set `numBins` to e.g. 2048 for a real threshold search (961 candidates).
 * @example
 * const c = new EntropyCollector({ numBins: 2048 });
 * for (const batch of batches) c.add('conv1_out', batch);
 * c.ranges().get('conv1_out')
 */
export class EntropyCollector implements RangeCollector {
  readonly method = 'entropy' as const;
  private readonly numBins: number;
  private readonly numQuantizedBins: number;
  private readonly hists = new Map<string, ValueHistogram>();

  constructor(options: EntropyOptions = {}) {
    const numBins = options.numBins ?? 128;
    const numQuantizedBins = options.numQuantizedBins ?? 128;
    if (!Number.isInteger(numBins) || numBins < 1) {
      throw new RangeError(`numBins must be a positive integer, got ${numBins}`);
    }
    if (!Number.isInteger(numQuantizedBins) || numQuantizedBins < 1) {
      throw new RangeError(`numQuantizedBins must be a positive integer, got ${numQuantizedBins}`);
    }
    if (Math.floor(numQuantizedBins / 2) > Math.floor(numBins / 2)) {
      throw new RangeError(`numQuantizedBins (${numQuantizedBins}) must not exceed numBins (${numBins})`);
    }
    this.numBins = numBins;
    this.numQuantizedBins = numQuantizedBins;
  }

  add(name: string, values: Float32Array): void {
    const batch = checkBatch(name, values);
    if (!batch) return;
    const h = this.hists.get(name);
    if (h) h.add(values, batch[0], batch[1]);
    else this.hists.set(name, new ValueHistogram(values, batch[0], batch[1], this.numBins));
  }

  ranges(): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [name, h] of this.hists) out.set(name, entropyThreshold(h, this.numQuantizedBins));
    return out;
  }
}
