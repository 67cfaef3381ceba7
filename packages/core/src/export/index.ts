// @kd-edge/core/export: ONNX export of kd-trainer models.
// Also re-exported by the package root; import this path to load only what it needs.

// ONNX export of kd-trainer models
export { exportOnnx, EXPORT_OPSETS } from './export-onnx.js';
export type { OnnxExportOptions, ExportOpset } from './export-onnx.js';
export { pyNamesDict, parsePyNames } from './python-repr.js';
