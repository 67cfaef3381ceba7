import { join } from 'node:path';
import { writeFileDurable } from '../util/durable-write.js';
import { hashFile, walkPackageDir } from './files.js';
import type { KeyInput } from './keys.js';
import {
  MANIFEST_FILE,
  MANIFEST_VERSION,
  parseManifest,
  defaultModel,
  type Manifest,
  type ManifestFile,
  type ManifestInput,
  type ManifestModel,
  type ManifestOutput,
  type ManifestTarget,
  type ManifestTensorrt,
  type ManifestReplay,
  type ManifestAdapt,
  type ManifestVal,
  type ManifestWeights,
  type PackageRole,
  type Precision,
  type Task,
  type UnsignedManifest,
} from './manifest.js';
import { signManifest } from './sign.js';

/** Conventional names {@link buildPackage} looks for. */
export const PACKAGE_LAYOUT = {
  plan: 'trt-plan.json',
  calibCache: 'calib.cache',
  valImages: 'val/images',
  valLabels: 'val/labels',
  weights: 'weights/model.kdw',
  replay: 'replay',
  /** Replay images and their ground-truth labels, as siblings (ultralytics' images → labels rule finds the labels). */
  replayImages: 'replay/images',
  replayLabels: 'replay/labels',
} as const;

/** A model entry for {@link buildPackage}; `format` defaults to 'onnx'. */
export type BuildModel = Omit<ManifestModel, 'format'> & { format?: 'onnx' };

/** Options of {@link buildPackage}: the manifest fields a directory's files cannot tell. */
export interface BuildPackageOptions {
  /** Directory that already holds the model files (and optional calib.cache, trt-plan.json, val/). */
  dir: string;
  name: string;
  version: string;
  task: Task;
  input: ManifestInput;
  output: ManifestOutput;
  names: string[];
  /** Required for 'detect'; default []. */
  strides?: number[];
  /** Required for 'detect'; default []. */
  anchors?: number[][];
  /** Default: every `*.onnx` at the top of `dir`, precision from its name ({@link precisionFromFileName}). */
  models?: BuildModel[];
  /** The file of the default model; default: the fp32 model, else the first. */
  defaultModel?: string;
  metrics?: Record<string, number>;
  /** Default: now. */
  createdAt?: string | Date;
  /** Default: trt-plan.json (+ calib.cache) when present; false to leave out. */
  tensorrt?: ManifestTensorrt | false;
  /** Which model file serves which device, most preferred first; default: none (the default model everywhere). */
  targets?: ManifestTarget[];
  /** Default: val/images + val/labels when both hold files; false to leave out. */
  val?: ManifestVal | false;
  /**
   * Default 'model', which is written as no `role` field at all (what every manifest meant before roles,
   * and what agents that predate roles still read); 'teacher' is written out.
   */
  role?: PackageRole;
  /** The trainable weights (a `.kdw` already in `dir`, e.g. {@link PACKAGE_LAYOUT}.weights); default: none. */
  weights?: ManifestWeights;
  /** Images of the original domain for on-device adaptation, and their labels (already in `dir`, e.g. under {@link PACKAGE_LAYOUT}.replayImages, .replayLabels); default: none. */
  replay?: ManifestReplay;
  /** The recipe of an on-device adaptation (manifest `adapt`); default: none. */
  adapt?: ManifestAdapt;
  /** Sign with this Ed25519 key; without one the manifest is written unsigned (which verification refuses). */
  privateKey?: KeyInput;
}

/**
 * The precision a model file name states: `*.fp16.onnx` fp16, `*.int8.onnx` and an int8 variant such as
 * `*.int8.u8s8.onnx` int8, anything else fp32.
 */
export function precisionFromFileName(file: string): Precision {
  const m = /\.(fp32|fp16|int8)(?:\.(?:u8s8|s8s8))?\.onnx$/.exec(file);
  return m === null ? 'fp32' : (m[1] as Precision);
}

/** Write a manifest as `dir/manifest.json` (two-space JSON) through a temporary file and a rename. */
export async function writeManifest(dir: string, manifest: Manifest | UnsignedManifest): Promise<void> {
  await writeFileDurable(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
}

function pickModels(options: BuildPackageOptions, files: readonly ManifestFile[]): ManifestModel[] {
  const given: BuildModel[] =
    options.models ??
    files
      .filter((f) => !f.path.includes('/') && f.path.endsWith('.onnx'))
      .map((f) => ({ file: f.path, precision: precisionFromFileName(f.path) }));
  const models = given.map((m): ManifestModel => {
    const out: ManifestModel = { file: m.file, precision: m.precision, format: m.format ?? 'onnx' };
    if (m.metrics !== undefined) out.metrics = { ...m.metrics };
    return out;
  });
  const chosen = options.defaultModel ?? given.find((m) => m.default === true)?.file ?? models.find((m) => m.precision === 'fp32')?.file;
  // Only mark a default when there is a choice to make or the caller asked for one.
  if (chosen !== undefined && (models.length > 1 || options.defaultModel !== undefined)) {
    for (const m of models) if (m.file === chosen) m.default = true;
  }
  return models;
}

/**
 * Make `dir` a model package: hash every file in it (recursively, sorted POSIX paths, manifest.json
 * excluded), fill in the manifest, validate it, sign it when a key is given and write
 * `manifest.json` atomically. Returns the manifest written. A fault in the options throws
 * PackageError 'PACKAGE_MANIFEST_INVALID' naming the field.
 * @example
 * // kd-trainer package --from DIR --name N --version V --sign KEY
 * await buildPackage({ dir, name, version, ...exportInfo, privateKey: await loadPrivateKey(keyPath) });
 */
export async function buildPackage(options: BuildPackageOptions): Promise<Manifest> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (typeof options.dir !== 'string' || options.dir === '') throw new TypeError('options.dir must be a directory path');
  const entries = await walkPackageDir(options.dir);
  const files: ManifestFile[] = [];
  for (const e of entries) {
    if (e.type !== 'file' || e.path === MANIFEST_FILE) continue;
    const { sha256, size } = await hashFile(e.absolutePath, { path: e.path });
    files.push({ path: e.path, sha256, size });
  }
  const has = (p: string): boolean => files.some((f) => f.path === p);
  const hasUnder = (d: string): boolean => files.some((f) => f.path.startsWith(`${d}/`));

  const models = pickModels(options, files);
  const createdAt = options.createdAt instanceof Date ? options.createdAt.toISOString() : (options.createdAt ?? new Date().toISOString());
  const draft: UnsignedManifest = {
    manifestVersion: MANIFEST_VERSION,
    name: options.name,
    version: options.version,
    createdAt,
    task: options.task,
    input: options.input,
    output: options.output,
    names: options.names,
    strides: options.strides ?? [],
    anchors: options.anchors ?? [],
    precision: models.length > 0 ? defaultModel({ models }).precision : 'fp32',
    models,
    files,
    metrics: options.metrics ?? {},
  };
  if (options.role !== undefined && options.role !== 'model') draft.role = options.role;
  if (options.weights !== undefined) draft.weights = { ...options.weights };
  if (options.tensorrt !== undefined && options.tensorrt !== false) draft.tensorrt = options.tensorrt;
  else if (options.tensorrt === undefined && has(PACKAGE_LAYOUT.plan)) {
    draft.tensorrt = has(PACKAGE_LAYOUT.calibCache) ? { plan: PACKAGE_LAYOUT.plan, calibCache: PACKAGE_LAYOUT.calibCache } : { plan: PACKAGE_LAYOUT.plan };
  }
  if (options.targets !== undefined) draft.targets = options.targets.map((t) => ({ ...t, arch: [...t.arch] }));
  if (options.val !== undefined && options.val !== false) draft.val = options.val;
  else if (options.val === undefined && hasUnder(PACKAGE_LAYOUT.valImages) && hasUnder(PACKAGE_LAYOUT.valLabels)) {
    draft.val = { images: PACKAGE_LAYOUT.valImages, labels: PACKAGE_LAYOUT.valLabels };
  }

  if (options.replay !== undefined) draft.replay = { ...options.replay };
  if (options.adapt !== undefined) draft.adapt = { recipe: { ...options.adapt.recipe } };
  const manifest = options.privateKey === undefined ? parseManifest(draft) : signManifest(draft, options.privateKey);
  await writeManifest(options.dir, manifest);
  return manifest;
}
