import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { SummaryWriter } from '../log/event-writer.js';
import { GENERIC_RESULTS_WIDTH, ResultsCsv } from '../log/results-csv.js';
import { incrementRunDir } from '../train/run-dir.js';
import type { ClassifySplit } from './dataset.js';

/** ultralytics' classify results.csv columns (`{val}/loss` is `val/loss` or `test/loss`), then the KD terms when distilling. */
export function classifyResultsColumns(valSplit: ClassifySplit, kd: boolean): string[] {
  return [
    'epoch', 'train/loss', `${valSplit}/loss`, 'metrics/accuracy_top1', 'metrics/accuracy_top5', 'lr/0',
    ...(kd ? ['train/ce_loss', 'train/kd_loss'] : []),
  ];
}

/** The files of a classification run: the folder (runs/train-cls/exp{,2,…}), opt.yaml, results.csv and TensorBoard events. */
export interface ClassifyRunFiles {
  saveDir: string;
  lastPath: string;
  bestPath: string;
  csv: ResultsCsv<string>;
  tb: SummaryWriter;
}

/**
 * Makes the run folder (numbered as ultralytics increment_path; a resumed run's `resumeDir` as it is),
 * writes opt.yaml and opens results.csv and a new event file beside any earlier ones.
 */
export function openRunFiles(
  cfg: { project: string; name: string; exist_ok: boolean }, opt: object, valSplit: ClassifySplit, kd: boolean, resumeDir?: string,
): ClassifyRunFiles {
  const saveDir = resumeDir ?? incrementRunDir(cfg.project, cfg.name, cfg.exist_ok);
  writeFileSync(join(saveDir, 'opt.yaml'), toYaml(opt));
  return {
    saveDir,
    lastPath: join(saveDir, 'weights', 'last.kdw'),
    bestPath: join(saveDir, 'weights', 'best.kdw'),
    csv: new ResultsCsv(join(saveDir, 'results.csv'), classifyResultsColumns(valSplit, kd), GENERIC_RESULTS_WIDTH),
    tb: new SummaryWriter(saveDir),
  };
}
