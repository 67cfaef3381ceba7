/**
 * Turns a list of dataset indices into a {@link Batch}: augmented samples for training, letterboxed
 * ones for validation. Runs inside the loader's worker (or in-process when no worker is used) and
 * imports nothing that needs the package's own module resolution.
 */
import type { AugmentHyp, Batch, ImageShape } from './types.js';
import { augmentSample, type SampleSource } from './augment.js';
import { readCachedImage, writeCachedImage } from './disk-cache.js';
import { decodeImage, letterboxImage, loadResized, type RgbImage } from './image.js';
import type { LabelledImage } from './mosaic.js';
import { Rng } from './rng.js';
import { SharedImageCache, type SharedImageCacheInit } from './shared-image-cache.js';

/** What a builder needs to know about one dataset item (structured-clone friendly). */
/** Where decoded images are kept across epochs (ultralytics' `--cache`). */
export type ImageCache = 'none' | 'ram' | 'disk';

export interface BuilderItem {
  image: string;
  labels: Float32Array;
}

/** Settings shared by every batch of a loader. */
export interface BuilderOptions {
  imgsz: number;
  augment: boolean;
  hyp: AugmentHyp;
  seed: number;
  /** Keep decoded images: in memory (`ram`) or beside each image as `<image>.kdc` (`disk`), as ultralytics' --cache. */
  cache: ImageCache;
  /** Items [0, labelled) have labels, the rest are unlabelled images (default: all labelled). */
  labelled?: number;
}

/** One batch to build: its epoch, its position in the epoch, and the dataset indices it holds. */
export interface BatchJob {
  epoch: number;
  batch: number;
  indices: number[];
  /** [height, width] of a rectangular validation batch (ultralytics --rect); default imgsz×imgsz. */
  shape?: [number, number];
}

/**
 * Bytes of one `--cache ram` slot at this size: an image resized to long side imgsz, or letterboxed to
 * a rect batch shape (at most imgsz plus a stride, rounded up: 64 covers stride 32 and 64).
 */
export function ramCacheSlotBytes(imgsz: number): number {
  return 3 * (imgsz + 64) * (imgsz + 64);
}

/** Builds batches; reports each unreadable image once through `warn` and replaces (train) or skips (val) it. */
export class BatchBuilder implements SampleSource {
  readonly count: number;
  readonly size: number;
  private readonly bad = new Set<number>();
  private diskCacheWarned = false;
  private readonly shared: SharedImageCache | null;

  /** `shared`: with `cache: 'ram'`, the loader's cache that every builder of its threads fills and reads. */
  constructor(
    private readonly items: readonly BuilderItem[],
    private readonly options: BuilderOptions,
    private readonly warn: (msg: string) => void,
    shared?: SharedImageCacheInit,
  ) {
    if (items.length === 0) throw new RangeError('BatchBuilder: items must not be empty');
    this.count = items.length;
    this.size = options.imgsz;
    this.shared = options.cache === 'ram' ? SharedImageCache.attach(shared ?? SharedImageCache.create(items.length, ramCacheSlotBytes(options.imgsz)).init) : null;
  }

  private markBad(index: number, err: unknown): void {
    if (this.bad.has(index)) return;
    this.bad.add(index);
    const reason = err instanceof Error ? err.message : String(err);
    this.warn(`image failed to decode and was ${this.options.augment ? 'replaced' : 'skipped'}: ${this.items[index]!.image} (${reason})`);
  }

  /** Mosaics keep labelled and unlabelled images apart: each draws from its own part of the items. */
  pool(index: number): [number, number] {
    const labelled = this.options.labelled ?? this.count;
    return index < labelled ? [0, labelled] : [labelled, this.count - labelled];
  }

  /** The image at `index` resized to long side imgsz; an unreadable one is swapped for the next readable item. */
  async load(index: number): Promise<LabelledImage> {
    for (let k = 0; k < this.count; k++) {
      const i = (index + k) % this.count;
      if (this.bad.has(i)) continue;
      try {
        const hit = this.shared?.get(i);
        let image: RgbImage | undefined = hit ? { data: hit.data, height: hit.height, width: hit.width } : undefined;
        if (!image) {
          image = await this.decodeResized(this.items[i]!.image);
          this.shared?.put(i, image.data, image.height, image.width);
        }
        return { image, labels: this.items[i]!.labels };
      } catch (err) {
        this.markBad(i, err);
      }
    }
    throw new Error('no readable image left in the dataset');
  }

  /** ultralytics' load_image, through the disk cache when asked: a cache file of another size or image version is made again. */
  private async decodeResized(file: string): Promise<RgbImage> {
    if (this.options.cache !== 'disk') return loadResized(file, this.size);
    const hit = await readCachedImage(file, this.size);
    if (hit) return hit;
    const image = await loadResized(file, this.size);
    if (!(await writeCachedImage(file, this.size, image)) && !this.diskCacheWarned) {
      this.diskCacheWarned = true;
      this.warn(`--cache disk: cannot write beside ${file}; images of that folder are decoded every epoch`);
    }
    return image;
  }

  private async letterboxed(index: number, target: [number, number]): Promise<{ data: Uint8Array; shape: ImageShape } | null> {
    if (this.bad.has(index)) return null;
    const hit = this.shared?.get(index);
    // A rect batch asks for the same shape every epoch; a hit of another shape is decoded again.
    if (hit && hit.height === target[0] && hit.width === target[1]) {
      const [oh, ow, ry, rx, py, px] = hit.info as [number, number, number, number, number, number];
      return { data: hit.data, shape: { orig: [oh, ow], ratio: [ry, rx], pad: [py, px] } };
    }
    try {
      const img = await decodeImage(this.items[index]!.image);
      const lb = await letterboxImage(img.data, img.width, img.height, target);
      const out = { data: lb.data, shape: { orig: [img.height, img.width], ratio: lb.ratio, pad: lb.pad } as ImageShape };
      this.shared?.put(index, out.data, target[0], target[1], [...out.shape.orig, ...out.shape.ratio, ...out.shape.pad]);
      return out;
    } catch (err) {
      this.markBad(index, err);
      return null;
    }
  }

  /** Builds one batch. Sample randomness comes from Rng.derive(seed, epoch, index). */
  async build(job: BatchJob): Promise<Batch> {
    const S = this.size;
    const [H, W] = job.shape ?? [S, S];
    const { hyp, seed, augment } = this.options;
    const samples = await Promise.all(job.indices.map(async (index) => {
      if (augment) {
        const s = await augmentSample(this, index, hyp, Rng.derive(seed, job.epoch, index));
        const shape: ImageShape = { orig: [S, S], ratio: [1, 1], pad: [0, 0] };
        return { index, data: s.data, labels: s.labels, shape };
      }
      const lb = await this.letterboxed(index, [H, W]);
      if (!lb) return null;
      const { ratio, pad } = lb.shape;
      const [h0, w0] = lb.shape.orig;
      const src = this.items[index]!.labels;
      const labels = new Float32Array(src.length);
      for (let i = 0; i + 4 < src.length; i += 5) {
        labels[i] = src[i]!;
        labels[i + 1] = (src[i + 1]! * w0 * ratio[1] + pad[0]) / W;
        labels[i + 2] = (src[i + 2]! * h0 * ratio[0] + pad[1]) / H;
        labels[i + 3] = (src[i + 3]! * w0 * ratio[1]) / W;
        labels[i + 4] = (src[i + 4]! * h0 * ratio[0]) / H;
      }
      return { index, data: lb.data, labels, shape: lb.shape };
    }));
    const kept = samples.filter((s): s is NonNullable<typeof s> => s !== null);
    const labelled = this.options.labelled ?? this.count;
    const unlabeled = kept.flatMap((s, b) => (s.index >= labelled ? [b] : []));
    const n = kept.length;
    const px = H * W * 3;
    const images = new Float32Array(n * px);
    let nTargets = 0;
    for (const s of kept) nTargets += s.labels.length / 5;
    const targets = new Float32Array(nTargets * 6);
    let t = 0;
    const inv = 1 / 255;
    kept.forEach((s, b) => {
      const off = b * px;
      for (let k = 0; k < px; k++) images[off + k] = s.data[k]! * inv;
      for (let i = 0; i + 4 < s.labels.length; i += 5) {
        targets[t++] = b;
        for (let j = 0; j < 5; j++) targets[t++] = s.labels[i + j]!;
      }
    });
    return {
      images, n, height: H, width: W, targets, nTargets,
      files: kept.map((s) => this.items[s.index]!.image),
      shapes: kept.map((s) => s.shape),
      ...(unlabeled.length > 0 ? { unlabeled } : {}),
    };
  }
}
