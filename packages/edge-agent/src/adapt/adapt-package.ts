import { cp, copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { buildPackage, packDirectory, PACKAGE_LAYOUT, type KeyInput, type Manifest, type Precision } from '@kd-edge/core';
import { sha256File } from '../transfer/http-download.js';
import { AdaptJobError } from './adapt-error.js';

/** The fields of kd-trainer's export.json that packaging reads. */
interface ExportJson {
  info: {
    task: string;
    names: string[];
    strides: number[];
    anchors: number[][];
    inputName: string;
    inputShape: (number | string | null)[];
    outputName: string;
    outputShape: (number | string | null)[];
    outputLayout: Manifest['output']['layout'];
  };
  rows: { file: string; format: string; map50?: number; map?: number; p50Ms?: number }[];
}

/** Options of {@link buildAdaptedPackage}. */
export interface AdaptedPackageOptions {
  /** The trainer's job folder (its `export/` and `run/weights/`). */
  jobDir: string;
  /** The package folder to write (replaced); the tar is written beside it as `<dir>.tar`. */
  dir: string;
  /** The serving package the job adapted: its manifest and its folder in the store. */
  base: { manifest: Manifest; dir: string; precision: Precision };
  /** The adapted version (adaptedVersion of the base). */
  version: string;
  /** The manifest's createdAt, fixed by the job so that a rebuild after a crash makes the same bytes. */
  createdAt: string;
  /** The device's own private key. */
  privateKey: KeyInput;
}

/** What {@link buildAdaptedPackage} made. */
export interface AdaptedPackage {
  dir: string;
  tar: string;
  sha256: string;
  size: number;
  manifest: Manifest;
}

const fail = (message: string, cause?: unknown): AdaptJobError => new AdaptJobError('ADAPT_PACKAGE_FAILED', message, cause === undefined ? undefined : { cause });

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/**
 * Packages an accepted adaptation as kd-trainer package would, signed with the device's own key: the base's name,
 * classes, normalisation and letterbox; the adapted version; the model of the precision the base serves (the int8
 * export when the base serves int8 and export made one, else fp32), its shapes from export.json; the adapted weights
 * (`run/weights/best.kdw`, else `last.kdw`) as `weights/model.kdw`; the base's `val/` when it has one, and its replay
 * images and their labels (as `replay/images`, `replay/labels`) and `adapt.recipe` (manifest `replay`, `adapt`), so an adapted model can be adapted again the same way. Packed to
 * `<dir>.tar`. Deterministic for the same inputs (createdAt is given, Ed25519 signatures are deterministic), so a
 * package rebuilt after a crash is byte for byte the one that may already be installed. Fails with AdaptJobError
 * 'ADAPT_PACKAGE_FAILED' naming what is missing or mismatched.
 */
export async function buildAdaptedPackage(o: AdaptedPackageOptions): Promise<AdaptedPackage> {
  const exportDir = join(o.jobDir, 'export');
  let report: ExportJson;
  try {
    report = JSON.parse(await readFile(join(exportDir, 'export.json'), 'utf8')) as ExportJson;
  } catch (err) {
    throw fail(`${exportDir}/export.json cannot be read (${(err as Error).message}): the job has no export to package`, err);
  }
  const base = o.base.manifest;
  const info = report.info;
  if (info.names.length !== base.names.length || info.names.some((n, i) => n !== base.names[i])) {
    throw fail(`the adapted export's classes ${JSON.stringify(info.names)} are not the base's ${JSON.stringify(base.names)}`);
  }
  const wantInt8 = o.base.precision === 'int8' && (await exists(join(exportDir, 'model.int8.onnx')));
  const modelFile = wantInt8 ? 'model.int8.onnx' : 'model.onnx';
  if (!(await exists(join(exportDir, modelFile)))) throw fail(`${exportDir} has no ${modelFile}`);
  const weightsDir = join(o.jobDir, 'run', 'weights');
  const weights = (await exists(join(weightsDir, 'best.kdw'))) ? join(weightsDir, 'best.kdw') : join(weightsDir, 'last.kdw');
  if (!(await exists(weights))) throw fail(`${weightsDir} has neither best.kdw nor last.kdw`);

  await rm(o.dir, { recursive: true, force: true });
  await rm(`${o.dir}.tar`, { force: true });
  await mkdir(o.dir, { recursive: true });
  await copyFile(join(exportDir, modelFile), join(o.dir, modelFile));
  await mkdir(dirname(join(o.dir, PACKAGE_LAYOUT.weights)), { recursive: true });
  await copyFile(weights, join(o.dir, PACKAGE_LAYOUT.weights));
  if (base.val !== undefined) {
    await cp(join(o.base.dir, base.val.images), join(o.dir, PACKAGE_LAYOUT.valImages), { recursive: true });
    await cp(join(o.base.dir, base.val.labels), join(o.dir, PACKAGE_LAYOUT.valLabels), { recursive: true });
  }
  // The base's replay images and labels go on with it: adapting the adapted model again still trains against forgetting.
  let replay: Manifest['replay'];
  if (base.replay !== undefined) {
    const from = join(o.base.dir, base.replay.dir);
    if (!(await exists(from))) throw fail(`the base's replay images ${from} are missing (manifest replay.dir ${base.replay.dir})`);
    await cp(from, join(o.dir, PACKAGE_LAYOUT.replayImages), { recursive: true });
    replay = { dir: PACKAGE_LAYOUT.replayImages, images: base.replay.images };
    if (base.replay.labels !== undefined) {
      const labels = join(o.base.dir, base.replay.labels);
      if (!(await exists(labels))) throw fail(`the base's replay labels ${labels} are missing (manifest replay.labels ${base.replay.labels})`);
      await cp(labels, join(o.dir, PACKAGE_LAYOUT.replayLabels), { recursive: true });
      replay.labels = PACKAGE_LAYOUT.replayLabels;
    }
  }
  const row = report.rows.find((r) => r.file === modelFile);
  const metrics: Record<string, number> = {};
  if (row?.map50 !== undefined) metrics['metrics/mAP50(B)'] = row.map50;
  if (row?.map !== undefined) metrics['metrics/mAP50-95(B)'] = row.map;
  if (row?.p50Ms !== undefined) metrics['speed/ort_cpu_p50_ms'] = row.p50Ms;
  let manifest: Manifest;
  try {
    manifest = await buildPackage({
      dir: o.dir, name: base.name, version: o.version, task: base.task, createdAt: o.createdAt,
      input: { ...base.input, name: info.inputName, shape: info.inputShape.map((d, i) => d ?? (i === 0 ? 'batch' : `d${i}`)) },
      output: { name: info.outputName, layout: info.outputLayout, shape: info.outputShape.map((d, i) => d ?? `d${i}`) },
      names: [...base.names], strides: info.strides, anchors: info.anchors,
      models: [{ file: modelFile, precision: wantInt8 ? 'int8' : 'fp32', metrics }],
      metrics, role: 'model', weights: { path: PACKAGE_LAYOUT.weights, format: 'kdw' },
      ...(base.val !== undefined ? { val: { images: PACKAGE_LAYOUT.valImages, labels: PACKAGE_LAYOUT.valLabels } } : { val: false as const }),
      ...(replay !== undefined ? { replay } : {}),
      // The base's recipe too: the next adaptation of this model is made as the last one was.
      ...(base.adapt !== undefined ? { adapt: base.adapt } : {}),
      privateKey: o.privateKey,
    });
  } catch (err) {
    throw fail(`the adapted package's manifest is invalid: ${(err as Error).message}`, err);
  }
  const tar = `${o.dir}.tar`;
  await packDirectory(o.dir, tar);
  const { sha256, size } = await sha256File(tar);
  return { dir: o.dir, tar, sha256, size, manifest };
}
