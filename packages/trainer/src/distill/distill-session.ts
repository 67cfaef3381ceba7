import * as tf from '../tf.js';
import { KdEdgeError } from '@kd-edge/core';
import type { Batch } from '../data/types.js';
import type { LossHyp } from '../loss/yolo-loss.js';
import type { BatchExtraLoss, BatchPosition, EpochEnd, EpochLogs, ExtraLossHook, TrainHooks, TrainStart } from '../train/hooks.js';
import type { StepInfo } from '../train/types.js';
import type { Logger } from '../util/logger.js';
import { findWorkerEntry } from '../util/spawn-worker.js';
import { classProbabilities } from './class-probabilities.js';
import { adapterParamName, buildDistillLoss, DISTILL_ITEM_NAMES, type DistillJob, type DistillSpec, type FeatureDistillPair } from './distill-loss.js';
import { createFeatureAdapters, type FeatureAdapters } from './losses/feature-adapters.js';
import { pseudoLabels, withTargets } from './pseudo-labels.js';
import { KdStop, kdStopDecision, kdStopResumed, type KdStopState } from './kd-stop.js';
import { alphaAt, type AlphaSchedule, type KdLossName } from './losses/registry.js';
import type { YoloKdBoxMode, YoloKdClsMode } from './losses/yolo-kd.js';
import { sliceTeacher } from './slice-teacher.js';
import { TeacherCache } from './teacher/teacher-cache.js';
import type { HeadGeometry, Teacher, TeacherOutput } from './types.js';

/** What `kd-trainer distill` asks of a training run. */
export interface DistillSettings extends AlphaSchedule {
  teacher: Teacher;
  losses: KdLossName[];
  temperature: number;
  lambda: number;
  clsMode: YoloKdClsMode;
  boxMode: YoloKdBoxMode;
  /** Per-term weights on top of the hard loss's gains. */
  termWeights: { obj: number; cls: number; box: number };
  /** Feature distillation pairs and the weight of its term (with the 'feature' or 'cwd' loss). */
  features?: { pairs: FeatureDistillPair[]; weight: number };
  /** Channel-wise distillation's weight and temperature (with the 'cwd' loss). */
  cwd?: { weight: number; temperature: number };
  /** Unlabelled images in the batches: the teacher's detections scoring at least `conf` become their targets. */
  pseudo?: { conf: number };
  /**
   * `--kd-stop teacher`: α is 0 for the rest of the run once the student's val mAP50-95 has reached the
   * teacher's ({@link DistillSession.teacherMetrics}, set before training) on {@link STOP_EPOCHS} validated epochs in a row.
   */
  stopAtTeacher?: boolean;
  /** `--kd-decay linear`: α falls linearly to 0 at the run's last epoch. */
  decay?: 'linear';
}

/** A training step's info as distillation reports it: with the step's α (absent in a `--compare` baseline). */
export interface DistillStepInfo extends StepInfo {
  alpha?: number;
}

/**
 * The distillation side of a training run, plugged into the loop as {@link TrainHooks}: feature
 * adapters (trained with the student, never exported), the teacher run one batch ahead (not while
 * α = 0), each step's KD loss on both replicas, and the epoch's KD scalars and histograms.
 * @example
 * await train(cfg, hyp, { hooks: [new DistillSession(settings, geometry)] });
 */
export class DistillSession implements TrainHooks {
  readonly extraLoss: ExtraLossHook;
  /** The teacher's val mAP, measured once before training (logged every epoch). */
  teacherMetrics?: { map50: number; map: number };
  /** α of the latest step. */
  alpha = 0;
  private stop?: KdStop;
  private epochs = Infinity;
  private log?: Logger;
  private teacherMs = 0;
  private waitMs = 0;
  private pseudoBoxes = 0;
  private pseudoImages = 0;
  private stepMs = 0;
  private adapters?: FeatureAdapters;
  // Teacher passes started by onBatchStart, taken by the batch's step.
  private readonly pending = new WeakMap<Batch, Promise<TeacherOutput>>();

  constructor(readonly settings: DistillSettings, private readonly geometry: HeadGeometry) {
    this.extraLoss = {
      itemNames: DISTILL_ITEM_NAMES,
      module: replicaLossModule(),
      forBatch: (batch, at, hard) => this.forBatch(batch, at, hard),
    };
  }

  /** α at a fractional epoch. */
  alphaAt(epoch: number): number {
    if (this.stop?.stopped(epoch)) return 0;
    return alphaAt(epoch, this.settings.decay === 'linear' ? { ...this.settings, decayTo: this.epochs } : this.settings);
  }

  /** The feature adapters, trained with the student but kept out of its EMA (so out of best.kdw and exports). */
  onTrainStart({ cfg, log, resumedState }: TrainStart): Map<string, tf.Variable> {
    this.log = log;
    this.epochs = cfg.epochs;
    if (this.settings.stopAtTeacher && this.teacherMetrics) {
      this.stop = new KdStop(this.teacherMetrics.map, resumedState?.kdStop as KdStopState | undefined);
      if (this.stop.stoppedFrom !== undefined) log.info(kdStopResumed(this.stop.stoppedFrom));
    }
    this.adapters = createFeatureAdapters(this.settings.features?.pairs ?? [], cfg.seed);
    const vars = new Map<string, tf.Variable>();
    for (const a of this.adapters.values()) {
      vars.set(adapterParamName(a.name, 'weight'), a.weight);
      vars.set(adapterParamName(a.name, 'bias'), a.bias);
    }
    return vars;
  }

  onEpochStart(): void {
    this.pseudoBoxes = 0;
    this.pseudoImages = 0;
    this.teacherMs = 0;
    this.waitMs = 0;
    this.stepMs = 0;
  }

  /** Starts the teacher on the next batch, so ONNX Runtime's threads overlap the current step. */
  onBatchStart(batch: Batch, at: BatchPosition): void {
    const run = this.start(batch, at.progress);
    if (!run) return;
    // A pass whose step never comes (an interrupted epoch) must not reject unhandled.
    run.catch(() => undefined);
    this.pending.set(batch, run);
  }

  onBatchEnd(_step: StepInfo, ms: number): void {
    this.stepMs += ms;
  }

  progress(meanLoss: readonly number[]): Record<string, number> {
    return { kd_loss: meanLoss.slice(3).reduce((a, b) => a + b, 0), alpha: this.alpha };
  }

  /** Each KD term, α, T, the teacher's time, wait share and mAP, peak RSS; class-probability histograms of a validated epoch. */
  async onEpochEnd(end: EpochEnd): Promise<EpochLogs> {
    this.watchTeacher(end);
    const scalars: Record<string, number> = {
      'kd/alpha': this.alpha, 'kd/temperature': this.settings.temperature,
      'kd/teacher_wait_share': this.stepMs > 0 ? this.waitMs / this.stepMs : 0,
      // Student and teacher share the process: its peak resident memory is both together.
      'kd/peak_rss_mib': process.resourceUsage().maxRSS / 1024,
    };
    if (this.teacherMetrics) {
      scalars['kd/teacher_mAP_0.5'] = this.teacherMetrics.map50;
      scalars['kd/teacher_mAP_0.5:0.95'] = this.teacherMetrics.map;
    }
    DISTILL_ITEM_NAMES.forEach((name, j) => { scalars[`train/${name}`] = end.meanLoss[3 + j] ?? 0; });
    if (end.images > 0) scalars['kd/teacher_ms_per_image'] = this.teacherMs / end.images;
    if (this.pseudoImages > 0) scalars['kd/pseudo_boxes_per_image'] = this.pseudoBoxes / this.pseudoImages;
    return { scalars, ...(end.valBatch ? { histograms: await this.classHistograms(end.valBatch, end) } : {}) };
  }

  /** With {@link DistillSettings.stopAtTeacher}: the 0-based epoch from which α is 0 (the student reached the teacher). */
  get stoppedFrom(): number | undefined {
    return this.stop?.stoppedFrom;
  }

  /** The `--kd-stop teacher` count and decision, which a resumed run continues from. */
  checkpointState(): Record<string, unknown> {
    return this.stop ? { kdStop: this.stop.state() } : {};
  }

  onFitEnd(): void {
    this.adapters?.dispose();
  }

  /** The job for images [start, start+n) of a batch whose teacher outputs are `out`. */
  job(out: TeacherOutput, batchN: number, start: number, n: number, alpha: number, hard: LossHyp): DistillJob {
    const w = this.settings.termWeights;
    const spec: DistillSpec = {
      losses: this.settings.losses,
      temperature: this.settings.temperature,
      alpha,
      lambda: this.settings.lambda,
      clsMode: this.settings.clsMode,
      boxMode: this.settings.boxMode,
      weights: { obj: hard.obj * w.obj, cls: hard.cls * w.cls, box: hard.box * w.box },
      geometry: this.geometry,
      ...(this.settings.features ? { features: this.settings.features } : {}),
      ...(this.settings.cwd ? { cwd: this.settings.cwd } : {}),
    };
    const teacher = start === 0 && n === batchN ? out : sliceTeacher(out, batchN, start, n);
    return { spec, teacher, n };
  }

  /** `--kd-stop teacher`: counts validated epochs with the student at or above the teacher (a lower one restarts the count). */
  private watchTeacher(end: EpochEnd): void {
    // After the last epoch there is nothing left to stop.
    if (!this.stop || !end.metrics || end.epoch + 1 >= this.epochs || !this.stop.observe(end.epoch, end.metrics.map)) return;
    this.log?.info(kdStopDecision(this.stop, end.epoch, 'mAP50-95', end.metrics.map));
  }

  /** Starts the teacher on a batch, or returns undefined when α is 0 there (warm-up, or stopped). */
  private start(batch: Batch, epoch: number): Promise<TeacherOutput> | undefined {
    // Unlabelled images need the teacher's labels even while α is still 0.
    if (this.alphaAt(epoch) === 0 && !batch.unlabeled?.length) return undefined;
    const t = this.settings.teacher;
    // A cached teacher is keyed by image path (valid only without augmentation; run-distill checks).
    const run = t instanceof TeacherCache
      ? t.predictSamples(batch.images, batch.n, batch.height, batch.width, batch.files)
      : t.predict(batch.images, batch.n, batch.height, batch.width);
    return run.then((out) => {
      this.teacherMs += out.ms;
      return out;
    });
  }

  /** The step's α and, once the teacher's pass is in (timing the wait the step could not overlap), its KD loss. */
  private async forBatch(batch: Batch, at: BatchPosition, hard: LossHyp): Promise<BatchExtraLoss | undefined> {
    const alpha = (this.alpha = this.alphaAt(at.progress));
    const pending = this.pending.get(batch);
    if (!pending) return undefined;
    this.pending.delete(batch);
    const t0 = performance.now();
    const out = await pending;
    this.waitMs += performance.now() - t0;
    if (batch.unlabeled?.length) {
      const rows = pseudoLabels(out, this.geometry, batch.n, batch.height, batch.width, batch.unlabeled, { conf: this.settings.pseudo?.conf ?? 0.5 });
      Object.assign(batch, withTargets(batch.targets, batch.nTargets, rows));
      this.pseudoBoxes += rows.length / 6;
      this.pseudoImages += batch.unlabeled.length;
    }
    if (alpha === 0) return undefined;
    const job = (start: number, n: number) => this.job(out, batch.n, start, n, alpha, hard);
    return { job, build: (start, n, model) => buildDistillLoss(job(start, n), model) };
  }

  /** Teacher and student class-probability distributions on the same (validation) images. */
  private async classHistograms(b: Batch, end: EpochEnd): Promise<Record<string, Float32Array>> {
    const t = await this.settings.teacher.predict(b.images, b.n, b.height, b.width);
    const x = tf.tensor4d(b.images, [b.n, b.height, b.width, 3]);
    const outs = end.model.forward(x, false);
    const s = outs.map((o) => o.dataSync() as Float32Array);
    tf.dispose([x, ...outs]);
    return {
      'kd/teacher_class_prob': classProbabilities(t.levels!.map((l) => l.data), end.model.nc),
      'kd/student_class_prob': classProbabilities(s, end.model.nc),
    };
  }
}

/** The gradient worker imports replica-loss by URL: beside this file in sources, under dist/distill/ in a build. */
function replicaLossModule(): string {
  const url = findWorkerEntry(import.meta.url, ['./replica-loss', './distill/replica-loss', '../distill/replica-loss']);
  if (!url) throw new KdEdgeError('TRAIN_WORKER_FAILED', 'the distillation loss module (replica-loss.js) was not found beside the trainer');
  return url.href;
}
