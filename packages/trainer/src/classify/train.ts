import { planClassifier } from '@kd-edge/core';
import sharp from 'sharp';
import { backendForDevice } from '../backend/device.js';
import { selectBackend } from '../backend/select.js';
import { WEBGPU_CANNOT_TRAIN } from '../backend/webgpu.js';
import type { Teacher } from '../distill/types.js';
import { BackendError } from '../errors.js';
import { formatG } from '../log/results-csv.js';
import { ProgressBar, type ProgressStream } from '../log/progress.js';
import { createClassifier } from '../model/classifier.js';
import type { ClassificationModel } from '../model/types.js';
import { loadModel, saveWeights } from '../model/weights-io.js';
import { ModelEma } from '../train/ema.js';
import { lrLambda } from '../train/schedule.js';
import * as tf from '../tf.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ClassifyTrainConfig } from './classify-schema.js';
import { loadClassifyDataset, type ClassifyDataset } from './dataset.js';
import { ClassifyLoader, type ClassifyBatch } from './loader.js';
import { IMAGENET_NORMALISATION } from './normalisation.js';
import { TfjsClassifier } from './predictor.js';
import { openRunFiles, type ClassifyRunFiles } from './run-files.js';
import { applyGradients, classifyGradients, makeOptimizer, type ClassifyOptimizer, type StepLoss } from './step.js';
import { buildStudent, classifierName } from './student.js';
import { CLASSIFY_AUGMENT_DEFAULTS } from './transforms.js';
import { formatClassifyTable, validateClassifier, type ClassifyValResult } from './validate.js';

/** Distillation settings of a run: the frozen teacher and Hinton's mix. */
export interface ClassifyKd {
  teacher: Teacher;
  /** Weight α of the KD term: α·KD + (1−α)·CE. */
  alpha: number;
  temperature: number;
  /** Epochs on the cross-entropy alone first (the teacher does not run). */
  warmup: number;
}

/** What {@link ClassifyRunOptions.onStep} is told after each step. */
export interface ClassifyStepInfo {
  epoch: number;
  step: number;
  /** total, cross-entropy, KD. */
  loss: StepLoss;
  /** Live tensors after the step (tf.memory().numTensors). */
  numTensors: number;
}

/** Everything a classification run needs besides its options. */
export interface ClassifyRunOptions {
  logger?: Logger;
  /** Where the progress bar goes (process.stdout by default). */
  progress?: ProgressStream;
  /** Stops the run after the current step, saving `last.kdw` first. */
  signal?: AbortSignal;
  /** The dataset the command already read (otherwise read from `cfg.data`). */
  dataset?: ClassifyDataset;
  /** Distil from a teacher. */
  kd?: ClassifyKd;
  /** The backend is already selected (a second run of the same command). */
  backendReady?: boolean;
  onStep?: (info: ClassifyStepInfo) => void;
}

/** Where a classification run wrote and what it ended with. */
export interface ClassifyTrainResult {
  saveDir: string;
  best: string;
  last: string;
  /** Epochs completed. */
  epochs: number;
  interrupted: boolean;
  names: string[];
  paramCount: number;
  /** Validation of best.kdw at the end (of the last EMA when interrupted). */
  final: ClassifyValResult;
}

interface Run {
  cfg: ClassifyTrainConfig;
  run: ClassifyRunOptions;
  log: Logger;
  data: ClassifyDataset;
  files: ClassifyRunFiles;
  model: ClassificationModel;
  ema: ModelEma;
  opt: ClassifyOptimizer;
  varNames: string[];
  train: ClassifyLoader;
  val: ClassifyLoader;
  imgsz: number;
  lf: (epoch: number) => number;
}

const g3 = (v: number): string => formatG(v, 3).padStart(12);

/**
 * An image size rounded up to a multiple of the largest stride, with a warning (ultralytics
 * check_img_size, floor 0: a classifier runs at one stride, 32 px).
 */
export function classifyImgSize(imgsz: number, stride: number, log: Logger = silentLogger): number {
  const size = Math.max(Math.ceil(imgsz / stride) * stride, stride);
  if (size !== imgsz) log.warn(`--imgsz ${imgsz} must be a multiple of max stride ${stride}, updating to ${size}`);
  return size;
}

/**
 * Trains a YOLOv5-cls classifier as ultralytics YOLOv5 v7.0's classify/train.py does: label-smoothed
 * cross-entropy, Adam (or AdamW, SGD) with a per-epoch linear (or cosine) decay to lrf, gradient
 * clipping at norm 10, EMA of the weights (validated and saved), top-1 as fitness; `best.kdw` and
 * `last.kdw` in runs/train-cls/exp*. With `run.kd` the loss is Hinton's α·KD + (1−α)·CE against the
 * teacher's logits on the same augmented pixels.
 * @example
 * const r = await trainClassifier(resolveOptions(CLASSIFY_TRAIN_SCHEMA, [{ data: 'datasets/shapes-cls', epochs: 5, imgsz: 64 }]).config);
 */
export async function trainClassifier(cfg: ClassifyTrainConfig, run: ClassifyRunOptions = {}): Promise<ClassifyTrainResult> {
  const s = await setup(cfg, run);
  let epoch = 0;
  let interrupted = false;
  try {
    for (; epoch < cfg.epochs && !interrupted; epoch++) {
      const r = await trainEpoch(s, epoch);
      interrupted = r.interrupted;
      if (interrupted) {
        await saveWeights(s.files.lastPath, s.ema.ema as ClassificationModel, { meta: weightsMeta(s, epoch) });
        s.log.info(`stopped in epoch ${epoch + 1} after ${r.steps} steps; saved ${s.files.lastPath} (classify runs do not resume: start again, with --weights ${s.files.lastPath} to keep what it learnt)`);
        break;
      }
      await endEpoch(s, epoch, r.loss);
    }
  } finally {
    s.files.tb.close();
  }
  return finish(s, epoch, interrupted);
}

async function setup(cfg: ClassifyTrainConfig, run: ClassifyRunOptions): Promise<Run & { best: { top1: number } }> {
  const log = run.logger ?? silentLogger;
  if (!run.backendReady) {
    const backend = await selectBackend(backendForDevice(cfg.device, cfg.backend), log);
    if (backend.name === 'webgpu') throw new BackendError(WEBGPU_CANNOT_TRAIN);
  }
  if (cfg.threads > 0) sharp.concurrency(cfg.threads);
  const data = run.dataset ?? await loadClassifyDataset(cfg.data, log);
  const nc = data.names.length;
  const model = await buildStudent(cfg, nc, data.names, log);
  const imgsz = classifyImgSize(cfg.imgsz, planClassifier(model.description).maxStride, log);
  const files = openRunFiles(cfg, { ...cfg, imgsz, ...(run.kd ? { teacher: run.kd.teacher.source } : {}) }, data.valSplit, run.kd !== undefined);
  const ema = new ModelEma(createClassifier(model.description, { seed: cfg.seed }));
  ema.copyFrom(model);
  log.info(`model: ${classifierName(model.description)}, ${model.paramCount().toLocaleString('en-US')} parameters, ${nc} classes`);
  const opt = makeOptimizer(cfg.optimizer, model.params, cfg, log);
  const augment = cfg.augment ? { ...CLASSIFY_AUGMENT_DEFAULTS, scale: [cfg.crop_scale, 1] as [number, number], fliplr: cfg.fliplr, jitter: cfg.jitter } : undefined;
  const common = { imgsz, seed: cfg.seed, cache: cfg.cache === 'ram', normalisation: IMAGENET_NORMALISATION, logger: log };
  const train = new ClassifyLoader(data.train, { ...common, batchSize: cfg.batch_size, shuffle: true, ...(augment ? { augment } : {}) });
  const val = new ClassifyLoader(data.val, { ...common, batchSize: cfg.batch_size * 2 });
  log.info(`Image sizes ${imgsz} train, ${imgsz} ${data.valSplit}\nLogging results to ${files.saveDir}\n`
    + `Starting ${classifierName(model.description)} training on ${data.root} with ${nc} classes for ${cfg.epochs} epochs${run.kd ? `, distilling from ${run.kd.teacher.source}` : ''}...\n`);
  log.info(`${'Epoch'.padStart(10)}${'train_loss'.padStart(12)}${`${data.valSplit}_loss`.padStart(12)}${'top1_acc'.padStart(12)}${'top5_acc'.padStart(12)}${run.kd ? `${'ce_loss'.padStart(12)}${'kd_loss'.padStart(12)}` : ''}`);
  return {
    cfg, run, log, data, files, model, ema, opt, varNames: [...model.params.keys()], train, val, imgsz,
    lf: lrLambda(cfg.cos_lr ? 'cosine' : 'linear', cfg.epochs, cfg.lrf), best: { top1: -1 },
  };
}

/** The teacher runs on batch k+1 while the student steps on batch k (ONNX Runtime has its own threads). */
async function* withTeacher(batches: AsyncIterable<ClassifyBatch>, teacher: Teacher | undefined): AsyncGenerator<{ batch: ClassifyBatch; logits?: Promise<Float32Array> }> {
  for await (const batch of batches) {
    if (teacher === undefined) {
      yield { batch };
      continue;
    }
    const logits = teacher.predict(batch.images, batch.n, batch.size, batch.size).then((o) => {
      if (o.logits === undefined) throw new Error(`teacher ${teacher.source} returned no class logits`);
      return o.logits;
    });
    logits.catch(() => undefined);
    yield { batch, logits };
  }
}

async function* lookahead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let next = it.next();
  try {
    for (;;) {
      const r = await next;
      if (r.done) return;
      next = it.next();
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

async function trainEpoch(s: Run, epoch: number): Promise<{ loss: StepLoss; steps: number; interrupted: boolean }> {
  const { cfg, run, opt } = s;
  opt.lr = cfg.lr0 * s.lf(epoch);
  const kd = run.kd !== undefined && epoch >= run.kd.warmup ? run.kd : undefined;
  const bar = new ProgressBar({ epoch, epochs: cfg.epochs, steps: s.train.length, ...(run.progress ? { stream: run.progress } : {}) });
  const mean: StepLoss = [0, 0, 0];
  let i = 0;
  let seen = 0;
  let interrupted = false;
  for await (const { batch, logits } of lookahead(withTeacher(s.train.epoch(epoch), kd?.teacher))) {
    const soft = logits ? { logits: await logits, alpha: kd!.alpha, temperature: kd!.temperature } : undefined;
    const { grads, loss } = classifyGradients(s.model, s.varNames, batch, cfg.label_smoothing, soft);
    applyGradients(opt, grads);
    s.ema.update(s.model);
    if (!loss.every(Number.isFinite)) s.log.warn(`non-finite loss at epoch ${epoch + 1} step ${i + 1}: ${loss.join(', ')}`);
    for (let j = 0; j < 3; j++) mean[j] = (mean[j]! * i + loss[j]!) / (i + 1);
    i++;
    seen += batch.n;
    run.onStep?.({ epoch, step: i, loss, numTensors: tf.memory().numTensors });
    bar.update(i, run.kd ? { loss: mean[0], ce: mean[1], kd: mean[2] } : { loss: mean[0] }, seen);
    if (run.signal?.aborted) {
      interrupted = true;
      break;
    }
  }
  bar.finish();
  return { loss: mean, steps: i, interrupted };
}

function weightsMeta(s: Run, epoch: number, r?: ClassifyValResult): Record<string, unknown> {
  return {
    kind: 'kd-trainer-weights', task: 'classify', epoch, names: s.data.names, imgsz: s.imgsz, normalisation: { ...IMAGENET_NORMALISATION },
    ...(r ? { fitness: r.top1, top1: r.top1, top5: r.top5 } : {}),
    ...(s.run.kd ? { teacher: s.run.kd.teacher.source } : {}),
  };
}

async function validateEma(s: Run): Promise<ClassifyValResult> {
  const clf = new TfjsClassifier(s.ema.ema as ClassificationModel, 'ema');
  return validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), s.val.epoch(0), s.data.names.length, { smoothing: s.cfg.label_smoothing });
}

async function endEpoch(s: Run & { best: { top1: number } }, epoch: number, loss: StepLoss): Promise<void> {
  const { cfg, files, data, run } = s;
  const r = await validateEma(s);
  const kdCols = run.kd ? `${g3(loss[1])}${g3(loss[2])}` : '';
  s.log.info(`${`${epoch + 1}/${cfg.epochs}`.padStart(10)}${g3(loss[0])}${g3(r.loss)}${g3(r.top1)}${g3(r.top5)}${kdCols}`);
  const metrics: Record<string, number> = {
    'train/loss': loss[0], [`${data.valSplit}/loss`]: r.loss, 'metrics/accuracy_top1': r.top1, 'metrics/accuracy_top5': r.top5, 'lr/0': s.opt.lr,
    ...(run.kd ? { 'train/ce_loss': loss[1], 'train/kd_loss': loss[2] } : {}),
  };
  files.csv.append({ epoch, ...metrics });
  const kdOn = run.kd !== undefined && epoch >= run.kd.warmup;
  files.tb.addScalars({ ...metrics, ...(run.kd ? { 'kd/alpha': kdOn ? run.kd.alpha : 0, 'kd/temperature': run.kd.temperature } : {}) }, epoch);
  files.tb.flush();
  await saveWeights(files.lastPath, s.ema.ema as ClassificationModel, { meta: weightsMeta(s, epoch, r) });
  // ultralytics' fitness is top-1; the first epoch is always saved, so best.kdw exists.
  if (r.top1 > s.best.top1) {
    s.best.top1 = r.top1;
    await saveWeights(files.bestPath, s.ema.ema as ClassificationModel, { meta: weightsMeta(s, epoch, r) });
  }
}

async function finish(s: Run, epochs: number, interrupted: boolean): Promise<ClassifyTrainResult> {
  const { log, files, data } = s;
  let final: ClassifyValResult;
  try {
    if (interrupted || epochs === 0) {
      final = await validateEma(s);
    } else {
      // As ultralytics prints at the end of val.py: the table of the best weights, per class.
      const { model } = await loadModel(files.bestPath);
      try {
        const clf = new TfjsClassifier(model as ClassificationModel, files.bestPath);
        final = await validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), s.val.epoch(0), data.names.length, { smoothing: s.cfg.label_smoothing });
      } finally {
        model.dispose();
      }
      log.info(`\nValidating ${files.bestPath}...`);
      for (const line of formatClassifyTable(final, data.names)) log.info(line);
    }
  } finally {
    s.train.close();
    s.val.close();
    s.opt.dispose();
    s.ema.ema.dispose();
  }
  const paramCount = s.model.paramCount();
  s.model.dispose();
  log.info(`Results saved to ${files.saveDir}`);
  return { saveDir: files.saveDir, best: files.bestPath, last: files.lastPath, epochs, interrupted, names: data.names, paramCount, final };
}
