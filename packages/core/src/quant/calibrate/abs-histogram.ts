import { arangeFloat32Scalars, histogramUniform32, histogramWithEdges } from './numpy-histogram.js';

const f = Math.fround;

/**
 * Histogram of |x| merged across batches as ORT's `HistogramCollector.collect_absolute_value` does (the symmetric
 * percentile method). The first batch spans [min|x|, max|x|] in `numBins` bins; a later batch with a larger |x|
 * appends bins of the same width (numpy `arange`, which may add one bin past the maximum) and is counted against
 * those edges, so values below the first batch's min|x| are dropped, as in ORT.
 */
export class AbsHistogram {
  counts: Float64Array;
  /** float32 edges, `counts.length + 1` of them. */
  edges: Float64Array;
  /** Signed min and max of every value seen. */
  min: number;
  max: number;

  constructor(values: Float32Array, min: number, max: number, numBins: number) {
    const absMax = Math.max(Math.abs(min), Math.abs(max));
    let absMin = absMax;
    for (let i = 0; i < values.length; i++) absMin = Math.min(absMin, Math.abs(values[i]));
    let h;
    try {
      h = histogramUniform32(values, absMin, absMax, numBins, true);
    } catch (e) {
      // A range too narrow for numBins distinct float32 bins (a near-constant tensor, e.g. a saturated
      // sigmoid): numpy, and so ORT, raise here. Start the histogram at 0 instead, which keeps every
      // value and the percentile meaningful.
      if (!(e instanceof RangeError) || absMin === 0) throw e;
      h = histogramUniform32(values, 0, absMax, numBins, true);
    }
    this.counts = h.counts;
    this.edges = h.edges;
    this.min = min;
    this.max = max;
  }

  add(values: Float32Array, min: number, max: number): void {
    const absMax = Math.max(Math.abs(min), Math.abs(max));
    const old = this.edges;
    let edges = old;
    const last = old[old.length - 1];
    if (absMax > last) {
      const width = f(old[1] - old[0]);
      const extra = arangeFloat32Scalars(f(last + width), f(absMax + width), width);
      edges = new Float64Array(old.length + extra.length);
      edges.set(old);
      edges.set(extra, old.length);
    }
    // The batch is counted against float64 edges; numpy's astype(float32) only applies to what is kept.
    const counts = histogramWithEdges(values, edges, true);
    for (let i = 0; i < this.counts.length; i++) counts[i] += this.counts[i];
    this.counts = counts;
    this.edges = edges === old ? old : edges.map(f);
    this.min = Math.min(this.min, min);
    this.max = Math.max(this.max, max);
  }
}
