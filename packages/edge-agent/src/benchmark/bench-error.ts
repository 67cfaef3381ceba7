import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link BenchError}. */
export type BenchErrorCode = 'BENCH_STEP_FAILED' | 'BENCH_ABORTED';

/** A benchmark could not complete; `iteration` is the run (warm-up runs counted first) that failed. */
export class BenchError extends KdEdgeError {
  declare readonly code: BenchErrorCode;
  readonly iteration: number;

  constructor(code: BenchErrorCode, iteration: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.iteration = iteration;
  }
}
