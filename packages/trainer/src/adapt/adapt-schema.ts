import { BACKEND_NAMES } from '../backend/select.js';
import type { OptionsSchema, Resolved } from '../config.js';
import { HYP_SCRATCH_LOW, type Hyp } from '../train/hyp.js';

/**
 * The fine-tuning recipe's hyperparameters (lr0, lrf and warmup_epochs are also options of `adapt`, see
 * {@link ADAPT_SCHEMA} for why these values): ultralytics' scratch-low otherwise, with the bias learning
 * rate of a warm-up (when one is asked for) starting from 0 like the other groups rather than from 0.1,
 * fifty times the fine-tuning lr0, which would throw a converged detector's biases about. Augmentation
 * stays as scratch-low has it: the serving model was trained with it, and on a few hundred frames of one
 * camera it keeps the student from learning the frames (and the teacher's mistakes on them) by heart.
 */
export const ADAPT_HYP: Hyp = { ...HYP_SCRATCH_LOW, lr0: 0.002, lrf: 0.1, warmup_epochs: 0, warmup_bias_lr: 0 };

/**
 * Options of `kd-trainer adapt`: the job (frames, teacher, student, folder), the fine-tuning recipe, the
 * acceptance rule and the export. The recipe fine-tunes a converged detector, so it departs from a
 * training from scratch (docs/adaptation.md has the reasons):
 * - `lr0` 0.002, a fifth of scratch-low's 0.01 and below ultralytics' hyp.finetune.yaml (0.0033, which
 *   fits a new head to new classes): here the classes and the head stay, only the look of the images
 *   moves, and the targets are a teacher's, noisier than human labels;
 * - `lrf` 0.1: linear decay to a tenth, not to a hundredth, since a short run has no long tail to anneal;
 * - `warmup_epochs` 0, no warm-up: warm-up protects random weights and empty momentum from large early
 *   steps; a converged detector at a fifth of the learning rate needs none, and ultralytics' floor of 100
 *   warm-up steps would be most of a run of a few hundred frames;
 * - `nbs` = the batch size, no gradient accumulation: with ultralytics' 64 a run over 300 frames at batch 16
 *   would update the weights 5 times an epoch; the weight decay is scaled to the same value either way, and
 *   since YOLOv5's loss sums over the batch, four updates of 16 move as far as one of 64, in finer steps;
 * - `epochs` 10: enough passes over a few hundred frames for the batch-norm statistics and the early
 *   layers to follow the new camera (most of a site's shift is photometric, docs/trainer.md), few enough
 *   for an edge device's CPU or GPU in an idle hour;
 * - AutoAnchor off: the anchors must stay the serving model's (and the teacher's) for the box
 *   distillation and for the post-processing that runs the exported model;
 * - distillation as `kd-trainer distill` recommends (yolo-kd, α 0.5, T 2).
 */
export const ADAPT_SCHEMA = {
  frames: { type: 'string', required: true, help: "captured frames: a folder (kd-agent's capture folder: <id>.jpg|png|webp|bmp; its .json sidecars are not read), a .txt list of image paths, or several joined by commas" },
  teacher: { type: 'string', required: true, help: 'the teacher that labels the frames and distils: an ONNX file (ultralytics or kd-trainer export), kd-trainer weights (.kdw) or an ultralytics YOLOv5 checkpoint (.pt)' },
  weights: { type: 'string', required: true, help: 'the serving student to adapt (.kdw, kd-trainer weights)' },
  out: { type: 'string', required: true, help: 'job folder (data/, run/, adapt.json, export/); the same folder again resumes the job' },
  replay: { type: 'string', default: '', help: "images of the original domain to train on beside the frames so the student does not forget it (e.g. a package's replay/images): a folder, a .txt list of image paths, or several joined by commas; an image with a label file (ultralytics' images/ → labels/ rule, e.g. replay/labels) is trained on its ground truth, one without is labelled by the teacher like the frames; never held out or scored" },
  replay_max: { type: 'int', default: 0, min: 0, help: 'most replay images used, chosen by content and seed (0: all)' },
  val: { type: 'string', default: '', help: "labelled images the adapted model must not get worse on: a dataset YAML (its val split) or a folder with images/ and labels/ (a model package's val/)" },
  epochs: { type: 'int', default: 10, min: 1, help: 'fine-tuning epochs' },
  imgsz: { type: 'int', default: 320, min: 32, help: 'labelling, training and evaluation image size (pixels; rounded up to a multiple of the largest stride)' },
  batch_size: { type: 'int', default: 16, min: 1, help: 'images per step' },
  nbs: { type: 'int', default: 0, min: 0, help: 'nominal batch size, gradients accumulated to it (0: the batch size, an update every step: a few hundred frames make few steps)' },
  lr0: { type: 'number', default: ADAPT_HYP.lr0, min: 0, help: 'initial learning rate (a fifth of training from scratch: the detector is converged)' },
  lrf: { type: 'number', default: ADAPT_HYP.lrf, min: 0, help: 'final learning rate as a fraction of lr0 (linear decay)' },
  warmup_epochs: { type: 'number', default: ADAPT_HYP.warmup_epochs, min: 0, help: 'warm-up epochs (0: none; above 0 at least 100 steps, as ultralytics)' },
  hyp: { type: 'string', default: '', help: 'hyperparameters YAML for the rest (augmentation, momentum, loss gains; hyp.scratch-low keys)' },
  augment: { type: 'boolean', default: true, help: 'mosaic/affine/HSV/flip augmentation of the adaptation frames (--no-augment: letterbox only)' },
  patience: { type: 'int', default: 0, min: 0, help: 'stop after this many epochs without a gain on the hold-out (0: never)' },
  kd_loss: { type: 'string', default: 'yolo-kd', help: "distillation terms joined with '+' (yolo-kd, feature, cwd; see kd-trainer distill)" },
  kd_alpha: { type: 'number', default: 0.5, min: 0, max: 1, help: 'α: weight of the KD loss, (1−α)·hard + α·KD (the hard loss is on the pseudo-labels)' },
  kd_temperature: { type: 'number', default: 2, min: 0.01, help: 'temperature T of the soft targets' },
  pseudo_conf: { type: 'number', default: 0.5, min: 0, max: 1, help: "the teacher's detections scoring at least this become the frames' labels" },
  holdout: { type: 'number', default: 0.2, min: 0, max: 0.9, help: 'share of the frames held out to score the adapted model against the teacher' },
  min_frames: { type: 'int', default: 10, min: 2, help: 'fewest usable frames a job starts with' },
  seed: { type: 'int', default: 0, min: 0, help: 'seed of the split (with each frame\'s content), the augmentation and the shuffling' },
  time_budget: { type: 'number', default: 0, min: 0, help: 'seconds of training, counted over resumes; past them training stops after the current step and the job goes on to the evaluation (0: no limit)' },
  min_gain: { type: 'number', default: 0.01, min: -1, max: 1, help: 'accept only when hold-out mAP50-95 rises by at least this' },
  max_loss: { type: 'number', default: 0.02, min: 0, max: 1, help: 'with --val: accept only when its mAP50-95 falls by at most this' },
  export: { type: 'boolean', default: true, help: 'export an accepted model to <out>/export (--no-export: do not)' },
  formats: { type: 'string', default: 'onnx,int8', help: 'export formats (kd-trainer export --formats); int8 and trt are calibrated on the adaptation frames' },
  calib_images: { type: 'int', default: 300, min: 1, help: 'adaptation frames used for int8 calibration' },
  backend: { type: 'enum', choices: BACKEND_NAMES, default: 'auto', help: 'compute backend' },
  device: { type: 'string', default: '', help: "ultralytics' device: cpu, or a CUDA index mapped to the tensorflow (CUDA) backend" },
  threads: { type: 'int', default: 0, min: 0, help: "model replicas on the wasm/cpu backends and the ONNX teacher's intra-op threads (0: the defaults, every core)" },
  workers: { type: 'int', default: 1, min: 0, max: 32, help: 'data-loading worker threads (0: load on the main thread)' },
  plots: { type: 'boolean', default: false, help: 'write the training plots into <out>/run (off: an edge device has no one to look at them)' },
  json: { type: 'boolean', default: false, help: 'JSON lines on stdout for a parent process: {"progress": …} per event, then {"report": …} (adapt.json) or {"cancelled": …}; the log goes to stderr' },
} as const satisfies OptionsSchema;

/** Resolved `kd-trainer adapt` options. */
export type AdaptConfig = Resolved<typeof ADAPT_SCHEMA>;
