/** File names of the artifacts in an export folder (and in a package made from it). */
export const ARTIFACT_FILES = {
  onnx: 'model.onnx',
  fp16: 'model.fp16.onnx',
  'int8-dynamic': 'model.dynamic.int8.onnx',
  int8: 'model.int8.onnx',
  calibCache: 'calib.cache',
  trtPlan: 'trt-plan.json',
  sensitivity: 'int8-sensitivity.txt',
  report: 'export.json',
} as const;
