import { BACKEND_NAMES } from '../backend/select.js';
import type { OptionsSchema, Resolved } from '../config.js';
import { STOP_EPOCHS } from '../distill/kd-stop.js';

// Shared by the three commands.
const RUNTIME = {
  backend: { type: 'enum', choices: BACKEND_NAMES, default: 'auto', help: 'compute backend for TensorFlow.js models (ONNX files run in ONNX Runtime)' },
  device: { type: 'string', default: '', help: "ultralytics' device: cpu, or a CUDA index (0) mapped to the tensorflow (CUDA) backend" },
  threads: { type: 'int', default: 0, min: 0, help: "threads of ONNX Runtime (an ONNX teacher or model) and of image decoding (sharp); 0: their defaults. Training itself runs one model replica" },
} as const satisfies OptionsSchema;

/**
 * Options of `kd-trainer classify train`: ultralytics YOLOv5 v7.0 classify/train.py's names and
 * defaults (Adam, lr0 0.001, decay 5e-5, label smoothing 0.1, linear decay to lrf 0.01, 10 epochs of
 * 64 images at 224 px), and its augmentation (classify_albumentations) as options.
 */
export const CLASSIFY_TRAIN_SCHEMA = {
  data: { type: 'string', required: true, help: 'dataset folder: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (or test/)' },
  model: { type: 'string', default: 'yolov5n-cls', help: 'yolov5n-cls|s-cls|m-cls|l-cls|x-cls (the -cls may be left out)' },
  weights: { type: 'string', default: '', help: 'initial weights: a kd-trainer .kdw classifier (its head is fresh when the class count differs) or detector (its backbone is transferred)' },
  epochs: { type: 'int', default: 10, min: 1, help: 'training epochs' },
  batch_size: { type: 'int', default: 64, min: 1, help: 'images per step (validation uses twice as many)' },
  imgsz: { type: 'int', default: 224, min: 32, help: 'train and val image size (pixels; rounded up to a multiple of 32)' },
  optimizer: { type: 'enum', choices: ['Adam', 'AdamW', 'SGD'], default: 'Adam', help: 'optimizer (ultralytics smart_optimizer groups: no decay on biases and BatchNorm weights)' },
  lr0: { type: 'number', default: 0.001, min: 0, help: 'initial learning rate' },
  lrf: { type: 'number', default: 0.01, min: 0, max: 1, help: 'final learning rate as a fraction of lr0' },
  momentum: { type: 'number', default: 0.9, min: 0, max: 0.999, help: "Adam's beta1, SGD's Nesterov momentum" },
  decay: { type: 'number', default: 5e-5, min: 0, help: 'weight decay' },
  label_smoothing: { type: 'number', default: 0.1, min: 0, max: 1, help: 'label smoothing epsilon of the cross-entropy' },
  dropout: { type: 'number', default: 0, min: 0, max: 0.99, help: 'dropout before the linear layer (training only)' },
  cos_lr: { type: 'boolean', default: false, help: 'cosine learning-rate decay instead of linear' },
  augment: { type: 'boolean', default: true, help: 'random resized crop, flip and colour jitter of training images (--no-augment: centre crop only)' },
  crop_scale: { type: 'number', default: 0.08, min: 0.01, max: 1, help: 'smallest area fraction of the random resized crop (upper bound 1)' },
  fliplr: { type: 'number', default: 0.5, min: 0, max: 1, help: 'probability of a horizontal flip' },
  jitter: { type: 'number', default: 0.4, min: 0, max: 1, help: 'colour jitter strength (brightness, contrast, saturation)' },
  cache: { type: 'enum', choices: ['none', 'ram'], default: 'none', bare: 'ram', help: 'keep decoded training and val images in memory (bare --cache)' },
  seed: { type: 'int', default: 0, min: 0, help: 'global seed (initialisation, shuffling, augmentation)' },
  ...RUNTIME,
  project: { type: 'string', default: 'runs/train-cls', help: 'save to project/name' },
  name: { type: 'string', default: 'exp', help: 'save to project/name' },
  exist_ok: { type: 'boolean', default: false, help: 'reuse project/name instead of incrementing' },
  resume: {
    type: 'string', default: '', bare: 'latest',
    help: "continue an interrupted run: its folder or its weights/last.kdw, with the run's own options (no --data needed; --backend, --device, --threads may change); bare --resume takes the newest last.kdw below --project",
  },
} as const satisfies OptionsSchema;

/** Options of `kd-trainer classify distill`: every train option plus the teacher and Hinton's KD settings. */
export const CLASSIFY_DISTILL_SCHEMA = {
  ...CLASSIFY_TRAIN_SCHEMA,
  teacher: { type: 'string', required: true, help: "teacher classifier: an ONNX file (kd-trainer or ultralytics -cls export) or kd-trainer weights (.kdw); --resume takes the run's own teacher and KD settings" },
  kd_temperature: { type: 'number', default: 4, min: 0.01, help: 'temperature T of the soft targets (KL·T²; Hinton et al. 2015)' },
  kd_alpha: { type: 'number', default: 0.7, min: 0, max: 1, help: 'α: loss = α·KD + (1−α)·CE' },
  kd_warmup: { type: 'number', default: 0, min: 0, help: 'epochs on the cross-entropy alone before distilling (the teacher does not run meanwhile)' },
  kd_stop: { type: 'enum', choices: ['teacher', 'never'], default: 'teacher', help: `when distillation stops: 'teacher' sets α to 0 once the student's val top-1 has reached the teacher's on ${STOP_EPOCHS} epochs in a row (the teacher no longer leads; the cross-entropy trains on alone), 'never' distils to the last epoch` },
  compare: { type: 'boolean', default: false, help: 'first train the same student without the teacher (same seed, data order, schedule) and print teacher, baseline and distilled accuracy' },
} as const satisfies OptionsSchema;

/** Options of `kd-trainer classify val` (ultralytics classify/val.py names). */
export const CLASSIFY_VAL_SCHEMA = {
  weights: { type: 'string', required: true, help: 'classifier weights: .kdw, or an ONNX export run as it is in ONNX Runtime' },
  data: { type: 'string', required: true, help: 'dataset folder (ROOT/train/<class>/… gives the class names; ROOT/val or ROOT/test is validated)' },
  imgsz: { type: 'int', default: 224, min: 32, help: 'image size (pixels; a static ONNX model uses its own)' },
  batch_size: { type: 'int', default: 128, min: 1, help: 'images per batch' },
  task: { type: 'enum', choices: ['val', 'test', 'train'], default: 'val', help: 'split to evaluate (val falls back to test/ when there is no val/)' },
  ...RUNTIME,
  json: { type: 'boolean', default: false, help: 'print the metrics as JSON' },
} as const satisfies OptionsSchema;

/** Resolved `kd-trainer classify train` options. */
export type ClassifyTrainConfig = Resolved<typeof CLASSIFY_TRAIN_SCHEMA>;
/** Resolved `kd-trainer classify distill` options. */
export type ClassifyDistillConfig = Resolved<typeof CLASSIFY_DISTILL_SCHEMA>;
/** Resolved `kd-trainer classify val` options. */
export type ClassifyValConfig = Resolved<typeof CLASSIFY_VAL_SCHEMA>;
