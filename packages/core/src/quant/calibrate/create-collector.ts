import { EntropyCollector, type EntropyOptions } from './entropy-collector.js';
import { MinMaxCollector, type MinMaxOptions } from './minmax-collector.js';
import { PercentileCollector, type PercentileOptions } from './percentile-collector.js';
import type { CalibrationMethod, RangeCollector } from './types.js';

/** Options accepted by {@link createCollector} for each method. */
export interface CollectorOptionsMap {
  minmax: MinMaxOptions;
  percentile: PercentileOptions;
  entropy: EntropyOptions;
}

const COLLECTORS: { readonly [M in CalibrationMethod]: (options?: CollectorOptionsMap[M]) => RangeCollector } = {
  minmax: (o) => new MinMaxCollector(o),
  percentile: (o) => new PercentileCollector(o),
  entropy: (o) => new EntropyCollector(o),
};

/** Every calibration method, for CLI choices and config validation. */
export const CALIBRATION_METHODS = Object.keys(COLLECTORS) as readonly CalibrationMethod[];

/**
 * Creates the range collector of a calibration method, with ORT's defaults for options left out.
 * @example
 * const collector = createCollector('percentile', { percentile: 99.99 });
 * collector.add('images', batch);
 * const ranges = collector.ranges();
 */
export function createCollector<M extends CalibrationMethod>(method: M, options?: CollectorOptionsMap[M]): RangeCollector {
  if (!Object.hasOwn(COLLECTORS, method)) {
    throw new RangeError(`method must be one of ${CALIBRATION_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
  }
  return COLLECTORS[method](options);
}
