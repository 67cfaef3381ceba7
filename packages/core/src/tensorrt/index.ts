// @kd-edge/core/tensorrt: TensorRT: the INT8 calibration cache and the engine build plan (engines are built on the device).
// Also re-exported by the package root; import this path to load only what it needs.

// TensorRT: INT8 calibration cache and engine build plan (engines are built on the device)
export { writeCalibCache, writeCalibCaches, calibCacheHeader, parseCalibCache, calibScaleHex, amaxFromCalibScale, TRT_CALIBRATION_ALGORITHMS } from './calib-cache.js';
export type { CalibCacheOptions, ParsedCalibCache, TrtCalibrationAlgorithm } from './calib-cache.js';
export { buildTrtPlan, validateTrtPlan, trtexecArgs, TRT_PRECISIONS, TRT_LAYER_PRECISIONS } from './trt-plan.js';
export type {
  TrtPlan, TrtPlanOptions, TrtPrecision, TrtLayerPrecision, TrtLayerPrecisionOverride, TrtStaticInput, TrtDynamicInput, TrtexecPaths,
} from './trt-plan.js';
export { parseTrtVersion, trtVersionNumber } from './trt-version.js';
export type { TrtVersion } from './trt-version.js';
export { TrtPlanError, CalibCacheError } from './errors.js';
