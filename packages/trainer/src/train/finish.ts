import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { plotResults } from '../log/results-plot.js';
import type { DetectionModel } from '../model/types.js';
import { loadModel } from '../model/weights-io.js';
import { formatValTable, validate, type ValResult } from '../val/validator.js';
import type { RunState } from './setup.js';
import type { TrainResult } from './types.js';

/**
 * The end of a run after `epochs` epochs: results.png, the table of the best weights (unless
 * interrupted), loaders closed and variables freed, the plug-ins told.
 */
export async function finishRun(s: RunState, epochs: number): Promise<TrainResult> {
  const { cfg, log, saveDir, bestPath, loop } = s;
  const csvFile = join(saveDir, 'results.csv');
  if (existsSync(csvFile) && statSync(csvFile).size > 0) {
    await plotResults(csvFile, join(saveDir, 'results.png')).catch((e: Error) => log.warn(`results.png not written: ${e.message}`));
  }
  if (!loop.interrupted && existsSync(bestPath)) {
    // Like ultralytics, the table at the end is that of the best weights.
    const { model: best } = await loadModel(bestPath);
    loop.final = await validate(best as DetectionModel, s.valLoader.epoch(0), {
      confThres: cfg.conf_thres, iouThres: cfg.iou_thres, imgsz: cfg.imgsz, ...(cfg.noplots ? {} : { plots: { saveDir, names: s.names, logger: log } }),
    });
    best.dispose();
    log.info(`\nValidating ${bestPath}...`);
    for (const line of formatValTable(loop.final, s.names)) log.info(line);
  }
  await s.trainLoader.close();
  await s.valLoader.close();
  s.model.dispose();
  s.ema.ema.dispose();
  s.optimizer.dispose();
  const result: TrainResult = {
    saveDir, best: bestPath, last: s.lastPath, epochs, backend: s.backend.name, interrupted: loop.interrupted,
    final: loop.final ?? emptyResult(),
  };
  await s.hooks.fitEnd(result);
  log.info(`Results saved to ${saveDir}`);
  return result;
}

function emptyResult(): ValResult {
  return { images: 0, instances: 0, precision: 0, recall: 0, map50: 0, map: 0, fitness: 0, perClass: [], speed: { preprocess: 0, inference: 0, nms: 0 }, loss: { box: 0, obj: 0, cls: 0 } };
}
