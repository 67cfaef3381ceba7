import * as tf from '../../tf.js';
import { KdLossError } from './kd-loss-error.js';

/**
 * The distillation loss terms by name: what each does, the tasks it applies to and which teacher
 * output it reads. Names are the `--kd-loss` choices; terms given together are summed.
 */
export const KD_LOSSES = {
  kd: {
    description: 'Hinton KD: KL(softmax(t/T) ‖ softmax(s/T))·T² on class logits',
    tasks: ['classify'],
    needs: 'logits',
  },
  'yolo-kd': {
    description: 'detection logit KD: objectness binary KL, classes weighted by teacher objectness, boxes toward the teacher decoded box',
    tasks: ['detect'],
    needs: 'levels',
  },
  feature: {
    description: 'fine-grained feature imitation (Wang et al. 2019): L2 between 1×1-adapted student and teacher features near objects',
    tasks: ['detect', 'classify'],
    needs: 'features',
  },
  cwd: {
    description: 'channel-wise distillation (Shu et al. 2021): per channel, KL between teacher and 1×1-adapted student spatial softmax maps at τ',
    tasks: ['detect'],
    needs: 'features',
  },
} as const;

/** A name of {@link KD_LOSSES}. */
export type KdLossName = keyof typeof KD_LOSSES;

/** Every loss name, in registry order. */
export const KD_LOSS_NAMES = Object.keys(KD_LOSSES) as KdLossName[];

/**
 * Parses a `+`-separated list of loss names (`'yolo-kd+feature'`). Throws {@link KdLossError} naming
 * an unknown or repeated name and the allowed ones, or a loss that does not apply to `task`.
 * @example
 * parseKdLosses('yolo-kd+feature', 'detect'); // ['yolo-kd', 'feature']
 */
export function parseKdLosses(spec: string, task?: 'detect' | 'classify'): KdLossName[] {
  if (typeof spec !== 'string') throw new TypeError(`spec: expected a string such as 'yolo-kd+feature', got ${typeof spec}`);
  const allowed = KD_LOSS_NAMES.join(', ');
  const names: KdLossName[] = [];
  for (const raw of spec.split('+')) {
    const name = raw.trim();
    if (!Object.hasOwn(KD_LOSSES, name)) {
      const what = name === '' ? `an empty name in '${spec}'` : `unknown loss '${name}'`;
      throw new KdLossError('KD_LOSS_UNKNOWN', `kd loss: ${what}; allowed: ${allowed} (combine with '+', e.g. 'yolo-kd+feature')`);
    }
    const known = name as KdLossName;
    if (names.includes(known)) throw new KdLossError('KD_LOSS_DUPLICATE', `kd loss: '${known}' is listed twice in '${spec}'`);
    if (task !== undefined && !(KD_LOSSES[known].tasks as readonly string[]).includes(task)) {
      const fit = KD_LOSS_NAMES.filter((n) => (KD_LOSSES[n].tasks as readonly string[]).includes(task)).join(', ');
      throw new KdLossError('KD_LOSS_TASK', `kd loss: '${known}' applies to ${KD_LOSSES[known].tasks.join('/')} models, not ${task}; for ${task} use ${fit}`);
    }
    names.push(known);
  }
  return names;
}

/** Schedule of the KD weight α over training. */
export interface AlphaSchedule {
  /** Final α in [0, 1]. */
  alpha: number;
  /** Epochs with α = 0 (the student learns from the labels alone first). */
  warmup: number;
  /** Epochs of linear ramp from 0 to α after the warmup; 0 jumps straight to α. */
  ramp: number;
  /** With `--kd-decay linear`: the epoch (the run's end) at which α has fallen linearly to 0 from its value after the ramp. */
  decayTo?: number;
}

/**
 * α at a (fractional, 0-based) epoch: 0 during the first `warmup` epochs, then a linear ramp that
 * reaches `alpha` after `ramp` more epochs, then `alpha`, or with `decayTo` a linear fall from `alpha`
 * to 0 at that epoch.
 */
export function alphaAt(epoch: number, schedule: AlphaSchedule): number {
  const { alpha, warmup, ramp } = schedule;
  if (!Number.isFinite(epoch)) throw new RangeError(`epoch: expected a finite number, got ${String(epoch)}`);
  checkUnit(alpha, 'schedule.alpha');
  if (!(Number.isFinite(warmup) && warmup >= 0)) throw new RangeError(`schedule.warmup: expected a number ≥ 0, got ${String(warmup)}`);
  if (!(Number.isFinite(ramp) && ramp >= 0)) throw new RangeError(`schedule.ramp: expected a number ≥ 0, got ${String(ramp)}`);
  const { decayTo } = schedule;
  if (decayTo !== undefined && !(Number.isFinite(decayTo) && decayTo > warmup + ramp)) {
    throw new RangeError(`schedule.decayTo: expected an epoch after the warm-up and ramp (${warmup + ramp}), got ${String(decayTo)}`);
  }
  if (epoch < warmup) return 0;
  if (ramp > 0 && epoch < warmup + ramp) return alpha * (epoch - warmup) / ramp;
  if (decayTo === undefined) return alpha;
  const start = warmup + ramp;
  return alpha * Math.max(0, 1 - (epoch - start) / (decayTo - start));
}

/** The training objective with distillation: `(1−α)·hard + α·λ·kd`. */
export function combineLosses(hard: tf.Scalar, kdTotal: tf.Scalar, alpha: number, lambda: number): tf.Scalar {
  checkUnit(alpha, 'alpha');
  if (!(Number.isFinite(lambda) && lambda >= 0)) throw new RangeError(`lambda: expected a finite number ≥ 0, got ${String(lambda)}`);
  return tf.tidy(() => hard.mul(1 - alpha).add(kdTotal.mul(alpha * lambda)) as tf.Scalar);
}

function checkUnit(v: number, param: string): void {
  if (!(Number.isFinite(v) && v >= 0 && v <= 1)) throw new RangeError(`${param}: expected a number in [0, 1], got ${String(v)}`);
}
