import * as tf from '../../tf.js';
import type { FeatureMap } from '../types.js';
import { adaptedPair, type FeatureAdapters } from './feature-adapters.js';
import { gtImitationMask, teacherScoreMask, type GtMaskInput } from './imitation-mask.js';
import type { TeacherLevel } from './yolo-kd.js';

/** Where feature imitation counts: near ground-truth boxes, by teacher detection score, or everywhere. */
export type FeatureMaskMode = 'gt' | 'teacher-score' | 'none';

/** Options of {@link featureLoss}. */
export interface FeatureLossOptions {
  /** Default 'gt' (Wang et al. 2019). */
  mask?: FeatureMaskMode;
  /**
   * For mask 'gt': the batch targets, and optionally per feature name the level's anchors in pixels
   * (then `imageSize` too) for the paper's anchor-IoU rule; names without anchors use covered cells dilated by 1.
   */
  gt?: Omit<GtMaskInput, 'anchors'> & { anchors?: Record<string, number[]> };
  /**
   * For mask 'teacher-score': the teacher's detection logits and anchors per level; each feature map
   * uses the level with its grid size.
   */
  teacherScore?: { levels: TeacherLevel[]; na: number };
  /**
   * Multiply `total` by the batch size, as yoloLoss does with its total (default true); set false
   * beside a batch-mean hard loss such as a classifier's cross-entropy.
   */
  scaleByBatch?: boolean;
}

/** Terms of {@link featureLoss}: one per feature name (normalised means) and their sum (× batch size unless told not to). */
export interface FeatureLossTerms {
  total: tf.Scalar;
  terms: Record<string, tf.Scalar>;
}

/**
 * Fine-grained feature imitation (Wang et al. CVPR 2019): for each adapter, the student feature
 * (NHWC) goes through its 1×1 adapter and is compared with the teacher feature (NCHW, a constant) by
 * squared error, masked to positions near objects. Each name's term is Σ mask·‖adapted − teacher‖²
 * divided by max(Σ mask, 1)·C_teacher, i.e. the mean squared error per masked element (the paper
 * divides by 2·N_p without the channel count); names are summed.
 * @example
 * const adapters = createFeatureAdapters([{ name: 'p3', studentC: 64, teacherC: 128 }], 0);
 * const f = featureLoss(student.features, teacherOut.features, adapters, { mask: 'gt', gt: { targets, nTargets } });
 */
export function featureLoss(
  student: Map<string, tf.Tensor4D>,
  teacher: Map<string, FeatureMap>,
  adapters: FeatureAdapters,
  opts: FeatureLossOptions = {},
): FeatureLossTerms {
  const mode = opts.mask ?? 'gt';
  if (mode !== 'gt' && mode !== 'teacher-score' && mode !== 'none') {
    throw new RangeError(`opts.mask: expected 'gt', 'teacher-score' or 'none', got '${String(mode)}'`);
  }
  if (mode === 'gt' && opts.gt === undefined) throw new RangeError("opts.gt: required with mask 'gt' (the batch targets)");
  if (mode === 'teacher-score' && opts.teacherScore === undefined) throw new RangeError("opts.teacherScore: required with mask 'teacher-score'");
  if (adapters.size === 0) throw new RangeError('adapters: expected at least one feature adapter');

  return tf.tidy(() => {
    const terms: Record<string, tf.Scalar> = {};
    let n = 0;
    for (const [name, adapter] of adapters) {
      const { adapted, target, n: sn, h, w, c: ct } = adaptedPair(name, adapter, student, teacher);
      n = sn;
      const mask = maskFor(mode, name, sn, h, w, opts);
      const count = mask === undefined ? sn * h * w : mask.reduce((a, b) => a + b, 0);
      let sq = adapted.sub(target).square().sum(3);
      if (mask !== undefined) sq = sq.mul(tf.tensor3d(mask, [sn, h, w]));
      terms[name] = sq.sum().div(Math.max(count, 1) * ct) as tf.Scalar;
    }
    let total = tf.addN(Object.values(terms));
    if (opts.scaleByBatch ?? true) total = total.mul(n);
    return { total: total as tf.Scalar, terms };
  });
}

function maskFor(mode: FeatureMaskMode, name: string, n: number, h: number, w: number, opts: FeatureLossOptions): Float32Array | undefined {
  if (mode === 'none') return undefined;
  if (mode === 'gt') {
    const gt = opts.gt!;
    return gtImitationMask(n, h, w, { ...gt, anchors: gt.anchors?.[name] });
  }
  const { levels, na } = opts.teacherScore!;
  const level = levels.find((l) => l.ny === h && l.nx === w);
  if (level === undefined) {
    throw new RangeError(`opts.teacherScore.levels: none has the ${h}×${w} grid of feature '${name}' (grids: ${levels.map((l) => `${l.ny}×${l.nx}`).join(', ')})`);
  }
  return teacherScoreMask(level, n, na);
}
