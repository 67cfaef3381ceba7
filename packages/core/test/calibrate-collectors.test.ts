import { describe, expect, it } from 'vitest';
import { CALIBRATION_METHODS, createCollector } from '../src/quant/calibrate/create-collector.js';
import { EntropyCollector } from '../src/quant/calibrate/entropy-collector.js';
import { MinMaxCollector } from '../src/quant/calibrate/minmax-collector.js';
import { PercentileCollector } from '../src/quant/calibrate/percentile-collector.js';

const F = (...v: number[]): Float32Array => Float32Array.from(v);

describe('MinMaxCollector', () => {
  it('takes the min of minima and the max of maxima, per tensor, in first-seen order', () => {
    const c = new MinMaxCollector();
    c.add('b', F(1, 2));
    c.add('a', F(-1, 2));
    c.add('a', F(0.5, 3));
    c.add('b', F(-4));
    expect([...c.ranges()]).toEqual([
      ['b', { min: -4, max: 2 }],
      ['a', { min: -1, max: 3 }],
    ]);
  });

  it('symmetric: each batch becomes ±max|x|', () => {
    const c = new MinMaxCollector({ symmetric: true });
    c.add('x', F(-1, 2));
    c.add('x', F(-3, 0.5));
    expect(c.ranges().get('x')).toEqual({ min: -3, max: 3 });
  });

  it('moving average: range + c·(batch − range) from the first batch', () => {
    const c = new MinMaxCollector({ movingAverage: true, averagingConstant: 0.5 });
    c.add('x', F(0, 10));
    c.add('x', F(-10, 20)); // min 0 + 0.5·(−10 − 0) = −5, max 10 + 0.5·(20 − 10) = 15
    c.add('x', F(-1, 1)); // min −5 + 0.5·4 = −3, max 15 + 0.5·(−14) = 8
    expect(c.ranges().get('x')).toEqual({ min: -3, max: 8 });
  });

  it('ignores empty batches and returns copies', () => {
    const c = new MinMaxCollector();
    c.add('x', new Float32Array(0));
    expect(c.ranges().size).toBe(0);
    c.add('x', F(1));
    c.ranges().get('x')!.max = 99;
    expect(c.ranges().get('x')).toEqual({ min: 1, max: 1 });
  });

  it('validates', () => {
    expect(() => new MinMaxCollector({ averagingConstant: 1.5 })).toThrow(/averagingConstant/);
    const c = new MinMaxCollector();
    expect(() => c.add('', F(1))).toThrow(TypeError);
    expect(() => c.add('x', [1, 2] as unknown as Float32Array)).toThrow(TypeError);
    expect(() => c.add('x', F(1, NaN))).toThrow(/finite.*index 1/);
    expect(() => c.add('x', F(Infinity))).toThrow(RangeError);
  });
});

describe('PercentileCollector', () => {
  it('symmetric: threshold is the left edge of the bin where the cdf reaches p, clamped to [min, max]', () => {
    // |x| = 0..4 over 4 bins [0,1) [1,2) [2,3) [3,4]: counts 1 1 1 2, cdf .2 .4 .6 1. p = 50 % → bin 2 → edge 2.
    // (−2, 2) is clamped to min 0.
    const c = new PercentileCollector({ numBins: 4, percentile: 50 });
    c.add('x', F(0, 1, 2, 3, 4));
    expect(c.ranges().get('x')).toEqual({ min: 0, max: 2 });
  });

  it('symmetric: a near-constant tensor (too narrow for distinct float32 bins) starts its histogram at 0 instead of failing', () => {
    // numpy (so ORT) raises on [0.49997, 0.50003] in 2048 float32 bins; a saturated sigmoid gives exactly that.
    const c = new PercentileCollector();
    const v = new Float32Array(1000);
    for (let i = 0; i < v.length; i++) v[i] = 0.49997 + (i / v.length) * 0.00006;
    c.add('x', v);
    const r = c.ranges().get('x')!;
    expect(r.max).toBeGreaterThan(0.50003 - (2 * 0.50003) / 2048); // a bin edge of [0, max] next to the values
    expect(r.max).toBeLessThanOrEqual(0.50003);
  });

  it('symmetric: a larger |x| appends bins of the same width; values below the first bin are dropped', () => {
    // Batch 1: |x| in [1, 2], 2 bins, edges 1 1.5 2. Batch 2: max 3.2 → arange(2.5, 3.7, 0.5) = 2.5 3 3.5.
    // 0.5 < 1 is dropped, 3.2 lands in [3, 3.5). Counts 1 1 0 0 1: the cdf reaches 1 in bin 4, left edge 3.
    const c = new PercentileCollector({ numBins: 2, percentile: 100 });
    c.add('x', F(1, -2));
    c.add('x', F(0.5, 3.2));
    expect(c.ranges().get('x')).toEqual({ min: -2, max: 3 });
  });

  it('asymmetric: cuts (100 − p) / 2 % from each tail of the histogram of x', () => {
    // x = −4..4 over [−4, 4] in 8 bins: each of −4..3 opens a bin, 4 joins the last. Cut 10 % per side.
    const c = new PercentileCollector({ numBins: 8, percentile: 80, symmetric: false });
    c.add('x', F(-4, -3, -2, -1, 0, 1, 2, 3, 4));
    // cdf 1/9 2/9 … : first ≥ 0.1 is bin 0 (edge −4), first ≥ 0.9 is bin 7 (edge 3).
    expect(c.ranges().get('x')).toEqual({ min: -4, max: 3 });
  });

  it('validates options', () => {
    expect(() => new PercentileCollector({ percentile: 100.5 })).toThrow(/percentile/);
    expect(() => new PercentileCollector({ numBins: 0 })).toThrow(/numBins/);
  });
});

describe('EntropyCollector', () => {
  it('with the defaults and one batch there is one candidate: the full range', () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * (i % 7) - 0.5);
    const e = new EntropyCollector();
    const m = new MinMaxCollector();
    e.add('x', data);
    m.add('x', data);
    expect(e.ranges().get('x')).toEqual(m.ranges().get('x'));
  });

  it('with more bins it cuts a long tail', () => {
    const data = Float32Array.from({ length: 4000 }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    data[0] = 40;
    const c = new EntropyCollector({ numBins: 2048 });
    c.add('x', data);
    const r = c.ranges().get('x')!;
    expect(r.max).toBeLessThan(40);
    expect(r.max).toBeGreaterThanOrEqual(0.49);
  });

  it('validates options', () => {
    expect(() => new EntropyCollector({ numBins: 64, numQuantizedBins: 128 })).toThrow(/numQuantizedBins/);
    expect(() => new EntropyCollector({ numQuantizedBins: 0 })).toThrow(/numQuantizedBins/);
  });
});

describe('createCollector', () => {
  it('creates each method with its name', () => {
    expect(CALIBRATION_METHODS).toEqual(['minmax', 'percentile', 'entropy']);
    for (const m of CALIBRATION_METHODS) expect(createCollector(m).method).toBe(m);
  });

  it('passes options through', () => {
    const c = createCollector('minmax', { symmetric: true });
    c.add('x', F(-1, 5));
    expect(c.ranges().get('x')).toEqual({ min: -5, max: 5 });
  });

  it('rejects unknown methods', () => {
    expect(() => createCollector('kl' as 'entropy')).toThrow(/minmax, percentile, entropy/);
  });
});
