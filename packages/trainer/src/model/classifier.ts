import * as tf from '../tf.js';
import { planClassifier, type ClassifierDescription } from '@kd-edge/core';
import { convForward, layerForward } from './layers.js';
import { checkInput, sumSizes, createState, randomSource, type ValueSource } from './state.js';
import type { ClassificationModel } from './types.js';

/** Builds a classifier with values from `source`. Internal to the model folder; use createClassifier or loadModel. */
export function buildClassifier(desc: ClassifierDescription, source: ValueSource): ClassificationModel {
  const plan = planClassifier(desc);
  const state = createState(plan.specs, source);
  const { head } = plan;
  return {
    kind: 'classify',
    description: structuredClone(desc),
    nc: desc.nc,
    params: state.params,
    buffers: state.buffers,
    paramCount: () => sumSizes(state.params),
    dispose: () => state.dispose(),
    forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
      checkInput(x, plan.maxStride);
      return tf.tidy(() => {
        const outs: tf.Tensor4D[] = [];
        for (const l of plan.layers) {
          const inputs = l.from.map((j) => (j < 0 ? x : outs[j]!));
          outs[l.index] = layerForward(l, state.lookup, inputs, training) as tf.Tensor4D;
        }
        let f: tf.Tensor2D = tf.mean(convForward(head.conv, state.lookup, outs[outs.length - 1]!, training), [1, 2]);
        if (training && head.dropout > 0) f = tf.dropout(f, head.dropout) as tf.Tensor2D;
        const w = state.lookup(`${head.prefix}.linear.weight`) as tf.Tensor2D;
        const b = state.lookup(`${head.prefix}.linear.bias`);
        return tf.add(tf.matMul(f, w), b) as tf.Tensor2D;
      });
    },
  };
}

/**
 * Creates a YOLOv5-cls style classifier with seeded PyTorch-like initialisation.
 * @example
 * const clf = createClassifier(classifierDescription('n', 10));
 * const logits = clf.forward(images, false); // [N, 10]
 */
export function createClassifier(desc: ClassifierDescription, opts: { seed?: number } = {}): ClassificationModel {
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`seed: expected an integer, got ${String(opts.seed)}`);
  return buildClassifier(desc, randomSource(seed));
}
