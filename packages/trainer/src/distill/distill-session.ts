import type { Batch } from '../data/types.js';
import type { LossHyp } from '../loss/yolo-loss.js';
import type { DistillJob, DistillSpec, FeatureDistillPair } from './distill-loss.js';
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
  /** Feature distillation pairs and the weight of its term (with the 'feature' loss). */
  features?: { pairs: FeatureDistillPair[]; weight: number };
}

/**
 * The distillation side of a training run: when the teacher runs (not while α = 0), the spec of each
 * step's loss, and the time spent in and waiting for the teacher.
 */
export class DistillSession {
  private teacherMs = 0;
  private waitMs = 0;
  private stepMs = 0;

  /** The teacher's val mAP, measured once before training (logged at step 0). */
  teacherMetrics?: { map50: number; map: number };

  constructor(readonly settings: DistillSettings, private readonly geometry: HeadGeometry) {}

  /** α at a fractional epoch. */
  alphaAt(epoch: number): number {
    return alphaAt(epoch, this.settings);
  }

  /** Starts the teacher on a batch, or returns undefined when α is 0 there (warm-up). */
  start(batch: Batch, epoch: number): Promise<TeacherOutput> | undefined {
    if (this.alphaAt(epoch) === 0) return undefined;
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

  /** Waits for a started teacher pass, timing the wait (what the step could not overlap). */
  async wait(pending: Promise<TeacherOutput>): Promise<TeacherOutput> {
    const t0 = performance.now();
    const out = await pending;
    this.waitMs += performance.now() - t0;
    return out;
  }

  /** Adds the wall time of one training step (for the teacher wait share). */
  addStepTime(ms: number): void {
    this.stepMs += ms;
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
    };
    const teacher = start === 0 && n === batchN ? out : sliceTeacher(out, batchN, start, n);
    return { spec, teacher, n };
  }

  /** Teacher figures since the last call: its own time and the share of step time spent waiting for it. */
  takeStats(): { teacherMs: number; waitShare: number } {
    const r = { teacherMs: this.teacherMs, waitShare: this.stepMs > 0 ? this.waitMs / this.stepMs : 0 };
    this.teacherMs = 0;
    this.waitMs = 0;
    this.stepMs = 0;
    return r;
  }
}
