import { KdEdgeError } from '../errors.js';

/** Stable codes of {@link QuantError}. */
export type QuantErrorCode =
  | 'QUANT_MODEL_INVALID'
  | 'QUANT_RANGE_MISSING'
  | 'QUANT_CALIBRATION_EMPTY'
  | 'QUANT_INPUT_MISMATCH'
  | 'QUANT_RUNTIME_FAILED';

/** A quantization pass, calibration run or sensitivity report could not proceed on this model or data. */
export class QuantError extends KdEdgeError {
  declare readonly code: QuantErrorCode;

  constructor(code: QuantErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
