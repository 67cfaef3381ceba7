import * as tf from '../../tf.js';
import { seededRandom } from '@kd-edge/core';
import type { FeatureMap } from '../types.js';

/** A pair of feature maps to imitate: the student's channels `studentC`, the teacher's `teacherC`. */
export interface FeaturePair {
  name: string;
  studentC: number;
  teacherC: number;
}

/** The trainable 1×1 convolution that maps one student feature map onto the teacher's channels. */
export interface FeatureAdapter {
  name: string;
  /** HWIO [1, 1, studentC, teacherC]. */
  weight: tf.Variable<tf.Rank.R4>;
  /** [teacherC]. */
  bias: tf.Variable<tf.Rank.R1>;
}

/**
 * Feature adapters by feature name. They are trained with the student (give {@link variables} to
 * the optimizer) and dropped after training; {@link dispose} frees them.
 */
export class FeatureAdapters extends Map<string, FeatureAdapter> {
  /** Every weight and bias, in pair order, for the optimizer. */
  variables(): tf.Variable[] {
    return [...this.values()].flatMap((a) => [a.weight, a.bias]);
  }

  /** Frees the variables; the set is empty afterwards. */
  dispose(): void {
    for (const a of this.values()) {
      a.weight.dispose();
      a.bias.dispose();
    }
    this.clear();
  }
}

/**
 * Creates one 1×1 adapter per pair with PyTorch's default conv init (uniform ±1/√studentC for weight
 * and bias), seeded so runs repeat.
 * @example
 * const adapters = createFeatureAdapters([{ name: 'p3', studentC: 64, teacherC: 128 }], 0);
 */
export function createFeatureAdapters(pairs: FeaturePair[], seed = 0): FeatureAdapters {
  if (!Number.isInteger(seed)) throw new RangeError(`seed: expected an integer, got ${String(seed)}`);
  const rand = seededRandom(seed);
  const out = new FeatureAdapters();
  try {
    for (const p of pairs) {
      if (out.has(p.name)) throw new RangeError(`pairs: feature '${p.name}' is listed twice`);
      for (const k of ['studentC', 'teacherC'] as const) {
        if (!(Number.isInteger(p[k]) && p[k] > 0)) throw new RangeError(`pairs['${p.name}'].${k}: expected a positive integer, got ${String(p[k])}`);
      }
      const bound = 1 / Math.sqrt(p.studentC);
      const uniform = (n: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * bound);
      out.set(p.name, {
        name: p.name,
        weight: toVariable(tf.tensor4d(uniform(p.studentC * p.teacherC), [1, 1, p.studentC, p.teacherC])),
        bias: toVariable(tf.tensor1d(uniform(p.teacherC))),
      });
    }
  } catch (err) {
    out.dispose();
    throw err;
  }
  return out;
}

// No variable name: engine-wide names must be unique and several adapter sets may coexist.
function toVariable<R extends tf.Rank>(t: tf.Tensor<R>): tf.Variable<R> {
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}

/** One checked feature pair, NHWC on both sides: the adapted student map and the teacher's map. */
export interface AdaptedPair {
  /** The student's feature through its 1×1 adapter, [n, h, w, teacherC]. */
  adapted: tf.Tensor4D;
  /** The teacher's feature, transposed from NCHW to [n, h, w, teacherC]. */
  target: tf.Tensor4D;
  n: number;
  h: number;
  w: number;
  c: number;
}

/**
 * The pair `name` of a feature loss, checked (the student map, the teacher map and the adapter must
 * agree) and brought to NHWC; call inside a tidy. Throws RangeError naming what does not match.
 */
export function adaptedPair(
  name: string, adapter: FeatureAdapter, student: Map<string, tf.Tensor4D>, teacher: Map<string, FeatureMap>,
): AdaptedPair {
  const s = student.get(name);
  const t = teacher.get(name);
  if (s === undefined) throw new RangeError(`student: no feature '${name}' (has ${[...student.keys()].join(', ') || 'none'})`);
  if (t === undefined) throw new RangeError(`teacher: no feature '${name}' (has ${[...teacher.keys()].join(', ') || 'none'})`);
  const [n, h, w, cs] = s.shape;
  const [tn, ct, th, tw] = t.shape;
  const [, , wcs, wct] = adapter.weight.shape;
  if (cs !== wcs) throw new RangeError(`student feature '${name}': ${cs} channels, its adapter takes ${wcs}`);
  if (tn !== n || ct !== wct || th !== h || tw !== w) {
    throw new RangeError(`teacher feature '${name}': shape [${t.shape.join(', ')}] (NCHW), expected [${n}, ${wct}, ${h}, ${w}] to match the student's [${s.shape.join(', ')}] (NHWC) and the adapter`);
  }
  if (t.data.length !== tn * ct * th * tw) throw new RangeError(`teacher feature '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`);
  return {
    adapted: tf.conv2d(s, adapter.weight, 1, 'valid').add(adapter.bias) as tf.Tensor4D,
    target: tf.tensor4d(t.data, t.shape).transpose([0, 2, 3, 1]) as tf.Tensor4D,
    n, h, w, c: ct,
  };
}
