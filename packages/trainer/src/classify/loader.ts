import { decodeImage, type RgbImage } from '../data/image.js';
import { Rng } from '../data/rng.js';
import { DatasetError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ClassifyItem } from './dataset.js';
import { IMAGENET_NORMALISATION, type Normalisation } from './normalisation.js';
import { trainTransform, valTransform, type ClassifyAugment } from './transforms.js';

/** A batch of classification images: NHWC float32, normalised, with their class indices. */
export interface ClassifyBatch {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  /** Side of the square images. */
  size: number;
  files: string[];
}

/** Options of {@link ClassifyLoader}. */
export interface ClassifyLoaderOptions {
  imgsz: number;
  batchSize: number;
  /** Training augmentation; absent for the validation transform. */
  augment?: Readonly<ClassifyAugment>;
  /** Shuffle every epoch (seeded by seed and epoch). */
  shuffle?: boolean;
  seed?: number;
  /** Keep decoded images in memory across epochs (ultralytics `--cache ram`). */
  cache?: boolean;
  normalisation?: Readonly<Normalisation>;
  /** Images decoded and transformed at once (sharp runs them on its own threads); default 8. */
  concurrency?: number;
  logger?: Logger;
}

// Salts that keep the shuffle's stream apart from the images' own.
const SHUFFLE = 0x5eed;
const IMAGE = 0x1a6e;

/**
 * Batches of a classification split, with the next batch prepared while the current one trains.
 * The order of an epoch and the augmentation of each image depend only on (seed, epoch, image index),
 * so a run is reproducible and two runs with the same seed see the same pixels in the same order (the
 * distillation baseline and the distilled student). The last batch may be smaller (no drop_last, as
 * ultralytics).
 * @example
 * const loader = new ClassifyLoader(ds.train, { imgsz: 224, batchSize: 64, augment: CLASSIFY_AUGMENT_DEFAULTS, shuffle: true });
 * for await (const b of loader.epoch(0)) step(b.images, b.labels);
 */
export class ClassifyLoader {
  private readonly cache = new Map<string, RgbImage>();
  private readonly log: Logger;

  constructor(readonly items: readonly ClassifyItem[], readonly options: ClassifyLoaderOptions) {
    if (!Number.isInteger(options.imgsz) || options.imgsz < 1) throw new RangeError(`imgsz: expected a positive integer, got ${options.imgsz}`);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new RangeError(`batchSize: expected a positive integer, got ${options.batchSize}`);
    if (items.length === 0) throw new DatasetError('no images to load');
    this.log = options.logger ?? silentLogger;
  }

  /** Batches per epoch. */
  get length(): number {
    return Math.ceil(this.items.length / this.options.batchSize);
  }

  /** The item indices of an epoch, in order. */
  order(epoch: number): number[] {
    const idx = this.items.map((_, i) => i);
    return this.options.shuffle ? Rng.derive(this.options.seed ?? 0, epoch, SHUFFLE).shuffle(idx) : idx;
  }

  /**
   * One epoch's batches from batch `from` on (a resumed run skips those it trained: each batch is the
   * same whatever came before it); the batch after the one handed out is being prepared meanwhile.
   */
  async *epoch(epoch: number, from = 0): AsyncGenerator<ClassifyBatch> {
    if (!Number.isInteger(from) || from < 0) throw new RangeError(`from: expected a batch index ≥ 0, got ${from}`);
    const order = this.order(epoch).slice(from * this.options.batchSize);
    if (order.length === 0) return;
    const bs = this.options.batchSize;
    let next: Promise<ClassifyBatch> | undefined = this.batch(order.slice(0, bs), epoch);
    for (let start = 0; next !== undefined; start += bs) {
      const current: Promise<ClassifyBatch> = next;
      next = start + bs < order.length ? this.batch(order.slice(start + bs, start + 2 * bs), epoch) : undefined;
      // A failed prefetch must not be left unhandled while the consumer still works on this batch.
      next?.catch(() => undefined);
      yield await current;
    }
  }

  private async image(file: string): Promise<RgbImage> {
    const hit = this.cache.get(file);
    if (hit) return hit;
    let img: RgbImage;
    try {
      img = await decodeImage(file);
    } catch (err) {
      throw new DatasetError(`${file}: cannot decode (${(err as Error).message})`, { cause: err });
    }
    if (this.options.cache) this.cache.set(file, img);
    return img;
  }

  private async batch(indices: number[], epoch: number): Promise<ClassifyBatch> {
    const { imgsz: size, augment, seed = 0 } = this.options;
    const norm = this.options.normalisation ?? IMAGENET_NORMALISATION;
    const per = size * size * 3;
    const n = indices.length;
    const images = new Float32Array(n * per);
    const labels = new Int32Array(n);
    const files = indices.map((i) => this.items[i]!.file);
    let k = 0;
    const work = async () => {
      while (k < n) {
        const j = k++;
        const idx = indices[j]!;
        const item = this.items[idx]!;
        labels[j] = item.label;
        const img = await this.image(item.file);
        if (augment) await trainTransform(img, size, Rng.derive(seed, epoch, idx, IMAGE), augment, norm, images, j * per);
        else await valTransform(img, size, norm, images, j * per);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 8, n) }, work));
    return { images, labels, n, size, files };
  }

  /** Frees the decoded-image cache. */
  close(): void {
    if (this.cache.size > 0) this.log.debug(`loader: dropping ${this.cache.size} cached images`);
    this.cache.clear();
  }
}
