/**
 * ultralytics' classification layout: `ROOT/train/<class>/*.jpg|png|…` and `ROOT/val/<class>/*` (or
 * `ROOT/test/<class>/*`). Class names are the sorted sub-folders of train/ (torchvision ImageFolder),
 * and every split is labelled by those names.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KdEdgeError } from '@kd-edge/core';
import { IMAGE_EXTENSIONS } from '../data/image.js';
import { scanSplit } from '../data/scan.js';
import { DatasetError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

/** The splits a classification dataset may have. */
export const CLASSIFY_SPLITS = ['train', 'val', 'test'] as const;

/** One of {@link CLASSIFY_SPLITS}. */
export type ClassifySplit = (typeof CLASSIFY_SPLITS)[number];

/** One labelled image. */
export interface ClassifyItem {
  file: string;
  /** Index into the dataset's class names. */
  label: number;
}

/** What {@link loadClassifyDataset} found. */
export interface ClassifyDataset {
  /** The dataset root, absolute. */
  root: string;
  /** Class names: the sorted sub-folders of train/. */
  names: string[];
  train: ClassifyItem[];
  /** The split validated on: val/, or test/ when there is no val/ (or the split asked for). */
  val: ClassifyItem[];
  valSplit: ClassifySplit;
}

const LAYOUT = 'a classification dataset is ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg';

async function isDir(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** Sorted names of the non-hidden sub-folders of `dir` (Python's sorted(): code-point order). */
export async function classFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

/** A logger that lets warnings through and drops the per-folder info lines of scanSplit. */
function warningsOnly(log: Logger): Logger {
  return { ...silentLogger, warn: (m, ...a) => log.warn(m, ...a), error: (m, ...a) => log.error(m, ...a) };
}

/**
 * Lists and checks the images of one split: every `<class>` folder's images (searched recursively;
 * other files ignored), each image's header and end marker verified, corrupt or truncated ones skipped
 * with a warning naming them. `names` are the classes (train's); a folder not among them, an empty
 * class folder or a split without class folders is a DatasetError naming the folder.
 */
export async function scanClassifySplit(root: string, split: ClassifySplit, names: readonly string[], log: Logger = silentLogger): Promise<ClassifyItem[]> {
  const dir = join(root, split);
  if (!(await isDir(dir))) throw new DatasetError(`${dir}: no such folder; ${LAYOUT}`);
  const folders = await classFolders(dir);
  if (folders.length === 0) throw new DatasetError(`${dir}: no class folders; ${LAYOUT}`);
  const unknown = folders.filter((f) => !names.includes(f));
  if (unknown.length > 0) {
    throw new DatasetError(`${dir}: class folder${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `'${u}'`).join(', ')} not in train/ (classes: ${names.join(', ')})`);
  }
  const missing = names.filter((n) => !folders.includes(n));
  if (missing.length > 0) log.warn(`${split}: no folder for class${missing.length > 1 ? 'es' : ''} ${missing.join(', ')} (0 images)`);
  const items: ClassifyItem[] = [];
  const quiet = warningsOnly(log);
  for (const folder of folders) {
    const classDir = join(dir, folder);
    let files: { image: string }[];
    try {
      files = await scanSplit([classDir], 1, quiet, { split: `${split}/${folder}`, imagesOnly: true });
    } catch (err) {
      if (!(err instanceof KdEdgeError && err.code === 'DATASET_INVALID')) throw err;
      throw new DatasetError(`${classDir}: empty class folder, no usable image (${IMAGE_EXTENSIONS.join(' ')})`, { cause: err });
    }
    const label = names.indexOf(folder);
    for (const f of files) items.push({ file: f.image, label });
  }
  log.info(`${split}: ${items.length} images in ${folders.length} classes`);
  return items;
}

/**
 * Reads a classification dataset: class names from train/'s sub-folders, train/ and the validation
 * split (`val/`, else `test/`; or the one named by `split`) listed and checked. Errors (missing
 * folders, a val class train lacks, empty class folders) are DatasetErrors naming the folder.
 * @example
 * const ds = await loadClassifyDataset('datasets/shapes-cls', logger);
 * ds.names; // ['circle', 'square', 'triangle']
 */
export async function loadClassifyDataset(
  rootIn: string, log: Logger = silentLogger, opts: { split?: ClassifySplit; train?: boolean } = {},
): Promise<ClassifyDataset> {
  const root = resolve(rootIn);
  if (!(await isDir(root))) {
    const file = await stat(root).then((st) => st.isFile(), () => false);
    throw new DatasetError(`${file ? `${root} is a file, not a dataset folder` : `dataset folder ${root} does not exist`}; ${LAYOUT}`);
  }
  const trainDir = join(root, 'train');
  if (!(await isDir(trainDir))) throw new DatasetError(`${trainDir}: no such folder; ${LAYOUT}`);
  const names = await classFolders(trainDir);
  if (names.length === 0) throw new DatasetError(`${trainDir}: no class folders; ${LAYOUT}`);
  let valSplit: ClassifySplit;
  if (opts.split !== undefined) valSplit = opts.split;
  else if (await isDir(join(root, 'val'))) valSplit = 'val';
  else if (await isDir(join(root, 'test'))) valSplit = 'test';
  else throw new DatasetError(`${root}: neither val/ nor test/ found; ${LAYOUT}`);
  const train = opts.train === false ? [] : await scanClassifySplit(root, 'train', names, log);
  const val = valSplit === 'train' && opts.train !== false ? train : await scanClassifySplit(root, valSplit, names, log);
  return { root, names, train, val, valSplit };
}
