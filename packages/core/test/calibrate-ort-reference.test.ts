import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createCollector } from '../src/quant/calibrate/create-collector.js';
import type { RangeCollector } from '../src/quant/calibrate/types.js';

// Expected ranges come from fixtures/calibration/gen.py, a numpy port of ORT's calibrate.py (run once, committed).
interface Fixture {
  cases: { name: string; batches: string[]; expected: Record<string, [number, number]> }[];
}
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/calibration/expected.json', import.meta.url), 'utf8'),
) as Fixture;

const CONFIGS: Record<string, () => RangeCollector> = {
  minmax: () => createCollector('minmax'),
  minmax_symmetric: () => createCollector('minmax', { symmetric: true }),
  minmax_moving_average: () => createCollector('minmax', { movingAverage: true }),
  'minmax_moving_average_0.3': () => createCollector('minmax', { movingAverage: true, averagingConstant: 0.3 }),
  percentile: () => createCollector('percentile'),
  percentile_99: () => createCollector('percentile', { percentile: 99 }),
  'percentile_asymmetric_99.9': () => createCollector('percentile', { symmetric: false, percentile: 99.9 }),
  percentile_asymmetric_64bins_95: () =>
    createCollector('percentile', { symmetric: false, numBins: 64, percentile: 95 }),
  entropy: () => createCollector('entropy'),
  entropy_2048: () => createCollector('entropy', { numBins: 2048 }),
  entropy_512_64: () => createCollector('entropy', { numBins: 512, numQuantizedBins: 64 }),
};

function decode(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const out = new Float32Array(buf.length / 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function close(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= 1e-6 * Math.abs(expected) + 1e-30;
}

describe.each(fixture.cases)('ORT reference ranges: $name', ({ batches, expected }) => {
  const data = batches.map(decode);

  it('lists every configuration the generator wrote', () => {
    expect(Object.keys(expected).sort()).toEqual(Object.keys(CONFIGS).sort());
  });

  it.each(Object.keys(CONFIGS))('%s', (config) => {
    const collector = CONFIGS[config]();
    for (const batch of data) collector.add('t', batch);
    const range = collector.ranges().get('t');
    const [min, max] = expected[config];
    expect(range, `got ${JSON.stringify(range)}, want [${min}, ${max}]`).toBeDefined();
    expect(close(range!.min, min) && close(range!.max, max), `got [${range!.min}, ${range!.max}], want [${min}, ${max}]`).toBe(
      true,
    );
  });
});
