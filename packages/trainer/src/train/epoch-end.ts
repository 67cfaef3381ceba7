import { copyFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Batch } from '../data/types.js';
import { drawDetections } from '../log/draw-boxes.js';
import type { DetectionModel } from '../model/types.js';
import { saveWeights } from '../model/weights-io.js';
import { formatValTable, validate, type ValResult } from '../val/validator.js';
import { saveCheckpoint } from './checkpoint.js';
import type { EpochSteps } from './epoch.js';
import type { RunState } from './setup.js';

/** Saves `last` for a stopped epoch (its steps so far) and says how to resume. */
export async function endStoppedEpoch(s: RunState, epoch: number, steps: EpochSteps): Promise<void> {
  await saveCheckpoint(s.lastPath, s, { epoch, complete: false, bestFitness: s.loop.bestFitness });
  s.log.info(`stopped in epoch ${epoch + 1} after ${steps.steps} steps; saved ${s.lastPath} (resume with --resume ${s.lastPath})`);
}

/**
 * The end of a complete epoch: validation of the EMA (every epoch, or only the last with `noval`), the
 * plug-ins' epoch logs, results.csv and TensorBoard, `last` and, on a gain in fitness, `best`.
 * @returns whether to stop early (`patience` epochs without a gain).
 */
export async function endEpoch(s: RunState, epoch: number, steps: EpochSteps): Promise<boolean> {
  const { cfg, loop, tb, model } = s;
  const mloss = steps.meanLoss;
  const stats = s.trainLoader.stats();
  const lrs = s.optimizer.groups.map((g) => g.lr);
  const isFinal = epoch + 1 === cfg.epochs;
  let metrics: ValResult | undefined;
  // The first val batch, kept for the hooks (distillation's class-probability histograms).
  const first: { batch?: Batch } = {};
  if (!cfg.noval || isFinal) {
    metrics = await validate(s.ema.ema as DetectionModel, s.valLoader.epoch(0), {
      confThres: cfg.conf_thres, iouThres: cfg.iou_thres, lossHyp: s.hyp, imgsz: cfg.imgsz,
      onFirstBatch: async (b, dets) => {
        first.batch = b;
        const png = await drawDetections(toRgb(b, 0), b.width, b.height, dets[0], s.names);
        tb.addImage('val/predictions', png, b.width, b.height, epoch + 1);
      },
    });
    for (const line of formatValTable(metrics, s.names).slice(0, 2)) s.log.info(line);
  }
  const logs = await s.hooks.epochEnd({
    epoch, meanLoss: mloss, images: steps.images, model: s.ema.ema as DetectionModel, ...(first.batch ? { valBatch: first.batch } : {}), ...(metrics ? { metrics } : {}),
  });
  const fitness = metrics?.fitness ?? 0;
  s.csv.append({
    epoch,
    'train/box_loss': mloss[0], 'train/obj_loss': mloss[1], 'train/cls_loss': mloss[2],
    'metrics/precision': metrics?.precision ?? 0, 'metrics/recall': metrics?.recall ?? 0,
    'metrics/mAP_0.5': metrics?.map50 ?? 0, 'metrics/mAP_0.5:0.95': metrics?.map ?? 0,
    'val/box_loss': metrics?.loss.box ?? 0, 'val/obj_loss': metrics?.loss.obj ?? 0, 'val/cls_loss': metrics?.loss.cls ?? 0,
    'x/lr0': lrs[0], 'x/lr1': lrs[1], 'x/lr2': lrs[2],
  });
  tb.addScalars({
    'train/box_loss': mloss[0], 'train/obj_loss': mloss[1], 'train/cls_loss': mloss[2],
    'x/lr0': lrs[0], 'x/lr1': lrs[1], 'x/lr2': lrs[2],
    'x/data_wait_share': stats.waitShare,
    ...logs.scalars,
    'x/images_per_second': steps.images / ((performance.now() - steps.startedAt) / 1000),
    ...(metrics ? {
      'metrics/precision': metrics.precision, 'metrics/recall': metrics.recall,
      'metrics/mAP_0.5': metrics.map50, 'metrics/mAP_0.5:0.95': metrics.map,
      'val/box_loss': metrics.loss.box, 'val/obj_loss': metrics.loss.obj, 'val/cls_loss': metrics.loss.cls,
    } : {}),
  }, epoch + 1);
  for (const [name, values] of Object.entries(logs.histograms)) tb.addHistogram(name, values, epoch + 1);
  for (const [name, v] of model.params) {
    if (name.endsWith('.weight')) tb.addHistogram(name, v.dataSync() as Float32Array, epoch + 1);
  }
  tb.flush();
  const gain = fitness > loop.bestFitness || epoch === s.startEpoch && loop.bestFitness === 0;
  if (gain) {
    loop.bestFitness = Math.max(fitness, loop.bestFitness);
    loop.epochsWithoutGain = 0;
  } else {
    loop.epochsWithoutGain++;
  }
  await saveCheckpoint(s.lastPath, s, { epoch, complete: true, bestFitness: loop.bestFitness });
  if (gain) await saveWeights(s.bestPath, s.ema.ema as DetectionModel, { meta: { kind: 'kd-trainer-weights', epoch, fitness, names: s.names } });
  // ultralytics' --save-period: a checkpoint every N epochs beside last and best.
  if (cfg.save_period > 0 && epoch % cfg.save_period === 0) await copyFile(s.lastPath, join(dirname(s.lastPath), `epoch${epoch}.kdw`));
  if (metrics && isFinal) loop.final = metrics;
  if (cfg.patience > 0 && loop.epochsWithoutGain >= cfg.patience) {
    s.log.info(`stopping early: no improvement in the last ${cfg.patience} epochs`);
    return true;
  }
  return false;
}

function toRgb(b: { images: Float32Array; width: number; height: number }, i: number): Uint8Array {
  const n = b.width * b.height * 3;
  const out = new Uint8Array(n);
  const src = b.images.subarray(i * n, (i + 1) * n);
  for (let k = 0; k < n; k++) out[k] = Math.round(src[k] * 255);
  return out;
}
