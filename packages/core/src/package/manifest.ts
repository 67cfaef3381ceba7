import { ADAPT_RECIPE_KEYS, adaptRecipeSchema } from './adapt-recipe.js';
import { PackageError } from './errors.js';
import { packagePathProblem } from './package-path.js';
import { isSemver } from './semver.js';
import { showValue } from '../util/show-value.js';
import { parseTrtVersion } from '../tensorrt/trt-version.js';

/** The manifest format this code reads and writes (`manifestVersion`); any other is refused. */
export const MANIFEST_VERSION = 1;

/** The manifest's file name at the package root; it is the one file `files` does not list. */
export const MANIFEST_FILE = 'manifest.json';

/** What a model does. */
export const TASKS = ['detect', 'classify'] as const;
/** A model task. */
export type Task = (typeof TASKS)[number];

/** Numeric precision of a model file. */
export const PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
/** A model file's precision. */
export type Precision = (typeof PRECISIONS)[number];

/**
 * Output layouts: `yolov5-decoded` is ultralytics' `[N, A, 5 + nc]` (boxes in pixels, sigmoid
 * applied), `yolov5-raw` the undecoded head output, `logits` a classifier's `[N, nc]`.
 */
export const OUTPUT_LAYOUTS = ['yolov5-decoded', 'yolov5-raw', 'logits'] as const;
/** An output layout. */
export type OutputLayout = (typeof OUTPUT_LAYOUTS)[number];

/**
 * What a package is for: `model` serves (the default when the manifest has no `role`), `teacher` only
 * labels captured frames for on-device adaptation and is never served.
 */
export const PACKAGE_ROLES = ['model', 'teacher'] as const;
/** A package role. */
export type PackageRole = (typeof PACKAGE_ROLES)[number];

/** Formats of trainable weights a package may carry; only kd-trainer's `.kdw` for now. */
export const WEIGHTS_FORMATS = ['kdw'] as const;
/** A trainable-weights format. */
export type WeightsFormat = (typeof WEIGHTS_FORMATS)[number];

/** Runtimes a {@link ManifestTarget} names: ONNX Runtime (CPU), or a TensorRT engine built on the device. */
export const TARGET_RUNTIMES = ['onnxruntime', 'tensorrt'] as const;
/** A target's runtime. */
export type TargetRuntime = (typeof TARGET_RUNTIMES)[number];

/** CPU architectures a {@link ManifestTarget} names, as `uname -m` spells them. */
export const TARGET_ARCHS = ['x86_64', 'aarch64', 'armv7l'] as const;
/** A target's architecture. */
export type TargetArch = (typeof TARGET_ARCHS)[number];

/** How an int8 QDQ file quantizes: int8 activations (S8S8) or uint8 activations (U8S8); weights are int8 in both. */
export const INT8_QUANTIZATIONS = ['s8s8', 'u8s8'] as const;
/** An int8 file's activation/weight types. */
export type Int8Quantization = (typeof INT8_QUANTIZATIONS)[number];

/** A tensor dimension: a size, or a symbolic name such as `'batch'`. */
export type Dim = number | string;

/** Pixel normalisation: `(pixel * scale - mean[c]) / std[c]`. */
export interface ManifestNormalisation {
  scale: number;
  mean: number[];
  std: number[];
}

/** ultralytics letterbox settings used before inference. */
export interface ManifestLetterbox {
  /** Padding colour per channel, 0–255. */
  color: number[];
  /** Pad only to the next multiple of `stride` (ultralytics `auto`). */
  auto: boolean;
  stride: number;
}

/** The model input tensor and how an image becomes it. */
export interface ManifestInput {
  name: string;
  shape: Dim[];
  layout: 'NCHW';
  dtype: 'float32';
  normalisation: ManifestNormalisation;
  /** Required for `detect`; a classifier may resize without letterboxing. */
  letterbox?: ManifestLetterbox;
}

/** The model output tensor. */
export interface ManifestOutput {
  name: string;
  layout: OutputLayout;
  shape: Dim[];
}

/** One model file of the package. */
export interface ManifestModel {
  /** Package path of the ONNX file; listed in `files`. */
  file: string;
  precision: Precision;
  format: 'onnx';
  /** The model an agent loads unless told otherwise; at most one has it, else the first model is the default. */
  default?: boolean;
  /** Metrics measured on this file (e.g. after INT8 quantization). */
  metrics?: Record<string, number>;
}

/**
 * Which model file serves which kind of device, most preferred first (`targets`): an agent serves the first
 * entry for its runtime and architecture (see the agent's `pickTarget`). A manifest without `targets` serves
 * its default model everywhere, as before.
 */
export interface ManifestTarget {
  /** A model of `models` (for `tensorrt`: the ONNX file the engine is built from). */
  file: string;
  precision: Precision;
  runtime: TargetRuntime;
  /** Architectures it is for (non-empty, no repeats). */
  arch: TargetArch[];
  /** int8 only: S8S8 or U8S8 QDQ. */
  quantization?: Int8Quantization;
  /** Why this file for these devices (at most 500 characters). */
  note?: string;
}

/** A file of the package with its SHA-256 (lower-case hex) and size in bytes. */
export interface ManifestFile {
  path: string;
  sha256: string;
  size: number;
}

/** TensorRT inputs the device builds its engine from. */
export interface ManifestTensorrt {
  /** Package path of the build plan (conventionally `trt-plan.json`). */
  plan: string;
  /** Package path of the INT8 calibration cache (conventionally `calib.cache`); absent for FP16 builds. */
  calibCache?: string;
  /**
   * One plan (and cache, whose header names the version) per TensorRT version the fleet's devices report; a device
   * uses the entry of its exact version, and builds fp16 when none matches. `plan`/`calibCache` above are the first
   * entry's. Absent: the single plan above, for the version it names.
   */
  versions?: ManifestTrtVersion[];
}

/** The TensorRT files of one TensorRT version. */
export interface ManifestTrtVersion {
  /** `major.minor.patch`, as the device's trtexec reports it (e.g. `8.2.1`). */
  trtVersion: string;
  plan: string;
  calibCache?: string;
}

/** A small validation set for the on-device accuracy check (YOLO txt labels). */
export interface ManifestVal {
  /** Package directory of the images (conventionally `val/images`). */
  images: string;
  /** Package directory of the labels (conventionally `val/labels`). */
  labels: string;
}

/**
 * Images of the domain the model was trained on (`replay`), for on-device adaptation to train on beside the
 * device's frames so the model does not forget it (`kd-trainer adapt --replay`), with their ground-truth YOLO labels
 * when `labels` is given (older packages: images only, which the device's teacher labels). Kept apart from `val/`,
 * which must never be trained on (it is the forgetting check of the adaptation's acceptance).
 */
export interface ManifestReplay {
  /** Package directory of the images (conventionally `replay/images`; `replay` in packages without labels). */
  dir: string;
  /** How many: the number of files listed under `dir`. */
  images: number;
  /**
   * Package directory of their label files (conventionally `replay/labels`, beside `dir`): `<stem>.txt` for the image
   * `<stem>.<ext>` under `dir` (an empty file: an image with nothing on it). Images without one are labelled by the teacher.
   */
  labels?: string;
}

/** The trainable weights the package's models were exported from, so a device can fine-tune the exact serving model. */
export interface ManifestWeights {
  /** Package path of the weights file (conventionally `weights/model.kdw`); listed in `files`. */
  path: string;
  format: WeightsFormat;
}

/**
 * The recipe of an on-device adaptation of this model (`adapt.recipe`): `kd-trainer adapt`'s options as the `adapt`
 * command names them, with the same bounds (core's `adaptRecipeSchema`). An agent takes each value the command does
 * not set from here, before its own configuration and the trainer's defaults.
 */
export interface ManifestAdaptRecipe {
  epochs?: number;
  imgsz?: number;
  lr0?: number;
  pseudoConf?: number;
  holdout?: number;
  timeBudgetSec?: number;
  memoryBudgetMb?: number;
  minGain?: number;
  maxLoss?: number;
}

/** How the model is adapted on a device (`adapt`): for now, its recipe. */
export interface ManifestAdapt {
  recipe: ManifestAdaptRecipe;
}

/** An Ed25519 signature over the canonical JSON of the manifest without this field. */
export interface ManifestSignature {
  algorithm: 'ed25519';
  /** {@link keyIdOf} the signing key: 16 lower-case hex characters. */
  keyId: string;
  /** The 64-byte signature, base64. */
  value: string;
}

/** The manifest of a model package (`manifest.json`), format version 1. */
export interface Manifest {
  manifestVersion: typeof MANIFEST_VERSION;
  /** A slug: lower-case letters, digits, `-`, `_`, `.`; starts with a letter or digit; at most 64 characters. */
  name: string;
  /** Semver 2.0.0. */
  version: string;
  /** ISO 8601 date-time with seconds and a zone (`2026-05-01T12:00:00Z`). */
  createdAt: string;
  task: Task;
  input: ManifestInput;
  output: ManifestOutput;
  /** Class names, index = class id. */
  names: string[];
  /** Detection strides per head level; empty for `classify`. */
  strides: number[];
  /** Anchor (w, h) pairs per head level, flattened; empty for `classify`. */
  anchors: number[][];
  /** Precision of the default model. */
  precision: Precision;
  models: ManifestModel[];
  /** Every file of the package except manifest.json. */
  files: ManifestFile[];
  /** Metrics measured at export, e.g. `{ 'metrics/mAP50(B)': 0.5 }`. */
  metrics: Record<string, number>;
  /** Absent means 'model' (see {@link manifestRole}); kept absent when absent so old manifests round-trip. */
  role?: PackageRole;
  weights?: ManifestWeights;
  tensorrt?: ManifestTensorrt;
  /** Which file serves which device (see {@link ManifestTarget}); absent: the default model everywhere. */
  targets?: ManifestTarget[];
  val?: ManifestVal;
  replay?: ManifestReplay;
  /** The recipe of an on-device adaptation (see {@link ManifestAdapt}); absent: the agent's and the trainer's defaults. */
  adapt?: ManifestAdapt;
  signature?: ManifestSignature;
}

/** A manifest before signing. */
export type UnsignedManifest = Omit<Manifest, 'signature'>;

// --- validation helpers: each names the field, the value and what is allowed ---

function fail(field: string, value: unknown, allowed: string): never {
  throw new PackageError('PACKAGE_MANIFEST_INVALID', `invalid manifest field ${field}: ${showValue(value)} (allowed: ${allowed})`, { field });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A plain object with every required key and no unknown one; `field` '' is the manifest root. */
function record(value: unknown, field: string, required: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  const at = (key: string): string => (field === '' ? key : `${field}.${key}`);
  if (!isRecord(value)) fail(field === '' ? '(root)' : field, value, `an object with ${required.join(', ')}`);
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) {
      fail(at(key), value[key], `no such field; known: ${[...required, ...optional].join(', ')}`);
    }
  }
  for (const key of required) if (value[key] === undefined) fail(at(key), undefined, 'a value (the field is required)');
  return value;
}

function string(value: unknown, field: string, allowed = 'a non-empty string', test?: (s: string) => boolean): string {
  if (typeof value !== 'string' || value.length === 0 || (test !== undefined && !test(value))) fail(field, value, allowed);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, choices: readonly T[]): T {
  if (!choices.includes(value as T)) fail(field, value, choices.map((c) => `'${c}'`).join(' | '));
  return value as T;
}

function finite(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(field, value, 'a finite number');
  return value;
}

function positive(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(field, value, 'a finite number > 0');
  return value;
}

function positiveInt(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) fail(field, value, 'an integer > 0');
  return value as number;
}

function array(value: unknown, field: string, allowed: string, minLength = 0): unknown[] {
  if (!Array.isArray(value) || value.length < minLength) fail(field, value, allowed);
  return value;
}

function numberRecord(value: unknown, field: string): Record<string, number> {
  if (!isRecord(value)) fail(field, value, 'an object of finite numbers');
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key.length === 0) fail(field, value, 'non-empty metric names');
    out[key] = finite(v, `${field}[${JSON.stringify(key)}]`);
  }
  return out;
}

function dims(value: unknown, field: string): Dim[] {
  return array(value, field, 'a non-empty array of dimensions', 1).map((d, i) => {
    if (typeof d === 'string') return string(d, `${field}[${i}]`, 'an integer > 0 or a symbolic name');
    if (!Number.isSafeInteger(d) || (d as number) <= 0) fail(`${field}[${i}]`, d, 'an integer > 0 or a symbolic name');
    return d as number;
  });
}

function packagePath(value: unknown, field: string): string {
  const path = string(value, field, 'a relative POSIX path inside the package');
  const problem = packagePathProblem(path);
  if (problem?.escape === true) {
    throw new PackageError('PACKAGE_PATH_ESCAPE', `manifest field ${field} ${showValue(path)} leaves the package: ${problem.reason}`, { field, path });
  }
  if (problem !== undefined) fail(field, path, `a relative POSIX path inside the package (${problem.reason})`);
  return path;
}

const SLUG_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const KEY_ID_RE = /^[0-9a-f]{16}$/;
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** Whether `text` is an ISO 8601 / RFC 3339 date-time with seconds and a zone that names a real instant. */
export function isIsoDateTime(text: string): boolean {
  const m = typeof text === 'string' ? ISO_RE.exec(text) : null;
  if (m === null) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const zoneOk = m[7] === undefined || (Number(m[7]) <= 23 && Number(m[8]) <= 59);
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59 && zoneOk;
}

function isBase64Signature(text: string): boolean {
  return /^[A-Za-z0-9+/]{86}==$/.test(text) && Buffer.from(text, 'base64').length === 64;
}

/** Check the `signature` field alone; used before the rest of the manifest is trusted. */
export function parseSignature(value: unknown, field = 'signature'): ManifestSignature {
  const s = record(value, field, ['algorithm', 'keyId', 'value']);
  return {
    algorithm: oneOf(s.algorithm, `${field}.algorithm`, ['ed25519'] as const),
    keyId: string(s.keyId, `${field}.keyId`, '16 lower-case hex characters', (v) => KEY_ID_RE.test(v)),
    value: string(s.value, `${field}.value`, 'a base64 Ed25519 signature (64 bytes)', isBase64Signature),
  };
}

/**
 * Check the manifest's format version; anything but {@link MANIFEST_VERSION} is refused with
 * 'PACKAGE_MANIFEST_VERSION' (a missing or non-integer one is 'PACKAGE_MANIFEST_INVALID').
 */
export function checkManifestVersion(json: unknown): void {
  if (!isRecord(json)) fail('(root)', json, 'a JSON object');
  const v = json.manifestVersion;
  if (!Number.isSafeInteger(v)) fail('manifestVersion', v, `the integer ${MANIFEST_VERSION}`);
  if (v !== MANIFEST_VERSION) {
    throw new PackageError('PACKAGE_MANIFEST_VERSION', `manifestVersion ${showValue(v)} is not supported (this build reads ${MANIFEST_VERSION})`, {
      field: 'manifestVersion',
    });
  }
}

const TOP_REQUIRED = [
  'manifestVersion', 'name', 'version', 'createdAt', 'task', 'input', 'output', 'names',
  'strides', 'anchors', 'precision', 'models', 'files', 'metrics',
] as const;
const TOP_OPTIONAL = ['role', 'weights', 'tensorrt', 'targets', 'val', 'replay', 'adapt', 'signature'] as const;

function parseInput(value: unknown, task: Task): ManifestInput {
  const v = record(value, 'input', ['name', 'shape', 'layout', 'dtype', 'normalisation'], ['letterbox']);
  const shape = dims(v.shape, 'input.shape');
  if (shape.length !== 4) fail('input.shape', shape, 'four dimensions [N, C, H, W]');
  const n = record(v.normalisation, 'input.normalisation', ['scale', 'mean', 'std']);
  const channels = typeof shape[1] === 'number' ? shape[1] : undefined;
  const perChannel = (x: unknown, field: string, check: (e: unknown, f: string) => number): number[] => {
    const list = array(x, field, `one number per channel${channels === undefined ? '' : ` (${channels})`}`, 1);
    if (channels !== undefined && list.length !== channels) fail(field, x, `${channels} values, one per channel`);
    return list.map((e, i) => check(e, `${field}[${i}]`));
  };
  const mean = perChannel(n.mean, 'input.normalisation.mean', finite);
  const std = perChannel(n.std, 'input.normalisation.std', positive);
  if (std.length !== mean.length) fail('input.normalisation.std', n.std, `${mean.length} values, as many as mean`);
  const input: ManifestInput = {
    name: string(v.name, 'input.name'),
    shape,
    layout: oneOf(v.layout, 'input.layout', ['NCHW'] as const),
    dtype: oneOf(v.dtype, 'input.dtype', ['float32'] as const),
    normalisation: { scale: positive(n.scale, 'input.normalisation.scale'), mean, std },
  };
  if (v.letterbox !== undefined) {
    const l = record(v.letterbox, 'input.letterbox', ['color', 'auto', 'stride']);
    const color = array(l.color, 'input.letterbox.color', `${mean.length} integers 0-255`, 1);
    if (color.length !== mean.length) fail('input.letterbox.color', l.color, `${mean.length} integers 0-255, one per channel`);
    color.forEach((c, i) => {
      if (!Number.isInteger(c) || (c as number) < 0 || (c as number) > 255) fail(`input.letterbox.color[${i}]`, c, 'an integer 0-255');
    });
    if (typeof l.auto !== 'boolean') fail('input.letterbox.auto', l.auto, 'true | false');
    input.letterbox = { color: color as number[], auto: l.auto, stride: positiveInt(l.stride, 'input.letterbox.stride') };
  } else if (task === 'detect') {
    fail('input.letterbox', undefined, "letterbox settings (required when task is 'detect')");
  }
  return input;
}

function parseOutput(value: unknown, task: Task, classes: number): ManifestOutput {
  const v = record(value, 'output', ['name', 'layout', 'shape']);
  const layout = oneOf(v.layout, 'output.layout', OUTPUT_LAYOUTS);
  const shape = dims(v.shape, 'output.shape');
  if (task === 'classify' && layout !== 'logits') fail('output.layout', layout, "'logits' when task is 'classify'");
  if (task === 'detect' && layout === 'logits') fail('output.layout', layout, "'yolov5-decoded' | 'yolov5-raw' when task is 'detect'");
  const last = shape[shape.length - 1];
  if (layout === 'yolov5-decoded') {
    if (shape.length !== 3) fail('output.shape', shape, '[N, A, 5 + nc] for yolov5-decoded');
    if (typeof last === 'number' && last !== 5 + classes) fail('output.shape[2]', last, `5 + names.length = ${5 + classes}`);
  } else if (layout === 'logits') {
    if (shape.length !== 2) fail('output.shape', shape, '[N, nc] for logits');
    if (typeof last === 'number' && last !== classes) fail('output.shape[1]', last, `names.length = ${classes}`);
  }
  return { name: string(v.name, 'output.name'), layout, shape };
}

function parseFiles(value: unknown): ManifestFile[] {
  const list = array(value, 'files', 'an array of { path, sha256, size }');
  const seen = new Set<string>();
  const files = list.map((f, i) => {
    const field = `files[${i}]`;
    const e = record(f, field, ['path', 'sha256', 'size']);
    const path = packagePath(e.path, `${field}.path`);
    if (path === MANIFEST_FILE) fail(`${field}.path`, path, 'any path but manifest.json, which is never listed');
    if (seen.has(path)) fail(`${field}.path`, path, 'a path not listed before');
    seen.add(path);
    const sha256 = string(e.sha256, `${field}.sha256`, '64 lower-case hex characters', (s) => SHA256_RE.test(s));
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) fail(`${field}.size`, e.size, 'an integer >= 0 (bytes)');
    return { path, sha256, size: e.size as number };
  });
  files.forEach((f, i) => {
    const parts = f.path.split('/');
    for (let k = 1; k < parts.length; k++) {
      const dir = parts.slice(0, k).join('/');
      if (seen.has(dir)) fail(`files[${i}].path`, f.path, `a path whose parent ${JSON.stringify(dir)} is not itself a listed file`);
    }
  });
  return files;
}

function listed(path: string, field: string, files: ReadonlySet<string>): string {
  if (!files.has(path)) fail(field, path, 'a path listed in files');
  return path;
}

/**
 * Validate a parsed manifest.json and return a fresh, typed copy. Every field is checked; the first
 * fault throws PackageError 'PACKAGE_MANIFEST_INVALID' naming the field, its value and what is
 * allowed ('PACKAGE_MANIFEST_VERSION' for another format version, 'PACKAGE_PATH_ESCAPE' for a path
 * that leaves the package). Unknown fields are refused.
 * @example
 * const manifest = parseManifest(JSON.parse(await readFile('pkg/manifest.json', 'utf8')));
 */
export function parseManifest(json: unknown): Manifest {
  checkManifestVersion(json);
  const m = record(json, '', TOP_REQUIRED, TOP_OPTIONAL);

  const task = oneOf(m.task, 'task', TASKS);
  const names = array(m.names, 'names', 'a non-empty array of class names', 1).map((n, i) => string(n, `names[${i}]`));
  const strides = array(m.strides, 'strides', "stride per head level ([] when task is 'classify')").map((s, i) => positiveInt(s, `strides[${i}]`));
  const anchors = array(m.anchors, 'anchors', "anchor (w, h) pairs per head level ([] when task is 'classify')").map((row, i) =>
    array(row, `anchors[${i}]`, 'a non-empty, even-length array of numbers > 0 (w, h pairs)', 2).map((a, j) => positive(a, `anchors[${i}][${j}]`)),
  );
  anchors.forEach((row, i) => {
    if (row.length % 2 !== 0) fail(`anchors[${i}]`, row, 'an even number of values (w, h pairs)');
  });
  if (task === 'detect') {
    if (strides.length === 0) fail('strides', strides, "at least one stride when task is 'detect'");
    if (anchors.length !== strides.length) fail('anchors', anchors, `one row per stride (${strides.length})`);
  } else {
    if (strides.length !== 0) fail('strides', strides, "[] when task is 'classify'");
    if (anchors.length !== 0) fail('anchors', anchors, "[] when task is 'classify'");
  }

  const files = parseFiles(m.files);
  const paths = new Set(files.map((f) => f.path));

  const modelFiles = new Set<string>();
  const models = array(m.models, 'models', 'a non-empty array of { file, precision, format, default?, metrics? }', 1).map((x, i) => {
    const field = `models[${i}]`;
    const e = record(x, field, ['file', 'precision', 'format'], ['default', 'metrics']);
    const file = listed(packagePath(e.file, `${field}.file`), `${field}.file`, paths);
    if (!file.endsWith('.onnx')) fail(`${field}.file`, file, 'a path ending in .onnx');
    if (modelFiles.has(file)) fail(`${field}.file`, file, 'a file no other model names');
    modelFiles.add(file);
    const model: ManifestModel = {
      file,
      precision: oneOf(e.precision, `${field}.precision`, PRECISIONS),
      format: oneOf(e.format, `${field}.format`, ['onnx'] as const),
    };
    if (e.default !== undefined) {
      if (typeof e.default !== 'boolean') fail(`${field}.default`, e.default, 'true | false');
      model.default = e.default;
    }
    if (e.metrics !== undefined) model.metrics = numberRecord(e.metrics, `${field}.metrics`);
    return model;
  });
  if (models.filter((x) => x.default === true).length > 1) fail('models', models.map((x) => x.file), 'at most one model with default: true');
  const precision = oneOf(m.precision, 'precision', PRECISIONS);
  const def = defaultModel({ models });
  if (precision !== def.precision) fail('precision', precision, `'${def.precision}', the precision of the default model ${def.file}`);

  const manifest: Manifest = {
    manifestVersion: MANIFEST_VERSION,
    name: string(m.name, 'name', 'a slug: a-z, 0-9, "-", "_", "." starting with a letter or digit, at most 64 characters', (s) => SLUG_RE.test(s)),
    version: string(m.version, 'version', 'a semver 2.0.0 version such as 1.2.3, 1.2.3-rc.1 or 1.2.3+build.5', isSemver),
    createdAt: string(m.createdAt, 'createdAt', 'an ISO 8601 date-time such as 2026-05-01T12:00:00Z', isIsoDateTime),
    task,
    input: parseInput(m.input, task),
    output: parseOutput(m.output, task, names.length),
    names,
    strides,
    anchors,
    precision,
    models,
    files,
    metrics: numberRecord(m.metrics, 'metrics'),
  };

  if (m.role !== undefined) manifest.role = oneOf(m.role, 'role', PACKAGE_ROLES);
  if (m.weights !== undefined) {
    const w = record(m.weights, 'weights', ['path', 'format']);
    const path = listed(packagePath(w.path, 'weights.path'), 'weights.path', paths);
    if (!path.endsWith('.kdw')) fail('weights.path', path, 'a path ending in .kdw');
    manifest.weights = { path, format: oneOf(w.format, 'weights.format', WEIGHTS_FORMATS) };
  }
  if (m.tensorrt !== undefined) manifest.tensorrt = parseTensorrt(m.tensorrt, paths);
  if (m.targets !== undefined) manifest.targets = parseTargets(m.targets, models);
  if (m.val !== undefined) {
    const v = record(m.val, 'val', ['images', 'labels']);
    const dir = (x: unknown, field: string): string => {
      const path = packagePath(x, field);
      if (!files.some((f) => f.path.startsWith(`${path}/`))) fail(field, path, 'a directory holding at least one listed file');
      return path;
    };
    manifest.val = { images: dir(v.images, 'val.images'), labels: dir(v.labels, 'val.labels') };
  }
  if (m.replay !== undefined) manifest.replay = parseReplay(m.replay, files);
  if (m.adapt !== undefined) manifest.adapt = parseManifestAdapt(m.adapt);
  if (m.signature !== undefined) manifest.signature = parseSignature(m.signature);
  return manifest;
}

/** The path without its last extension (`replay/images/0001.jpg` → `replay/images/0001`). */
function withoutExtension(path: string): string {
  const slash = path.lastIndexOf('/');
  const dot = path.lastIndexOf('.');
  return dot > slash + 1 ? path.slice(0, dot) : path;
}

/**
 * `replay`: the images under `dir`, counted, and the optional `labels`: a folder apart from `dir` (neither inside the
 * other) holding only `.txt` files, each named after an image under `dir` (same path below the folder, `.txt` for the
 * image's extension), so there are never more label files than images.
 */
function parseReplay(value: unknown, files: readonly ManifestFile[]): ManifestReplay {
  const r = record(value, 'replay', ['dir', 'images'], ['labels']);
  const dir = packagePath(r.dir, 'replay.dir');
  const images = files.filter((f) => f.path.startsWith(`${dir}/`));
  if (images.length === 0) fail('replay.dir', dir, 'a directory holding at least one listed file');
  if (r.images !== images.length) fail('replay.images', r.images, `${images.length}, the number of files listed under ${dir}/`);
  const replay: ManifestReplay = { dir, images: images.length };
  if (r.labels === undefined) return replay;
  const labels = packagePath(r.labels, 'replay.labels');
  if (labels === dir || labels.startsWith(`${dir}/`) || dir.startsWith(`${labels}/`)) {
    fail('replay.labels', labels, `a directory apart from replay.dir ${JSON.stringify(dir)} (neither inside the other), conventionally replay/labels beside replay/images`);
  }
  const under = files.filter((f) => f.path.startsWith(`${labels}/`));
  if (under.length === 0) fail('replay.labels', labels, 'a directory holding at least one listed file');
  const stems = new Set(images.map((f) => withoutExtension(f.path.slice(dir.length + 1))));
  for (const f of under) {
    const rel = f.path.slice(labels.length + 1);
    if (!rel.endsWith('.txt')) fail('replay.labels', labels, `a directory of .txt label files only; it lists ${f.path}`);
    if (!stems.has(rel.slice(0, -'.txt'.length))) fail('replay.labels', labels, `label files named after an image under ${dir}/; ${f.path} has no image`);
  }
  replay.labels = labels;
  return replay;
}

/**
 * Check a manifest's `adapt` field (`{ recipe: {...} }`) alone and return a typed copy: only the recipe's keys, each
 * within the bounds of the `adapt` command's recipe (core's `adaptRecipeSchema`). A fault throws PackageError
 * 'PACKAGE_MANIFEST_INVALID' naming the field (`adapt.recipe.epochs`), its value and what is allowed; kd-trainer
 * package runs it on a recipe file before it writes anything.
 * @example
 * parseManifestAdapt({ recipe: { epochs: 5, lr0: 0.001 } }); // { recipe: { epochs: 5, lr0: 0.001 } }
 */
export function parseManifestAdapt(value: unknown, field = 'adapt'): ManifestAdapt {
  const a = record(value, field, ['recipe']);
  if (!isRecord(a.recipe)) fail(`${field}.recipe`, a.recipe, `an object of recipe values (${ADAPT_RECIPE_KEYS.join(', ')})`);
  const r = record(a.recipe, `${field}.recipe`, [], ADAPT_RECIPE_KEYS);
  const parsed = adaptRecipeSchema.safeParse(r);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const shape = adaptRecipeSchema.shape[key as keyof typeof adaptRecipeSchema.shape];
    fail(`${field}.recipe.${key}`, r[key], recipeBound(issue, shape?.unwrap().isInt === true));
  }
  const recipe: ManifestAdaptRecipe = {};
  for (const key of ADAPT_RECIPE_KEYS) if (parsed.data[key] !== undefined) recipe[key] = parsed.data[key];
  return { recipe };
}

/** What a recipe value may be, from the first zod issue, in the manifest's wording: `an integer >= 1`, `a number > 0`. */
function recipeBound(issue: { code: string; minimum?: unknown; maximum?: unknown; inclusive?: boolean; message: string }, integer: boolean): string {
  const kind = integer ? 'an integer' : 'a number';
  if (issue.code === 'too_small') return `${kind} ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}`;
  if (issue.code === 'too_big') return `${kind} ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}`;
  if (issue.code === 'invalid_type') return kind;
  return issue.message;
}

function parseTensorrt(value: unknown, paths: ReadonlySet<string>): ManifestTensorrt {
  const t = record(value, 'tensorrt', ['plan'], ['calibCache', 'versions']);
  const out: ManifestTensorrt = { plan: listed(packagePath(t.plan, 'tensorrt.plan'), 'tensorrt.plan', paths) };
  if (t.calibCache !== undefined) out.calibCache = listed(packagePath(t.calibCache, 'tensorrt.calibCache'), 'tensorrt.calibCache', paths);
  if (t.versions === undefined) return out;
  const seen = new Set<string>();
  out.versions = array(t.versions, 'tensorrt.versions', 'a non-empty array of { trtVersion, plan, calibCache? }', 1).map((x, i) => {
    const field = `tensorrt.versions[${i}]`;
    const e = record(x, field, ['trtVersion', 'plan'], ['calibCache']);
    const trtVersion = string(e.trtVersion, `${field}.trtVersion`, 'a TensorRT version major.minor.patch such as 8.2.1 or 10.3.0', (v) => {
      try {
        parseTrtVersion(v);
        return /^\d+\.\d+\.\d+$/.test(v);
      } catch {
        return false;
      }
    });
    if (seen.has(trtVersion)) fail(`${field}.trtVersion`, trtVersion, 'a version no other entry names');
    seen.add(trtVersion);
    const entry: ManifestTrtVersion = { trtVersion, plan: listed(packagePath(e.plan, `${field}.plan`), `${field}.plan`, paths) };
    if (e.calibCache !== undefined) entry.calibCache = listed(packagePath(e.calibCache, `${field}.calibCache`), `${field}.calibCache`, paths);
    return entry;
  });
  const first = out.versions[0]!;
  if (first.plan !== out.plan || first.calibCache !== out.calibCache) {
    fail('tensorrt.plan', out.plan, `the first version's plan and cache (${first.plan}${first.calibCache ? `, ${first.calibCache}` : ''})`);
  }
  return out;
}

function parseTargets(value: unknown, models: readonly ManifestModel[]): ManifestTarget[] {
  const modelFiles = new Map(models.map((m) => [m.file, m]));
  return array(value, 'targets', 'a non-empty array of { file, precision, runtime, arch, quantization?, note? }', 1).map((x, i) => {
    const field = `targets[${i}]`;
    const e = record(x, field, ['file', 'precision', 'runtime', 'arch'], ['quantization', 'note']);
    const file = string(e.file, `${field}.file`);
    if (!modelFiles.has(file)) fail(`${field}.file`, file, `the file of one of models (${[...modelFiles.keys()].join(', ')})`);
    const precision = oneOf(e.precision, `${field}.precision`, PRECISIONS);
    const arch = array(e.arch, `${field}.arch`, `a non-empty array of ${TARGET_ARCHS.join(' | ')}`, 1).map((a, j) => oneOf(a, `${field}.arch[${j}]`, TARGET_ARCHS));
    if (new Set(arch).size !== arch.length) fail(`${field}.arch`, arch, 'each architecture once');
    const runtime = oneOf(e.runtime, `${field}.runtime`, TARGET_RUNTIMES);
    // ONNX Runtime serves the file as it is; a TensorRT engine is built from it at the target's precision.
    const own = modelFiles.get(file)!.precision;
    if (runtime === 'onnxruntime' && precision !== own) fail(`${field}.precision`, precision, `'${own}', the precision of models' ${file}`);
    const target: ManifestTarget = { file, precision, runtime, arch };
    if (e.quantization !== undefined) {
      if (precision !== 'int8') fail(`${field}.quantization`, e.quantization, "no value unless precision is 'int8'");
      target.quantization = oneOf(e.quantization, `${field}.quantization`, INT8_QUANTIZATIONS);
    }
    if (e.note !== undefined) target.note = string(e.note, `${field}.note`, 'a string of 1 to 500 characters', (s) => s.length <= 500);
    return target;
  });
}

/** The package's role: its `role`, or 'model' for a manifest without one (every manifest before roles). */
export function manifestRole(manifest: Pick<Manifest, 'role'>): PackageRole {
  return manifest.role ?? 'model';
}

/** The model an agent loads by default: the one marked `default: true`, else the first. */
export function defaultModel(manifest: Pick<Manifest, 'models'>): ManifestModel {
  const model = manifest.models.find((m) => m.default === true) ?? manifest.models[0];
  if (model === undefined) throw new RangeError('manifest.models must hold at least one model');
  return model;
}
