/**
 * Lists and verifies the images and labels of a split (ultralytics verify_image_label, without
 * its disk cache): unreadable images and bad label rows are skipped, and each kind of problem is
 * reported once with a count and the first few files.
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, resolve, sep } from 'node:path';
import sharp from 'sharp';
import { DatasetError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { readBmpInfo } from './bmp.js';
import { isImageFile } from './image.js';
import type { DatasetItem } from './types.js';

/** Options of {@link scanSplit}. */
export interface ScanOptions {
  /** Split name used in messages ("train", "val"). */
  split?: string;
  /** Files checked at once; default 16. */
  concurrency?: number;
  /** Images only (unlabelled images for distillation): no label files are read, every item has none. */
  imagesOnly?: boolean;
  /** Told the images skipped (corrupt, truncated, too small, unreadable labels, listed but missing), sorted, before the warnings. */
  onSkipped?: (files: string[]) => void;
}

/** Coordinates this far outside [0, 1] are accepted (and clipped) as float round-off. */
export const COORD_TOLERANCE = 1e-3;
const MIN_SIDE = 10;
const NAMED_FILES = 3;

/**
 * The label file of an image: the last `/images/` of the path replaced by `/labels/` and the
 * extension by `.txt` (ultralytics img2label_paths).
 */
export function imageToLabelPath(image: string): string {
  const a = `${sep}images${sep}`;
  const i = image.lastIndexOf(a);
  const p = i < 0 ? image : `${image.slice(0, i)}${sep}labels${sep}${image.slice(i + a.length)}`;
  const ext = extname(p);
  return `${ext ? p.slice(0, -ext.length) : p}.txt`;
}

/** Counts of one kind of problem, with the files where it happened. */
class Tally {
  count = 0;
  readonly files = new Set<string>();
  add(file: string, n = 1): void {
    if (n <= 0) return;
    this.count += n;
    this.files.add(file);
  }
  names(): string {
    // Sorted, so the message does not depend on which check finished first.
    const files = [...this.files].sort();
    const shown = files.slice(0, NAMED_FILES).map((f) => basename(f)).join(', ');
    return files.length > NAMED_FILES ? `${shown}, …` : shown;
  }
}

async function listSource(src: string, missing: Tally): Promise<string[]> {
  let st;
  try {
    st = await stat(src);
  } catch (err) {
    throw new DatasetError(`dataset source does not exist: ${src}`, { cause: err });
  }
  if (st.isDirectory()) {
    const entries = await readdir(src, { recursive: true });
    return entries.map((e) => join(src, e)).filter(isImageFile);
  }
  if (extname(src).toLowerCase() === '.txt') {
    // Relative entries (with or without ./) are taken relative to the list's folder.
    const base = dirname(src);
    const out: string[] = [];
    for (const raw of (await readFile(src, 'utf8')).split(/\r?\n/)) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const p = isAbsolute(line) ? line : resolve(base, line);
      if (!isImageFile(p)) continue;
      out.push(p);
    }
    const exists = await Promise.all(out.map((p) => stat(p).then((s) => s.isFile(), () => false)));
    return out.filter((p, i) => exists[i] || (missing.add(p), false));
  }
  if (isImageFile(src)) return [src];
  throw new DatasetError(`dataset source must be a folder, a .txt list or an image: ${src}`);
}

type ImageCheck = { check: 'ok'; width: number; height: number } | { check: 'corrupt' | 'truncated' | 'small' };

async function checkImage(file: string): Promise<ImageCheck> {
  const bad = (check: 'corrupt' | 'truncated' | 'small'): ImageCheck => ({ check });
  const fh = await open(file, 'r').catch(() => null);
  if (!fh) return bad('corrupt');
  try {
    const { size } = await fh.stat();
    if (size < 16) return bad('corrupt');
    const ext = extname(file).toLowerCase();
    const tail = Buffer.alloc(12);
    await fh.read(tail, 0, 12, size - 12);
    if (ext === '.bmp') {
      const head = Buffer.alloc(Math.min(size, 138));
      await fh.read(head, 0, head.length, 0);
      try {
        const info = readBmpInfo(head, size);
        return info.width < MIN_SIDE || info.height < MIN_SIDE ? bad('small') : { check: 'ok', width: info.width, height: info.height };
      } catch (err) {
        return bad(/truncated/.test((err as Error).message) ? 'truncated' : 'corrupt');
      }
    }
    let meta;
    try {
      meta = await sharp(file).metadata();
    } catch {
      return bad('corrupt');
    }
    const fmt = meta.format as string;
    if (!['jpeg', 'png', 'webp'].includes(fmt)) return bad('corrupt');
    // Headers alone miss a cut-off file: check the format's end marker, and when it is absent
    // (trailing bytes are common too) decode the whole file to tell which it is.
    let ended = true;
    if (fmt === 'jpeg') ended = tail[10] === 0xff && tail[11] === 0xd9;
    else if (fmt === 'png') ended = tail.toString('latin1', 4, 8) === 'IEND';
    else {
      const head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
      ended = head.readUInt32LE(4) + 8 <= size;
    }
    if (!ended && !(await sharp(file).raw().toBuffer().then(() => true, () => false))) return bad('truncated');
    if ((meta.width ?? 0) < MIN_SIDE || (meta.height ?? 0) < MIN_SIDE) return bad('small');
    return { check: 'ok', width: meta.width!, height: meta.height! };
  } finally {
    await fh.close();
  }
}

interface LabelTallies {
  malformed: Tally;
  classRange: Tally;
  coords: Tally;
  empty: Tally;
  duplicate: Tally;
}

/** Parses a label file's rows; polygon rows (ultralytics segments) become their bounding boxes. */
function parseLabels(text: string, nc: number, file: string, t: LabelTallies): Float32Array {
  const rows: number[] = [];
  const seen = new Set<string>();
  const bad = { malformed: 0, classRange: 0, coords: 0, empty: 0, duplicate: 0 };
  for (const line of text.split(/\r?\n/)) {
    const tokens = line.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) continue;
    const v = tokens.map(Number);
    const polygon = v.length > 6 && (v.length - 1) % 2 === 0;
    if ((v.length !== 5 && !polygon) || v.some((x) => !Number.isFinite(x)) || !Number.isInteger(v[0])) { bad.malformed++; continue; }
    const cls = v[0]!;
    if (cls < 0 || cls >= nc) { bad.classRange++; continue; }
    const coords = v.slice(1);
    if (coords.some((x) => x < -COORD_TOLERANCE || x > 1 + COORD_TOLERANCE)) { bad.coords++; continue; }
    const c = coords.map((x) => Math.min(1, Math.max(0, x)));
    let box: number[];
    if (polygon) {
      const xs = c.filter((_, i) => i % 2 === 0), ys = c.filter((_, i) => i % 2 === 1);
      const x1 = Math.min(...xs), x2 = Math.max(...xs), y1 = Math.min(...ys), y2 = Math.max(...ys);
      box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1];
    } else {
      box = c;
    }
    if (!(box[2]! > 0 && box[3]! > 0)) { bad.empty++; continue; }
    const key = [cls, ...box].join(' ');
    if (seen.has(key)) { bad.duplicate++; continue; }
    seen.add(key);
    rows.push(cls, ...box);
  }
  for (const k of Object.keys(bad) as (keyof typeof bad)[]) t[k].add(file, bad[k]);
  return Float32Array.from(rows);
}

async function listImagesInto(sources: string[], missing: Tally): Promise<string[]> {
  const lists = await Promise.all(sources.map((s) => listSource(s, missing)));
  return [...new Set(lists.flat())].sort();
}

/**
 * The image files of sources as {@link scanSplit} finds them (folders searched recursively, .txt lists,
 * single images), sorted and without repeats, unverified; `missing`: files a list names that do not exist.
 * Throws DatasetError for a source that does not exist or is none of these.
 * @example
 * const { images } = await listImages(['capture/']);
 */
export async function listImages(sources: string[]): Promise<{ images: string[]; missing: string[] }> {
  const missing = new Tally();
  const images = await listImagesInto(sources, missing);
  return { images, missing: [...missing.files] };
}

/**
 * Lists the images of a split's sources (folders, searched recursively, or .txt lists), verifies
 * each image's header and end marker and each label row, and returns the usable items sorted by
 * path. Never throws for a bad file; throws DatasetError when nothing usable is left.
 * @example
 * const items = await scanSplit(cfg.train, cfg.nc, logger, { split: 'train' });
 */
export async function scanSplit(sources: string[], nc: number, logger: Logger = silentLogger, options: ScanOptions = {}): Promise<DatasetItem[]> {
  if (!Number.isInteger(nc) || nc < 1) throw new RangeError(`scanSplit: nc must be a positive integer, got ${nc}`);
  const split = options.split ?? 'dataset';
  const concurrency = options.concurrency ?? 16;
  const missingListed = new Tally();
  const images = await listImagesInto(sources, missingListed);

  const corrupt = new Tally(), truncated = new Tally(), small = new Tally(), unreadable = new Tally();
  const lt: LabelTallies = { malformed: new Tally(), classRange: new Tally(), coords: new Tally(), empty: new Tally(), duplicate: new Tally() };
  const results: (DatasetItem | null)[] = new Array(images.length).fill(null);
  let noLabelFile = 0;
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, images.length) }, async () => {
    while (next < images.length) {
      const i = next++;
      const image = images[i]!;
      const checked = await checkImage(image);
      if (checked.check !== 'ok') {
        ({ corrupt, truncated, small })[checked.check].add(image);
        continue;
      }
      if (options.imagesOnly) {
        results[i] = { image, labels: new Float32Array(0), size: [checked.width, checked.height] };
        continue;
      }
      const labelFile = imageToLabelPath(image);
      let text = '';
      try {
        text = await readFile(labelFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') noLabelFile++;
        else { unreadable.add(labelFile); continue; }
      }
      results[i] = { image, labels: parseLabels(text, nc, labelFile, lt), size: [checked.width, checked.height] };
    }
  }));

  options.onSkipped?.([...images.filter((_, i) => results[i] === null), ...missingListed.files].sort());
  const warn = (t: Tally, what: string) => { if (t.count) logger.warn(`${split}: ${t.count} ${what}: ${t.names()}`); };
  const warnRows = (t: Tally, what: string) => {
    if (t.count) logger.warn(`${split}: ${t.count} ${what} in ${t.files.size} file${t.files.size === 1 ? '' : 's'}: ${t.names()}`);
  };
  warn(missingListed, 'listed images not found, skipped');
  warn(corrupt, 'corrupt images skipped');
  warn(truncated, 'truncated images skipped');
  warn(small, `images smaller than ${MIN_SIDE} px skipped`);
  warn(unreadable, 'label files unreadable, images skipped');
  warnRows(lt.malformed, 'malformed label rows dropped (need 5 numbers, integer class)');
  warnRows(lt.classRange, `labels with class id out of range (nc=${nc}) dropped`);
  warnRows(lt.coords, 'labels with coordinates outside [0, 1] dropped');
  warnRows(lt.empty, 'labels with zero width or height dropped');
  warnRows(lt.duplicate, 'duplicate labels removed');

  const items = results.filter((r): r is DatasetItem => r !== null);
  const skipped = images.length - items.length + missingListed.count;
  if (items.length === 0) {
    throw new DatasetError(`${split}: no usable images in ${sources.join(', ')} (${images.length} found, ${skipped} skipped)`);
  }
  if (options.imagesOnly) {
    logger.info(`${split}: ${items.length} images, ${skipped} skipped`);
    return items;
  }
  const boxes = items.reduce((n, it) => n + it.labels.length / 5, 0);
  const backgrounds = items.filter((it) => it.labels.length === 0).length;
  logger.info(`${split}: ${items.length} images, ${boxes} boxes, ${backgrounds} backgrounds (${noLabelFile} without label file), ${skipped} skipped`);
  return items;
}
