import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Annotation, CocoEval, Detection, PrecisionRecall } from '@kd-edge/core';
import type { Batch } from '../data/types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { ConfusionMatrix, plotConfusionMatrix } from './confusion-matrix.js';
import { writeCurvePlots } from './curves.js';
import { detectionBoxes, plotImageGrid, targetBoxes } from './image-grid.js';

/** Where and how a validation pass writes its plots ({@link ValidateOptions.plots}). */
export interface ValPlotsOptions {
  /** The folder the files go to (created if missing). */
  saveDir: string;
  /** Class names, index = class id. */
  names: readonly string[];
  /** Leading batches drawn as val_batch{i}_labels.jpg / val_batch{i}_pred.jpg (default 3, as ultralytics). */
  batches?: number;
  /** Where a plot that could not be written is reported (the pass goes on without it). */
  logger?: Logger;
}

/** What the plots of a validation pass came to. */
export interface ValPlotsResult {
  /** The files written, in the order they were started. */
  files: string[];
  /** The confusion matrix's counts: rows predicted, columns true, the last of each the background. */
  confusionMatrix: number[][];
}

/**
 * The plots ultralytics val.py writes with `plots=True`: val_batch{0,1,2}_labels.jpg and _pred.jpg as the
 * batches go, then confusion_matrix.png (at conf 0.25, IoU 0.45) and PR_curve.png, F1_curve.png,
 * P_curve.png, R_curve.png from the pass's own mAP and P/R computation.
 */
export class ValPlots {
  readonly confusion: ConfusionMatrix;
  private readonly pending: Promise<string | undefined>[] = [];
  private batchIndex = 0;
  private readonly log: Logger;

  constructor(readonly options: ValPlotsOptions, nc: number) {
    mkdirSync(options.saveDir, { recursive: true });
    this.confusion = new ConfusionMatrix(nc);
    this.log = options.logger ?? silentLogger;
  }

  /** Counts one batch into the confusion matrix and, for the leading batches, starts drawing it. */
  addBatch(batch: Batch, detections: readonly Detection[][], annotations: readonly Annotation[][]): void {
    detections.forEach((dets, i) => this.confusion.processImage(dets, annotations[i] ?? []));
    const k = this.batchIndex++;
    if (k >= (this.options.batches ?? 3)) return;
    const { saveDir, names } = this.options;
    // plotImageGrid reads the batch before its first await: the loader may recycle it right after.
    this.track(join(saveDir, `val_batch${k}_labels.jpg`), (f) => plotImageGrid(batch, targetBoxes(batch), batch.files, names, f));
    this.track(join(saveDir, `val_batch${k}_pred.jpg`), (f) => plotImageGrid(batch, detectionBoxes(detections), batch.files, names, f));
  }

  /** Waits for the batch drawings, writes the confusion matrix and the curves; `coco` and `pr` need their curves. */
  async finish(coco: CocoEval, pr: PrecisionRecall): Promise<ValPlotsResult> {
    const { saveDir, names } = this.options;
    this.track(join(saveDir, 'confusion_matrix.png'), (f) => plotConfusionMatrix(this.confusion, names, f));
    const curves = pr.curves
      ? writeCurvePlots(saveDir, coco, pr.curves, names).catch((e: Error) => {
        this.log.warn(`PR/F1/P/R curves not written: ${e.message}`);
        return [] as string[];
      })
      : Promise.resolve([] as string[]);
    const files = (await Promise.all(this.pending)).filter((f): f is string => f !== undefined);
    return { files: [...files, ...(await curves)], confusionMatrix: this.confusion.rows() };
  }

  private track(file: string, write: (file: string) => Promise<void>): void {
    let started: Promise<void>;
    try {
      started = write(file);
    } catch (e) {
      started = Promise.reject(e as Error);
    }
    this.pending.push(started.then(() => file, (e: Error) => {
      this.log.warn(`${file} not written: ${e.message}`);
      return undefined;
    }));
  }
}
