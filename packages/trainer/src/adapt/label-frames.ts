import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { fsyncTree } from '@kd-edge/core';
import { stringify } from 'yaml';
import { evalLoader } from '../data/eval-loader.js';
import { imageToLabelPath, listImages, scanSplit } from '../data/scan.js';
import type { DatasetItem } from '../data/types.js';
import { DatasetError } from '../errors.js';
import { pseudoDetections } from '../distill/pseudo-labels.js';
import { sha256File } from '../distill/teacher/teacher-file.js';
import type { Teacher } from '../distill/types.js';
import { yoloLabelLines } from '../predict/labels.js';
import { scaleDetections } from '../predict/preprocess.js';
import type { Logger } from '../util/logger.js';
import { AdaptError } from './adapt-error.js';
import { holdoutSplit } from './holdout-split.js';
import { replayChoice } from './replay-images.js';
import { writeJson, type JobPaths } from './job-files.js';

/** What the labelling was given, kept in labels.json: a later call on the job must bring the same. */
export interface LabelInputs {
  frames: string[];
  teacher: string;
  teacherSha256: string;
  weights: string;
  weightsSha256: string;
  imgsz: number;
  pseudoConf: number;
  holdout: number;
  seed: number;
  /**
   * `--replay` sources: images of the original domain trained on beside the frames, with their own label files where
   * they have them (ultralytics' images → labels rule), else labelled by the teacher (absent in jobs from before replay: none).
   */
  replay?: string[];
  /** `--replay-max`: most replay images used (0: all). */
  replayMax?: number;
}

/** One labelled frame. */
export interface LabelledFrame {
  /** File name in data/images/{train,val}. */
  name: string;
  /** Where it was captured. */
  source: string;
  sha256: string;
  /** `replay`: an image of the original domain (`--replay`), in images/train only, never scored. */
  split: 'adapt' | 'holdout' | 'replay';
  boxes: number;
  /** A replay image labelled by its own label file (ground truth), not by the teacher. */
  groundTruth?: true;
}

/** What labels.json says of the replay images (`--replay`): all zero when none were given. */
export interface ReplaySummary {
  sources: string[];
  /** `--replay-max` (0: all). */
  max: number;
  /** Image files found in the sources, skipped as unusable, left out as byte-identical to a frame or to another replay image, and used. */
  found: number;
  skipped: number;
  skippedFiles: string[];
  duplicates: number;
  used: number;
  /** The teacher's boxes on the used replay images it labelled (those without a label file), and those it found nothing on. */
  boxes: number;
  backgrounds: number;
  /**
   * Used replay images that came with a label file and were labelled by it, not by the teacher (`used − labelled` were
   * teacher-labelled); absent in jobs labelled before ground-truth replay: none.
   */
  labelled?: number;
  /** The boxes of their label files (rows the dataset scan accepts). */
  labelBoxes?: number;
}

/** data/labels.json: the labelling's inputs, counts and frames. Written last, so it marks data/ complete. */
export interface LabelSummary {
  version: 1;
  inputs: LabelInputs;
  /** Image files found, used, and skipped (corrupt, truncated, too small, or gone before they were linked). */
  frames: { found: number; used: number; skipped: number; skippedFiles: string[] };
  split: { adapt: number; holdout: number };
  /** The replay images (absent in jobs from before replay). Not counted in `frames`, `split` or `boxes`. */
  replay?: ReplaySummary;
  boxes: {
    total: number;
    /** Mean boxes per used frame. */
    perFrame: number;
    /** Frames the teacher found nothing on (kept as background images). */
    backgrounds: number;
    /** Frames by box count: { '0': 12, '1': 30, … }. */
    histogram: Record<string, number>;
    /** Boxes by class name. */
    perClass: Record<string, number>;
  };
  names: string[];
  items: LabelledFrame[];
  seconds: number;
}

/** What an adaptation's labelling stage reports as it goes. */
export interface LabelProgress {
  stage: 'label';
  done: number;
  total: number;
  boxes: number;
}

/** Options of {@link labelFrames}. */
export interface LabelFramesOptions {
  paths: JobPaths;
  inputs: LabelInputs;
  /** The opened teacher, already checked against the student. */
  teacher: Teacher;
  /** The student's class names (data.yaml's). */
  names: string[];
  minFrames: number;
  batchSize: number;
  workers: number;
  logger: Logger;
  signal?: AbortSignal;
  onProgress?: (p: LabelProgress) => void;
}

/** Most skipped files named in labels.json and adapt.json. */
const NAMED_SKIPS = 20;

/** `--frames` as absolute sources (folders, .txt lists, images), each checked to exist. */
export function frameSources(spec: string): string[] {
  const sources = spec.split(',').map((s) => s.trim()).filter(Boolean).map((s) => resolve(s));
  if (sources.length === 0) throw new AdaptError('ADAPT_FRAMES_NOT_FOUND', '--frames: no folder or list given');
  for (const s of sources) if (!existsSync(s)) throw new AdaptError('ADAPT_FRAMES_NOT_FOUND', `--frames: ${s} does not exist`);
  return sources;
}

/**
 * A name in data/images for `file`: its own, or with `-2`, `-3`… when another frame took the stem already
 * (two folders, or `1.jpg` beside `1.png`: label files are named by stem).
 */
function uniqueName(file: string, stems: Set<string>): string {
  const ext = extname(file);
  const stem = basename(file, ext);
  let s = stem;
  for (let k = 2; stems.has(s); k++) s = `${stem}-${k}`;
  stems.add(s);
  return `${s}${ext.toLowerCase()}`;
}

/**
 * A hard link to `src` at `dst` (the capture's eviction then removes only its own name), or a copy where
 * links cannot be made (another file system, a file system without them). False when `src` is gone.
 */
async function linkOrCopy(src: string, dst: string): Promise<boolean> {
  try {
    // The file itself, not a symbolic link to it (link(2) would link the symbolic link).
    await link(await realpath(src), dst);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    await copyFile(src, dst);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The replay images a job links into images/train, and what was left out. */
interface ReplayPick {
  /** `labels`: the rows of the image's own label file (cls, cx, cy, w, h), when it has one. */
  images: { source: string; name: string; sha256: string; size?: [number, number]; labels?: Float32Array }[];
  found: number;
  skippedFiles: string[];
  duplicates: number;
}

/**
 * The `--replay` images: scanned as a dataset split is (unusable ones skipped and counted; each image's label file
 * found by ultralytics' images → labels rule and its rows checked as training checks them), hashed, those
 * byte-identical to a frame left out (a hold-out frame must never be trained on), `replayMax` of the rest
 * chosen by content and seed ({@link replayChoice}) and linked (or copied) into images/train under
 * `replay-<name>`; those with a label file carry its rows. Throws AdaptError 'ADAPT_REPLAY_NOT_FOUND' when replay
 * was asked for and no image is usable.
 */
async function addReplay(o: LabelFramesOptions, frameHashes: string[], stems: Set<string>): Promise<ReplayPick> {
  const sources = o.inputs.replay ?? [];
  const pick: ReplayPick = { images: [], found: 0, skippedFiles: [], duplicates: 0 };
  if (sources.length === 0) return pick;
  let items: DatasetItem[] = [];
  try {
    items = await scanSplit(sources, o.names.length, o.logger, { split: 'replay', onSkipped: (f) => { pick.skippedFiles = f; } });
  } catch (err) {
    if (!(err instanceof DatasetError)) throw err;
  }
  pick.found = items.length + pick.skippedFiles.length;
  if (items.length === 0) {
    throw new AdaptError('ADAPT_REPLAY_NOT_FOUND', `--replay: no usable image in ${sources.join(', ')} (${pick.found} image files found, ${pick.skippedFiles.length} skipped)`);
  }
  const known = new Set(frameHashes);
  const hashed: { item: DatasetItem; sha256: string }[] = [];
  for (const item of items) {
    const sha256 = await sha256File(item.image);
    if (known.has(sha256)) pick.duplicates++;
    else hashed.push({ item, sha256 });
  }
  const used = replayChoice(hashed.map((h) => h.sha256), o.inputs.replayMax ?? 0, o.inputs.seed);
  // Copies of one image beyond the first count as duplicates, not as images left over by the cap.
  pick.duplicates += hashed.length - new Set(hashed.map((h) => h.sha256)).size;
  for (const [i, { item, sha256 }] of hashed.entries()) {
    if (!used[i]) continue;
    const name = uniqueName(`replay-${basename(item.image)}`, stems);
    if (!(await linkOrCopy(item.image, join(o.paths.data, 'images', 'train', name)))) {
      pick.skippedFiles.push(item.image);
      continue;
    }
    // The scan gives a missing label file and an empty one alike (both background): only an existing file is ground truth.
    const labelled = existsSync(imageToLabelPath(item.image));
    pick.images.push({ source: item.image, name, sha256, ...(item.size ? { size: item.size } : {}), ...(labelled ? { labels: item.labels } : {}) });
  }
  return pick;
}

/** A float32 as the shortest decimal that reads back as it (`0.3`, not `0.30000001192092896`). */
function shortFloat32(v: number): string {
  for (let p = 1; p < 9; p++) {
    const t = Number(v.toPrecision(p));
    if (Math.fround(t) === v) return String(t);
  }
  return String(v);
}

/** YOLO label lines of scanned label rows ([cls, cx, cy, w, h] × n). */
function labelRowLines(rows: Float32Array): string[] {
  const lines: string[] = [];
  for (let r = 0; r + 5 <= rows.length; r += 5) lines.push([String(rows[r]), ...Array.from(rows.subarray(r + 1, r + 5), shortFloat32)].join(' '));
  return lines;
}

/**
 * Stage 1 of `kd-trainer adapt`: the frames become a YOLO dataset in `data/` labelled by the teacher.
 * Every image of the sources is hard-linked (or copied) into the job first, so that frames the capture evicts
 * meanwhile stay whole, then verified there (corrupt ones skipped with a warning and counted), split into
 * adaptation and hold-out frames by content and seed ({@link holdoutSplit}), and run through the teacher letterboxed at the job's image size; its detections
 * scoring at least the pseudo-label threshold (decoded and suppressed as ultralytics' predict,
 * {@link pseudoDetections}) are written as `labels/<split>/<stem>.txt` in the frame's own coordinates
 * (rows that clipping made identical once), an empty file where it found nothing (a background frame).
 * The replay images (`inputs.replay`) go into `train` only: those with a label file of their own (ground truth, e.g. a
 * package's `replay/labels`) keep its rows, checked as a dataset's are, and the teacher labels the others. data.yaml names the student's classes;
 * labels.json comes last and marks the folder complete. Throws AdaptError 'ADAPT_TOO_FEW_FRAMES' naming
 * the count and the folders when fewer than `minFrames` are usable or a split would be empty.
 * @returns the summary, or undefined when `signal` stopped it (the folder is then redone next time)
 */
export async function labelFrames(o: LabelFramesOptions): Promise<LabelSummary | undefined> {
  const t0 = performance.now();
  const { paths, inputs, logger: log } = o;
  await rm(paths.data, { recursive: true, force: true });
  const staging = join(paths.data, 'staging');
  for (const d of [staging, ...['train', 'val'].flatMap((s) => [join(paths.data, 'images', s), join(paths.data, 'labels', s)])]) await mkdir(d, { recursive: true });

  const where = inputs.frames.join(', ');
  // A snapshot first: every listed frame is linked into staging before any is verified. The capture goes on
  // evicting its oldest frames meanwhile; a link keeps a frame whole, so the set verified below no longer changes
  // (verifying the capture itself first lost every frame it evicted during the verification).
  const listed = await listImages(inputs.frames).catch((err: unknown) => {
    // A source gone since frameSources checked it: no frames from it (the count below says so).
    if (err instanceof DatasetError) return { images: [], missing: [] };
    throw err;
  });
  const found = listed.images.length + listed.missing.length;
  const skippedFiles = [...listed.missing];
  const stems = new Set<string>();
  const sourceOf = new Map<string, string>();
  for (const source of listed.images) {
    const staged = join(staging, uniqueName(source, stems));
    if (await linkOrCopy(source, staged)) sourceOf.set(staged, source);
    else skippedFiles.push(source); // evicted by the capture between the listing and the link
  }
  let items: DatasetItem[] = [];
  if (sourceOf.size > 0) {
    try {
      items = await scanSplit([staging], o.names.length, log, {
        split: 'frames', imagesOnly: true, onSkipped: (f) => { skippedFiles.push(...f.map((x) => sourceOf.get(x) ?? x)); },
      });
    } catch (err) {
      // scanSplit throws only when no image is usable.
      if (!(err instanceof DatasetError)) throw err;
    }
  }
  skippedFiles.sort();

  const frames: { source: string; name: string; sha256: string; size?: [number, number] }[] = [];
  for (const it of items) {
    frames.push({ source: sourceOf.get(it.image)!, name: basename(it.image), sha256: await sha256File(it.image), ...(it.size ? { size: it.size } : {}) });
  }
  const tooFew = (why: string) => new AdaptError('ADAPT_TOO_FEW_FRAMES', `${why} (${found} image files found in ${where}, ${skippedFiles.length} skipped)`);
  if (frames.length < o.minFrames) throw tooFew(`${frames.length} usable frames, an adaptation needs at least ${o.minFrames}`);
  const held = holdoutSplit(frames.map((f) => f.sha256), inputs.holdout, inputs.seed);
  const nHeld = held.filter(Boolean).length;
  if (nHeld === 0) throw tooFew(`the hold-out is empty: ${(inputs.holdout * 100).toFixed(0)} % of ${frames.length} frames rounds to none; give more frames or a larger --holdout`);
  if (nHeld === frames.length) throw tooFew(`no frame is left to adapt on: the hold-out takes all ${frames.length}; give more frames or a smaller --holdout`);

  const byPath = new Map<string, { frame: (typeof frames)[number]; split: 'train' | 'val'; replay?: true }>();
  const toLabel: DatasetItem[] = [];
  for (const [i, f] of frames.entries()) {
    const split = held[i] ? 'val' : 'train';
    const image = join(paths.data, 'images', split, f.name);
    await rename(join(staging, f.name), image);
    byPath.set(image, { frame: f, split });
    toLabel.push({ image, labels: new Float32Array(0), ...(f.size ? { size: f.size } : {}) });
  }
  await rm(staging, { recursive: true, force: true });
  const replay = await addReplay(o, frames.map((f) => f.sha256), stems);
  const boxesOf = new Map<string, number>();
  const truth = new Set<string>();
  let labelBoxes = 0;
  for (const r of replay.images) {
    const image = join(paths.data, 'images', 'train', r.name);
    byPath.set(image, { frame: r, split: 'train', replay: true });
    if (r.labels === undefined) {
      toLabel.push({ image, labels: new Float32Array(0), ...(r.size ? { size: r.size } : {}) });
      continue;
    }
    // Ground truth of the original domain: better than any teacher's guess, so the teacher does not label it.
    const lines = labelRowLines(r.labels);
    await writeFile(join(paths.data, 'labels', 'train', `${basename(r.name, extname(r.name))}.txt`), lines.length > 0 ? `${lines.join('\n')}\n` : '');
    boxesOf.set(r.name, lines.length);
    truth.add(r.name);
    labelBoxes += lines.length;
  }
  const replayNote = replay.images.length === 0 ? '' : `; ${replay.images.length} replay images trained on beside them (${truth.size} with their own labels)`;
  log.info(`frames: ${frames.length} used (${frames.length - nHeld} to adapt on, ${nHeld} held out), ${skippedFiles.length} skipped${replayNote}; labelling with ${inputs.teacher} at ${inputs.imgsz} px, conf ≥ ${inputs.pseudoConf}`);

  const head = o.teacher.head;
  if (head === undefined) throw new RangeError(`teacher ${o.teacher.source} is not a detector`);
  const perClass: Record<string, number> = Object.fromEntries(o.names.map((n) => [n, 0]));
  let total = 0;
  let replayBoxes = 0;
  const loader = evalLoader(toLabel, { imgsz: inputs.imgsz, batchSize: o.batchSize, workers: o.workers, logger: log });
  try {
    for await (const b of loader.epoch(0)) {
      if (o.signal?.aborted) return undefined;
      const out = await o.teacher.predict(b.images, b.n, b.height, b.width);
      const dets = pseudoDetections(out, head, b.n, b.height, b.width, Array.from({ length: b.n }, (_, i) => i), { conf: inputs.pseudoConf });
      for (let i = 0; i < b.n; i++) {
        const shape = b.shapes[i]!;
        // Back to the frame's own pixels, then normalised to it: the labels do not depend on the image size.
        const mapped = scaleDetections(dets[i]!, { gain: shape.ratio, pad: shape.pad }, shape.orig)
          .filter((d) => d.box[2] > d.box[0] && d.box[3] > d.box[1]);
        const { frame, split, replay: isReplay } = byPath.get(b.files[i]!)!;
        // Boxes that clipping to the frame made identical are one label (the dataset scan would drop the copies).
        const lines = [...new Set(yoloLabelLines(mapped, shape.orig, false))];
        await writeFile(join(paths.data, 'labels', split, `${basename(frame.name, extname(frame.name))}.txt`), lines.length > 0 ? `${lines.join('\n')}\n` : '');
        boxesOf.set(frame.name, lines.length);
        if (isReplay) {
          // The replay images' boxes are counted apart: `boxes` describes what the teacher saw on this camera.
          replayBoxes += lines.length;
          continue;
        }
        for (const line of lines) {
          const name = o.names[Number(line.slice(0, line.indexOf(' ')))]!;
          perClass[name] = (perClass[name] ?? 0) + 1;
        }
        total += lines.length;
      }
      o.onProgress?.({ stage: 'label', done: boxesOf.size, total: toLabel.length + truth.size, boxes: total + replayBoxes + labelBoxes });
    }
  } finally {
    await loader.close();
  }
  // A frame the loader could not decode after all has no label: it leaves the set and counts as skipped.
  const labelled: LabelledFrame[] = [];
  const replayed: LabelledFrame[] = [];
  for (const [image, { frame, split, replay: isReplay }] of byPath) {
    const boxes = boxesOf.get(frame.name);
    if (boxes === undefined) {
      await rm(image, { force: true });
      (isReplay ? replay.skippedFiles : skippedFiles).push(frame.source);
      continue;
    }
    if (isReplay) replayed.push({ name: frame.name, source: frame.source, sha256: frame.sha256, split: 'replay', boxes, ...(truth.has(frame.name) ? { groundTruth: true as const } : {}) });
    else labelled.push({ name: frame.name, source: frame.source, sha256: frame.sha256, split: split === 'val' ? 'holdout' : 'adapt', boxes });
  }
  const histogram: Record<string, number> = {};
  for (const f of labelled) histogram[String(f.boxes)] = (histogram[String(f.boxes)] ?? 0) + 1;
  await writeFile(paths.dataYaml, `# kd-trainer adapt: frames labelled by ${inputs.teacher} (conf >= ${inputs.pseudoConf})\n${stringify({
    path: '.', train: 'images/train', val: 'images/val', nc: o.names.length, names: o.names,
  })}`);
  const adapt = labelled.filter((f) => f.split === 'adapt').length;
  const summary: LabelSummary = {
    version: 1,
    inputs,
    frames: { found, used: labelled.length, skipped: skippedFiles.length, skippedFiles: skippedFiles.slice(0, NAMED_SKIPS) },
    split: { adapt, holdout: labelled.length - adapt },
    replay: {
      sources: inputs.replay ?? [], max: inputs.replayMax ?? 0, found: replay.found, skipped: replay.skippedFiles.length,
      skippedFiles: replay.skippedFiles.slice(0, NAMED_SKIPS), duplicates: replay.duplicates, used: replayed.length, boxes: replayBoxes,
      backgrounds: replayed.filter((f) => f.boxes === 0 && f.groundTruth !== true).length, labelled: truth.size, labelBoxes,
    },
    boxes: { total, perFrame: labelled.length > 0 ? total / labelled.length : 0, backgrounds: histogram['0'] ?? 0, histogram, perClass },
    names: o.names,
    items: [...labelled, ...replayed],
    seconds: (performance.now() - t0) / 1000,
  };
  // labels.json marks the data complete: what it describes must be on disk first, not in the page cache.
  await fsyncTree(paths.data);
  await writeJson(paths.labels, summary);
  log.info(`labels: ${total} boxes on ${labelled.length} frames (${(summary.boxes.perFrame).toFixed(2)} a frame, ${summary.boxes.backgrounds} backgrounds)${replayed.length > 0 ? `; replay images: ${replayBoxes} teacher's boxes on ${replayed.length - truth.size}, ${labelBoxes} ground-truth boxes on ${truth.size}` : ''} in ${summary.seconds.toFixed(1)} s`);
  return summary;
}
