import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { planClassifier } from '@kd-edge/core';
import sharp from 'sharp';
import { backendForDevice } from '../backend/device.js';
import { selectBackend } from '../backend/select.js';
import { WEBGPU_CANNOT_TRAIN } from '../backend/webgpu.js';
import type { Teacher } from '../distill/types.js';
import { BackendError, DatasetError } from '../errors.js';
import { formatG } from '../log/results-csv.js';
import { plotResults } from '../log/results-plot.js';
import { ProgressBar, type ProgressStream } from '../log/progress.js';
import { createClassifier } from '../model/classifier.js';
import type { ClassificationModel } from '../model/types.js';
import { buildFromArchive, loadModel, saveWeights } from '../model/weights-io.js';
import { ModelEma } from '../train/ema.js';
import { lrLambda } from '../train/schedule.js';
import * as tf from '../tf.js';
import { silentLogger, type Logger } from '../util/logger.js';
import {
  openClassifyCheckpoint, restoreClassifyTraining, resumedClassifyConfig, saveClassifyCheckpoint, type ClassifyCheckpoint, type ClassifyCheckpointAt, type ClassifyKdSettings,
} from './checkpoint.js';
import type { ClassifyTrainConfig } from './classify-schema.js';
import { loadClassifyDataset, type ClassifyDataset } from './dataset.js';
import { KdStop, kdStopDecision, kdStopResumed } from '../distill/kd-stop.js';
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
  /** The teacher's val top-1, measured before training (logged every epoch as `kd/teacher_accuracy_top1`). */
  teacherTop1?: number;
  /**
   * `--kd-stop teacher` (needs `teacherTop1`): α is 0, and the teacher no longer runs, for the rest of the
   * run once the student's val top-1 has reached the teacher's on STOP_EPOCHS epochs in a row.
   */
  stopAtTeacher?: boolean;
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
  /** Stops the run after the current step, saving a resumable `last.kdw` first. */
  signal?: AbortSignal;
  /** The dataset the command already read (otherwise read from `cfg.data`). */
  dataset?: ClassifyDataset;
  /** Distil from a teacher. */
  kd?: ClassifyKd;
  /** The backend is already selected (a second run of the same command). */
  backendReady?: boolean;
  /** The checkpoint the command already opened (otherwise opened from `cfg.resume`). */
  resumeFrom?: ClassifyCheckpoint;
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
  /** With {@link ClassifyKd.stopAtTeacher}: the 0-based epoch from which α was 0, the student having reached the teacher. */
  kdStoppedFrom?: number;
}

/** Where a run starts: epoch 0, or where its checkpoint stopped. */
interface StartAt {
  epoch: number;
  /** Steps of `epoch` already taken, and their running mean loss. */
  step: number;
  meanLoss: StepLoss;
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
  start: StartAt;
  /** Best top-1 so far (-1 before the first validation). */
  best: { top1: number };
  /** With `--kd-stop teacher`. */
  kdStop?: KdStop;
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
 * `last.kdw` in runs/train-cls/exp*, and results.png at the end. With `run.kd` the loss is Hinton's
 * α·KD + (1−α)·CE against the teacher's logits on the same augmented pixels, and with `kd.stopAtTeacher`
 * α is 0 once the student's val top-1 has reached the teacher's (kept in the checkpoint). `last.kdw` is a training
 * checkpoint: `cfg.resume` (a run folder or its last.kdw) continues a run where it stopped, as the
 * uninterrupted run would have gone on.
 * @example
 * const r = await trainClassifier(resolveOptions(CLASSIFY_TRAIN_SCHEMA, [{ data: 'datasets/shapes-cls', epochs: 5, imgsz: 64 }]).config);
 */
export async function trainClassifier(cfg: ClassifyTrainConfig, run: ClassifyRunOptions = {}): Promise<ClassifyTrainResult> {
  const s = await setup(cfg, run);
  let epoch = s.start.epoch;
  let interrupted = false;
  try {
    for (; epoch < s.cfg.epochs; epoch++) {
      const from = epoch === s.start.epoch ? s.start : { epoch, step: 0, meanLoss: [0, 0, 0] as StepLoss };
      const r = await trainEpoch(s, epoch, from);
      if (r.steps < s.train.length) {
        interrupted = true;
        await saveCheckpoint(s, { epoch, complete: false, step: r.steps, meanLoss: r.loss, bestFitness: s.best.top1 });
        s.log.info(`stopped in epoch ${epoch + 1} after ${r.steps}/${s.train.length} steps; saved ${s.files.lastPath} (${resumeHint(s)})`);
        break;
      }
      await endEpoch(s, epoch, r.loss);
      // Stopped on an epoch's last step: the epoch is complete and saved as such.
      if (run.signal?.aborted && epoch + 1 < s.cfg.epochs) {
        interrupted = true;
        s.log.info(`stopped after epoch ${epoch + 1}; saved ${s.files.lastPath} (${resumeHint(s)})`);
        epoch++;
        break;
      }
    }
  } finally {
    s.files.tb.close();
  }
  return finish(s, epoch, interrupted);
}

const resumeHint = (s: Run): string => `continue with: kd-trainer classify ${s.run.kd ? 'distill' : 'train'} --resume ${s.files.saveDir}`;

/** The distillation settings as a checkpoint keeps them. */
function kdSettings(run: ClassifyRunOptions): ClassifyKdSettings | undefined {
  const kd = run.kd;
  return kd ? { teacher: kd.teacher.source, kd_alpha: kd.alpha, kd_temperature: kd.temperature, kd_warmup: kd.warmup, kd_stop: kd.stopAtTeacher ? 'teacher' : 'never' } : undefined;
}

/** The teacher's settings where `epoch` distils: after the warm-up, before a `--kd-stop`. */
function kdIn(s: Run, epoch: number): ClassifyKd | undefined {
  const kd = s.run.kd;
  return kd !== undefined && epoch >= kd.warmup && !s.kdStop?.stopped(epoch) ? kd : undefined;
}

/** The `--kd-stop teacher` rule of a distillation, continued from a resumed checkpoint's count or stop. */
function kdStopOf(run: ClassifyRunOptions, ck: ClassifyCheckpoint | undefined, log: Logger): KdStop | undefined {
  const kd = run.kd;
  if (!kd?.stopAtTeacher) return undefined;
  const stop = new KdStop(kd.teacherTop1!, ck?.meta.kdStop);
  if (stop.stoppedFrom !== undefined) log.info(kdStopResumed(stop.stoppedFrom));
  return stop;
}

async function setup(cfgIn: ClassifyTrainConfig, run: ClassifyRunOptions): Promise<Run> {
  const log = run.logger ?? silentLogger;
  if (run.kd?.stopAtTeacher && run.kd.teacherTop1 === undefined) throw new TypeError("kd.stopAtTeacher needs kd.teacherTop1, the teacher's val top-1 to reach");
  const ck = run.resumeFrom ?? (cfgIn.resume ? await openClassifyCheckpoint(cfgIn.resume, run.kd ? 'distill' : 'train') : undefined);
  // A run continues with its own options; only where it computes may change.
  const cfg = ck ? resumedClassifyConfig(ck, cfgIn) : cfgIn;
  if (!run.backendReady) {
    const backend = await selectBackend(backendForDevice(cfg.device, cfg.backend), log);
    if (backend.name === 'webgpu') throw new BackendError(WEBGPU_CANNOT_TRAIN);
  }
  if (cfg.threads > 0) sharp.concurrency(cfg.threads);
  const data = run.dataset ?? await loadClassifyDataset(cfg.data, log);
  const nc = data.names.length;
  if (ck && ck.meta.names.join('\u0000') !== data.names.join('\u0000')) {
    throw new DatasetError(`${data.root} has the classes [${data.names.join(', ')}] but ${ck.file} was trained on [${ck.meta.names.join(', ')}]: resume on the run's own dataset`);
  }
  // Resumed: the raw weights go into a model of the checkpoint's architecture, the EMA is its model.
  const model = ck ? buildFromArchive(ck.archive).model as ClassificationModel : await buildStudent(cfg, nc, data.names, log);
  const imgsz = classifyImgSize(cfg.imgsz, planClassifier(model.description).maxStride, log);
  const kdStop = kdStopOf(run, ck, log);
  const kd = kdSettings(run);
  const files = openRunFiles(cfg, { ...cfg, imgsz, ...kd }, data.valSplit, run.kd !== undefined, ck ? resolve(ck.file, '..', '..') : undefined);
  const ema = new ModelEma(ck ? buildFromArchive(ck.archive).model : createClassifier(model.description, { seed: cfg.seed }));
  if (!ck) ema.copyFrom(model);
  log.info(`model: ${classifierName(model.description)}, ${model.paramCount().toLocaleString('en-US')} parameters, ${nc} classes`);
  const opt = makeOptimizer(cfg.optimizer, model.params, cfg, log);
  let start: StartAt = { epoch: 0, step: 0, meanLoss: [0, 0, 0] };
  if (ck) {
    restoreClassifyTraining(ck, model, opt, ema);
    const m = ck.meta;
    start = m.epochComplete ? { epoch: m.epoch + 1, step: 0, meanLoss: [0, 0, 0] } : { epoch: m.epoch, step: m.step, meanLoss: [...m.meanLoss] as StepLoss };
    // Rows of epochs that train again must not stay (a crash between results.csv and last.kdw).
    files.csv.truncateFrom(start.epoch);
  }
  const augment = cfg.augment ? { ...CLASSIFY_AUGMENT_DEFAULTS, scale: [cfg.crop_scale, 1] as [number, number], fliplr: cfg.fliplr, jitter: cfg.jitter } : undefined;
  const common = { imgsz, seed: cfg.seed, cache: cfg.cache === 'ram', normalisation: IMAGENET_NORMALISATION, logger: log };
  const train = new ClassifyLoader(data.train, { ...common, batchSize: cfg.batch_size, shuffle: true, ...(augment ? { augment } : {}) });
  const val = new ClassifyLoader(data.val, { ...common, batchSize: cfg.batch_size * 2 });
  if (ck) log.info(`resuming ${ck.file} from epoch ${start.epoch + 1}/${cfg.epochs}${start.step > 0 ? `, step ${start.step + 1}/${train.length}` : ''}`);
  log.info(`Image sizes ${imgsz} train, ${imgsz} ${data.valSplit}\nLogging results to ${files.saveDir}\n`
    + `Starting ${classifierName(model.description)} training on ${data.root} with ${nc} classes for ${cfg.epochs} epochs${run.kd ? `, distilling from ${run.kd.teacher.source}` : ''}...\n`);
  log.info(`${'Epoch'.padStart(10)}${'train_loss'.padStart(12)}${`${data.valSplit}_loss`.padStart(12)}${'top1_acc'.padStart(12)}${'top5_acc'.padStart(12)}${run.kd ? `${'ce_loss'.padStart(12)}${'kd_loss'.padStart(12)}` : ''}`);
  return {
    cfg, run, log, data, files, model, ema, opt, varNames: [...model.params.keys()], train, val, imgsz,
    lf: lrLambda(cfg.cos_lr ? 'cosine' : 'linear', cfg.epochs, cfg.lrf), start, best: { top1: ck ? ck.meta.bestFitness : -1 },
    ...(kdStop ? { kdStop } : {}),
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

/** Trains an epoch from step `from.step` on; fewer steps than the loader's length when the signal stopped it. */
async function trainEpoch(s: Run, epoch: number, from: StartAt): Promise<{ loss: StepLoss; steps: number }> {
  const { cfg, run, opt } = s;
  opt.lr = cfg.lr0 * s.lf(epoch);
  const kd = kdIn(s, epoch);
  const mean: StepLoss = [...from.meanLoss];
  let i = from.step;
  if (run.signal?.aborted) return { loss: mean, steps: i };
  const bar = new ProgressBar({ epoch, epochs: cfg.epochs, steps: s.train.length, ...(run.progress ? { stream: run.progress } : {}) });
  let seen = 0;
  for await (const { batch, logits } of lookahead(withTeacher(s.train.epoch(epoch, i), kd?.teacher))) {
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
    if (run.signal?.aborted) break;
  }
  bar.finish();
  return { loss: mean, steps: i };
}

function weightsMeta(s: Run, epoch: number, r: ClassifyValResult): Record<string, unknown> {
  return {
    kind: 'kd-trainer-weights', task: 'classify', epoch, names: s.data.names, imgsz: s.imgsz, normalisation: { ...IMAGENET_NORMALISATION },
    fitness: r.top1, top1: r.top1, top5: r.top5,
    ...(s.run.kd ? { teacher: s.run.kd.teacher.source } : {}),
  };
}

async function validateEma(s: Run): Promise<ClassifyValResult> {
  const clf = new TfjsClassifier(s.ema.ema as ClassificationModel, 'ema');
  return validateClassifier((b) => clf.predict(b.images, b.n, b.size, b.size), s.val.epoch(0), s.data.names.length, { smoothing: s.cfg.label_smoothing });
}

/** Saves `last.kdw`, a training checkpoint (the EMA as its model, with `r`'s accuracy when validated). */
function saveCheckpoint(s: Run, at: ClassifyCheckpointAt, r?: ClassifyValResult): Promise<void> {
  const kd = kdSettings(s.run);
  return saveClassifyCheckpoint(s.files.lastPath, {
    model: s.model, ema: s.ema, opt: s.opt, cfg: s.cfg, names: s.data.names, imgsz: s.imgsz, normalisation: IMAGENET_NORMALISATION,
    ...(kd ? { kd } : {}), ...(s.kdStop ? { kdStop: s.kdStop.state() } : {}), ...(r ? { extraMeta: { fitness: r.top1, top1: r.top1, top5: r.top5 } } : {}),
  }, at);
}

async function endEpoch(s: Run, epoch: number, loss: StepLoss): Promise<void> {
  const { cfg, files, data, run } = s;
  const r = await validateEma(s);
  const kdCols = run.kd ? `${g3(loss[1])}${g3(loss[2])}` : '';
  s.log.info(`${`${epoch + 1}/${cfg.epochs}`.padStart(10)}${g3(loss[0])}${g3(r.loss)}${g3(r.top1)}${g3(r.top5)}${kdCols}`);
  const metrics: Record<string, number> = {
    'train/loss': loss[0], [`${data.valSplit}/loss`]: r.loss, 'metrics/accuracy_top1': r.top1, 'metrics/accuracy_top5': r.top5, 'lr/0': s.opt.lr,
    ...(run.kd ? { 'train/ce_loss': loss[1], 'train/kd_loss': loss[2] } : {}),
  };
  files.csv.append({ epoch, ...metrics });
  const kd = run.kd === undefined ? {} : {
    'kd/alpha': kdIn(s, epoch) ? run.kd.alpha : 0, 'kd/temperature': run.kd.temperature,
    ...(run.kd.teacherTop1 !== undefined ? { 'kd/teacher_accuracy_top1': run.kd.teacherTop1 } : {}),
  };
  files.tb.addScalars({ ...metrics, ...kd }, epoch);
  files.tb.flush();
  // After the last epoch there is nothing left to stop distilling.
  if (epoch + 1 < cfg.epochs && s.kdStop?.observe(epoch, r.top1)) {
    s.log.info(kdStopDecision(s.kdStop, epoch, 'top-1', r.top1));
  }
  // ultralytics' fitness is top-1; the first epoch is always saved, so best.kdw exists.
  const gain = r.top1 > s.best.top1;
  if (gain) s.best.top1 = r.top1;
  await saveCheckpoint(s, { epoch, complete: true, step: 0, meanLoss: loss, bestFitness: s.best.top1 }, r);
  // best.kdw stays plain weights (no optimizer state): what val, export and --weights take.
  if (gain) await saveWeights(files.bestPath, s.ema.ema as ClassificationModel, { meta: weightsMeta(s, epoch, r) });
}

async function finish(s: Run, epochs: number, interrupted: boolean): Promise<ClassifyTrainResult> {
  const { log, files, data } = s;
  const csvFile = files.csv.file;
  if (existsSync(csvFile) && statSync(csvFile).size > 0) {
    await plotResults(csvFile, join(files.saveDir, 'results.png')).catch((e: Error) => log.warn(`results.png not written: ${e.message}`));
  }
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
  const kdStoppedFrom = s.kdStop?.stoppedFrom;
  return {
    saveDir: files.saveDir, best: files.bestPath, last: files.lastPath, epochs, interrupted, names: data.names, paramCount, final,
    ...(kdStoppedFrom !== undefined ? { kdStoppedFrom } : {}),
  };
}
