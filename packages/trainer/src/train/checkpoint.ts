import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '../tf.js';
import type { TrainConfig } from '../config.js';
import { WeightsError } from '../errors.js';
import type { DetectionModel } from '../model/types.js';
import { archiveExtras, openModelArchive, readTensorArchiveMeta, saveWeights, type ModelArchive } from '../model/weights-io.js';
import type { ModelEma } from './ema.js';
import type { Hyp } from './hyp.js';
import type { NesterovSgd } from './sgd.js';

/**
 * Meta stored in a checkpoint; `opt` and `hyp` let `--resume` continue with the same settings. Keys of
 * {@link TrainRunOptions.checkpointMeta} sit beside them (distill's settings under `distill`).
 */
export interface CheckpointMeta {
  kind: 'kd-trainer-checkpoint';
  epoch: number;
  epochComplete: boolean;
  bestFitness: number;
  emaUpdates: number;
  opt: TrainConfig;
  hyp: Hyp;
  names: string[];
  date: string;
  [key: string]: unknown;
}

/**
 * An opened `last.kdw`, read but not built (the backend is selected after the run's settings are known):
 * the EMA model, the raw weights (`train/…`) and momentum (`sgd/…`), and its meta.
 */
export interface Checkpoint {
  file: string;
  meta: CheckpointMeta;
  archive: ModelArchive;
}

/** The checkpoint file of a `--resume` value: a `last.kdw`, or a run folder (its weights/last.kdw). */
export function checkpointFile(path: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, 'weights', 'last.kdw') : path;
}

/**
 * The error for a `--resume` file that holds weights but no training state, saying what it holds: a
 * `best.kdw` (or an older classify `last.kdw`), or weights converted from elsewhere.
 */
export function notACheckpointError(file: string, meta: Record<string, unknown>): WeightsError {
  const model = meta.task === 'classify' ? 'classifier' : 'detector';
  const what = meta.kind === 'kd-trainer-weights'
    ? `plain ${model} weights saved by a run (the EMA of epoch ${typeof meta.epoch === 'number' ? meta.epoch + 1 : '?'}, as best.kdw always is)`
    : 'model weights without training state (converted or imported)';
  return new WeightsError(`${file} is not a kd-trainer training checkpoint: it holds ${what}, no optimizer state; resume from a run folder or its weights/last.kdw, or start a new run from these weights with --weights ${file}`);
}

/** The `kd-trainer` command that wrote a checkpoint: `train`, `distill`, `classify train` or `classify distill`. */
export function checkpointCommand(meta: Record<string, unknown>): string {
  const distill = typeof meta.distill === 'object' && meta.distill !== null;
  return `${meta.task === 'classify' ? 'classify ' : ''}${distill ? 'distill' : 'train'}`;
}

/** Throws a WeightsError naming the file unless its meta is a detection training checkpoint. */
function checkDetectionCheckpoint(file: string, meta: Record<string, unknown>): void {
  if (meta.kind !== 'kd-trainer-checkpoint') throw notACheckpointError(file, meta);
  if (meta.task === 'classify') {
    throw new WeightsError(`${file} is a checkpoint of kd-trainer ${checkpointCommand(meta)} (a classifier), not of a detector: resume it with kd-trainer ${checkpointCommand(meta)} --resume ${file}`);
  }
}

/** A training checkpoint's file and meta, from its header alone (the settings a resumed run takes). */
export async function readCheckpointMeta(path: string): Promise<{ file: string; meta: CheckpointMeta }> {
  const file = checkpointFile(path);
  const meta = ((await readTensorArchiveMeta(file)).meta ?? {}) as CheckpointMeta;
  checkDetectionCheckpoint(file, meta);
  return { file, meta };
}

/** Opens a training checkpoint: a `last.kdw`, or a run folder (its weights/last.kdw). Builds no tensors. */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  const file = checkpointFile(path);
  const archive = await openModelArchive(file);
  const meta = archive.meta as unknown as CheckpointMeta;
  checkDetectionCheckpoint(file, meta ?? {});
  return { file, meta, archive };
}

/** The settings a resumed run continues with: its own, but the backend of this command. */
export function resumedConfig(ck: Checkpoint, cfg: TrainConfig): TrainConfig {
  return { ...ck.meta.opt, backend: cfg.backend, resume: ck.file };
}

/** What {@link saveCheckpoint} stores. */
export interface CheckpointState {
  model: DetectionModel;
  ema: ModelEma;
  optimizer: NesterovSgd;
  cfg: TrainConfig;
  hyp: Hyp;
  names: string[];
  extraMeta?: Record<string, unknown>;
  /** The plug-ins, whose state is saved as `hookState`. */
  hooks?: { checkpointState(): Record<string, unknown> };
}

/** Where a run stands when a checkpoint is written. */
export interface CheckpointAt {
  epoch: number;
  /** Whether every step of `epoch` ran (a resumed run then starts at the next one). */
  complete: boolean;
  bestFitness: number;
}

/** Writes a checkpoint: the EMA as its model, the raw weights and momentum as extra tensors. */
export function saveCheckpoint(file: string, s: CheckpointState, at: CheckpointAt): Promise<void> {
  const extra = new Map<string, tf.Tensor>();
  for (const [k, v] of s.model.params) extra.set(`train/${k}`, v);
  for (const [k, v] of s.model.buffers) extra.set(`train/${k}`, v);
  for (const [k, v] of s.optimizer.state()) extra.set(`sgd/${k}`, v);
  const meta: CheckpointMeta = {
    ...s.extraMeta,
    kind: 'kd-trainer-checkpoint', epoch: at.epoch, epochComplete: at.complete, bestFitness: at.bestFitness,
    emaUpdates: s.ema.updates, opt: s.cfg, hyp: s.hyp, names: s.names, date: new Date().toISOString(),
    ...(s.hooks ? { hookState: s.hooks.checkpointState() } : {}),
  };
  return saveWeights(file, s.ema.ema as DetectionModel, { meta, tensors: Object.fromEntries(extra) });
}

/** Puts a checkpoint's raw weights into the model (plug-in variables included) and its momentum into the optimizer. */
export function restoreTrainingState(ck: Checkpoint, model: DetectionModel, optimizer: NesterovSgd, ema: ModelEma): void {
  const momentum = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of Object.entries(archiveExtras(ck.archive))) {
    if (name.startsWith('sgd/')) momentum.set(name.slice(4), t);
    if (!name.startsWith('train/')) continue;
    const key = name.slice(6);
    const v = model.params.get(key) ?? model.buffers.get(key);
    if (v) tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
  }
  optimizer.loadState(momentum);
  ema.updates = ck.meta.emaUpdates;
}
