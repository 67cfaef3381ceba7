// @kd-edge/core/runtime: Runtime measurements with ONNX Runtime; loads onnxruntime-node.
// Also re-exported by the package root; import this path to load only what it needs.

// Runtime measurements
export { measureOrtLatency, latencyStats, percentile } from './ort-latency.js';
export type { LatencyStats, OrtLatencyOptions } from './ort-latency.js';
