import { KdEdgeError } from '@kd-edge/core';

/** A dataset that cannot be used: missing path, empty split, bad YAML. */
export class DatasetError extends KdEdgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATASET_INVALID', message, options);
  }
}

/** A compute backend that was asked for but cannot be loaded. */
export class BackendError extends KdEdgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
  }
}

/** A weights or checkpoint file that cannot be read. */
export class WeightsError extends KdEdgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEIGHTS_INVALID', message, options);
  }
}

/** An export, quantization or packaging step that cannot go on; `code` says which (EXPORT_*). */
export class ExportError extends KdEdgeError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
