import { KdEdgeError } from '@kd-edge/core';

/** Every code a {@link ServeError} can carry. */
export type ServeErrorCode =
  /** The bytes of a frame are not an image this service can decode. */
  | 'SERVE_IMAGE_DECODE'
  /** The model file and its manifest disagree, or the layout is not one the detector reads. */
  | 'SERVE_MODEL_LAYOUT'
  /** The runtime failed while running the model. */
  | 'SERVE_INFERENCE'
  /** Inference was asked of an empty or closed model slot. */
  | 'SERVE_NO_MODEL'
  /** The object was used after close(). */
  | 'SERVE_CLOSED';

/** A failure of the inference service (decode, model layout, runtime); `code` says which. */
export class ServeError extends KdEdgeError {
  declare readonly code: ServeErrorCode;

  constructor(code: ServeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
