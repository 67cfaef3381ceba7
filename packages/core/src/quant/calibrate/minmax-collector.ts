import { checkBatch } from './check-batch.js';
import type { RangeCollector, TensorRange } from './types.js';

/** Options of {@link MinMaxCollector}; defaults are ORT `create_calibrator`'s for `CalibrationMethod.MinMax`. */
export interface MinMaxOptions {
  /** Make each batch's range ±max(|min|, |max|) before merging (default false). */
  symmetric?: boolean;
  /** Exponential moving average of the batch ranges instead of the global min and max (default false). */
  movingAverage?: boolean;
  /** Smoothing factor of the moving average, in [0, 1] (default 0.01). */
  averagingConstant?: number;
}

/**
 * ORT's `MinMaxCalibrater`: min of the batch minima and max of the batch maxima, or with `movingAverage`
 * `range ← range + c·(batch − range)` in float32. Each `add` is one ORT range computation, i.e. ORT run with
 * `max_intermediate_outputs = 1` (ORT averages, rather than chains, batches that arrive in one `collect_data` call).
 * @example
 * const c = new MinMaxCollector();
 * c.add('x', Float32Array.of(-1, 2)); c.add('x', Float32Array.of(3));
 * c.ranges().get('x') // { min: -1, max: 3 }
 */
export class MinMaxCollector implements RangeCollector {
  readonly method = 'minmax' as const;
  private readonly symmetric: boolean;
  private readonly movingAverage: boolean;
  private readonly constant: number;
  private readonly state = new Map<string, TensorRange>();

  constructor(options: MinMaxOptions = {}) {
    const c = options.averagingConstant ?? 0.01;
    if (!(c >= 0 && c <= 1)) throw new RangeError(`averagingConstant must be within [0, 1], got ${c}`);
    this.symmetric = options.symmetric ?? false;
    this.movingAverage = options.movingAverage ?? false;
    // numpy casts the Python float to float32 before multiplying float32 arrays.
    this.constant = Math.fround(c);
  }

  add(name: string, values: Float32Array): void {
    const batch = checkBatch(name, values);
    if (!batch) return;
    let [lo, hi] = batch;
    if (this.symmetric) {
      const a = Math.max(Math.abs(lo), Math.abs(hi));
      lo = -a;
      hi = a;
    }
    const old = this.state.get(name);
    if (!old) {
      this.state.set(name, { min: lo, max: hi });
    } else if (this.movingAverage) {
      const f = Math.fround;
      old.min = f(old.min + f(this.constant * f(lo - old.min)));
      old.max = f(old.max + f(this.constant * f(hi - old.max)));
    } else {
      old.min = Math.min(old.min, lo);
      old.max = Math.max(old.max, hi);
    }
  }

  ranges(): Map<string, TensorRange> {
    return new Map([...this.state].map(([k, v]) => [k, { min: v.min, max: v.max }]));
  }
}
