import { TRAIN_SCHEMA, type OptionsSchema, type Resolved } from '../config.js';

/** Options of `kd-trainer distill`: everything `train` takes, plus the teacher and the KD loss. */
export const DISTILL_SCHEMA = {
  ...TRAIN_SCHEMA,
  teacher: { type: 'string', required: true, help: 'teacher: an ONNX file (ultralytics or kd-trainer export), kd-trainer weights (.kdw) or an ultralytics YOLOv5 checkpoint (.pt)' },
  kd_loss: { type: 'string', default: 'yolo-kd', help: "distillation terms joined with '+': yolo-kd (detectors), kd (classifiers), feature, cwd (detectors)" },
  kd_alpha: { type: 'number', default: 0.5, min: 0, max: 1, help: 'α: weight of the KD loss, (1−α)·hard + α·λ·KD' },
  kd_lambda: { type: 'number', default: 1, min: 0, help: 'λ: scale of the KD loss against the hard loss' },
  kd_temperature: { type: 'number', default: 2, min: 0.01, help: 'temperature T of the soft targets (KL·T²)' },
  kd_warmup: { type: 'number', default: 0, min: 0, help: 'epochs on the hard loss alone before distilling' },
  kd_ramp: { type: 'number', default: 0, min: 0, help: 'epochs over which α ramps from 0 to its value after the warm-up' },
  kd_decay: { type: 'enum', choices: ['none', 'linear'], default: 'none', help: "α after the warm-up and ramp: 'none' holds it, 'linear' lets it fall to 0 at the last epoch (the student is weaned off the teacher)" },
  kd_stop: { type: 'enum', choices: ['teacher', 'never'], default: 'teacher', help: "when distillation stops: 'teacher' sets α to 0 once the student's val mAP50-95 has reached the teacher's on two validated epochs in a row (the teacher no longer leads; the hard loss trains on alone), 'never' distils to the last epoch" },
  kd_cls_mode: { type: 'enum', choices: ['sigmoid', 'softmax'], default: 'sigmoid', help: 'class distillation: per-class Bernoulli KL or a softmax over classes' },
  kd_box_mode: { type: 'enum', choices: ['ciou', 'l2'], default: 'ciou', help: "box distillation toward the teacher's decoded boxes" },
  kd_obj: { type: 'number', default: 1, min: 0, help: 'weight of the objectness KD term (times the hard obj gain)' },
  kd_cls: { type: 'number', default: 1, min: 0, help: 'weight of the class KD term (times the hard cls gain)' },
  kd_box: { type: 'number', default: 1, min: 0, help: 'weight of the box KD term (times the hard box gain)' },
  kd_feature: { type: 'number', default: 0.005, min: 0, help: 'weight of the feature-imitation term (with --kd-loss …+feature); at 1 it is ~300× the hard loss at 128 px (docs/distill.md)' },
  kd_cwd: { type: 'number', default: 0.02, min: 0, help: 'weight of the channel-wise distillation term (with --kd-loss …+cwd); at 1 it is ~50× the hard loss at 128 px (docs/distill.md)' },
  kd_cwd_temperature: { type: 'number', default: 4, min: 0.01, help: 'temperature τ of the channel-wise spatial softmax (with --kd-loss …+cwd)' },
  unlabeled: { type: 'string', default: '', help: 'images without labels (a folder, a .txt list of image paths, or several joined with commas): the student learns on them from the teacher alone (soft targets and its confident boxes as labels)' },
  unlabeled_ratio: { type: 'number', default: 1, min: 0, help: 'unlabelled images per labelled image in each epoch, spread evenly over the batches (with --unlabeled)' },
  pseudo_conf: { type: 'number', default: 0.5, min: 0, max: 1, help: "teacher detections scoring at least this become labels of the unlabelled images (with --unlabeled)" },
  teacher_cache: { type: 'string', default: '', help: "folder caching the teacher's outputs per image (only with --no-augment: the same pixels every epoch)" },
  compare: { type: 'boolean', default: false, help: 'also train a baseline without the teacher (same seed, data, schedule) and print both' },
} as const satisfies OptionsSchema;

/** Resolved `kd-trainer distill` options. */
export type DistillConfig = Resolved<typeof DISTILL_SCHEMA>;
