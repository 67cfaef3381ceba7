import type { OptionsSchema, Resolved } from '../config.js';

/** Artifact formats `kd-trainer export` writes. */
export const EXPORT_FORMATS = {
  onnx: 'float32 ONNX (model.onnx), always written: the others derive from it',
  fp16: 'float16 weights and compute, float32 inputs and outputs (model.fp16.onnx)',
  'int8-dynamic': 'int8 weights per output channel, float activations; no calibration (model.dynamic.int8.onnx)',
  int8: 'static int8 in QDQ form, calibrated once: S8S8 for TensorRT and ARM CPUs (model.int8.onnx) and U8S8 for x86 CPUs (model.int8.u8s8.onnx)',
  trt: 'TensorRT calibration cache and build plan (calib.cache, trt-plan.json); the engine is built on the device',
} as const;

/** One of {@link EXPORT_FORMATS}. */
export type ExportFormat = keyof typeof EXPORT_FORMATS;

/** Options of `kd-trainer export` (ultralytics export.py names where they exist). */
export const EXPORT_SCHEMA = {
  weights: { type: 'string', required: true, help: 'weights (.kdw) to export, or an ONNX file to quantize' },
  formats: { type: 'string', default: 'onnx', help: `comma-separated: ${Object.keys(EXPORT_FORMATS).join(', ')}` },
  out: { type: 'string', default: '', help: 'output folder (default: export/ beside the weights)' },
  imgsz: { type: 'int', default: 640, min: 32, multipleOf: 32, help: 'input size (pixels, square)' },
  batch_size: { type: 'int', default: 1, min: 1, help: 'static batch of the exported model' },
  opset: { type: 'int', default: 13, min: 13, max: 17, help: 'ONNX opset: 13 or 17' },
  dynamic: { type: 'boolean', default: false, help: 'dynamic batch, height and width' },
  raw: { type: 'boolean', default: false, help: 'export the raw head tensors instead of the decoded output0' },
  data: { type: 'string', default: '', help: 'dataset YAML (a dataset folder for a classifier): validates every artifact on its val split (mAP, or top-1/top-5)' },
  calib_data: { type: 'string', default: '', help: 'dataset YAML (a dataset folder for a classifier) for INT8 calibration (default: --data)' },
  calib_split: { type: 'enum', choices: ['train', 'val'], default: 'train', help: 'split the calibration images come from' },
  calib_method: { type: 'enum', choices: ['minmax', 'percentile', 'entropy'], default: 'minmax', help: 'activation range method' },
  calib_images: { type: 'int', default: 300, min: 1, help: 'calibration images' },
  exclude: { type: 'string', default: '', help: 'nodes kept in float: comma-separated names or /regex/ (e.g. /model.24/)' },
  quantize_head: { type: 'boolean', default: false, help: 'int8 also for the Detect decode ops (default: they stay float)' },
  activation_type: {
    type: 'enum', choices: ['both', 'int8', 'uint8'], default: 'both',
    help: 'int8 files to write from the one calibration: both (default), int8 (S8S8 only: model.int8.onnx; TensorRT, ARM CPUs such as Jetson) or uint8 (U8S8 only: model.int8.u8s8.onnx; what ORT fuses on x86 CPUs)',
  },
  activation_symmetric: { type: 'boolean', default: false, help: 'symmetric int8 activations' },
  sensitivity_images: { type: 'int', default: 32, min: 0, help: 'images for the per-tensor INT8 error report (0: none)' },
  trt_version: { type: 'string', default: '10.3.0', help: 'TensorRT version on the devices (calib.cache header); see --trt-versions for several' },
  trt_versions: {
    type: 'string', default: '',
    help: 'comma-separated TensorRT versions the fleet\'s devices report (e.g. 8.2.1,8.5.2,10.3.0): one calib.<v>.cache and trt-plan.<v>.json each; replaces --trt-version',
  },
  trt_precision: { type: 'enum', choices: ['auto', 'fp16', 'int8', 'best'], default: 'auto', help: 'engine precision (auto: best = int8 + fp16 when calibrated, else fp16)' },
  workspace: { type: 'int', default: 1024, min: 1, help: 'TensorRT workspace (MiB)' },
  dla_core: { type: 'int', default: -1, min: -1, max: 1, help: 'Jetson DLA core for the engine (-1: GPU only)' },
  gpu_fallback: { type: 'boolean', default: true, help: 'let DLA layers fall back to the GPU' },
  val_batch: { type: 'int', default: 16, min: 1, help: 'validation images per batch' },
  conf_thres: { type: 'number', default: 0.001, min: 0, max: 1, help: 'validation confidence threshold' },
  iou_thres: { type: 'number', default: 0.6, min: 0, max: 1, help: 'validation NMS IoU threshold' },
  bench_runs: { type: 'int', default: 50, min: 1, help: 'timed ONNX Runtime runs per format (batch 1)' },
  workers: { type: 'int', default: 1, min: 0, max: 32, help: 'data-loading worker threads' },
  json: { type: 'boolean', default: false, help: 'print the table as JSON' },
} as const satisfies OptionsSchema;

/** Resolved `kd-trainer export` options. */
export type ExportConfig = Resolved<typeof EXPORT_SCHEMA>;
