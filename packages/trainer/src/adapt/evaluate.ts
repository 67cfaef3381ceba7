import type { BackendName } from '../backend/select.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { evalLoader } from '../data/eval-loader.js';
import { scanSplit } from '../data/scan.js';
import type { DatasetItem } from '../data/types.js';
import { DatasetError } from '../errors.js';
import { openDetector } from '../predict/detector.js';
import type { Logger } from '../util/logger.js';
import { validateWith } from '../val/validator.js';

/** A model's figures on one set (COCO mAP, and P/R at the best-F1 confidence). */
export interface ModelFigures {
  map50: number;
  map: number;
  precision: number;
  recall: number;
}

/** The figures of one evaluation set: the serving and the adapted student (and the teacher on labelled images). */
export interface SetFigures {
  images: number;
  instances: number;
  serving: ModelFigures;
  /** Absent when training left no weights (no step ran within the time budget). */
  adapted?: ModelFigures;
  /** The teacher's own figures (on the labelled `--val` only: on the hold-out it would be scored against itself). */
  teacher?: ModelFigures;
}

/** Both students on the hold-out (scored against the teacher's labels) and, with `--val`, on labelled images. */
export interface AdaptFigures {
  /** The image size everything was evaluated at (the job's). */
  imgsz: number;
  holdout: SetFigures;
  /** With `--val`: the data YAML evaluated (its val split). */
  val?: SetFigures & { data: string };
}

/** What the evaluation stage reports for each model and set. */
export interface EvaluateProgress {
  stage: 'evaluate';
  set: 'holdout' | 'val';
  model: 'serving' | 'adapted' | 'teacher';
  map50: number;
  map: number;
}

/** Options of {@link evaluateModel}. */
export interface EvaluateModelOptions {
  imgsz: number;
  batchSize: number;
  workers: number;
  backend: BackendName;
  logger: Logger;
}

/**
 * One model (.kdw, .pt, or ONNX run as it is) on a set's items, with validation's settings (conf 0.001,
 * IoU 0.6, 300 detections, letterboxed squares). Throws DatasetError when its class count is not `nc`.
 */
export async function evaluateModel(file: string, items: readonly DatasetItem[], nc: number, o: EvaluateModelOptions): Promise<ModelFigures & { images: number; instances: number }> {
  const det = await openDetector(file, { backend: o.backend, logger: o.logger });
  try {
    if (det.nc !== nc) throw new DatasetError(`${file} predicts ${det.nc} classes, the evaluation set has ${nc}`);
    const loader = evalLoader(items, { imgsz: o.imgsz, batchSize: o.batchSize, workers: o.workers, logger: o.logger });
    try {
      const r = await validateWith(det.predictor, loader.epoch(0), { confThres: 0.001, iouThres: 0.6, maxDet: 300 });
      return { map50: r.map50, map: r.map, precision: r.precision, recall: r.recall, images: r.images, instances: r.instances };
    } finally {
      await loader.close();
    }
  } finally {
    await det.close();
  }
}

/** Figures without the set's counts. */
export function figuresOf(r: ModelFigures): ModelFigures {
  return { map50: r.map50, map: r.map, precision: r.precision, recall: r.recall };
}

/** Options of {@link evaluateJob}. */
export interface EvaluateJobOptions extends EvaluateModelOptions {
  /** The job's data.yaml: its val split is the hold-out. */
  dataYaml: string;
  serving: string;
  adapted?: string;
  teacher: string;
  /** A data YAML of labelled images (its val split), from `--val`. */
  val?: string;
  names: string[];
  signal?: AbortSignal;
  onProgress?: (p: EvaluateProgress) => void;
}

/**
 * Stage 3 of `kd-trainer adapt`: the serving and the adapted student on the hold-out frames (scored
 * against the teacher's labels) and, with `val`, both and the teacher on labelled images, all at the
 * job's image size. A teacher that cannot be evaluated there (a raw-head export) is left out with a warning.
 * @returns the figures, or undefined when `signal` stopped it
 */
export async function evaluateJob(o: EvaluateJobOptions): Promise<AdaptFigures | undefined> {
  const log = o.logger;
  const nc = o.names.length;
  const one = async (set: 'holdout' | 'val', model: EvaluateProgress['model'], file: string, items: readonly DatasetItem[]) => {
    const r = await evaluateModel(file, items, nc, o);
    log.info(`${set === 'holdout' ? 'hold-out' : 'val'}: ${model} (${file}): mAP50 ${r.map50.toFixed(3)}, mAP50-95 ${r.map.toFixed(3)}`);
    o.onProgress?.({ stage: 'evaluate', set, model, map50: r.map50, map: r.map });
    return r;
  };
  const data = await loadDatasetConfig(o.dataYaml);
  const holdoutItems = await scanSplit(data.val, nc, log, { split: 'hold-out' });
  const serving = await one('holdout', 'serving', o.serving, holdoutItems);
  if (o.signal?.aborted) return undefined;
  const adapted = o.adapted ? await one('holdout', 'adapted', o.adapted, holdoutItems) : undefined;
  const figures: AdaptFigures = {
    imgsz: o.imgsz,
    holdout: { images: serving.images, instances: serving.instances, serving: figuresOf(serving), ...(adapted ? { adapted: figuresOf(adapted) } : {}) },
  };
  if (o.val === undefined) return figures;
  if (o.signal?.aborted) return undefined;
  const valData = await loadDatasetConfig(o.val);
  if (valData.nc !== nc) throw new DatasetError(`--val ${valData.file} has nc=${valData.nc}, the student ${nc} classes: give labelled images of the student's classes`);
  if (valData.names.some((n, i) => n !== o.names[i]) && !valData.names.every((n, i) => n === `class${i}`)) {
    log.warn(`--val ${valData.file} names its classes ${JSON.stringify(valData.names)}, the student ${JSON.stringify(o.names)}: compared by class id`);
  }
  const valItems = await scanSplit(valData.val, nc, log, { split: 'val' });
  const vServing = await one('val', 'serving', o.serving, valItems);
  if (o.signal?.aborted) return undefined;
  const vAdapted = o.adapted ? await one('val', 'adapted', o.adapted, valItems) : undefined;
  if (o.signal?.aborted) return undefined;
  let vTeacher: ModelFigures | undefined;
  try {
    vTeacher = figuresOf(await one('val', 'teacher', o.teacher, valItems));
  } catch (err) {
    log.warn(`the teacher was not evaluated on --val: ${(err as Error).message}`);
  }
  figures.val = {
    data: valData.file, images: vServing.images, instances: vServing.instances, serving: figuresOf(vServing),
    ...(vAdapted ? { adapted: figuresOf(vAdapted) } : {}), ...(vTeacher ? { teacher: vTeacher } : {}),
  };
  return figures;
}
