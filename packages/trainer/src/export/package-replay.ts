import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_LAYOUT } from '@kd-edge/core';
import { replayChoice } from '../adapt/replay-images.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { scanSplit } from '../data/scan.js';
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
 * Copies a deterministic sample of a dataset split's images into the package's `replay/` folder, for
 * on-device adaptation to train on beside the device's frames (`kd-trainer adapt --replay`): images only,
 * no labels (the device's teacher labels them as it labels the frames). The sample is chosen by content
 * and seed ({@link replayChoice}), so the same data and seed give the same images wherever the dataset is;
 * images byte-identical to one of the package's `val/images` are left out, since `val/` is the forgetting
 * check of the adaptation's acceptance and must never be trained on. Files are numbered (`replay/0000.jpg`).
 * @returns how many images were copied
 */
export async function copyReplaySet(o: ReplaySetOptions): Promise<number> {
  const data = await loadDatasetConfig(o.data);
  const sources = data[o.split];
  if (sources === undefined || sources.length === 0) throw new DatasetError(`--replay-from ${o.split}: ${data.file} has no ${o.split} split`);
  const items = await scanSplit(sources, data.nc, o.logger, { split: `replay (${o.split})`, imagesOnly: true });
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
  const out = join(o.dir, PACKAGE_LAYOUT.replay);
  await mkdir(out, { recursive: true });
  for (const [i, c] of chosen.entries()) {
    const ext = c.image.slice(c.image.lastIndexOf('.')).toLowerCase();
    await copyFile(c.image, join(out, `${String(i).padStart(4, '0')}${ext}`));
  }
  const short = chosen.length < o.images ? ` (the split has only ${candidates.length} usable${inVal > 0 ? ` outside val/` : ''})` : '';
  o.logger.info(`replay/: ${chosen.length} images of ${data.file}'s ${o.split} split${short}${inVal > 0 ? `; ${inVal} left out as copies of val/ images` : ''}`);
  return chosen.length;
}
