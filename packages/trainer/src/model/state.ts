import * as tf from '../tf.js';
import { seededRandom } from '@kd-edge/core';
import { initialValues } from './init.js';
import type { ParamSpec } from '@kd-edge/core';
import type { VarLookup } from './layers.js';

/** Gives the initial values of one state tensor (random init, or values read from a file). */
export type ValueSource = (spec: ParamSpec) => Float32Array;

/** A value source with PyTorch-like random init, reproducible for a given seed. */
export function randomSource(seed = 0): ValueSource {
  const rand = seededRandom(seed);
  return (spec) => initialValues(spec, rand);
}

/** The variables of a model: trainable params and non-trainable buffers, keyed by state_dict name. */
export interface ModelState {
  params: Map<string, tf.Variable>;
  buffers: Map<string, tf.Variable>;
  lookup: VarLookup;
  dispose(): void;
}

/** Allocates the variables of `specs` with values from `source`. */
export function createState(specs: readonly ParamSpec[], source: ValueSource): ModelState {
  const params = new Map<string, tf.Variable>();
  const buffers = new Map<string, tf.Variable>();
  const all = new Map<string, tf.Variable>();
  try {
    for (const spec of specs) {
      const values = source(spec);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (values.length !== size) {
        throw new RangeError(`${spec.name}: expected ${size} values for shape [${spec.shape.join(', ')}], got ${values.length}`);
      }
      const t = tf.tensor(values, spec.shape, 'float32');
      // No variable name: engine-wide names must be unique and several models may coexist.
      const v = tf.variable(t, spec.trainable);
      t.dispose();
      (spec.trainable ? params : buffers).set(spec.name, v);
      all.set(spec.name, v);
    }
  } catch (err) {
    for (const v of all.values()) v.dispose();
    throw err;
  }
  let disposed = false;
  return {
    params,
    buffers,
    lookup: (name) => {
      const v = all.get(name);
      if (v === undefined) throw new Error(`internal: no model variable named ${name}`);
      return v;
    },
    dispose: () => {
      if (disposed) return;
      disposed = true;
      for (const v of all.values()) v.dispose();
    },
  };
}

/** Number of trainable values, as PyTorch's `sum(p.numel() for p in model.parameters())`. */
export function sumSizes(params: ReadonlyMap<string, tf.Variable>): number {
  let n = 0;
  for (const v of params.values()) n += v.size;
  return n;
}

/** Checks a model input: rank 4 NHWC with 3 channels and sides divisible by `multiple`. */
export function checkInput(x: tf.Tensor, multiple: number): void {
  if (x.rank !== 4) throw new RangeError(`x: expected a rank-4 NHWC tensor, got shape [${x.shape.join(', ')}]`);
  const [, h, w, c] = x.shape as [number, number, number, number];
  if (c !== 3) throw new RangeError(`x: expected 3 channels (NHWC), got shape [${x.shape.join(', ')}]`);
  if (h % multiple !== 0 || w % multiple !== 0 || h === 0 || w === 0) {
    throw new RangeError(`x: height and width must be positive multiples of ${multiple}, got ${h}×${w}`);
  }
}
