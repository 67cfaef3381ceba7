import { copyFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  buildPackage, KdEdgeError, loadPrivateKey, packDirectory, PACKAGE_LAYOUT, PACKAGE_ROLES, parseManifestAdapt, tempSibling, type Manifest, type ManifestAdapt, type PackageRole,
} from '@kd-edge/core';
import { readYamlMapping } from '../config.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { scanSplit } from '../data/scan.js';
import { readTensorArchiveMeta } from '../model/weights-io.js';
import { ExportError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { ARTIFACT_FILES } from './export-names.js';
import { manifestTargets } from './export-targets.js';
import { checkReplayOptions, copyReplaySet, type ReplaySplit } from './package-replay.js';
import type { ExportReport } from './run-export.js';

/** Options of `kd-trainer package`. */
export interface PackageOptions {
  /** An export folder (written by `kd-trainer export`). */
  from: string;
  name: string;
  version: string;
  /** Private key file (PEM) to sign with. */
  sign: string;
  /** Package folder (default: `<name>-<version>` beside the export folder). */
  out?: string;
  /** Also write `<out>.tar`. Default true. */
  tar?: boolean;
  /** Dataset YAML whose val split gives the on-device accuracy set. */
  valData?: string;
  /** Images in val/ (default 16; 0: none). */
  valImages?: number;
  /** 'model' (default: the package serves) or 'teacher' (only labels frames for on-device adaptation; never served). */
  role?: PackageRole;
  /** A kd-trainer `.kdw` whose class names match the export's: shipped as `weights/model.kdw` so a device can fine-tune it. */
  weightsFile?: string;
  /** Images of the training data to copy, with their labels, into `replay/images` and `replay/labels` for on-device adaptation (`kd-trainer adapt --replay`); needs `valData`. Default 0: none. */
  replayImages?: number;
  /** The split of `valData` they are sampled from (default 'train'). */
  replayFrom?: ReplaySplit;
  /** Seed of the replay sample (default 0). */
  replaySeed?: number;
  /**
   * A YAML file with the recipe of the model's on-device adaptation (`epochs`, `imgsz`, `lr0`, `pseudoConf`, `holdout`,
   * `timeBudgetSec`, `memoryBudgetMb`, `minGain`, `maxLoss`; the `adapt` command's keys and bounds), written to the
   * manifest as `adapt.recipe`. An agent uses each value the command leaves unset, before its own configuration.
   */
  adaptRecipe?: string;
  logger?: Logger;
}

/**
 * The `--adapt-recipe` file as the manifest's `adapt` field, checked before anything is written: a mapping of the
 * recipe's keys, each within the `adapt` command's bounds. Throws ExportError 'EXPORT_INVALID' naming the file and the
 * field at fault (`adapt.recipe.epochs`).
 */
export async function readAdaptRecipe(file: string, o: { role?: PackageRole; task?: string } = {}): Promise<ManifestAdapt> {
  if ((o.role ?? 'model') !== 'model') throw new ExportError('EXPORT_INVALID', `--adapt-recipe: a ${o.role} package is never adapted on a device; give the recipe to the serving model's package`);
  if (o.task !== undefined && o.task !== 'detect') throw new ExportError('EXPORT_INVALID', `--adapt-recipe: only detectors are adapted on a device; this export is a ${o.task} model`);
  const recipe = await readYamlMapping(resolve(file), 'adapt-recipe');
  try {
    return parseManifestAdapt({ recipe });
  } catch (err) {
    if (!(err instanceof KdEdgeError)) throw err;
    throw new ExportError('EXPORT_INVALID', `--adapt-recipe ${file}: ${err.message}`, { cause: err });
  }
}

/** The class names a `.kdw` gives its export: meta names, else the description's, else class0…; as export reads them. */
function kdwNames(header: Record<string, unknown>): string[] | undefined {
  const meta = (header.meta ?? {}) as { names?: unknown };
  const desc = (header.description ?? {}) as { names?: unknown; nc?: unknown };
  if (Array.isArray(meta.names)) return meta.names as string[];
  if (Array.isArray(desc.names)) return desc.names as string[];
  return Number.isSafeInteger(desc.nc) ? Array.from({ length: desc.nc as number }, (_, i) => `class${i}`) : undefined;
}

/** Refuses a weights file that is not a kd-trainer model or whose class names differ from the export's. */
async function checkWeightsFile(file: string, names: readonly string[]): Promise<void> {
  if (!file.toLowerCase().endsWith('.kdw')) {
    throw new ExportError('EXPORT_INVALID', `--weights-file: ${file} is not a kd-trainer .kdw weights file (the only weights format packages carry)`);
  }
  const header = await readTensorArchiveMeta(file);
  const kdwClasses = header.content === 'kd-edge-model' ? kdwNames(header) : undefined;
  if (kdwClasses === undefined) throw new ExportError('EXPORT_INVALID', `--weights-file: ${file} is a tensor archive but not a kd-trainer model's weights`);
  if (kdwClasses.length !== names.length || kdwClasses.some((n, i) => n !== names[i])) {
    throw new ExportError('EXPORT_MODEL_LAYOUT',
      `--weights-file: ${file} has classes ${JSON.stringify(kdwClasses)} but the export (and so the manifest) has ${JSON.stringify(names)}`);
  }
}

async function copyValSet(yaml: string, count: number, dir: string, log: Logger): Promise<number> {
  const data = await loadDatasetConfig(yaml);
  const items = (await scanSplit(data.val, data.nc, log, { split: 'val' })).slice(0, count);
  await mkdir(join(dir, 'val/images'), { recursive: true });
  await mkdir(join(dir, 'val/labels'), { recursive: true });
  for (const [i, it] of items.entries()) {
    // Numbered names: a package path stays short and cannot collide, whatever the source tree was.
    const stem = `${String(i).padStart(4, '0')}`;
    const ext = it.image.slice(it.image.lastIndexOf('.')).toLowerCase();
    await copyFile(it.image, join(dir, 'val/images', stem + ext));
    const rows: string[] = [];
    for (let r = 0; r + 5 <= it.labels.length; r += 5) {
      const [c, ...box] = it.labels.subarray(r, r + 5);
      rows.push(`${c} ${box.map((v) => v.toFixed(6)).join(' ')}`);
    }
    await writeFile(join(dir, 'val/labels', `${stem}.txt`), rows.map((l) => `${l}\n`).join(''));
  }
  return items.length;
}

/**
 * `kd-trainer package`: copies an export folder's artifacts (ONNX files, calib.cache, trt-plan.json),
 * optionally the model's `.kdw` and a few val images into a package folder, writes the signed manifest with the
 * export's measured metrics, and packs it as a tar.
 */
export async function runPackage(opts: PackageOptions): Promise<{ dir: string; tar?: string; manifest: Manifest }> {
  const log = opts.logger ?? silentLogger;
  const from = resolve(opts.from);
  let report: ExportReport;
  try {
    report = JSON.parse(await readFile(join(from, ARTIFACT_FILES.report), 'utf8')) as ExportReport;
  } catch (e) {
    throw new ExportError('EXPORT_REPORT_MISSING', `${from} is not an export folder: cannot read ${ARTIFACT_FILES.report} (run kd-trainer export first)`, { cause: e });
  }
  const role = opts.role ?? 'model';
  if (!PACKAGE_ROLES.includes(role)) throw new RangeError(`role must be ${PACKAGE_ROLES.map((r) => `'${r}'`).join(' | ')}, got ${JSON.stringify(role)}`);
  // Checked before anything is written: a refused weights file leaves no staging folder behind.
  if (opts.weightsFile !== undefined) await checkWeightsFile(resolve(opts.weightsFile), report.info.names);
  checkReplayOptions(opts);
  if ((opts.replayImages ?? 0) > 0 && report.info.task !== 'detect') throw new ExportError('EXPORT_INVALID', `--replay-images: only detectors are adapted on a device; this export is a ${report.info.task} model`);
  const adapt = opts.adaptRecipe === undefined ? undefined : await readAdaptRecipe(opts.adaptRecipe, { role, task: report.info.task });
  const privateKey = await loadPrivateKey(opts.sign);
  const dir = resolve(opts.out ?? join(dirname(from), `${opts.name}-${opts.version}`));
  // Built beside its place and renamed in when whole: a failure leaves no half-written folder, and an
  // earlier package of the same name stays as it was.
  const staging = tempSibling(dir);
  await mkdir(staging, { recursive: true });
  let manifest: Manifest;
  try {
    manifest = await fillPackage(staging, from, report, { ...opts, adapt }, privateKey, log);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  log.info(`package ${manifest.name} ${manifest.version}: ${manifest.files.length} files, signed by key ${manifest.signature?.keyId ?? '?'} → ${dir}`);
  if (opts.tar === false) return { dir, manifest };
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  log.info(`wrote ${tar}`);
  return { dir, tar, manifest };
}

/** Copies the artifacts and val set into `dir`, writes the manifest and signs it. */
async function fillPackage(
  dir: string, from: string, report: ExportReport, opts: PackageOptions & { adapt?: ManifestAdapt }, privateKey: Awaited<ReturnType<typeof loadPrivateKey>>, log: Logger,
): Promise<Manifest> {
  const present = new Set(await readdir(from));
  // The TensorRT files the export wrote: one plan (and cache) per version, or the single legacy pair.
  const trtVersions = (report.tensorrt?.versions ?? []).filter((v) => present.has(v.plan) && (v.calibCache === undefined || present.has(v.calibCache)));
  const perVersion = trtVersions.length > 0 && trtVersions[0]!.plan !== ARTIFACT_FILES.trtPlan;
  const trtFiles = perVersion
    ? trtVersions.flatMap((v) => [v.plan, ...(v.calibCache ? [v.calibCache] : [])])
    : [ARTIFACT_FILES.calibCache, ARTIFACT_FILES.trtPlan];
  const wanted = [ARTIFACT_FILES.onnx, ARTIFACT_FILES.fp16, ARTIFACT_FILES['int8-dynamic'], ARTIFACT_FILES.int8, ARTIFACT_FILES.int8U8s8, ...trtFiles];
  for (const f of wanted) if (present.has(f)) await copyFile(join(from, f), join(dir, f));
  if (opts.weightsFile !== undefined) {
    await mkdir(dirname(join(dir, PACKAGE_LAYOUT.weights)), { recursive: true });
    await copyFile(resolve(opts.weightsFile), join(dir, PACKAGE_LAYOUT.weights));
  } else if (report.source.endsWith('.kdw')) {
    // Not shipped on its own: the file at that path may have been retrained since the export.
    log.info(`note: exported from ${report.source}; add --weights-file ${report.source} to ship it for on-device fine-tuning`);
  }
  if (opts.valData !== undefined && (opts.valImages ?? 16) > 0 && report.info.task === 'detect') {
    const n = await copyValSet(opts.valData, opts.valImages ?? 16, dir, log);
    log.info(`val/: ${n} images for the on-device accuracy check`);
  }
  // After val/: its images are left out of the replay sample.
  const replayImages = opts.replayImages ?? 0;
  const replay = replayImages > 0 && opts.valData !== undefined
    ? await copyReplaySet({ data: opts.valData, split: opts.replayFrom ?? 'train', images: replayImages, seed: opts.replaySeed ?? 0, dir, logger: log })
    : 0;
  const info = report.info;
  const metricsOf = (r: ExportReport['rows'][number]): Record<string, number> => {
    const m: Record<string, number> = {};
    if (r.map50 !== undefined) m['metrics/mAP50(B)'] = r.map50;
    if (r.map !== undefined) m['metrics/mAP50-95(B)'] = r.map;
    if (r.top1 !== undefined) m['metrics/accuracy_top1'] = r.top1;
    if (r.top5 !== undefined) m['metrics/accuracy_top5'] = r.top5;
    if (r.p50Ms !== undefined) m['speed/ort_cpu_p50_ms'] = r.p50Ms;
    return m;
  };
  const modelRows = report.rows.filter((r) => r.file.endsWith('.onnx') && present.has(r.file));
  // Per-version TensorRT files are listed with their versions; the legacy pair is found by buildPackage as before.
  const tensorrt = perVersion
    ? { plan: trtVersions[0]!.plan, ...(trtVersions[0]!.calibCache ? { calibCache: trtVersions[0]!.calibCache } : {}), versions: trtVersions }
    : undefined;
  const hasTrt = perVersion || present.has(ARTIFACT_FILES.trtPlan);
  const int8Trt = perVersion ? trtVersions.some((v) => v.calibCache !== undefined) : present.has(ARTIFACT_FILES.calibCache);
  // Old export.json files have no variant: their model.int8.onnx is S8S8 unless exported with --activation-type uint8,
  // which was not recorded, so such a file gets no target (it stays one of the package's models).
  const targetRows = modelRows.filter((r) => r.format !== 'int8' || r.variant !== undefined);
  const { targets, dropped } = manifestTargets(targetRows, {
    hostArch: report.host?.arch,
    ...(hasTrt ? { tensorrt: { onnxFile: ARTIFACT_FILES.onnx, int8: int8Trt } } : {}),
  });
  for (const d of dropped) log.info(`targets: ${d}`);
  log.info(`targets: ${targets.map((t) => `${t.file} → ${t.runtime} ${t.arch.join('/')}`).join('; ')}`);
  const stride = Math.max(...(info.strides.length ? info.strides : [32]));
  const manifest = await buildPackage({
    dir,
    name: opts.name,
    version: opts.version,
    task: info.task,
    input: {
      name: info.inputName,
      shape: info.inputShape.map((d, i) => d ?? (i === 0 ? 'batch' : `d${i}`)),
      layout: 'NCHW',
      dtype: 'float32',
      // Exports record their normalisation (classifiers: ImageNet's); older export.json files lack it.
      normalisation: info.normalisation ?? { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      ...(info.task === 'detect' ? { letterbox: { color: [114, 114, 114], auto: false, stride } } : {}),
    },
    output: { name: info.outputName, layout: info.outputLayout, shape: info.outputShape.map((d, i) => d ?? `d${i}`) },
    names: info.names,
    strides: info.strides,
    anchors: info.anchors,
    models: modelRows.map((r) => ({ file: r.file, precision: r.format === 'fp16' ? 'fp16' : r.format.startsWith('int8') ? 'int8' : 'fp32', metrics: metricsOf(r) })),
    defaultModel: ARTIFACT_FILES.onnx,
    metrics: modelRows[0] ? metricsOf(modelRows[0]) : {},
    role: opts.role ?? 'model',
    ...(tensorrt ? { tensorrt } : {}),
    // A teacher is never served, so it has no serving targets.
    ...((opts.role ?? 'model') === 'model' && targets.length > 0 ? { targets } : {}),
    ...(opts.weightsFile !== undefined ? { weights: { path: PACKAGE_LAYOUT.weights, format: 'kdw' as const } } : {}),
    ...(replay > 0 ? { replay: { dir: PACKAGE_LAYOUT.replayImages, images: replay, labels: PACKAGE_LAYOUT.replayLabels } } : {}),
    ...(opts.adapt !== undefined ? { adapt: opts.adapt } : {}),
    privateKey,
  });
  return manifest;
}
