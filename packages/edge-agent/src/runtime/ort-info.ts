import * as ort from 'onnxruntime-node';

/** The ONNX Runtime build in use, for the device status. */
export interface OrtRuntimeInfo {
  /** onnxruntime-node's version, e.g. `1.30.0`. */
  version: string;
  /** Execution providers the native binding knows, e.g. `['cpu', 'webgpu', 'cuda', 'tensorrt']`. */
  executionProviders: string[];
  /** Those shipped inside the binding; the others need their own libraries (CUDA, TensorRT) on the device. */
  bundled: string[];
}

/**
 * The ORT version and the execution providers the binding supports. A provider listed but not bundled may still
 * fail to load at session creation (missing CUDA/TensorRT libraries); {@link OrtRuntime.load} reports that.
 */
export function ortRuntimeInfo(): OrtRuntimeInfo {
  const backends = ort.listSupportedBackends();
  return {
    version: ort.env.versions.node ?? ort.env.versions.common,
    executionProviders: backends.map((b) => b.name),
    bundled: backends.filter((b) => b.bundled).map((b) => b.name),
  };
}
