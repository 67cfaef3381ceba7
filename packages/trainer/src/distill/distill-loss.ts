import * as tf from '../tf.js';
import type { Shard } from '../data/types.js';
import type { YoloLossTerms } from '../loss/yolo-loss.js';
import type { DetectionModel } from '../model/types.js';
import type { ExtraLoss } from '../train/step.js';
import { FeatureAdapters, type FeaturePair } from './losses/feature-adapters.js';
import { channelWiseLoss } from './losses/channel-wise.js';
import { featureLoss } from './losses/feature.js';
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
  /** Feature distillation: which student layer imitates which teacher tensor, and the term's weight. */
  features?: { pairs: FeatureDistillPair[]; weight: number };
  /** Channel-wise distillation on the same pairs (with the 'cwd' loss): its weight and temperature τ. */
  cwd?: { weight: number; temperature: number };
}

/** One student layer ↔ teacher tensor pair of feature distillation, with its adapter's shape. */
export interface FeatureDistillPair extends FeaturePair {
  /** Student layer index (a Detect input: 17, 20, 23 in YOLOv5). */
  studentLayer: number;
  /** Teacher tensor name (ONNX), e.g. '/model.17/cv3/act/Mul_output_0'. */
  teacherTensor: string;
}

/** Name of an adapter variable in the student's params map (trained with it, never exported). */
export function adapterParamName(feature: string, part: 'weight' | 'bias'): string {
  return `kd.adapter.${feature}.${part}`;
}

/** A distillation job: the spec and the teacher's outputs for a shard's images. */
export interface DistillJob {
  spec: DistillSpec;
  teacher: TeacherOutput;
  /** Images the teacher outputs cover (the shard's n). */
  n: number;
}

/** Names of the items {@link buildDistillLoss} reports after box, obj and cls (kd_feat: the feature-map terms, imitation and channel-wise). */
export const DISTILL_ITEM_NAMES = ['kd_obj', 'kd_cls', 'kd_box', 'kd_feat'] as const;

/**
 * The per-pass distillation loss: `(1−α)·L_yolo + α·λ·L_kd` with L_kd = yolo-kd on the pass's
 * images (the teacher's outputs for images `offset … offset+n` of the shard), reported as
 * kd_obj, kd_cls, kd_box.
 */
export function buildDistillLoss(job: DistillJob, model: DetectionModel): ExtraLoss {
  const { spec, teacher } = job;
  const useLogits = spec.losses.includes('yolo-kd');
  const imitate = spec.losses.includes('feature');
  const cwd = spec.losses.includes('cwd') ? spec.cwd : undefined;
  const feat = imitate || cwd ? spec.features : undefined;
  if ((imitate || spec.losses.includes('cwd')) && feat === undefined) throw new RangeError('kd loss feature/cwd: no feature pairs were set up');
  if (spec.losses.includes('cwd') && cwd === undefined) throw new RangeError('kd loss cwd: no weight and temperature were set up');
  const levels = teacher.levels;
  if (useLogits && levels === undefined) throw new RangeError('teacher outputs have no detection levels');
  const adapters = new FeatureAdapters();
  for (const p of feat?.pairs ?? []) {
    const weight = model.params.get(adapterParamName(p.name, 'weight'));
    const bias = model.params.get(adapterParamName(p.name, 'bias'));
    if (!weight || !bias) throw new RangeError(`feature '${p.name}': the student has no adapter variables`);
    adapters.set(p.name, { name: p.name, weight: weight as tf.Variable<tf.Rank.R4>, bias: bias as tf.Variable<tf.Rank.R1> });
  }
  const cut = (data: Float32Array, offset: number, n: number): Float32Array => {
    const per = data.length / job.n;
    return data.subarray(offset * per, (offset + n) * per);
  };
  return {
    itemNames: DISTILL_ITEM_NAMES,
    ...(feat ? { featureLayers: feat.pairs.map((p) => p.studentLayer) } : {}),
    combine(outs: tf.Tensor4D[], hard: YoloLossTerms, part: Shard, offset: number, features: tf.Tensor4D[]) {
      const zero = () => tf.scalar(0);
      let kdTotal: tf.Scalar = zero();
      const items: tf.Scalar[] = [];
      if (useLogits) {
        const slice = levels!.map((l) => ({ data: cut(l.data, offset, part.n), ny: l.ny, nx: l.nx }));
        const kd = yoloKdLoss(outs, slice, {
          temperature: spec.temperature, clsMode: spec.clsMode, boxMode: spec.boxMode, weights: spec.weights,
          anchors: spec.geometry.anchors, strides: spec.geometry.strides,
        });
        kdTotal = kd.total;
        items.push(kd.obj, kd.cls, kd.box);
      } else {
        items.push(zero(), zero(), zero());
      }
      if (feat) {
        const student = new Map(feat.pairs.map((p, i) => [p.name, features[i]!] as const));
        const tmaps = new Map(feat.pairs.map((p) => {
          const f = teacher.features?.get(p.teacherTensor);
          if (!f) throw new RangeError(`teacher outputs have no feature '${p.teacherTensor}'`);
          return [p.name, { data: cut(f.data, offset, part.n), shape: [part.n, f.shape[1], f.shape[2], f.shape[3]] as [number, number, number, number] }] as const;
        }));
        let weighted: tf.Scalar = zero();
        if (imitate) {
          const f = featureLoss(student, tmaps, adapters, {
            mask: 'gt', gt: { targets: part.targets, nTargets: part.nTargets },
          });
          weighted = weighted.add(f.total.mul(feat.weight)) as tf.Scalar;
        }
        if (cwd) {
          const c = channelWiseLoss(student, tmaps, adapters, { temperature: cwd.temperature });
          weighted = weighted.add(c.total.mul(cwd.weight)) as tf.Scalar;
        }
        kdTotal = kdTotal.add(weighted) as tf.Scalar;
        items.push(weighted);
      } else {
        items.push(zero());
      }
      const total = combineLosses(hard.total, kdTotal, spec.alpha, spec.lambda);
      return { total, items };
    },
    dispose() {
      // Teacher data are plain arrays; tensors are made and freed inside each pass.
    },
  };
}
