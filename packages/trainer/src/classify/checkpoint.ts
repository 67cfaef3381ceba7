import { WeightsError } from '../errors.js';
import type { ClassificationModel } from '../model/types.js';
import { archiveExtras, openModelArchive, readTensorArchiveMeta, saveWeights, type ModelArchive, type StoredTensor } from '../model/weights-io.js';
import { checkpointCommand, checkpointFile, notACheckpointError } from '../train/checkpoint.js';
import type { ModelEma } from '../train/ema.js';
import * as tf from '../tf.js';
import { CLASSIFY_TRAIN_SCHEMA, type ClassifyDistillConfig, type ClassifyTrainConfig } from './classify-schema.js';
import type { KdStopState } from '../distill/kd-stop.js';
import type { Normalisation } from './normalisation.js';
import type { ClassifyOptimizer, StepLoss } from './step.js';

/** The distillation settings a `classify distill` checkpoint keeps, under the command's own option names. */
export interface ClassifyKdSettings {
  teacher: string;
  kd_alpha: number;
  kd_temperature: number;
  kd_warmup: number;
  /** Absent in checkpoints from before `--kd-stop`: they distilled to the last epoch, and resume so ('never'). */
  kd_stop?: ClassifyDistillConfig['kd_stop'];
}

/**
 * Meta of a classification checkpoint (`last.kdw`): where the run stands, its options and, for distill,
 * its teacher and KD settings, so that `--resume` continues it with nothing else given. It also carries
 * what plain classifier weights carry (`task`, `names`, `imgsz`, `normalisation`), so `classify val`,
 * `export` and `--weights` read it as the EMA classifier it is.
 */
export interface ClassifyCheckpointMeta {
  kind: 'kd-trainer-checkpoint';
  task: 'classify';
  epoch: number;
  /** Whether every step of `epoch` ran; otherwise `step` of them did. */
  epochComplete: boolean;
  /** Steps of `epoch` taken (a resumed run skips them: the loader's order depends on seed and epoch only). */
  step: number;
  /** Running mean of the loss items over those steps (results.csv's train/loss goes on from it). */
  meanLoss: StepLoss;
  /** Best top-1 so far (-1 before the first validation). */
  bestFitness: number;
  emaUpdates: number;
  /** Optimizer steps (Adam's bias-correction t). */
  optimizerSteps: number;
  opt: ClassifyTrainConfig;
  distill?: ClassifyKdSettings;
  /** With `--kd-stop teacher`: the count toward the stop, or the stop. */
  kdStop?: KdStopState;
  names: string[];
  imgsz: number;
  normalisation: Normalisation;
  date: string;
  [key: string]: unknown;
}

/** An opened classification checkpoint, read but not built. */
export interface ClassifyCheckpoint {
  file: string;
  meta: ClassifyCheckpointMeta;
  archive: ModelArchive;
}

/** The command a checkpoint is resumed with. */
export type ClassifyCommandName = 'train' | 'distill';

/**
 * Throws a WeightsError naming the file unless it is a checkpoint of an unfinished `classify <command>`
 * run: plain weights, a detection checkpoint, the other classify command's, and a finished run are each
 * told apart.
 */
export function checkClassifyCheckpoint(file: string, meta: Record<string, unknown>, command: ClassifyCommandName): asserts meta is ClassifyCheckpointMeta {
  if (meta.kind !== 'kd-trainer-checkpoint') throw notACheckpointError(file, meta);
  const wrote = checkpointCommand(meta);
  if (meta.task !== 'classify') {
    throw new WeightsError(`${file} is a checkpoint of kd-trainer ${wrote} (a detector), not of a classifier: resume it with kd-trainer ${wrote} --resume ${file}`);
  }
  if (wrote !== `classify ${command}`) {
    const teacher = (meta.distill as Partial<ClassifyKdSettings> | undefined)?.teacher;
    throw new WeightsError(`${file} is a checkpoint of kd-trainer ${wrote}${teacher ? ` (teacher ${teacher})` : ''}, not of classify ${command}: resume it with kd-trainer ${wrote} --resume ${file}`);
  }
  const m = meta as ClassifyCheckpointMeta;
  if (m.epochComplete && m.epoch + 1 >= m.opt.epochs) {
    throw new WeightsError(`${file}: training to ${m.opt.epochs} epochs is finished, nothing to resume (validate it with kd-trainer classify val --weights ${file}, or train on from it with --weights ${file})`);
  }
}

/** A classification checkpoint's file and meta from its header alone (what `--resume` fills the options with). */
export async function readClassifyCheckpointMeta(path: string, command: ClassifyCommandName): Promise<{ file: string; meta: ClassifyCheckpointMeta }> {
  const file = checkpointFile(path);
  const meta = ((await readTensorArchiveMeta(file)).meta ?? {}) as Record<string, unknown>;
  checkClassifyCheckpoint(file, meta, command);
  return { file, meta };
}

/** Opens a classification checkpoint: a `last.kdw`, or a run folder (its weights/last.kdw). Builds no tensors. */
export async function openClassifyCheckpoint(path: string, command: ClassifyCommandName): Promise<ClassifyCheckpoint> {
  const file = checkpointFile(path);
  const archive = await openModelArchive(file);
  checkClassifyCheckpoint(file, archive.meta, command);
  return { file, meta: archive.meta, archive };
}

/** The `classify train` options of a config (a distill config has more), as a checkpoint keeps them. */
export function classifyTrainOptions(cfg: ClassifyTrainConfig): ClassifyTrainConfig {
  return Object.fromEntries(Object.keys(CLASSIFY_TRAIN_SCHEMA).map((k) => [k, cfg[k as keyof ClassifyTrainConfig]])) as ClassifyTrainConfig;
}

/** The options a resumed run continues with: its own, but this command's backend, device and threads. */
export function resumedClassifyConfig(ck: ClassifyCheckpoint, cfg: ClassifyTrainConfig): ClassifyTrainConfig {
  return { ...ck.meta.opt, backend: cfg.backend, device: cfg.device, threads: cfg.threads, resume: ck.file };
}

/**
 * The options a resumed distillation continues with: the checkpoint's own, its teacher and KD settings
 * included, with this command's backend, device and threads. It goes on with the distilled run only
 * (`compare` off: a `--compare` baseline was finished before the distilled run started). A checkpoint
 * from before `--kd-stop` goes on distilling to the last epoch, as it was started to.
 */
export function resumedClassifyDistillConfig(ck: ClassifyCheckpoint, cfg: ClassifyDistillConfig): ClassifyDistillConfig {
  const kd = ck.meta.distill!;
  return { ...cfg, ...resumedClassifyConfig(ck, cfg), ...kd, kd_stop: kd.kd_stop ?? 'never', compare: false };
}

/** What {@link saveClassifyCheckpoint} stores besides the position. */
export interface ClassifyCheckpointState {
  model: ClassificationModel;
  ema: ModelEma;
  opt: ClassifyOptimizer;
  cfg: ClassifyTrainConfig;
  kd?: ClassifyKdSettings;
  kdStop?: KdStopState;
  names: string[];
  imgsz: number;
  normalisation: Normalisation;
  /** More meta (the epoch's top-1 and top-5, as plain weights record them). */
  extraMeta?: Record<string, unknown>;
}

/** Where a run stands when its checkpoint is written. */
export interface ClassifyCheckpointAt {
  epoch: number;
  complete: boolean;
  step: number;
  meanLoss: StepLoss;
  bestFitness: number;
}

const TRAIN = 'train/';
const OPTIMIZER = 'optimizer/';

/**
 * Writes a classification checkpoint: the EMA as its model (what val and export read), the raw weights
 * (`train/…`) and the optimizer's state (`optimizer/…`) as extra tensors.
 */
export function saveClassifyCheckpoint(file: string, s: ClassifyCheckpointState, at: ClassifyCheckpointAt): Promise<void> {
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, v] of [...s.model.params, ...s.model.buffers]) tensors[TRAIN + k] = v;
  for (const [k, v] of s.opt.state()) tensors[OPTIMIZER + k] = v;
  const meta: ClassifyCheckpointMeta = {
    ...s.extraMeta,
    kind: 'kd-trainer-checkpoint', task: 'classify', epoch: at.epoch, epochComplete: at.complete, step: at.complete ? 0 : at.step,
    meanLoss: [...at.meanLoss], bestFitness: at.bestFitness, emaUpdates: s.ema.updates, optimizerSteps: s.opt.steps,
    opt: classifyTrainOptions(s.cfg), ...(s.kd ? { distill: s.kd } : {}), ...(s.kdStop ? { kdStop: s.kdStop } : {}),
    names: s.names, imgsz: s.imgsz, normalisation: { ...s.normalisation, mean: [...s.normalisation.mean], std: [...s.normalisation.std] },
    date: new Date().toISOString(),
  };
  return saveWeights(file, s.ema.ema as ClassificationModel, { meta, tensors });
}

/** Puts a checkpoint's raw weights into the model, its state into the optimizer and its update count into the EMA. */
export function restoreClassifyTraining(ck: ClassifyCheckpoint, model: ClassificationModel, opt: ClassifyOptimizer, ema: ModelEma): void {
  const extras = archiveExtras(ck.archive);
  const state = new Map<string, StoredTensor>();
  for (const [name, t] of Object.entries(extras)) if (name.startsWith(OPTIMIZER)) state.set(name.slice(OPTIMIZER.length), t);
  tf.tidy(() => {
    for (const [name, v] of [...model.params, ...model.buffers]) {
      const t = extras[TRAIN + name];
      if (t === undefined || t.data.length !== v.size) throw new WeightsError(`${ck.file}: the checkpoint has no raw weights for ${name}`);
      v.assign(tf.tensor(t.data, v.shape));
    }
  });
  opt.loadState(state, ck.meta.optimizerSteps);
  ema.updates = ck.meta.emaUpdates;
}
