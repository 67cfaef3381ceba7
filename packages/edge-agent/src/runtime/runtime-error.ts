import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link RuntimeError}. */
export type RuntimeErrorCode =
  | 'RUNTIME_LOAD_FAILED'
  | 'RUNTIME_INPUT_INVALID'
  | 'RUNTIME_RUN_FAILED'
  | 'RUNTIME_DISPOSED'
  | 'RUNTIME_TRTEXEC_NOT_FOUND'
  | 'RUNTIME_TRTEXEC_VERSION'
  | 'RUNTIME_TRTEXEC_FAILED'
  | 'RUNTIME_TRTEXEC_TIMEOUT'
  | 'RUNTIME_TRTEXEC_OUTPUT'
  | 'RUNTIME_TRTEXEC_PLAN';

/** A model runtime (ONNX Runtime or trtexec) could not load, build, run or report; trtexec failures carry its output's tail. */
export class RuntimeError extends KdEdgeError {
  declare readonly code: RuntimeErrorCode;
  /** The last lines trtexec printed, when the error comes from trtexec. */
  readonly outputTail?: string;

  constructor(code: RuntimeErrorCode, message: string, options: { cause?: unknown; outputTail?: string } = {}) {
    super(code, options.outputTail ? `${message}\n--- trtexec output (tail) ---\n${options.outputTail}` : message, {
      cause: options.cause,
    });
    if (options.outputTail !== undefined) this.outputTail = options.outputTail;
  }
}
