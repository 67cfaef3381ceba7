import * as tf from '../tf.js';
import type { Shard } from '../data/types.js';
import type { YoloLossTerms } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import type { ExtraLoss } from '../train/step.js';
import { combineLosses, type KdLossName } from './losses/registry.js';
import { yoloKdLoss, type YoloKdBoxMode, type YoloKdClsMode } from './losses/yolo-kd.js';
import type { HeadGeometry, TeacherOutput } from './types.js';

/** Serialisable settings of the distillation loss for one step (posted to the gradient worker too). */
export interface DistillSpec {
  losses: KdLossName[];
  temperature: number;
  /** α of this step (after warm-up and ramp). */
  alpha: number;
  lambda: number;
  clsMode: YoloKdClsMode;
  boxMode: YoloKdBoxMode;
  /** Gains of the KD terms: the scaled hard-loss gains times the per-term weights. */
  weights: { obj: number; cls: number; box: number };
  geometry: HeadGeometry;
}

/** A distillation job: the spec and the teacher's outputs for a shard's images. */
export interface DistillJob {
  spec: DistillSpec;
  teacher: TeacherOutput;
  /** Images the teacher outputs cover (the shard's n). */
  n: number;
}

/** Names of the items {@link buildDistillLoss} reports after box, obj and cls. */
export const DISTILL_ITEM_NAMES = ['kd_obj', 'kd_cls', 'kd_box'] as const;

/**
 * The per-pass distillation loss: `(1−α)·L_yolo + α·λ·L_kd` with L_kd = yolo-kd on the pass's
 * images (the teacher's outputs for images `offset … offset+n` of the shard), reported as
 * kd_obj, kd_cls, kd_box.
 */
export function buildDistillLoss(job: DistillJob, _model: DetectionModel): ExtraLoss & { dispose(): void } {
  const { spec, teacher } = job;
  if (!spec.losses.includes('yolo-kd')) {
    throw new RangeError(`kd loss: ${spec.losses.join('+')} is not available for detectors yet; use yolo-kd`);
  }
  const levels = teacher.levels;
  if (levels === undefined) throw new RangeError('teacher outputs have no detection levels');
  return {
    itemNames: DISTILL_ITEM_NAMES,
    combine(outs: tf.Tensor4D[], hard: YoloLossTerms, part: Shard, offset: number) {
      const per = levels.map((l) => l.data.length / job.n);
      const slice = levels.map((l, i) => ({
        data: l.data.subarray(offset * per[i]!, (offset + part.n) * per[i]!), ny: l.ny, nx: l.nx,
      }));
      const kd = yoloKdLoss(outs, slice, {
        temperature: spec.temperature, clsMode: spec.clsMode, boxMode: spec.boxMode, weights: spec.weights,
        anchors: spec.geometry.anchors, strides: spec.geometry.strides,
      });
      const total = combineLosses(hard.total, kd.total, spec.alpha, spec.lambda);
      tf.dispose(kd.total);
      return { total, items: [kd.obj, kd.cls, kd.box] };
    },
    dispose() {
      // Teacher data are plain arrays; tensors are made and freed inside each pass.
    },
  };
}
