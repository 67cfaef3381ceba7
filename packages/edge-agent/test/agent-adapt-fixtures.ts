// Real packages for the adaptation tests, made the fast way kd-trainer's own adapt tests make them (toy models at
// 64 px): a serving package of a kd-trainer student with its .kdw and a labelled val/, a teacher package, and frames.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPackage, packDirectory, readOnnxFile, type KeyInput, type Manifest } from '@kd-edge/core';
import { EXPORT_SCHEMA } from '../../trainer/src/export/export-schema.js';
import { onnxModelInfo } from '../../trainer/src/export/model-info.js';
import { runExport } from '../../trainer/src/export/run-export.js';
import { runPackage } from '../../trainer/src/export/run-package.js';
import { selectBackend } from '../../trainer/src/backend/select.js';
import { resolveOptions } from '../../trainer/src/config.js';
import { locateTrainer } from '../src/adapt/trainer-command.js';
import { silentLogger } from '../../trainer/src/util/logger.js';
import { labelledVal, synthFrames, writeStudent, writeTeacher } from '../../trainer/test/adapt-fixtures.js';

/**
 * kd-trainer from sources, as a source checkout runs it (nothing built): what locateTrainer finds here when no build
 * exists (this checkout may hold a build of older sources, so the tests name the sources).
 */
export const KD_TRAINER_FROM_SOURCE = locateTrainer({ from: fileURLToPath(new URL('../../trainer/src', import.meta.url)), preferSource: true }).argv;

/** A package's folder, tar and what a deploy command needs of it. */
export interface BuiltPackage {
  dir: string;
  tar: string;
  manifest: Manifest;
  sha256: string;
  size: number;
  name: string;
  version: string;
  /** For a student package: the export folder and the .kdw it was made from. */
  work?: { export: string; weights: string };
}

async function described(dir: string, tar: string): Promise<BuiltPackage> {
  const bytes = await readFile(tar);
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  return { dir, tar, manifest, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, name: manifest.name, version: manifest.version };
}

/**
 * The serving package `name@version`: a random narrow YOLOv5 student (kd-trainer's adapt fixture) exported at 64 px
 * (fp32 only), packaged by kd-trainer package with its .kdw (`weights`) and 3 labelled val/ images, signed with `keyFile`;
 * with `replayImages` a replay/ sample of the val data's train split, with `adaptRecipe` (a YAML file) its adapt.recipe.
 */
export async function makeStudentPackage(
  root: string, name: string, version: string, keyFile: string, seed = 7, extra: { replayImages?: number; adaptRecipe?: string } = {},
): Promise<BuiltPackage> {
  const work = join(root, `${name}-${version}-work`);
  await mkdir(work, { recursive: true });
  await selectBackend('wasm', silentLogger);
  const weights = await writeStudent(join(work, 'student.kdw'), { seed });
  const { config } = resolveOptions(EXPORT_SCHEMA, [{ weights, out: join(work, 'export'), imgsz: 64, formats: 'onnx', bench_runs: 1, sensitivity_images: 0, workers: 0 }]);
  await runExport(config, {});
  const val = await labelledVal(work, 3);
  const r = await runPackage({
    from: join(work, 'export'), name, version, sign: keyFile, out: join(root, `${name}-${version}`), weightsFile: weights, valData: val, valImages: 3,
    ...(extra.replayImages !== undefined ? { replayImages: extra.replayImages } : {}), ...(extra.adaptRecipe !== undefined ? { adaptRecipe: extra.adaptRecipe } : {}),
  });
  return { ...(await described(r.dir, r.tar!)), work: { export: join(work, 'export'), weights } };
}

/** A teacher package (manifest role teacher) of kd-trainer's toy teacher at 64 px, signed with `key`. */
export async function makeTeacherPackage(root: string, name: string, version: string, key: KeyInput, opts: { names?: string[] } = {}): Promise<BuiltPackage> {
  const dir = join(root, `${name}-${version}`);
  await mkdir(dir, { recursive: true });
  await selectBackend('wasm', silentLogger);
  const file = writeTeacher(join(dir, 'model.onnx'), opts.names ? { names: opts.names, nc: opts.names.length } : {});
  const info = onnxModelInfo(await readOnnxFile(file), file);
  await buildPackage({
    dir, name, version, task: 'detect', createdAt: '2026-11-01T12:00:00Z', role: 'teacher',
    input: { name: info.input.name, shape: info.input.shape!.map((d, i) => d ?? (i === 0 ? 'batch' : `d${i}`)), layout: 'NCHW', dtype: 'float32', normalisation: info.normalisation, letterbox: { color: [114, 114, 114], auto: false, stride: 32 } },
    output: { name: info.output.name, layout: info.outputLayout, shape: info.output.shape!.map((d, i) => d ?? `d${i}`) },
    names: info.names, strides: info.strides, anchors: info.anchors, privateKey: key,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  return described(dir, tar);
}

/** `n` synthetic frames of domain b as JPEG files in `dir` (a replay source for serving, which the capture keeps). */
export async function writeFrames(root: string, dir: string, n: number, seed = 8): Promise<void> {
  await mkdir(dir, { recursive: true });
  const frames = await synthFrames(root, n, seed);
  for (const [i, f] of frames.entries()) await writeFile(join(dir, `f${String(i).padStart(3, '0')}.${f.ext}`), f.data);
}
