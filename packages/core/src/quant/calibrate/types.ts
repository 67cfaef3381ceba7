/** Calibrated real-valued range of one tensor. */
export interface TensorRange {
  min: number;
  max: number;
}

/** Range-collection algorithms, named as ORT's `CalibrationMethod` (MinMax, Percentile, Entropy). */
export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

/**
 * Accumulates statistics of named tensors over calibration batches and turns them into ranges. Implementations keep
 * only running minima/maxima or histograms, never the values themselves.
 */
export interface RangeCollector {
  readonly method: CalibrationMethod;
  /** Adds one batch of values of tensor `name` (any shape, flattened); an empty batch is ignored. */
  add(name: string, values: Float32Array): void;
  /** Final range per tensor name, in the order the names were first added. */
  ranges(): Map<string, TensorRange>;
}
