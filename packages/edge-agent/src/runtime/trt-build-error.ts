import { KdEdgeError } from '@kd-edge/core';

/** Stable codes of {@link TrtBuildError} (`kd-agent runtime build-tensorrt`). */
export type TrtBuildErrorCode =
  /** The runner's C++ source is not where the agent ships it (`native/trt-runner` of the package). */
  | 'AGENT_TRT_BUILD_SOURCE_NOT_FOUND'
  /** No folder searched holds TensorRT's `NvInferRuntime.h` + `NvInferVersion.h`, or CUDA's `cuda_runtime_api.h`. */
  | 'AGENT_TRT_BUILD_HEADERS_NOT_FOUND'
  /** `NvInferVersion.h` does not define NV_TENSORRT_MAJOR/MINOR/PATCH as numbers. */
  | 'AGENT_TRT_BUILD_VERSION_UNREADABLE'
  /** The headers are of a TensorRT older than 8.0, which the runner does not support. */
  | 'AGENT_TRT_BUILD_UNSUPPORTED_VERSION'
  /** No folder searched holds `libnvinfer.so` or `libcudart.so` (the link-time names the -dev packages install). */
  | 'AGENT_TRT_BUILD_LIBS_NOT_FOUND'
  /** The C++ compiler does not run. */
  | 'AGENT_TRT_BUILD_COMPILER_NOT_FOUND'
  /** The compiler failed or timed out; the message ends with its last lines. */
  | 'AGENT_TRT_BUILD_COMPILE_FAILED'
  /** The fresh binary did not start, answer hello as the headers say, serve a request, or shut down cleanly. */
  | 'AGENT_TRT_BUILD_SELF_CHECK_FAILED'
  /** The output folder cannot be created or written, or the binary cannot be moved into place. */
  | 'AGENT_TRT_BUILD_OUTPUT';

/** Building the native TensorRT runner on the device failed; nothing at the output path was replaced. */
export class TrtBuildError extends KdEdgeError {
  declare readonly code: TrtBuildErrorCode;

  constructor(code: TrtBuildErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
