import { existsSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '../tf.js';
import { stringify as toYaml } from 'yaml';
import { selectBackend } from '../backend/select.js';
import type { TrainConfig } from '../config.js';
import { loadDatasetConfig } from '../data/dataset-yaml.js';
import { DataLoader } from '../data/loader.js';
import { scanSplit } from '../data/scan.js';
import { WeightsError } from '../errors.js';
import { SummaryWriter } from '../log/event-writer.js';
import { ProgressBar, type ProgressStream } from '../log/progress.js';
import { ResultsCsv } from '../log/results-csv.js';
import { plotResults } from '../log/results-plot.js';
import { drawDetections } from '../log/draw-boxes.js';
import { scaleLossHyp } from '../loss/yolo-loss.js';
import type { DetectionModel, YoloDescription } from '../model/types.js';
import { loadModel, saveWeights, type LoadedModel } from '../model/weights-io.js';
import { createYoloModel } from '../model/yolo.js';
import { parseModelYaml, yoloDescription } from '@kd-edge/core';
import { silentLogger, type Logger } from '../util/logger.js';
import { formatValTable, validate, type ValResult } from '../val/validator.js';
import { GradientWorker, splitBatch } from './data-parallel.js';
import { ModelEma } from './ema.js';
import type { Hyp } from './hyp.js';
import { incrementRunDir } from './run-dir.js';
import { lrLambda, warmupStep } from './schedule.js';
import { clipGradNorm, NesterovSgd } from './sgd.js';
import { MICRO_BATCH_PIXELS, microBatches, shardGradients } from './step.js';
import { adapterParamName, buildDistillLoss, DISTILL_ITEM_NAMES } from '../distill/distill-loss.js';
import { createFeatureAdapters } from '../distill/losses/feature-adapters.js';
import type { DistillSession } from '../distill/distill-session.js';
import { lookahead } from '../distill/lookahead.js';
import { classProbabilities } from '../distill/class-probabilities.js';
import type { TeacherOutput } from '../distill/types.js';
import { withBatchNormSync } from '../model/batch-norm-sync.js';

/** Where a training run writes and what it ended with. */
export interface TrainResult {
  saveDir: string;
  best: string;
  last: string;
  epochs: number;
  final: ValResult;
  backend: string;
  interrupted: boolean;
}

/** Everything a run needs besides its configuration. */
export interface TrainRunOptions {
  logger?: Logger;
  /** Where the progress bar goes (process.stdout by default). */
  progress?: ProgressStream;
  /** Stops the run after the current step, saving `last` first (the CLI wires Ctrl-C to it). */
  signal?: AbortSignal;
  /** Stop after this many training steps in total, saving `last` as an interrupted run (tests, benchmarks). */
  maxSteps?: number;
  /** Called after every training step (tests watch tensor counts and losses through it). */
  onStep?: (info: StepInfo) => void;
  /** Knowledge distillation from a frozen teacher (`kd-trainer distill`). */
  distill?: DistillSession;
}

/** What {@link TrainRunOptions.onStep} is told after each step. */
export interface StepInfo {
  epoch: number;
  step: number;
  /** Whether the optimizer stepped (accumulated gradients applied) at this step. */
  optimizerStep: boolean;
  /** box, obj, cls, then kd_obj, kd_cls, kd_box when distilling. */
  loss: number[];
  /** α of the step when distilling. */
  alpha?: number;
  /** Live tensors after the step (tf.memory().numTensors). */
  numTensors: number;
}

/** Meta stored in a checkpoint; `opt` and `hyp` let `--resume` continue with the same settings. */
interface CheckpointMeta {
  kind: 'kd-trainer-checkpoint';
  epoch: number;
  epochComplete: boolean;
  bestFitness: number;
  emaUpdates: number;
  opt: TrainConfig;
  hyp: Hyp;
  names: string[];
  date: string;
}

/**
 * Trains a YOLOv5-family detector the way ultralytics train.py does: SGD with Nesterov momentum,
 * warm-up of learning rate and momentum, linear or cosine decay, EMA, gradient accumulation to
 * a nominal batch of 64, checkpoints `last` and `best` by fitness, resume.
 * @example
 * await train(resolveOptions(TRAIN_SCHEMA, [{ data: 'data.yaml', epochs: 10, imgsz: 128 }]).config, HYP_SCRATCH_LOW);
 */
export async function train(cfgIn: TrainConfig, hypIn: Hyp, run: TrainRunOptions = {}): Promise<TrainResult> {
  const log = run.logger ?? silentLogger;
  let cfg = cfgIn;
  let hyp = hypIn;
  let resumeFrom: { file: string; meta: CheckpointMeta; loaded: LoadedModel } | undefined;
  if (cfg.resume) {
    const file = resolveResume(cfg.resume);
    const loaded = await loadModel(file);
    const meta = loaded.meta as unknown as CheckpointMeta;
    if (meta?.kind !== 'kd-trainer-checkpoint') throw new WeightsError(`${file} is not a kd-trainer training checkpoint (no optimizer state)`);
    // A run continues with its own settings; only the backend and the step limit may change.
    cfg = { ...meta.opt, backend: cfg.backend, resume: file };
    hyp = meta.hyp;
    resumeFrom = { file, meta, loaded };
  }

  const backend = await selectBackend(cfg.backend, log);

  const data = await loadDatasetConfig(cfg.data);
  const trainItems = await scanSplit(data.train, data.nc, log, { split: 'train' });
  const valItems = await scanSplit(data.val, data.nc, log, { split: 'val' });
  log.info(`data: ${trainItems.length} train images, ${valItems.length} val images, ${data.nc} classes`);

  const saveDir = resumeFrom ? resolve(resumeFrom.file, '..', '..') : incrementRunDir(cfg.project, cfg.name, cfg.exist_ok);
  const wdir = join(saveDir, 'weights');
  const lastPath = join(wdir, 'last.kdw');
  const bestPath = join(wdir, 'best.kdw');
  writeFileSync(join(saveDir, 'opt.yaml'), toYaml(cfg));
  writeFileSync(join(saveDir, 'hyp.yaml'), toYaml(hyp));

  const { model, ema } = await buildModels(cfg, data.nc, data.names, resumeFrom?.loaded);
  // Feature-distillation adapters train with the student (in its params, so the optimizer, the
  // gradient worker and checkpoints see them) but are not in the EMA, so best.kdw and exports drop them.
  const adapterPairs = run.distill?.settings.features?.pairs;
  const adapters = createFeatureAdapters(adapterPairs ?? [], cfg.seed);
  for (const a of adapters.values()) {
    model.params.set(adapterParamName(a.name, 'weight'), a.weight);
    model.params.set(adapterParamName(a.name, 'bias'), a.bias);
  }
  log.info(`model: ${model.description.scale === 'custom' ? 'custom' : `yolov5${model.description.scale}`}, ${model.paramCount().toLocaleString('en-US')} parameters, ${model.nl} levels, strides ${model.strides.join('/')}`);

  const bs = cfg.batch_size;
  const nbs = cfg.nbs;
  const accumulateTarget = Math.max(Math.round(nbs / bs), 1);
  const weightDecay = hyp.weight_decay * bs * accumulateTarget / nbs;
  const optimizer = new NesterovSgd(model.params, hyp.lr0, hyp.momentum, weightDecay);
  const lf = lrLambda(cfg.cos_lr ? 'cosine' : 'linear', cfg.epochs, hyp.lrf);
  const lossHyp = scaleLossHyp(hyp, model.nl, model.nc, cfg.imgsz);

  let startEpoch = 0;
  let bestFitness = 0;
  if (resumeFrom) {
    const momentum = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, t] of Object.entries(resumeFrom.loaded.extraTensors)) if (name.startsWith('sgd/')) momentum.set(name.slice(4), t);
    optimizer.loadState(momentum);
    ema.updates = resumeFrom.meta.emaUpdates;
    startEpoch = resumeFrom.meta.epoch + (resumeFrom.meta.epochComplete ? 1 : 0);
    bestFitness = resumeFrom.meta.bestFitness;
    log.info(`resuming ${resumeFrom.file} from epoch ${startEpoch + 1}/${cfg.epochs}`);
  }

  const trainLoader = new DataLoader(trainItems, {
    imgsz: cfg.imgsz, batchSize: bs, augment: cfg.augment ?? true, hyp, shuffle: true, seed: cfg.seed, workers: cfg.workers, prefetch: Math.max(3, 2 * cfg.workers), logger: log,
  });
  const valLoader = new DataLoader(valItems, {
    imgsz: cfg.imgsz, batchSize: bs * 2, augment: false, hyp, shuffle: false, seed: cfg.seed, workers: cfg.workers, prefetch: Math.max(3, 2 * cfg.workers), logger: log,
  });
  const tb = new SummaryWriter(saveDir);
  const csv = new ResultsCsv(join(saveDir, 'results.csv'));
  // Rows of epochs that will be trained again (an interrupted epoch) must not stay in results.csv.
  if (resumeFrom) csv.truncateFrom(startEpoch);
  const nb = trainLoader.length;
  const nw = Math.max(Math.round(hyp.warmup_epochs * nb), 100);
  let lastOptStep = -1;
  let accumulate = accumulateTarget;
  let interrupted = false;
  let steps = 0;
  let epochsWithoutGain = 0;
  let final: ValResult | undefined;
  let epoch = startEpoch;
  const onAbort = () => { interrupted = true; };
  run.signal?.addEventListener('abort', onAbort);
  if (run.signal?.aborted) interrupted = true;

  const saveCheckpoint = (file: string, ep: number, complete: boolean) => {
    const extra = new Map<string, tf.Tensor>();
    for (const [k, v] of model.params) extra.set(`train/${k}`, v);
    for (const [k, v] of model.buffers) extra.set(`train/${k}`, v);
    for (const [k, v] of optimizer.state()) extra.set(`sgd/${k}`, v);
    const meta: CheckpointMeta = {
      kind: 'kd-trainer-checkpoint', epoch: ep, epochComplete: complete, bestFitness,
      emaUpdates: ema.updates, opt: cfg, hyp, names: data.names, date: new Date().toISOString(),
    };
    return saveWeights(file, ema.ema as DetectionModel, { meta: meta as unknown as Record<string, unknown>, tensors: Object.fromEntries(extra) });
  };

  const varNames = [...model.params.keys()];
  let acc: Record<string, tf.Tensor> | undefined;
  const threads = cfg.threads || Math.min(availableParallelism(), 2);
  let gradWorker: GradientWorker | undefined;
  if (threads > 1 && (backend.name === 'wasm' || backend.name === 'cpu') && bs > 1) {
    gradWorker = await GradientWorker.start(model, backend.name, lossHyp, adapterPairs);
    log.info(`data parallel: 2 replicas (main thread + 1 worker thread) with synchronised BatchNorm, ${Math.ceil(bs / 2)}+${Math.floor(bs / 2)} images per step`);
  }
  try {
    for (; epoch < cfg.epochs && !interrupted; epoch++) {
      const epochLr = hyp.lr0 * lf(epoch);
      for (const g of optimizer.groups) g.lr = epochLr;
      const kd = run.distill;
      const mloss = new Array<number>(kd ? 3 + DISTILL_ITEM_NAMES.length : 3).fill(0);
      const bar = new ProgressBar({ epoch, epochs: cfg.epochs, steps: nb, stream: run.progress });
      let i = 0;
      let seen = 0;
      const tEpoch = performance.now();
      let alpha = 0;
      // The teacher's pass over batch k+1 starts before step k, so ONNX Runtime's threads overlap it.
      let k = 0;
      const batches = lookahead(trainLoader.epoch(epoch), (b) => kd?.start(b, epoch + (k++) / nb));
      for await (const { item: batch, pending: teacherPending } of batches) {
        const tStep = performance.now();
        const ni = i + nb * epoch;
        if (ni <= nw) {
          const w = warmupStep(ni, epochLr, {
            iterations: nw, warmupBiasLr: hyp.warmup_bias_lr, warmupMomentum: hyp.warmup_momentum, momentum: hyp.momentum, accumulateTarget,
          });
          w.lrs.forEach((lr, j) => { optimizer.groups[j].lr = lr; optimizer.groups[j].momentum = w.momentum; });
          accumulate = w.accumulate;
        }
        // Data parallel: the worker differentiates the second half of the batch meanwhile.
        const [mine, theirs] = gradWorker && batch.n > 1 ? splitBatch(batch) : [batch, undefined];
        // SyncBN needs both replicas to make the same passes; an uneven last batch runs unsynchronised.
        const syncBn = theirs !== undefined && microBatches(mine) === microBatches(theirs);
        alpha = kd ? kd.alphaAt(epoch + i / nb) : 0;
        const tOut: TeacherOutput | undefined = kd && teacherPending ? await kd.wait(teacherPending) : undefined;
        const jobOf = (start: number, n: number) => (kd && tOut ? kd.job(tOut, batch.n, start, n, alpha, lossHyp) : undefined);
        const mineJob = jobOf(0, mine.n);
        const pending = theirs ? gradWorker!.compute(model, theirs, syncBn, jobOf(mine.n, theirs.n)) : undefined;
        const extra = mineJob ? buildDistillLoss(mineJob, model) : undefined;
        const step = withBatchNormSync(syncBn ? gradWorker!.exchange : null, () =>
          shardGradients(model, varNames, mine, lossHyp, MICRO_BATCH_PIXELS, extra));
        extra?.dispose();
        let named = step.grads;
        // Steps without the teacher (warm-up) report zero KD terms.
        let lossItems: number[] = kd && step.loss.length === 3 ? [...step.loss, ...DISTILL_ITEM_NAMES.map(() => 0)] : step.loss;
        if (pending && theirs) {
          const other = await pending;
          named = sumGradients(varNames, step.grads, gradWorker!.gradients());
          lossItems = lossItems.map((v, j) => (v * mine.n + (other[j] ?? 0) * theirs.n) / batch.n);
        }
        // Gradients accumulate across steps (and epochs, as in ultralytics) until the optimizer steps.
        acc = acc ? sumGradients(varNames, acc, named) : named;
        if (!lossItems.every(Number.isFinite)) log.warn(`non-finite loss at epoch ${epoch + 1} step ${i + 1}: ${lossItems.join(', ')}`);
        for (let j = 0; j < mloss.length; j++) mloss[j] = (mloss[j] * i + lossItems[j]!) / (i + 1);

        const optimizerStep = ni - lastOptStep >= accumulate;
        if (optimizerStep) {
          const clipped = clipGradNorm(acc, 10.0).grads;
          optimizer.step(clipped);
          tf.dispose(Object.values(clipped));
          acc = undefined;
          ema.update(model);
          gradWorker?.invalidate();
          lastOptStep = ni;
        }
        seen += batch.n;
        i++;
        steps++;
        kd?.addStepTime(performance.now() - tStep);
        run.onStep?.({ epoch, step: i, optimizerStep, loss: lossItems, numTensors: tf.memory().numTensors, ...(kd ? { alpha } : {}) });
        bar.update(i, {
          box_loss: mloss[0], obj_loss: mloss[1], cls_loss: mloss[2],
          ...(kd ? { kd_loss: mloss.slice(3).reduce((a, b) => a + b, 0), alpha } : {}),
        }, seen);
        if (interrupted || (run.maxSteps !== undefined && steps >= run.maxSteps)) {
          interrupted = true;
          break;
        }
      }
      bar.finish();
      const complete = i === nb;
      if (!complete) {
        await saveCheckpoint(lastPath, epoch, false);
        log.info(`stopped in epoch ${epoch + 1} after ${i} steps; saved ${lastPath} (resume with --resume ${lastPath})`);
        break;
      }
      const stats = trainLoader.stats();
      const lrs = optimizer.groups.map((g) => g.lr);
      const isFinal = epoch + 1 === cfg.epochs;
      let metrics: ValResult | undefined;
      if (!cfg.noval || isFinal) {
        metrics = await validate(ema.ema as DetectionModel, valLoader.epoch(0), {
          confThres: cfg.conf_thres, iouThres: cfg.iou_thres, lossHyp: hyp, imgsz: cfg.imgsz,
          onFirstBatch: async (b, dets) => {
            const png = await drawDetections(toRgb(b, 0), b.width, b.height, dets[0], data.names);
            tb.addImage('val/predictions', png, b.width, b.height, epoch + 1);
            if (run.distill) {
              // Teacher and student confidence distributions on the same images.
              const t = await run.distill.settings.teacher.predict(b.images, b.n, b.height, b.width);
              const x = tf.tensor4d(b.images, [b.n, b.height, b.width, 3]);
              const outs = (ema.ema as DetectionModel).forward(x, false);
              const s = outs.map((o) => o.dataSync() as Float32Array);
              tf.dispose([x, ...outs]);
              tb.addHistogram('kd/teacher_class_prob', classProbabilities(t.levels!.map((l) => l.data), model.nc), epoch + 1);
              tb.addHistogram('kd/student_class_prob', classProbabilities(s, model.nc), epoch + 1);
            }
          },
        });
        for (const line of formatValTable(metrics, data.names).slice(0, 2)) log.info(line);
      }
      const fitness = metrics?.fitness ?? 0;
      csv.append({
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
        ...(run.distill ? distillScalars(run.distill, mloss, alpha, seen) : {}),
        'x/images_per_second': seen / ((performance.now() - tEpoch) / 1000),
        ...(metrics ? {
          'metrics/precision': metrics.precision, 'metrics/recall': metrics.recall,
          'metrics/mAP_0.5': metrics.map50, 'metrics/mAP_0.5:0.95': metrics.map,
          'val/box_loss': metrics.loss.box, 'val/obj_loss': metrics.loss.obj, 'val/cls_loss': metrics.loss.cls,
        } : {}),
      }, epoch + 1);
      for (const [name, v] of model.params) {
        if (name.endsWith('.weight')) tb.addHistogram(name, v.dataSync() as Float32Array, epoch + 1);
      }
      tb.flush();
      if (fitness > bestFitness || epoch === startEpoch && bestFitness === 0) {
        bestFitness = Math.max(fitness, bestFitness);
        epochsWithoutGain = 0;
        await saveCheckpoint(lastPath, epoch, true);
        await saveWeights(bestPath, ema.ema as DetectionModel, { meta: { kind: 'kd-trainer-weights', epoch, fitness, names: data.names } });
      } else {
        epochsWithoutGain++;
        await saveCheckpoint(lastPath, epoch, true);
      }
      if (metrics && isFinal) final = metrics;
      if (cfg.patience > 0 && epochsWithoutGain >= cfg.patience) {
        log.info(`stopping early: no improvement in the last ${cfg.patience} epochs`);
        epoch++;
        break;
      }
    }
  } finally {
    if (acc) tf.dispose(Object.values(acc));
    run.signal?.removeEventListener('abort', onAbort);
    tb.close();
    await gradWorker?.close();
  }

  if (existsSync(join(saveDir, 'results.csv')) && statSync(join(saveDir, 'results.csv')).size > 0) {
    await plotResults(join(saveDir, 'results.csv'), join(saveDir, 'results.png')).catch((e: Error) => log.warn(`results.png not written: ${e.message}`));
  }
  if (!interrupted && existsSync(bestPath)) {
    // Like ultralytics, the table at the end is that of the best weights.
    const { model: best } = await loadModel(bestPath);
    final = await validate(best as DetectionModel, valLoader.epoch(0), { confThres: cfg.conf_thres, iouThres: cfg.iou_thres, imgsz: cfg.imgsz });
    best.dispose();
    log.info(`\nValidating ${bestPath}...`);
    for (const line of formatValTable(final, data.names)) log.info(line);
  }
  await trainLoader.close();
  await valLoader.close();
  const epochsDone = epoch;
  model.dispose();
  adapters.dispose();
  ema.ema.dispose();
  optimizer.dispose();
  log.info(`Results saved to ${saveDir}`);
  return {
    saveDir, best: bestPath, last: lastPath, epochs: epochsDone, backend: backend.name, interrupted,
    final: final ?? emptyResult(),
  };
}

async function buildModels(cfg: TrainConfig, nc: number, names: string[], resumed?: LoadedModel): Promise<{ model: DetectionModel; ema: ModelEma }> {
  let model: DetectionModel;
  let emaModel: DetectionModel;
  if (resumed) {
    emaModel = resumed.model as DetectionModel;
    model = createYoloModel(emaModel.description, { seed: cfg.seed });
    for (const [name, t] of Object.entries(resumed.extraTensors)) {
      if (!name.startsWith('train/')) continue;
      const key = name.slice(6);
      const v = model.params.get(key) ?? model.buffers.get(key);
      if (v) tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
    }
    return { model, ema: new ModelEma(emaModel) };
  }
  let desc: YoloDescription;
  if (cfg.weights) {
    const loaded = await loadModel(cfg.weights);
    model = loaded.model as DetectionModel;
    if (model.nc !== nc) throw new WeightsError(`${cfg.weights} has nc=${model.nc} but the dataset has nc=${nc}`);
    desc = model.description;
  } else {
    const m = /^yolov5([nsmlx])$/.exec(cfg.model);
    if (m) desc = yoloDescription(m[1] as 'n', nc);
    else desc = { ...parseModelYaml(await readFile(cfg.model, 'utf8')), nc };
    model = createYoloModel({ ...desc, names }, { seed: cfg.seed });
  }
  emaModel = createYoloModel(model.description, { seed: cfg.seed });
  const ema = new ModelEma(emaModel);
  ema.copyFrom(model);
  return { model, ema };
}

/** TensorBoard scalars of a distillation epoch: each KD term, α, T, the teacher's time and wait share. */
function distillScalars(kd: DistillSession, mloss: number[], alpha: number, images: number): Record<string, number> {
  const t = kd.takeStats();
  const out: Record<string, number> = {
    'kd/alpha': alpha, 'kd/temperature': kd.settings.temperature, 'kd/teacher_wait_share': t.waitShare,
    // Student and teacher share the process: its peak resident memory is both together.
    'kd/peak_rss_mib': process.resourceUsage().maxRSS / 1024,
  };
  if (kd.teacherMetrics) {
    out['kd/teacher_mAP_0.5'] = kd.teacherMetrics.map50;
    out['kd/teacher_mAP_0.5:0.95'] = kd.teacherMetrics.map;
  }
  DISTILL_ITEM_NAMES.forEach((name, j) => { out[`train/${name}`] = mloss[3 + j] ?? 0; });
  if (images > 0) out['kd/teacher_ms_per_image'] = t.teacherMs / images;
  return out;
}

/** a + b per parameter; both inputs are disposed. */
function sumGradients(names: string[], a: Record<string, tf.Tensor>, b: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
  const sum = tf.tidy(() => Object.fromEntries(names.map((n) => [n, a[n].add(b[n])])));
  tf.dispose([...Object.values(a), ...Object.values(b)]);
  return sum;
}

function resolveResume(p: string): string {
  if (existsSync(p) && statSync(p).isDirectory()) return join(p, 'weights', 'last.kdw');
  return p;
}

function toRgb(b: { images: Float32Array; width: number; height: number }, i: number): Uint8Array {
  const n = b.width * b.height * 3;
  const out = new Uint8Array(n);
  const src = b.images.subarray(i * n, (i + 1) * n);
  for (let k = 0; k < n; k++) out[k] = Math.round(src[k] * 255);
  return out;
}

function emptyResult(): ValResult {
  return { images: 0, instances: 0, precision: 0, recall: 0, map50: 0, map: 0, fitness: 0, perClass: [], speed: { preprocess: 0, inference: 0, nms: 0 }, loss: { box: 0, obj: 0, cls: 0 } };
}
