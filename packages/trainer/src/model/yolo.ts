import * as tf from '../tf.js';
import { layerForward } from './layers.js';
import { planYolo, type LayerPlan, type YoloDescription } from '@kd-edge/core';
import { checkInput, sumSizes, createState, randomSource, type ValueSource } from './state.js';
import type { DetectionModel } from './types.js';

/** Options of createYoloModel. */
export interface YoloModelOptions {
  /** Seed of the random initialisation (default 0, so two models built alike are identical). */
  seed?: number;
}

/**
 * Builds a detector from a plan with values from `source` (random init, or a weights file).
 * Internal to the model folder; use createYoloModel or loadModel.
 */
export function buildYoloModel(desc: YoloDescription, source: ValueSource): DetectionModel {
  const plan = planYolo(desc);
  const state = createState(plan.specs, source);
  const description: YoloDescription = structuredClone(desc);
  const detect = plan.layers[plan.layers.length - 1] as Extract<LayerPlan, { type: 'Detect' }>;
  return {
    kind: 'detect',
    description,
    nc: desc.nc,
    nl: detect.levels.length,
    na: detect.na,
    strides: [...plan.strides],
    anchors: description.anchors.map((a) => [...a]),
    params: state.params,
    buffers: state.buffers,
    paramCount: () => sumSizes(state.params),
    dispose: () => state.dispose(),
    forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D[] {
      return this.forwardFeatures(x, training, []).levels;
    },
    forwardFeatures(x: tf.Tensor4D, training: boolean, layers: readonly number[]) {
      checkInput(x, plan.maxStride);
      for (const i of layers) {
        if (!(Number.isInteger(i) && i >= 0 && i < plan.layers.length - 1)) throw new RangeError(`layers: ${i} is not a layer before Detect`);
      }
      const flat = tf.tidy(() => {
        const outs: tf.Tensor4D[] = [];
        let result: tf.Tensor4D[] = [];
        for (const l of plan.layers) {
          const inputs = l.from.map((j) => (j < 0 ? x : outs[j]!));
          const y = layerForward(l, state.lookup, inputs, training);
          if (Array.isArray(y)) result = y;
          else outs[l.index] = y;
        }
        return [...result, ...layers.map((i) => outs[i]!)];
      });
      return { levels: flat.slice(0, detect.levels.length), features: flat.slice(detect.levels.length) };
    },
  };
}

/**
 * Creates a YOLOv5-family detector with PyTorch-like seeded initialisation and YOLOv5's Detect bias
 * prior. Parameter names follow ultralytics' state_dict.
 * @example
 * const model = createYoloModel(yoloDescription('n', 3), { seed: 1 });
 * const [p3, p4, p5] = model.forward(images, false); // [N, 16, 16, 24], [N, 8, 8, 24], [N, 4, 4, 24] at 128 px
 */
export function createYoloModel(desc: YoloDescription, opts: YoloModelOptions = {}): DetectionModel {
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`seed: expected an integer, got ${String(opts.seed)}`);
  return buildYoloModel(desc, randomSource(seed));
}
