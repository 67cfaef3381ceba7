// @kd-edge/core/quant: Quantization (FP16, INT8 weight-only, INT8 static QDQ, calibration, sensitivity); loads onnxruntime-node.
// Also re-exported by the package root; import this path to load only what it needs.

// Quantization: FP16, INT8 weight-only, INT8 static QDQ, calibration, sensitivity
export { quantizeModel, QUANT_MODES } from './quantize.js';
export type { QuantMode, QuantizeModelOptions, QuantizeReport, CalibrationSource } from './quantize.js';
export { convertToFloat16, DEFAULT_FP16_BLOCK_OPS } from './fp16.js';
export type { Float16Options, Float16Result } from './fp16.js';
export { quantizeWeightsInt8, INT8_WEIGHT_OPS } from './int8-weights.js';
export type { Int8WeightsOptions, Int8WeightsResult, SkippedNode } from './int8-weights.js';
export { quantizeQdq, DEFAULT_QDQ_OP_TYPES, QDQ_OP_HANDLERS } from './qdq.js';
export type { QdqOptions, QdqResult, QdqOpType } from './qdq.js';
export { calibrate, selectCalibrationTensors } from './calibration-run.js';
export type { CalibrateOptions, CalibrationResult, CalibrationTensorOptions } from './calibration-run.js';
export { sensitivityReport, formatSensitivityTable } from './sensitivity.js';
export type { SensitivityOptions, SensitivityRow, SensitivityTableOptions } from './sensitivity.js';
export { createCollector, CALIBRATION_METHODS } from './calibrate/create-collector.js';
export { MinMaxCollector } from './calibrate/minmax-collector.js';
export type { MinMaxOptions } from './calibrate/minmax-collector.js';
export { PercentileCollector } from './calibrate/percentile-collector.js';
export type { PercentileOptions } from './calibrate/percentile-collector.js';
export { EntropyCollector } from './calibrate/entropy-collector.js';
export type { EntropyOptions } from './calibrate/entropy-collector.js';
export type { CollectorOptionsMap } from './calibrate/create-collector.js';
export type { TensorRange, CalibrationMethod, RangeCollector } from './calibrate/types.js';
export {
  computeScaleZeroPoint, qRange, quantizePerTensor, quantizeWeightsPerChannel, quantizeBiasInt32, roundHalfEven,
} from './qparams.js';
export type { QuantType, ScaleZeroPoint, ScaleZeroPointOptions, QRange, QRangeOptions, PerTensorQuantized, PerChannelQuantized, BiasQuantized } from './qparams.js';
export { QuantError } from './quant-error.js';
export type { NamePattern } from './graph-index.js';

// Graph surgery used by calibration and by distillation teachers
export { withExtraOutputs } from './ort-run.js';
export type { BatchSource } from './ort-run.js';
