import type * as tf from '../tf.js';
import type { TrainConfig } from '../config.js';
import type { Batch } from '../data/types.js';
import type { LossHyp } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import type { Logger } from '../util/logger.js';
import type { ValResult } from '../val/validator.js';
import type { ExtraLoss } from './step.js';
import type { StepInfo, TrainResult } from './types.js';

/** Where a batch sits in the run. */
export interface BatchPosition {
  epoch: number;
  /** The batch's index in its epoch, from 0. */
  index: number;
  /** Fractional epoch, `epoch + index / batches per epoch`: what schedules read. */
  progress: number;
}

/** What {@link TrainHooks.onTrainStart} is given: the run's settings and its model, before the optimizer exists. */
export interface TrainStart {
  cfg: TrainConfig;
  model: DetectionModel;
  log: Logger;
  /** What the plug-ins' {@link TrainHooks.checkpointState} saved in the checkpoint a resumed run continues. */
  resumedState?: Record<string, unknown>;
}

/** What {@link TrainHooks.onEpochEnd} is given, once an epoch's steps and validation are done. */
export interface EpochEnd {
  epoch: number;
  /** Mean loss items of the epoch: box, obj, cls, then the extra loss's items. */
  meanLoss: readonly number[];
  /** Images trained on in the epoch. */
  images: number;
  /** The EMA model, as just validated. */
  model: DetectionModel;
  /** The first validation batch, when the epoch was validated. */
  valBatch?: Batch;
  /** The EMA's validation metrics, when the epoch was validated. */
  metrics?: ValResult;
}

/** What a hook asks the loop to log for an epoch (TensorBoard, at step epoch + 1). */
export interface EpochLogs {
  scalars?: Record<string, number>;
  histograms?: Record<string, Float32Array>;
}

/**
 * The extra loss of one batch, for either replica's part of it: built on this thread, or as a
 * serialisable job that the gradient worker builds with {@link ExtraLossHook.module}.
 */
export interface BatchExtraLoss {
  /** The loss of the passes over images [start, start + n) of the batch. */
  build(start: number, n: number, model: DetectionModel): ExtraLoss;
  /** The same as a job posted to the gradient worker (a structured clone: plain data only). */
  job(start: number, n: number): unknown;
}

/** What the module named by {@link ExtraLossHook.module} exports for the gradient worker. */
export interface ExtraLossModule {
  buildExtraLoss(job: unknown, model: DetectionModel): ExtraLoss;
}

/** Loss terms a plug-in adds to every pass of a step (distillation's KD terms). At most one per run. */
export interface ExtraLossHook {
  /** Names of the items its loss reports after box, obj and cls; steps without it report zeros. */
  readonly itemNames: readonly string[];
  /** URL of an {@link ExtraLossModule}, which the gradient worker imports to build the loss of its part. */
  readonly module: string;
  /**
   * Called before each step, after {@link TrainHooks.onBatchStart} has seen the next batch: the batch's
   * extra loss, or undefined for a step on the YOLO loss alone. It may wait for work begun in onBatchStart.
   */
  forBatch(batch: Batch, at: BatchPosition, hard: LossHyp): Promise<BatchExtraLoss | undefined>;
}

/**
 * What plugs into the training loop (ultralytics' callbacks, utils/callbacks.py), each point optional.
 * Called in this order: onTrainStart once; per epoch onEpochStart, then per batch onBatchStart (one batch
 * ahead of its step), extraLoss.forBatch and onBatchEnd (after the step), then onEpochEnd after
 * validation; onFitEnd once the run is over. An interrupted epoch gets no onEpochEnd.
 */
export interface TrainHooks {
  /**
   * Before the optimizer and the gradient worker are made: returns variables to train with the model
   * (in its params, so the optimizer, the worker's replica and last.kdw have them) but not in its EMA,
   * so best.kdw and exports drop them. A resumed run restores their values from last.kdw.
   */
  onTrainStart?(start: TrainStart): Map<string, tf.Variable> | void | Promise<Map<string, tf.Variable> | void>;
  onEpochStart?(epoch: number): void;
  /** Each batch as the loader hands it over, before the step of the batch before it (prefetch here). */
  onBatchStart?(batch: Batch, at: BatchPosition): void;
  extraLoss?: ExtraLossHook;
  /** After each step, with the step's wall time in ms. */
  onBatchEnd?(step: StepInfo, ms: number): void;
  /** Fields the progress bar shows after box, obj and cls, from the epoch's mean loss items. */
  progress?(meanLoss: readonly number[]): Record<string, number>;
  /** After an epoch's validation, before its checkpoints: what to log for it. */
  onEpochEnd?(end: EpochEnd): EpochLogs | void | Promise<EpochLogs | void>;
  /**
   * State a resumed run needs (a decision taken at an epoch's end), saved in every checkpoint after
   * onEpochEnd and handed back in {@link TrainStart.resumedState}; keys must differ between plug-ins.
   */
  checkpointState?(): Record<string, unknown>;
  /** Once the run is over (not after a failure); free what onTrainStart made here. */
  onFitEnd?(result: TrainResult): void | Promise<void>;
}
