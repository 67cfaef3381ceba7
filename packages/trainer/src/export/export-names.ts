/**
 * File names of the artifacts in an export folder (and in a package made from it). `model.int8.onnx` is the
 * S8S8 QDQ file (int8 activations: TensorRT, ARM CPUs), as it always was; `model.int8.u8s8.onnx` the U8S8 one
 * (uint8 activations: what ONNX Runtime fuses on x86 CPUs), from the same calibration.
 */
export const ARTIFACT_FILES = {
  onnx: 'model.onnx',
  fp16: 'model.fp16.onnx',
  'int8-dynamic': 'model.dynamic.int8.onnx',
  int8: 'model.int8.onnx',
  int8U8s8: 'model.int8.u8s8.onnx',
  calibCache: 'calib.cache',
  trtPlan: 'trt-plan.json',
  sensitivity: 'int8-sensitivity.txt',
  report: 'export.json',
} as const;

/** `calib.<version>.cache` and `trt-plan.<version>.json`: the TensorRT files of one version when `--trt-versions` lists several. */
export function trtVersionFiles(trtVersion: string): { calibCache: string; trtPlan: string } {
  return { calibCache: `calib.${trtVersion}.cache`, trtPlan: `trt-plan.${trtVersion}.json` };
}
