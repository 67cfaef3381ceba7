import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { resolveOptions } from '../config.js';
import { DISTILL_ITEM_NAMES } from '../distill/distill-loss.js';
import { DISTILL_SCHEMA } from '../distill/distill-schema.js';
import { runDistill } from '../distill/run-distill.js';
import type { ProgressStream } from '../log/progress.js';
import { readCheckpointMeta } from '../train/checkpoint.js';
import type { TrainHooks } from '../train/hooks.js';
import type { Hyp } from '../train/hyp.js';
import type { Logger } from '../util/logger.js';
import type { AdaptConfig } from './adapt-schema.js';
import { writeJobState, type JobPaths, type JobState } from './job-files.js';

/** Why training ended: every epoch ran, the time budget ran out, or `patience` epochs brought no gain. */
export type StopReason = 'completed' | 'budget' | 'patience';

/** The settings a job trained with (its checkpoint's, when it was resumed). */
export interface AdaptRecipe {
  epochs: number;
  imgsz: number;
  batch_size: number;
  nbs: number;
  patience: number;
  augment: boolean;
  seed: number;
  kd_loss: string;
  kd_alpha: number;
  kd_temperature: number;
  /** Seconds of training allowed (0: no limit). */
  time_budget: number;
  hyp: Hyp;
}

/** How a job's training ended. */
export interface TrainingRecord {
  stopReason: StopReason;
  /** Epochs planned, and complete epochs trained. */
  epochs: number;
  epochsRun: number;
  /** Seconds spent training, over every call. */
  seconds: number;
  /** The adapted weights: best.kdw (best hold-out fitness), or last.kdw's EMA when no epoch was complete; absent when no step ran. */
  adapted?: string;
  recipe: AdaptRecipe;
}

/** What the training stage reports at the end of each epoch. */
export interface TrainProgress {
  stage: 'train';
  /** Epochs complete, 1-based, and planned. */
  epoch: number;
  epochs: number;
  /** The epoch's mean loss items: box, obj, cls, kd_obj, kd_cls, kd_box, kd_feat. */
  losses: Record<string, number>;
  /** The EMA's figures on the hold-out (against the teacher's labels). */
  holdout?: { map50: number; map: number };
  /** Seconds spent training so far, over every call. */
  seconds: number;
}

/** Options of {@link fineTune}. */
export interface FineTuneOptions {
  cfg: AdaptConfig;
  hyp: Hyp;
  paths: JobPaths;
  /** The job's state: its training seconds are kept up to date (job.json, each epoch). */
  state: JobState;
  logger: Logger;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
  progress?: ProgressStream;
}

const LOSS_NAMES = ['box', 'obj', 'cls', ...DISTILL_ITEM_NAMES];

function recipeOf(opt: Record<string, unknown>, hyp: Hyp, budget: number): AdaptRecipe {
  const kd = (opt.distill ?? {}) as Record<string, unknown>;
  const o = opt.opt as Record<string, unknown>;
  return {
    epochs: o.epochs as number, imgsz: o.imgsz as number, batch_size: o.batch_size as number, nbs: o.nbs as number, patience: o.patience as number,
    augment: o.augment as boolean, seed: o.seed as number, kd_loss: kd.kd_loss as string, kd_alpha: kd.kd_alpha as number,
    kd_temperature: kd.kd_temperature as number, time_budget: budget, hyp,
  };
}

/**
 * Stage 2 of `kd-trainer adapt`: `kd-trainer distill` from the serving weights on the labelled frames
 * (yolo-kd with the teacher's soft targets, its confident boxes as the hard labels), with the fine-tuning
 * recipe, into `run/`. A `run/weights/last.kdw` left by an earlier call is resumed with that run's own
 * settings. The time budget counts training seconds over every call and stops after the step that
 * passes it (last.kdw saved), as `signal` does; the budget ends the training, a signal only pauses it.
 * @returns how training ended, or undefined when `signal` stopped it
 */
export async function fineTune(o: FineTuneOptions): Promise<TrainingRecord | undefined> {
  const { cfg, paths, state, logger: log } = o;
  const resume = existsSync(paths.last);
  if (resume) {
    state.resumes++;
    log.info(`resuming the job's training from ${paths.last}: it keeps the settings it started with`);
  } else {
    // Anything here is from a run that died before its first checkpoint.
    await rm(paths.run, { recursive: true, force: true });
  }
  const distillCfg = resolveOptions(DISTILL_SCHEMA, [{
    data: paths.dataYaml, teacher: cfg.teacher, weights: cfg.weights, epochs: cfg.epochs, imgsz: cfg.imgsz, batch_size: cfg.batch_size, nbs: cfg.nbs || cfg.batch_size,
    backend: cfg.backend, device: cfg.device, project: paths.dir, name: 'run', exist_ok: true, resume: resume ? paths.last : '', seed: cfg.seed,
    patience: cfg.patience, workers: cfg.workers, threads: cfg.threads, augment: cfg.augment, noautoanchor: true, noplots: !cfg.plots,
    // The holdout's labels are the teacher's own, so the student cannot be seen to pass it: distil to the end.
    kd_loss: cfg.kd_loss, kd_alpha: cfg.kd_alpha, kd_temperature: cfg.kd_temperature, kd_stop: 'never',
  }]).config;
  const epochs = resume ? (await readCheckpointMeta(paths.last)).meta.opt.epochs : cfg.epochs;

  const ac = new AbortController();
  let stop: 'cancel' | 'budget' | undefined;
  const onAbort = (): void => {
    stop ??= 'cancel';
    ac.abort();
  };
  o.signal?.addEventListener('abort', onAbort);
  if (o.signal?.aborted) onAbort();
  const t0 = performance.now();
  const prior = state.trainSeconds;
  const seconds = (): number => prior + (performance.now() - t0) / 1000;
  const watch: TrainHooks = {
    onBatchEnd: () => {
      if (cfg.time_budget > 0 && !ac.signal.aborted && seconds() >= cfg.time_budget) {
        stop = 'budget';
        log.info(`time budget of ${cfg.time_budget} s spent: training stops after this step`);
        ac.abort();
      }
    },
    onEpochEnd: async (end) => {
      state.trainSeconds = seconds();
      await writeJobState(paths, state);
      o.onProgress?.({
        stage: 'train', epoch: end.epoch + 1, epochs, seconds: state.trainSeconds,
        losses: Object.fromEntries(LOSS_NAMES.map((n, i) => [n, end.meanLoss[i] ?? 0])),
        ...(end.metrics ? { holdout: { map50: end.metrics.map50, map: end.metrics.map } } : {}),
      });
    },
  };
  let done: number;
  try {
    const r = await runDistill(distillCfg, o.hyp, {
      logger: log, signal: ac.signal, hooks: [watch], teacherMetrics: false,
      ...(cfg.threads > 0 ? { teacherOptions: { sessionOptions: { intraOpNumThreads: cfg.threads } } } : {}),
      ...(o.progress ? { progress: o.progress } : {}),
    });
    done = r.distilled.epochs;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    state.trainSeconds = seconds();
    await writeJobState(paths, state);
  }
  if (stop === 'cancel') return undefined;
  const stopReason: StopReason = done >= epochs ? 'completed' : stop === 'budget' ? 'budget' : 'patience';
  const adapted = existsSync(paths.best) ? paths.best : existsSync(paths.last) ? paths.last : undefined;
  const meta = existsSync(paths.last) ? (await readCheckpointMeta(paths.last)).meta : undefined;
  const recipe = meta ? recipeOf(meta, meta.hyp, cfg.time_budget) : recipeOf({ opt: distillCfg, distill: distillCfg }, o.hyp, cfg.time_budget);
  return { stopReason, epochs, epochsRun: done, seconds: state.trainSeconds, ...(adapted ? { adapted } : {}), recipe };
}
