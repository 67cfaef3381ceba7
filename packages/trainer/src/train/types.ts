import type { LoadedDataset } from '../data/load-dataset.js';
import type { DatasetItem } from '../data/types.js';
import type { ProgressStream } from '../log/progress.js';
import type { Logger } from '../util/logger.js';
import type { ValResult } from '../val/validator.js';
import type { Checkpoint } from './checkpoint.js';
import type { TrainHooks } from './hooks.js';

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
  /** Plug-ins of the loop, called in this order at each point (`kd-trainer distill` adds its session). */
  hooks?: readonly TrainHooks[];
  /** The dataset the command already read (otherwise read from `cfg.data`). */
  dataset?: LoadedDataset;
  /** Unlabelled images mixed into the training batches (`ratio` per labelled image); a hook must label them. */
  unlabeled?: { items: readonly DatasetItem[]; ratio: number };
  /** The checkpoint the command already opened (otherwise opened from `cfg.resume`). */
  resumeFrom?: Checkpoint;
  /** Kept in every checkpoint beside the training state (distill keeps its settings there for --resume). */
  checkpointMeta?: Record<string, unknown>;
}

/** What {@link TrainRunOptions.onStep} is told after each step. */
export interface StepInfo {
  epoch: number;
  step: number;
  /** Whether the optimizer stepped (accumulated gradients applied) at this step. */
  optimizerStep: boolean;
  /** box, obj, cls, then the items of the extra loss (kd_obj, kd_cls, kd_box, kd_feat when distilling). */
  loss: number[];
  /** Live tensors after the step (tf.memory().numTensors). */
  numTensors: number;
}
