import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type * as tf from '../tf.js';
import { backendForDevice } from '../backend/device.js';
import { WEBGPU_CANNOT_TRAIN } from '../backend/webgpu.js';
import { BackendError } from '../errors.js';
import { fitAnchors } from './fit-anchors.js';
import { checkImgSize } from '../model/img-size.js';
import { selectBackend, type SelectedBackend } from '../backend/select.js';
import type { TrainConfig } from '../config.js';
import { evalLoader } from '../data/eval-loader.js';
import { loadDataset, type LoadedDataset } from '../data/load-dataset.js';
import type { DatasetItem } from '../data/types.js';
import type { DetectionModel } from '../model/types.js';
import { DataLoader } from '../data/loader.js';
import { SummaryWriter } from '../log/event-writer.js';
import { ResultsCsv } from '../log/results-csv.js';
import { scaleLossHyp, type LossHyp } from '../loss/yolo-loss.js';
import { trainPlots } from '../plots/train-plots.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { ValResult } from '../val/validator.js';
import { buildModels } from './build-models.js';
import { openCheckpoint, restoreTrainingState, resumedConfig, type CheckpointState } from './checkpoint.js';
import { defaultReplicas, ReplicaPool, splitBatch } from './data-parallel.js';
import type { ModelEma } from './ema.js';
import { HookList } from './hook-list.js';
import type { Hyp } from './hyp.js';
import { incrementRunDir } from './run-dir.js';
import { lrLambda } from './schedule.js';
import { NesterovSgd } from './sgd.js';
import type { TrainRunOptions } from './types.js';

/** What changes as a run goes: step counters, accumulated gradients, the best fitness so far. */
export interface LoopState {
  bestFitness: number;
  epochsWithoutGain: number;
  /** Global step of the last optimizer step. */
  lastOptStep: number;
  /** Steps per optimizer step (rises to its target during warm-up). */
  accumulate: number;
  /** Gradients accumulated since the last optimizer step. */
  acc?: Record<string, tf.Tensor>;
  /** Training steps in this process (for `maxSteps`). */
  steps: number;
  interrupted: boolean;
  /** Metrics of the final epoch's validation. */
  final?: ValResult;
}

/** A training run once set up: settings, data, models, optimizer, loaders, logs; what each step of the loop reads. */
export interface RunState extends CheckpointState {
  run: TrainRunOptions;
  log: Logger;
  hooks: HookList;
  backend: SelectedBackend;
  data: LoadedDataset;
  saveDir: string;
  lastPath: string;
  bestPath: string;
  ema: ModelEma;
  lossHyp: LossHyp;
  /** Learning-rate factor of an epoch. */
  lf: (epoch: number) => number;
  accumulateTarget: number;
  /** Batches per epoch, and warm-up iterations. */
  nb: number;
  nw: number;
  varNames: string[];
  trainLoader: DataLoader;
  valLoader: DataLoader;
  tb: SummaryWriter;
  csv: ResultsCsv;
  /** The other model replicas (data parallel on the wasm/cpu backends), when there are any. */
  replicas?: ReplicaPool;
  startEpoch: number;
  loop: LoopState;
}

/**
 * Sets a run up: resumes a checkpoint's settings, selects the backend, reads the dataset (unless given),
 * makes the run folder, the models with the plug-ins' variables, the optimizer, loaders and logs, and
 * the data-parallel replica.
 */
export async function setupRun(cfgIn: TrainConfig, hypIn: Hyp, run: TrainRunOptions): Promise<RunState> {
  const log = run.logger ?? silentLogger;
  const resumed = run.resumeFrom ?? (cfgIn.resume ? await openCheckpoint(cfgIn.resume) : undefined);
  // A run continues with its own settings; only the backend and the step limit may change.
  let cfg = resumed ? resumedConfig(resumed, cfgIn) : cfgIn;
  const hyp = resumed ? resumed.meta.hyp : hypIn;

  const backend = await selectBackend(backendForDevice(cfg.device ?? '', cfg.backend), log);
  if (backend.name === 'webgpu') throw new BackendError(WEBGPU_CANNOT_TRAIN);
  const loaded = run.dataset ?? await loadDataset(cfg.data, log);
  const data = cfg.single_cls ? singleClass(loaded, log) : loaded;

  const saveDir = resumed ? resolve(resumed.file, '..', '..') : incrementRunDir(cfg.project, cfg.name, cfg.exist_ok);

  const hooks = new HookList([...(run.hooks ?? []), ...(run.onStep ? [{ onBatchEnd: run.onStep }] : []), ...(cfg.noplots ? [] : [trainPlots(saveDir, data)])]);
  const { model, ema } = await buildModels(
    cfg, data.config.nc, data.config.names, log, resumed?.archive,
    (m) => (cfg.noautoanchor ? m : fitAnchors(m, data.train, { imgsz: cfg.imgsz, thr: hyp.anchor_t, seed: cfg.seed, logger: log })),
  );
  cfg = { ...cfg, imgsz: checkImgSize(cfg.imgsz, Math.max(...model.strides), log) };
  writeFileSync(join(saveDir, 'opt.yaml'), toYaml(cfg));
  writeFileSync(join(saveDir, 'hyp.yaml'), toYaml(hyp));
  const resumedState = resumed?.meta.hookState as Record<string, unknown> | undefined;
  for (const [name, v] of await hooks.trainStart({ cfg, model, log, ...(resumedState ? { resumedState } : {}) })) model.params.set(name, v);
  log.info(`model: ${model.description.scale === 'custom' ? 'custom' : `yolov5${model.description.scale}`}, ${model.paramCount().toLocaleString('en-US')} parameters, ${model.nl} levels, strides ${model.strides.join('/')}`);

  const bs = cfg.batch_size;
  const accumulateTarget = Math.max(Math.round(cfg.nbs / bs), 1);
  const weightDecay = hyp.weight_decay * bs * accumulateTarget / cfg.nbs;
  const optimizer = new NesterovSgd(model.params, hyp.lr0, hyp.momentum, weightDecay);
  const lossHyp = scaleLossHyp(hyp, model.nl, model.nc, cfg.imgsz);
  const loop: LoopState = { bestFitness: 0, epochsWithoutGain: 0, lastOptStep: -1, accumulate: accumulateTarget, steps: 0, interrupted: false };
  let startEpoch = 0;
  if (resumed) {
    restoreTrainingState(resumed, model, optimizer, ema);
    startEpoch = resumed.meta.epoch + (resumed.meta.epochComplete ? 1 : 0);
    loop.bestFitness = resumed.meta.bestFitness;
    log.info(`resuming ${resumed.file} from epoch ${startEpoch + 1}/${cfg.epochs}`);
  }

  const trainLoader = new DataLoader(data.train, {
    imgsz: cfg.imgsz, batchSize: bs, augment: cfg.augment ?? true, hyp, shuffle: true, seed: cfg.seed, workers: cfg.workers, prefetch: Math.max(3, 2 * cfg.workers), logger: log,
    cache: cfg.cache ?? 'none', ...(run.unlabeled ? { unlabeled: run.unlabeled } : {}),
  });
  const valLoader = evalLoader(data.val, {
    imgsz: cfg.imgsz, batchSize: bs * 2, workers: cfg.workers, logger: log, ...(cfg.rect ? { rectStride: Math.max(...model.strides) } : {}),
  });
  const csv = new ResultsCsv(join(saveDir, 'results.csv'));
  // Rows of epochs that will be trained again (an interrupted epoch) must not stay in results.csv.
  if (resumed) csv.truncateFrom(startEpoch);
  const nb = trainLoader.length;

  // By default one replica per core, as far as the step's images and pixels make that pay.
  const threads = cfg.threads ? Math.min(cfg.threads, bs) : defaultReplicas(availableParallelism(), bs, cfg.imgsz);
  if (!cfg.threads && threads < Math.min(availableParallelism(), bs)) {
    log.info(`data parallel: ${threads} replica${threads > 1 ? 's' : ''} for ${availableParallelism()} cores: a step of ${bs}×${cfg.imgsz}² pixels is too little work to share further (--threads N to choose)`);
  }
  let replicas: ReplicaPool | undefined;
  const varNames = trainableNames(model, cfg.freeze ?? 0, log);
  if (threads > 1 && (backend.name === 'wasm' || backend.name === 'cpu')) {
    replicas = await ReplicaPool.start(model, backend.name, lossHyp, threads, varNames, hooks.extraLoss?.module);
    const per = splitBatch({ images: new Float32Array(0), n: bs, height: 0, width: 0, targets: new Float32Array(0), nTargets: 0 }, threads).map((sh) => sh.n);
    log.info(`data parallel: ${threads} replicas (main thread + ${threads - 1} worker thread${threads > 2 ? 's' : ''}) with synchronised BatchNorm, ${per.join('+')} images per step`);
  }
  return {
    run, log, hooks, backend, data, cfg, hyp, names: data.config.names, saveDir,
    lastPath: join(saveDir, 'weights', 'last.kdw'), bestPath: join(saveDir, 'weights', 'best.kdw'),
    model, ema, optimizer, lossHyp, lf: lrLambda(cfg.cos_lr ? 'cosine' : 'linear', cfg.epochs, hyp.lrf),
    accumulateTarget, nb, nw: warmupIterations(hyp.warmup_epochs, nb), varNames,
    trainLoader, valLoader, tb: new SummaryWriter(saveDir), csv, ...(replicas ? { replicas } : {}), startEpoch, loop,
    ...(run.checkpointMeta ? { extraMeta: run.checkpointMeta } : {}),
  };
}

/**
 * Warm-up steps: max(round(warmup_epochs · batches per epoch), 100), as ultralytics YOLOv5; with
 * `warmup_epochs` 0, none (−1, as ultralytics YOLOv8): fine-tuning a converged model (`kd-trainer adapt`)
 * would otherwise spend its first 100 steps below its learning rate.
 */
export function warmupIterations(warmupEpochs: number, nb: number): number {
  return warmupEpochs > 0 ? Math.max(Math.round(warmupEpochs * nb), 100) : -1;
}

/** ultralytics' --single-cls: every label becomes class 0 of one class, `item`. */
export function singleClass(data: LoadedDataset, log: Logger): LoadedDataset {
  const one = (items: DatasetItem[]): DatasetItem[] => items.map((it) => {
    const labels = Float32Array.from(it.labels);
    for (let r = 0; r < labels.length; r += 5) labels[r] = 0;
    return { ...it, labels };
  });
  log.info(`single-class: ${data.config.nc} classes trained as one, 'item'`);
  return { config: { ...data.config, nc: 1, names: ['item'] }, train: one(data.train), val: one(data.val) };
}

/** The parameters that train: all but those of the first `freeze` layers (ultralytics' `model.{i}.` prefixes). */
export function trainableNames(model: DetectionModel, freeze: number, log: Logger): string[] {
  const names = [...model.params.keys()];
  if (freeze <= 0) return names;
  const frozen = (n: string): boolean => {
    const m = /^model\.(\d+)\./.exec(n);
    return m !== null && Number(m[1]) < freeze;
  };
  const kept = names.filter((n) => !frozen(n));
  log.info(`freezing layers 0-${freeze - 1}: ${names.length - kept.length} of ${names.length} parameter tensors stay as loaded`);
  return kept;
}
