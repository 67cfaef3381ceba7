import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '@kd-edge/core';
import { BACKEND_NAMES } from './backend/select.js';
import { SYNTH_DOMAIN_NAMES, describeSynthDomains } from './data/synth-domain.js';
import { HYP_SCRATCH_LOW, type Hyp } from './train/hyp.js';

/** One option of a command: its type, default, allowed values and help line. */
export type OptionSpec =
  | { type: 'int' | 'number'; default?: number; min?: number; max?: number; multipleOf?: number; help: string }
  | { type: 'string'; default?: string; help: string; required?: boolean; bare?: string }
  | { type: 'enum'; choices: readonly string[]; default: string; help: string; bare?: string }
  | { type: 'boolean'; default: boolean; help: string };

export type OptionsSchema = Record<string, OptionSpec>;

/** Flags ultralytics users type that mean one of ours (also accepted as YAML keys). */
export const FLAG_ALIASES: Readonly<Record<string, string>> = { batch: 'batch_size', img: 'imgsz', img_size: 'imgsz' };


/** Options of `kd-trainer train` (keys in ultralytics' snake_case; flags are the kebab-case forms). */
export const TRAIN_SCHEMA = {
  data: { type: 'string', required: true, help: 'dataset YAML (ultralytics format)' },
  model: { type: 'string', default: 'yolov5n', help: 'yolov5n|s|m|l|x or a model YAML' },
  weights: { type: 'string', default: '', help: 'initial weights to fine-tune from: .kdw, an ultralytics YOLOv5 .pt checkpoint or ONNX export' },
  epochs: { type: 'int', default: 100, min: 1, help: 'training epochs' },
  batch_size: { type: 'int', default: 16, min: 1, help: 'images per step' },
  imgsz: { type: 'int', default: 640, min: 32, help: 'train and val image size (pixels; rounded up to a multiple of the largest stride)' },
  backend: { type: 'enum', choices: BACKEND_NAMES, default: 'auto', help: 'compute backend' },
  device: { type: 'string', default: '', help: "ultralytics' device: cpu, or a CUDA index (0 or 0,1) mapped to the tensorflow (CUDA) backend" },
  project: { type: 'string', default: 'runs/train', help: 'save to project/name' },
  name: { type: 'string', default: 'exp', help: 'save to project/name' },
  exist_ok: { type: 'boolean', default: false, help: 'reuse project/name instead of incrementing' },
  resume: { type: 'string', default: '', bare: 'latest', help: 'resume from a last.kdw checkpoint or a run folder; bare --resume takes the latest run' },
  hyp: { type: 'string', default: '', help: 'hyperparameters YAML (hyp.scratch-low keys)' },
  seed: { type: 'int', default: 0, min: 0, help: 'global seed (augmentation, shuffling, init)' },
  cos_lr: { type: 'boolean', default: false, help: 'cosine learning-rate schedule' },
  patience: { type: 'int', default: 100, min: 0, help: 'stop after this many epochs without improvement (0: never)' },
  workers: { type: 'int', default: 1, min: 0, max: 32, help: 'data-loading worker threads (0: load on the main thread)' },
  threads: { type: 'int', default: 0, min: 0, help: 'model replicas in threads on the wasm/cpu backends (data parallel with SyncBN; 0: one per core where each gets at least 250K pixels a step), at most one per image of a step' },
  noval: { type: 'boolean', default: false, help: 'validate only after the final epoch' },
  freeze: { type: 'int', default: 0, min: 0, help: 'freeze the first N layers (ultralytics numbering: 10 = the backbone of a YOLOv5)' },
  rect: { type: 'boolean', default: false, help: 'validate in rectangular batches (images ordered by aspect ratio, less padding), as ultralytics val does' },
  cache: { type: 'enum', choices: ['none', 'ram', 'disk'], default: 'none', bare: 'ram', help: 'keep decoded training images in memory (ram; bare --cache) or beside each image as <image>.kdc (disk)' },
  single_cls: { type: 'boolean', default: false, help: 'train a multi-class dataset as one class (item)' },
  save_period: { type: 'int', default: -1, min: -1, help: 'also save weights/epoch{N}.kdw every N epochs (-1: never)' },
  noautoanchor: { type: 'boolean', default: false, help: 'keep the anchors even when they fit the training labels badly (AutoAnchor off)' },
  noplots: { type: 'boolean', default: false, help: 'save no plot files (labels.jpg, train_batch*, val_batch*, confusion matrix, PR/F1/P/R curves)' },
  conf_thres: { type: 'number', default: 0.001, min: 0, max: 1, help: 'validation confidence threshold' },
  iou_thres: { type: 'number', default: 0.6, min: 0, max: 1, help: 'validation NMS IoU threshold' },
  nbs: { type: 'int', default: 64, min: 1, help: 'nominal batch size (gradient accumulation target)' },
  augment: { type: 'boolean', default: true, help: 'mosaic/affine/HSV/flip augmentation of training images (--no-augment: letterbox only)' },
} as const satisfies OptionsSchema;

/** Options of `kd-trainer val` (ultralytics val.py names). */
export const VAL_SCHEMA = {
  weights: { type: 'string', required: true, help: 'weights: .kdw, .pt, or an ONNX export (fp32, fp16, int8) run as it is in ONNX Runtime' },
  data: { type: 'string', required: true, help: 'dataset YAML (its names and nc are the classes)' },
  imgsz: { type: 'int', default: 640, min: 32, help: 'image size (pixels; rounded up to a multiple of the largest stride)' },
  batch_size: { type: 'int', default: 32, min: 1, help: 'images per batch' },
  task: { type: 'enum', choices: ['val', 'test', 'train'], default: 'val', help: 'split to evaluate' },
  conf_thres: { type: 'number', default: 0.001, min: 0, max: 1, help: 'confidence threshold' },
  iou_thres: { type: 'number', default: 0.6, min: 0, max: 1, help: 'NMS IoU threshold' },
  max_det: { type: 'int', default: 300, min: 1, help: 'maximum detections per image' },
  backend: { type: 'enum', choices: BACKEND_NAMES, default: 'auto', help: 'compute backend for .kdw/.pt weights (ONNX files run in ONNX Runtime)' },
  device: { type: 'string', default: '', help: "ultralytics' device for .kdw/.pt weights: cpu, or a CUDA index (0) mapped to the tensorflow (CUDA) backend" },
  workers: { type: 'int', default: 1, min: 0, max: 32, help: 'data-loading worker threads' },
  save_txt: { type: 'boolean', default: false, help: 'save labels/<image>.txt: class and normalized xywh per detection' },
  save_conf: { type: 'boolean', default: false, help: 'append the confidence to each --save-txt line' },
  save_json: { type: 'boolean', default: false, help: 'save predictions.json (COCO results: image_id, category_id, bbox [x, y, w, h], score)' },
  rect: { type: 'boolean', default: false, help: 'rectangular batches (images ordered by aspect ratio, less padding), as ultralytics val; not for fixed-size ONNX' },
  plots: { type: 'boolean', default: false, help: 'save confusion_matrix.png, PR/F1/P/R curves and val_batch images to the run folder' },
  project: { type: 'string', default: 'runs/val', help: 'with --save-txt or --save-json: save to project/name' },
  name: { type: 'string', default: 'exp', help: 'with --save-txt or --save-json: save to project/name' },
  exist_ok: { type: 'boolean', default: false, help: 'reuse project/name instead of incrementing' },
  json: { type: 'boolean', default: false, help: 'print the metrics as JSON' },
} as const satisfies OptionsSchema;

/** Options of `kd-trainer data synth`. */
export const SYNTH_SCHEMA = {
  out: { type: 'string', required: true, help: 'output folder' },
  train: { type: 'int', default: 512, min: 1, help: 'training images' },
  val: { type: 'int', default: 128, min: 1, help: 'validation images' },
  imgsz: { type: 'int', default: 128, min: 32, help: 'image size (pixels)' },
  classes: { type: 'int', default: 6, min: 1, max: 12, help: 'number of shape classes (the first N of circle, square, triangle, star, cross, ring, ellipse, hexagon, diamond, pentagon, semicircle, arrow)' },
  shapes: { type: 'string', default: '', help: 'comma-separated shape names as the classes, in order (overrides --classes), e.g. ellipse,hexagon,diamond' },
  difficulty: { type: 'enum', choices: ['hard', 'easy'], default: 'hard', help: 'hard: clutter, small shapes, noise and blur (models learn slowly); easy: plain backgrounds, 1-4 medium and large shapes (models learn in 30 epochs; for comparing recipes such as distillation)' },
  domain: { type: 'enum', choices: SYNTH_DOMAIN_NAMES, default: 'a', help: `the camera and site the images come from, same classes and labels (for domain-shift and adaptation tests; designed on --difficulty easy; other domains draw other scenes at the same --seed): ${describeSynthDomains()}` },
  seed: { type: 'int', default: 0, min: 0, help: 'seed' },
  task: { type: 'enum', choices: ['detect', 'classify'], default: 'detect', help: 'detect: YOLO images/ and labels/ with data.yaml; classify: one shape per image in ROOT/{train,val}/<shape>/ (ultralytics classify layout), --train/--val images spread evenly over the classes' },
} as const satisfies OptionsSchema;

/** The resolved value type of a schema. */
export type Resolved<S extends OptionsSchema> = {
  -readonly [K in keyof S]: S[K] extends { type: 'int' | 'number' } ? number
    : S[K] extends { type: 'boolean' } ? boolean
    : S[K] extends { type: 'enum'; choices: readonly (infer C)[] } ? C
    : string;
};

export type TrainConfig = Resolved<typeof TRAIN_SCHEMA>;
export type ValConfig = Resolved<typeof VAL_SCHEMA>;
export type SynthConfig = Resolved<typeof SYNTH_SCHEMA>;

/** Normalises `batch-size`, `batchSize` and `batch_size` to the schema's snake_case key. */
export function normaliseKey(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/-/g, '_').toLowerCase();
}

// Keys ultralytics users type that mean one of ours.
const ALIASES: Record<string, string> = { ...FLAG_ALIASES, cfg_model: 'model' };

/**
 * Validates raw values (from a YAML file and flags, flags winning) against a schema: unknown keys,
 * wrong types, out-of-range or disallowed values fail with a ConfigError naming the field, the value
 * and what is allowed. Keys listed in `passthrough` are returned untouched in `extra`.
 */
export function resolveOptions<S extends OptionsSchema>(
  schema: S,
  layers: Record<string, unknown>[],
  passthrough: readonly string[] = [],
): { config: Resolved<S>; extra: Record<string, unknown> } {
  const merged: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [k0, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      const k1 = normaliseKey(k0);
      const k = ALIASES[k1] ?? k1;
      if (k in schema) merged[k] = v;
      else if (passthrough.includes(k)) extra[k] = v;
      else throw new ConfigError(k0, v, `one of ${[...Object.keys(schema), ...passthrough].join(', ')}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(schema)) out[k] = checkValue(k, merged[k], spec);
  return { config: out as Resolved<S>, extra };
}

function checkValue(field: string, raw: unknown, spec: OptionSpec): unknown {
  if (raw === undefined || raw === null) {
    if ('required' in spec && spec.required) throw new ConfigError(field, raw, `a ${spec.type} (required)`);
    return spec.default ?? (spec.type === 'string' ? '' : undefined);
  }
  switch (spec.type) {
    case 'int':
    case 'number': {
      const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      const what = spec.type === 'int' ? 'an integer' : 'a number';
      const range = `${what}${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}${spec.max !== undefined ? ` ≤ ${spec.max}` : ''}${spec.multipleOf ? `, a multiple of ${spec.multipleOf}` : ''}`;
      if (typeof v !== 'number' || !Number.isFinite(v) || (spec.type === 'int' && !Number.isInteger(v))) throw new ConfigError(field, raw, range);
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) throw new ConfigError(field, raw, range);
      if (spec.multipleOf && v % spec.multipleOf !== 0) throw new ConfigError(field, raw, range);
      return v;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new ConfigError(field, raw, 'true or false');
    case 'enum':
      if (typeof raw !== 'string' || !spec.choices.includes(raw)) throw new ConfigError(field, raw, spec.choices.join(', '));
      return raw;
    case 'string':
      if (typeof raw !== 'string' && typeof raw !== 'number') throw new ConfigError(field, raw, 'a string');
      return String(raw);
  }
}

/** Reads a YAML mapping (a `--cfg` or `--hyp` file); anything but a mapping is an error naming the file. */
export async function readYamlMapping(file: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(what, file, `a readable YAML file (${(e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigError(what, file, `valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(what, file, 'a YAML mapping of key: value');
  return doc as Record<string, unknown>;
}

/** Hyperparameter keys, for passthrough from a `--cfg` file and validation of `--hyp`. */
export const HYP_KEYS = Object.keys(HYP_SCRATCH_LOW) as (keyof Hyp)[];

/** Merges hyperparameter overrides onto scratch-low, each a finite number ≥ 0. */
export function resolveHyp(...layers: Record<string, unknown>[]): Hyp {
  const hyp: Hyp = { ...HYP_SCRATCH_LOW };
  for (const layer of layers) {
    for (const [k0, v] of Object.entries(layer)) {
      const k = normaliseKey(k0);
      if (!(HYP_KEYS as string[]).includes(k)) throw new ConfigError(`hyp.${k0}`, v, HYP_KEYS.join(', '));
      const n = typeof v === 'string' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new ConfigError(`hyp.${k0}`, v, 'a finite number ≥ 0');
      (hyp as unknown as Record<string, number>)[k] = n;
    }
  }
  return hyp;
}
