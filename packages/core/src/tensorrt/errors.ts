import { KdEdgeError } from '../errors.js';

/** A TensorRT build plan has a missing or invalid field; `field` is its path, e.g. `input.max[2]`. */
export class TrtPlanError extends KdEdgeError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('TRT_PLAN_INVALID', `invalid TensorRT plan field ${field}: ${message}`);
    this.field = field;
  }
}

/** A TensorRT INT8 calibration cache cannot be parsed; `line` is 1-based. */
export class CalibCacheError extends KdEdgeError {
  readonly line: number;

  constructor(line: number, message: string) {
    super('TRT_CALIB_CACHE_INVALID', `invalid TensorRT calibration cache, line ${line}: ${message}`);
    this.line = line;
  }
}
