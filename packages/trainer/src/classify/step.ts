import { kdLoss, mixKd } from '../distill/losses/kd.js';
import type { ClassificationModel } from '../model/types.js';
import type { StoredTensor } from '../model/weights-io.js';
import { paramGroupOf } from '../train/param-groups.js';
import { Adam } from '../train/adam.js';
import { clipGradNorm, NesterovSgd } from '../train/sgd.js';
import * as tf from '../tf.js';
import type { Logger } from '../util/logger.js';
import type { ClassifyBatch } from './loader.js';
import { smoothedCrossEntropy } from './loss.js';

/** The teacher's part of one step: its logits for the batch and the mix. */
export interface StepKd {
  logits: Float32Array;
  alpha: number;
  temperature: number;
}

/** Loss items of a step: total, cross-entropy, KD (0 without a teacher). */
export type StepLoss = [number, number, number];

/**
 * Forward, loss and backward of one batch: label-smoothed cross-entropy, or with a teacher
 * `α·KL(softmax(t/T) ‖ softmax(s/T))·T² + (1−α)·CE`. Returns gradients by parameter name (the caller
 * disposes them) and the loss items.
 */
export function classifyGradients(
  model: ClassificationModel, names: readonly string[], batch: ClassifyBatch, smoothing: number, kd?: StepKd,
): { grads: Record<string, tf.Tensor>; loss: StepLoss } {
  const vars = names.map((n) => model.params.get(n)!);
  const items: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const x = tf.tensor4d(batch.images, [batch.n, batch.size, batch.size, 3]);
    const logits = model.forward(x, true);
    const ce = smoothedCrossEntropy(logits, batch.labels, smoothing);
    items.push(tf.keep(ce));
    if (kd === undefined) return ce;
    const soft = kdLoss(logits, kd.logits, { temperature: kd.temperature });
    items.push(tf.keep(soft));
    return mixKd(ce, soft, kd.alpha);
  }, vars);
  const named: Record<string, tf.Tensor> = {};
  names.forEach((n, k) => { named[n] = grads[vars[k]!.name]!; });
  const [ce, soft] = items.map((t) => t.dataSync()[0]!);
  const total = value.dataSync()[0]!;
  tf.dispose([value, ...items]);
  return { grads: named, loss: [total, ce!, soft ?? 0] };
}

/** The optimizers `--optimizer` names, behind one face: a learning rate per epoch, a step, and a state for checkpoints. */
export interface ClassifyOptimizer {
  lr: number;
  /** Steps taken (Adam's bias-correction t). */
  readonly steps: number;
  step(grads: Record<string, tf.Tensor>): void;
  /** The state a resumed run needs besides {@link steps}: Adam's moments (`m/…`, `v/…`) or SGD's momentum buffers, by name. */
  state(): Map<string, tf.Tensor>;
  /** Restores what {@link state} returned and the step count. */
  loadState(state: Map<string, StoredTensor>, steps: number): void;
  dispose(): void;
}

/**
 * ultralytics' smart_optimizer: Adam (β1 = momentum), AdamW, or SGD with Nesterov momentum, with decay
 * on weights only (not biases or BatchNorm weights); it logs the groups as ultralytics does.
 */
export function makeOptimizer(
  name: 'Adam' | 'AdamW' | 'SGD', params: Map<string, tf.Variable>, o: { lr0: number; momentum: number; decay: number }, log: Logger,
): ClassifyOptimizer {
  const groups = [0, 0, 0];
  for (const n of params.keys()) groups[paramGroupOf(n)]!++;
  log.info(`optimizer: ${name}(lr=${o.lr0}) with parameter groups ${groups[2]} weight(decay=0.0), ${groups[1]} weight(decay=${o.decay}), ${groups[0]} bias`);
  if (name === 'SGD') {
    const sgd = new NesterovSgd(params, o.lr0, o.momentum, o.decay);
    let steps = 0;
    return {
      get lr() { return sgd.groups[0].lr; },
      set lr(v: number) { for (const g of sgd.groups) g.lr = v; },
      get steps() { return steps; },
      step: (g) => { sgd.step(g); steps++; },
      state: () => sgd.state(),
      loadState: (state, n) => { sgd.loadState(state); steps = n; },
      dispose: () => sgd.dispose(),
    };
  }
  const adam = new Adam(params, { lr: o.lr0, beta1: o.momentum, weightDecay: o.decay, kind: name === 'AdamW' ? 'adamw' : 'adam' });
  return {
    get lr() { return adam.lr; },
    set lr(v: number) { adam.lr = v; },
    get steps() { return adam.t; },
    step: (g) => adam.step(g),
    state: () => adam.state(),
    loadState: (state, n) => adam.loadState(state, n),
    dispose: () => adam.dispose(),
  };
}

/** Clips the gradients to a global norm of 10 (ultralytics) and applies them; disposes them. */
export function applyGradients(opt: ClassifyOptimizer, grads: Record<string, tf.Tensor>): void {
  const clipped = clipGradNorm(grads, 10.0).grads;
  opt.step(clipped);
  tf.dispose(Object.values(clipped));
}
