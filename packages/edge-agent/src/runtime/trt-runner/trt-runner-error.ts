import { KdEdgeError } from '@kd-edge/core';
import type { RunnerErrorCode } from './protocol.js';

/**
 * Stable codes of {@link TrtRunnerError}: `TRT_RUNNER_<code>` for an error frame the runner answered (see
 * {@link RunnerErrorCode}), and the agent side's own failures around the process.
 */
export type TrtRunnerErrorCode =
  | `TRT_RUNNER_${RunnerErrorCode}`
  /** The runner could not be started (no such file, not executable). */
  | 'TRT_RUNNER_SPAWN_FAILED'
  /** The runner did not answer `hello` as protocol version 1 expects. */
  | 'TRT_RUNNER_HANDSHAKE'
  /** The runner sent something that is not a valid frame or reply. */
  | 'TRT_RUNNER_PROTOCOL'
  /** The runner exited (crash, kill) while a request was waiting. */
  | 'TRT_RUNNER_EXITED'
  /** A request got no answer in time; the runner was killed. */
  | 'TRT_RUNNER_TIMEOUT'
  /** The client or supervisor was closed. */
  | 'TRT_RUNNER_CLOSED'
  /** The supervisor gave up after repeated crashes; serve with ONNX Runtime. */
  | 'TRT_RUNNER_GAVE_UP'
  /** A tensor, shape or shared-memory argument on the agent side is wrong. */
  | 'TRT_RUNNER_INPUT_INVALID';

/** A failure of the native TensorRT runner (or its stand-in), of its protocol, or of its supervision. */
export class TrtRunnerError extends KdEdgeError {
  declare readonly code: TrtRunnerErrorCode;
  /** The last lines the runner wrote to stderr, when the process is involved. */
  readonly stderrTail?: string;

  constructor(code: TrtRunnerErrorCode, message: string, options: { cause?: unknown; stderrTail?: string } = {}) {
    super(code, options.stderrTail ? `${message}\n--- runner stderr (tail) ---\n${options.stderrTail}` : message, { cause: options.cause });
    if (options.stderrTail !== undefined) this.stderrTail = options.stderrTail;
  }
}
