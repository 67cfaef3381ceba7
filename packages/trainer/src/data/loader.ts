/**
 * DataLoader: seeded per-epoch order, batches built ahead of the consumer in a worker thread
 * (sharp and the HSV lookup run there), handed over with their buffers transferred. The training
 * step runs on the main thread, so the main thread only receives finished batches.
 */
import type { Worker } from 'node:worker_threads';
import { DatasetError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { findWorkerEntry, spawnWorker } from '../util/spawn-worker.js';
import { DEFAULT_HYP } from './augment.js';
import { BatchBuilder, type BatchJob, type BuilderOptions, type ImageCache, ramCacheSlotBytes } from './batch-builder.js';
import type { FromWorker, ToWorker, WorkerInit } from './loader-worker.js';
import { Rng } from './rng.js';
import { SharedImageCache } from './shared-image-cache.js';
import type { AugmentHyp, Batch, DatasetItem } from './types.js';

/** Options of a {@link DataLoader}. */
export interface DataLoaderOptions {
  /** Square training/validation size in pixels. */
  imgsz: number;
  batchSize: number;
  /** Mosaic/affine/HSV/flip augmentation (training); false: letterbox only (validation). */
  augment: boolean;
  /** Augmentation hyperparameters; default hyp.scratch-low. */
  hyp?: AugmentHyp;
  /** Shuffle the order every epoch (seeded); default: same as `augment`. */
  shuffle?: boolean;
  seed?: number;
  /** Batches prepared ahead of the one being consumed; default 3. */
  prefetch?: number;
  /** Worker threads building batches; 0 builds them on the calling thread. Default 1. */
  workers?: number;
  /** Keep decoded images across epochs: in memory, or on disk beside each image (training batches). Default 'none'. */
  cache?: ImageCache;
  /**
   * Rectangular batches (validation only, ultralytics' rect): images ordered by aspect ratio, each batch
   * letterboxed to the smallest stride multiple that holds its images at `imgsz`, plus `pad` strides (0.5).
   */
  rect?: { stride: number; pad?: number };
  /**
   * Images without labels, mixed into every epoch (training with a teacher that labels them,
   * `kd-trainer distill --unlabeled`): `ratio` unlabelled images per labelled one, spread evenly
   * over the batches; mosaics never mix the two kinds.
   */
  unlabeled?: { items: readonly DatasetItem[]; ratio: number };
  logger?: Logger;
}

/** Timing of the current (or last) epoch, for the trainer's "data wait share". */
export interface LoaderStats {
  epoch: number;
  /** Batches handed to the consumer. */
  batches: number;
  /** Time the consumer spent waiting for a batch that was not ready. */
  waitMs: number;
  /** Time since the epoch started (until its end once finished). */
  totalMs: number;
  /** waitMs / totalMs (0 when nothing ran). */
  waitShare: number;
  /** Batches handed to the producer, whose building started, and that are finished. */
  submitted: number;
  started: number;
  ready: number;
}

interface Pending {
  resolve(b: Batch): void;
  reject(e: Error): void;
  worker: number;
}

/**
 * Batches of a dataset split, built ahead of consumption.
 * @example
 * const loader = new DataLoader(items, { imgsz: 128, batchSize: 16, augment: true, seed: 0 });
 * for await (const batch of loader.epoch(0)) step(batch);
 * await loader.close();
 */
export class DataLoader {
  private readonly items: readonly DatasetItem[];
  /** Items [0, labelled) are the split's; the rest are unlabelled images. */
  private readonly labelled: number;
  private readonly unlabeledPerEpoch: number;
  private readonly opts: Required<Omit<DataLoaderOptions, 'hyp' | 'logger' | 'rect' | 'unlabeled'>> & { hyp: AugmentHyp; logger: Logger };
  private workers: Worker[] | null = null;
  private inProcess: BatchBuilder | null = null;
  private sharedCache: SharedImageCache | undefined;
  private inProcessChain: Promise<unknown> = Promise.resolve();
  private readonly pending = new Map<number, Pending>();
  private readonly inFlight: number[] = [];
  private readonly rect: DataLoaderOptions['rect'];
  private nextId = 0;
  private closed = false;
  private current = { epoch: -1, batches: 0, waitMs: 0, start: 0, end: 0, submitted: 0, started: 0, ready: 0, ids: new Set<number>() };

  constructor(items: readonly DatasetItem[], options: DataLoaderOptions) {
    if (items.length === 0) throw new DatasetError('DataLoader: the split has no images');
    for (const k of ['imgsz', 'batchSize'] as const) {
      if (!Number.isInteger(options[k]) || options[k] < 1) throw new RangeError(`DataLoader: ${k} must be a positive integer, got ${options[k]}`);
    }
    const prefetch = options.prefetch ?? 3;
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`DataLoader: prefetch must be an integer >= 0, got ${prefetch}`);
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`DataLoader: workers must be an integer >= 0, got ${workers}`);
    const extra = options.unlabeled?.items ?? [];
    this.labelled = items.length;
    this.items = extra.length > 0 ? [...items, ...extra] : items;
    if (options.unlabeled) {
      const r = options.unlabeled.ratio;
      if (!(Number.isFinite(r) && r >= 0)) throw new RangeError(`DataLoader: unlabeled.ratio must be a number >= 0, got ${r}`);
      if (options.rect) throw new RangeError('DataLoader: unlabelled images are for training, not rect validation');
    }
    this.unlabeledPerEpoch = extra.length > 0 ? Math.round((options.unlabeled?.ratio ?? 0) * items.length) : 0;
    if (options.rect && options.augment) throw new RangeError('DataLoader: rect batches are for validation (augment false)');
    this.rect = options.rect;
    this.opts = {
      imgsz: options.imgsz, batchSize: options.batchSize, augment: options.augment,
      hyp: options.hyp ?? { ...DEFAULT_HYP }, shuffle: options.shuffle ?? options.augment,
      seed: options.seed ?? 0, prefetch, workers, cache: options.cache ?? 'none',
      logger: options.logger ?? silentLogger,
    };
  }

  /** Batches per epoch; the last partial batch is kept. */
  get length(): number {
    return Math.ceil((this.labelled + this.unlabeledPerEpoch) / this.opts.batchSize);
  }

  /**
   * Dataset indices in the order of epoch `e` (seeded shuffle, by aspect ratio with rect, or as scanned).
   * With unlabelled images, the epoch's share of them (taken in turn from a shuffled list) is spread
   * evenly between the labelled ones.
   */
  order(e: number): number[] {
    const idx = Array.from({ length: this.labelled }, (_, i) => i);
    if (this.rect) return idx.sort((a, b) => this.aspect(a) - this.aspect(b) || a - b);
    const labelled = this.opts.shuffle ? Rng.derive(this.opts.seed, e, -1).shuffle(idx) : idx;
    const k = this.unlabeledPerEpoch;
    if (k === 0) return labelled;
    const u = this.items.length - this.labelled;
    // Epoch e continues where epoch e − 1 stopped in a list of every unlabelled image, reshuffled per pass.
    const extra: number[] = [];
    let pass = -1;
    let list: number[] = [];
    for (let j = e * k; j < (e + 1) * k; j++) {
      if (Math.floor(j / u) !== pass) {
        pass = Math.floor(j / u);
        list = Rng.derive(this.opts.seed, pass, -2).shuffle(Array.from({ length: u }, (_, i) => this.labelled + i));
      }
      extra.push(list[j % u]!);
    }
    // Bresenham: position p takes a labelled image when p·L/(L+K) crosses an integer.
    const total = labelled.length + k;
    const out: number[] = [];
    let li = 0, ui = 0;
    for (let p = 0; p < total; p++) {
      const takeLabelled = Math.floor(((p + 1) * labelled.length) / total) > Math.floor((p * labelled.length) / total);
      out.push(takeLabelled ? labelled[li++]! : extra[ui++]!);
    }
    return out;
  }

  /** Height / width of item `i` (1 when its size is unknown). */
  private aspect(i: number): number {
    const size = this.items[i]!.size;
    return size ? size[1] / size[0] : 1;
  }

  /** ultralytics' rect batch shape [height, width] for images with these indices. */
  private rectShape(indices: readonly number[]): [number, number] | undefined {
    if (!this.rect) return undefined;
    const ars = indices.map((i) => this.aspect(i));
    const lo = Math.min(...ars), hi = Math.max(...ars);
    const [rh, rw] = hi < 1 ? [hi, 1] : lo > 1 ? [1, 1 / lo] : [1, 1];
    const { stride, pad = 0.5 } = this.rect;
    const side = (r: number): number => Math.ceil((r * this.opts.imgsz) / stride + pad) * stride;
    return [side(rh), side(rw)];
  }

  private builderOptions(): BuilderOptions {
    const { imgsz, augment, hyp, seed, cache } = this.opts;
    return { imgsz, augment, hyp, seed, cache, ...(this.items.length > this.labelled ? { labelled: this.labelled } : {}) };
  }

  /** With --cache ram: one cache of decoded images for all this loader's threads, made on first use. */
  private ramCache(): SharedImageCache | null {
    if (this.opts.cache !== 'ram') return null;
    this.sharedCache ??= SharedImageCache.create(this.items.length, ramCacheSlotBytes(this.opts.imgsz));
    return this.sharedCache;
  }

  private startWorkers(): void {
    if (this.workers || this.inProcess) return;
    const entry = this.opts.workers > 0 ? findWorkerEntry(import.meta.url, ['./loader-worker', './data/loader-worker', '../data/loader-worker']) : null;
    if (!entry) {
      if (this.opts.workers > 0) this.opts.logger.debug('DataLoader: worker entry not found, building batches on the main thread');
      this.inProcess = new BatchBuilder(this.items, this.builderOptions(), (m) => this.opts.logger.warn(m), this.ramCache()?.init);
      return;
    }
    const shared = this.ramCache()?.init;
    const init: WorkerInit = { items: this.items.map((it) => ({ image: it.image, labels: it.labels })), options: this.builderOptions(), ...(shared ? { shared } : {}) };
    this.workers = [];
    for (let w = 0; w < this.opts.workers; w++) {
      const worker = spawnWorker(entry, init);
      worker.on('message', (m: FromWorker) => this.onMessage(m));
      worker.on('error', (err) => this.failWorker(w, err));
      worker.on('exit', (code) => { if (!this.closed) this.failWorker(w, new Error(`data worker exited with code ${code}`)); });
      worker.unref();
      this.workers.push(worker);
      this.inFlight.push(0);
    }
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'warn') { this.opts.logger.warn(m.message); return; }
    if (m.type === 'started') { if (this.current.ids.has(m.id)) this.current.started++; return; }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    // Let the process exit when no batch is awaited (a forgotten close() must not hang it).
    if (--this.inFlight[p.worker]! === 0) this.workers?.[p.worker]?.unref();
    if (m.type === 'batch') p.resolve(m.batch);
    else p.reject(new Error(m.message));
  }

  private failWorker(w: number, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker === w) { this.pending.delete(id); p.reject(err); }
    }
  }

  private dispatch(job: BatchJob): Promise<Batch> {
    const id = this.nextId++;
    this.current.ids.add(id);
    this.current.submitted++;
    const done = (b: Batch) => { if (this.current.ids.has(id)) this.current.ready++; return b; };
    if (this.inProcess) {
      const builder = this.inProcess;
      const run = this.inProcessChain.then(() => {
        if (this.current.ids.has(id)) this.current.started++;
        return builder.build(job);
      });
      this.inProcessChain = run.catch(() => undefined);
      return run.then(done);
    }
    const w = job.batch % this.workers!.length;
    const worker = this.workers![w]!;
    if (this.inFlight[w]!++ === 0) worker.ref();
    return new Promise<Batch>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      worker.postMessage({ type: 'job', id, job } satisfies ToWorker);
    }).then(done);
  }

  /**
   * Yields the batches of epoch `e`. While the consumer works on batch k, batches k+1 … k+prefetch
   * are being built. A validation batch whose images all fail to decode is left out.
   */
  async *epoch(e: number): AsyncGenerator<Batch> {
    if (this.closed) throw new Error('DataLoader: closed');
    this.startWorkers();
    const order = this.order(e);
    const bs = this.opts.batchSize;
    const jobs: BatchJob[] = [];
    for (let b = 0; b * bs < order.length; b++) {
      const indices = order.slice(b * bs, (b + 1) * bs);
      const shape = this.rectShape(indices);
      jobs.push({ epoch: e, batch: b, indices, ...(shape ? { shape } : {}) });
    }
    this.current = { epoch: e, batches: 0, waitMs: 0, start: performance.now(), end: 0, submitted: 0, started: 0, ready: 0, ids: new Set() };
    const stats = this.current;
    const queued = new Map<number, Promise<Batch>>();
    let next = 0;
    try {
      for (let k = 0; k < jobs.length; k++) {
        for (; next < jobs.length && next <= k + this.opts.prefetch; next++) {
          const p = this.dispatch(jobs[next]!);
          p.catch(() => undefined); // awaited below; an abandoned epoch must not raise unhandled rejections
          queued.set(next, p);
        }
        const t0 = performance.now();
        const batch = await queued.get(k)!;
        stats.waitMs += performance.now() - t0;
        queued.delete(k);
        if (batch.n === 0) continue;
        stats.batches++;
        yield batch;
      }
    } finally {
      stats.end = performance.now();
    }
  }

  /** Timing and progress of the current or last epoch. */
  stats(): LoaderStats {
    const c = this.current;
    const totalMs = c.epoch < 0 ? 0 : (c.end || performance.now()) - c.start;
    return {
      epoch: c.epoch, batches: c.batches, waitMs: c.waitMs, totalMs,
      waitShare: totalMs > 0 ? c.waitMs / totalMs : 0,
      submitted: c.submitted, started: c.started, ready: c.ready,
    };
  }

  /** Stops the workers; batches still in flight are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) { this.pending.delete(id); p.reject(new Error('DataLoader: closed')); }
    await Promise.all((this.workers ?? []).map((w) => w.terminate()));
    this.workers = null;
  }
}
