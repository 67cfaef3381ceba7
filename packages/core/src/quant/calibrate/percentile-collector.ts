import { AbsHistogram } from './abs-histogram.js';
import { checkBatch } from './check-batch.js';
import type { RangeCollector, TensorRange } from './types.js';
import { ValueHistogram } from './value-histogram.js';

/** Options of {@link PercentileCollector}; defaults are ORT `create_calibrator`'s for `CalibrationMethod.Percentile`. */
export interface PercentileOptions {
  /** Bins of the first batch's histogram (default 2048). */
  numBins?: number;
  /** Share of values to keep, in [0, 100] (default 99.999). */
  percentile?: number;
  /** Histogram |x| and return ±threshold (default true, as ORT). */
  symmetric?: boolean;
}

/** Index of the first cumulative share >= `p` (numpy `searchsorted(cdf, p)`, side 'left'). */
function searchCdf(counts: Float64Array, p: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  // cumsum(hist / total): divide first, then add in order, as numpy does.
  let cdf = 0;
  for (let i = 0; i < counts.length; i++) {
    cdf += counts[i] / total;
    if (cdf >= p) return i;
  }
  return counts.length;
}

/**
 * ORT's percentile calibration (`HistogramCollector.compute_percentile`). Symmetric: histogram of |x| and range
 * ±edges[i] where the cumulative share first reaches `percentile`; otherwise `(100 - percentile) / 2` percent is cut
 * from each tail of the histogram of x. As in ORT the threshold is a bin's left edge, and the range is then clamped to
 * the observed [min, max] (so symmetric ranges of one-signed data are not symmetric).
 * @example
 * const c = new PercentileCollector({ percentile: 99.99 });
 * for (const batch of batches) c.add('images', batch);
 * c.ranges().get('images')
 */
export class PercentileCollector implements RangeCollector {
  readonly method = 'percentile' as const;
  private readonly numBins: number;
  private readonly percentile: number;
  private readonly symmetric: boolean;
  private readonly hists = new Map<string, AbsHistogram | ValueHistogram>();

  constructor(options: PercentileOptions = {}) {
    const numBins = options.numBins ?? 2048;
    const percentile = options.percentile ?? 99.999;
    if (!Number.isInteger(numBins) || numBins < 1) {
      throw new RangeError(`numBins must be a positive integer, got ${numBins}`);
    }
    if (!(percentile >= 0 && percentile <= 100)) {
      throw new RangeError(`percentile must be within [0, 100], got ${percentile}`);
    }
    this.numBins = numBins;
    this.percentile = percentile;
    this.symmetric = options.symmetric ?? true;
  }

  add(name: string, values: Float32Array): void {
    const batch = checkBatch(name, values);
    if (!batch) return;
    const h = this.hists.get(name);
    if (h) h.add(values, batch[0], batch[1]);
    else {
      const Hist = this.symmetric ? AbsHistogram : ValueHistogram;
      this.hists.set(name, new Hist(values, batch[0], batch[1], this.numBins));
    }
  }

  ranges(): Map<string, TensorRange> {
    const out = new Map<string, TensorRange>();
    for (const [name, h] of this.hists) {
      let lo: number;
      let hi: number;
      if (this.symmetric) {
        const t = h.edges[searchCdf(h.counts, this.percentile / 100)];
        lo = -t;
        hi = t;
      } else {
        const cut = (100 - this.percentile) / 200;
        lo = h.edges[searchCdf(h.counts, cut)];
        hi = h.edges[searchCdf(h.counts, 1 - cut)];
      }
      if (lo < h.min) lo = h.min;
      if (hi > h.max) hi = h.max;
      out.set(name, { min: lo, max: hi });
    }
    return out;
  }
}
