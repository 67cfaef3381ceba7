import { floorDivide32, histogramUniform32 } from './numpy-histogram.js';

const f = Math.fround;

/**
 * Histogram of x over [-T, T], T = max|x|, merged as ORT's `HistogramCollector.collect_value` / `merge_histogram` do
 * (entropy, and percentile when not symmetric). A batch with a larger T widens the histogram by
 * `floor((T' - T) / stride) + 1` bins of the old stride on each side; a batch within [-T, T] keeps the bins.
 */
export class ValueHistogram {
  counts: Float64Array;
  /** float32 edges, `counts.length + 1` of them. */
  edges: Float64Array;
  min: number;
  max: number;
  /** Half-width T of the histogram (0 for all-zero data, whose bins span [-0.5, 0.5]). */
  threshold: number;

  constructor(values: Float32Array, min: number, max: number, numBins: number) {
    const t = Math.max(Math.abs(min), Math.abs(max));
    const h = histogramUniform32(values, -t, t, numBins);
    this.counts = h.counts;
    this.edges = h.edges;
    this.min = min;
    this.max = max;
    this.threshold = t;
  }

  add(values: Float32Array, min: number, max: number): void {
    const oldT = this.threshold;
    const newT = Math.max(Math.abs(min), Math.abs(max));
    const n = this.counts.length;
    if (newT <= oldT) {
      const h = histogramUniform32(values, -oldT, oldT, n);
      for (let i = 0; i < n; i++) this.counts[i] += h.counts[i];
    } else if (oldT === 0) {
      // ORT adds the old all-zero counts bin by bin to the new, wider histogram.
      const h = histogramUniform32(values, -newT, newT, n);
      for (let i = 0; i < n; i++) h.counts[i] += this.counts[i];
      this.counts = h.counts;
      this.edges = h.edges;
      this.threshold = newT;
    } else {
      const stride = f(f(2 * oldT) / n);
      const half = Math.trunc(f(floorDivide32(f(newT - oldT), stride) + 1));
      const grown = n + 2 * half;
      const t = f(f(half * stride) + oldT);
      const h = histogramUniform32(values, -t, t, grown);
      for (let i = 0; i < n; i++) h.counts[half + i] += this.counts[i];
      this.counts = h.counts;
      this.edges = h.edges;
      this.threshold = t;
    }
    this.min = Math.min(this.min, min);
    this.max = Math.max(this.max, max);
  }
}
