/** A histogram in the shape of TensorFlow's HistogramProto (SPECS.md §1). */
export interface Histogram {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Right edge of each bucket, increasing; bucket 0 starts at -DBL_MAX. */
  bucketLimit: number[];
  /** Count in each bucket. */
  bucket: number[];
}

/**
 * TensorFlow's default bucket edges: -DBL_MAX, the negatives of 1e-12·1.1^k (k up to 1e20), 0, the
 * positives, DBL_MAX. The edges come from repeated multiplication, as TF computes them, so they match bit for bit.
 */
export const DEFAULT_BUCKET_LIMITS: readonly number[] = (() => {
  const pos: number[] = [];
  for (let v = 1e-12; v < 1e20; v *= 1.1) pos.push(v);
  pos.push(Number.MAX_VALUE);
  const neg = pos.map((v) => -v).reverse();
  return Object.freeze([...neg, 0, ...pos]);
})();

/**
 * Index of the bucket that holds `v`: the first limit strictly greater than `v`, so bucket i holds
 * `limits[i-1] <= v < limits[i]` (TensorFlow's upper_bound rule).
 */
function bucketIndex(limits: readonly number[], v: number): number {
  let lo = 0;
  let hi = limits.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (limits[mid]! > v) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Builds a histogram of the finite values over TensorFlow's default buckets (NaN and ±Infinity are
 * skipped). Like TensorFlow's writer, each run of empty buckets is merged into one empty bucket
 * ending at the run's last edge, which keeps the proto small without changing what TensorBoard draws.
 */
export function buildHistogram(values: ArrayLike<number>, limits: readonly number[] = DEFAULT_BUCKET_LIMITS): Histogram {
  const counts = new Float64Array(limits.length);
  let min = Infinity;
  let max = -Infinity;
  let num = 0;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    num++;
    sum += v;
    sumSquares += v * v;
    counts[bucketIndex(limits, v)]!++;
  }
  const bucketLimit: number[] = [];
  const bucket: number[] = [];
  for (let i = 0; i < limits.length; ) {
    let end = limits[i]!;
    const count = counts[i]!;
    i++;
    if (count === 0) {
      while (i < limits.length && counts[i] === 0) end = limits[i++]!;
    }
    bucketLimit.push(end);
    bucket.push(count);
  }
  if (num === 0) return { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit, bucket };
  return { min, max, num, sum, sumSquares, bucketLimit, bucket };
}
