import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_LAYOUT } from '@kd-edge/core';
import { replayChoice } from '../adapt/replay-images.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { imageToLabelPath, scanSplit } from '../data/scan.js';
import { sha256File } from '../distill/teacher/teacher-file.js';
import { DatasetError, ExportError } from '../errors.js';
import type { Logger } from '../util/logger.js';

/** The splits of a data YAML that replay images may come from. */
export const REPLAY_SPLITS = ['train', 'val', 'test'] as const;
/** A split replay images come from. */
export type ReplaySplit = (typeof REPLAY_SPLITS)[number];

/** Options of {@link copyReplaySet}. */
export interface ReplaySetOptions {
  /** The dataset YAML the model was trained on. */
  data: string;
  /** Its split to sample ('train' by default in `kd-trainer package`). */
  split: ReplaySplit;
  /** How many images (at most; fewer when the split holds fewer). */
  images: number;
  /** Seed of the sample (with each image's content). */
  seed: number;
  /** The package folder being filled; its `val/images`, when already there, is left out of the sample. */
  dir: string;
  logger: Logger;
}

/** Checks the replay options of `kd-trainer package` before anything is written; throws ExportError 'EXPORT_INVALID' naming the option. */
export function checkReplayOptions(o: { replayImages?: number; replayFrom?: string; replaySeed?: number; valData?: string; role?: string }): void {
  const n = o.replayImages ?? 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new ExportError('EXPORT_INVALID', `--replay-images: expected an integer ≥ 0, got ${String(o.replayImages)}`);
  const seed = o.replaySeed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ExportError('EXPORT_INVALID', `--replay-seed: expected an integer ≥ 0, got ${String(o.replaySeed)}`);
  if (o.replayFrom !== undefined && !(REPLAY_SPLITS as readonly string[]).includes(o.replayFrom)) {
    throw new ExportError('EXPORT_INVALID', `--replay-from: expected ${REPLAY_SPLITS.join(' | ')}, got ${JSON.stringify(o.replayFrom)}`);
  }
  if (n === 0) return;
  if (o.valData === undefined) throw new ExportError('EXPORT_INVALID', '--replay-images: give the dataset YAML the model was trained on with --val-data (its --replay-from split is sampled)');
  if (o.role === 'teacher') throw new ExportError('EXPORT_INVALID', '--replay-images: a teacher package is never adapted; replay images belong in the serving model\'s package');
}

/**
 * Copies a deterministic sample of a dataset split's images into the package's `replay/images/`, each with its
 * ground-truth label file in `replay/labels/`, for on-device adaptation to train on beside the device's frames
 * (`kd-trainer adapt --replay`, which trains on these labels rather than the device teacher's guesses). The label
 * file is the dataset's own, copied byte for byte (the adaptation validates its rows as the dataset scan does); an
 * image without one gets an empty file, since the scan, and so the training, took it as a background image. The
 * sample is chosen by content and seed ({@link replayChoice}), so the same data and seed give the same images
 * wherever the dataset is; images byte-identical to one of the package's `val/images` are left out, since `val/` is
 * the forgetting check of the adaptation's acceptance and must never be trained on. Files are numbered
 * (`replay/images/0000.jpg`, `replay/labels/0000.txt`).
 * @returns how many images were copied (as many label files were written)
 */
export async function copyReplaySet(o: ReplaySetOptions): Promise<number> {
  const data = await loadDatasetConfig(o.data);
  const sources = data[o.split];
  if (sources === undefined || sources.length === 0) throw new DatasetError(`--replay-from ${o.split}: ${data.file} has no ${o.split} split`);
  // With labels, as training read the split: an image whose label file cannot be read is skipped there and here.
  const items = await scanSplit(sources, data.nc, o.logger, { split: `replay (${o.split})` });
  const valDir = join(o.dir, PACKAGE_LAYOUT.valImages);
  const valHashes = new Set<string>();
  for (const f of await readdir(valDir).catch(() => [] as string[])) valHashes.add(await sha256File(join(valDir, f)));
  const candidates: { image: string; sha256: string }[] = [];
  let inVal = 0;
  for (const it of items) {
    const sha256 = await sha256File(it.image);
    if (valHashes.has(sha256)) inVal++;
    else candidates.push({ image: it.image, sha256 });
  }
  const used = replayChoice(candidates.map((c) => c.sha256), o.images, o.seed);
  const chosen = candidates.filter((_, i) => used[i]);
  if (chosen.length === 0) throw new DatasetError(`--replay-images: no image of ${data.file}'s ${o.split} split is left (${items.length} found, ${inVal} also in val/)`);
  const imagesDir = join(o.dir, PACKAGE_LAYOUT.replayImages);
  const labelsDir = join(o.dir, PACKAGE_LAYOUT.replayLabels);
  await mkdir(imagesDir, { recursive: true });
  await mkdir(labelsDir, { recursive: true });
  let unlabelled = 0;
  for (const [i, c] of chosen.entries()) {
    const stem = String(i).padStart(4, '0');
    await copyFile(c.image, join(imagesDir, `${stem}${c.image.slice(c.image.lastIndexOf('.')).toLowerCase()}`));
    const label = join(labelsDir, `${stem}.txt`);
    try {
      await copyFile(imageToLabelPath(c.image), label);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ExportError('EXPORT_INVALID', `--replay-images: cannot copy the label file of ${c.image}: ${(err as Error).message}`, { cause: err });
      await writeFile(label, '');
      unlabelled++;
    }
  }
  const short = chosen.length < o.images ? ` (the split has only ${candidates.length} usable${inVal > 0 ? ` outside val/` : ''})` : '';
  o.logger.info(`replay/: ${chosen.length} images of ${data.file}'s ${o.split} split with their labels${unlabelled > 0 ? ` (${unlabelled} without a label file: empty, background)` : ''}${short}${inVal > 0 ? `; ${inVal} left out as copies of val/ images` : ''}`);
  return chosen.length;
}
