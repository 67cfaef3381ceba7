import * as tf from '../tf.js';
import type { TrainableModel } from '../model/types.js';

/**
 * Exponential moving average of a model's parameters and buffers (ultralytics ModelEMA):
 * d = decay·(1 − e^(−updates/tau)); ema = d·ema + (1 − d)·model. The EMA lives in its own model
 * instance so it can be validated and saved like any model.
 */
export class ModelEma {
  constructor(
    readonly ema: TrainableModel,
    public updates = 0,
    readonly decay = 0.9999,
    readonly tau = 2000,
  ) {}

  /** Copies the model's values into the EMA (at start). */
  copyFrom(model: TrainableModel): void {
    tf.tidy(() => {
      for (const [src, dst] of pairs(model, this.ema)) dst.assign(src);
    });
  }

  update(model: TrainableModel): void {
    this.updates += 1;
    const d = this.decay * (1 - Math.exp(-this.updates / this.tau));
    tf.tidy(() => {
      for (const [src, dst] of pairs(model, this.ema)) dst.assign(dst.mul(d).add(src.mul(1 - d)));
    });
  }
}

// Walks the EMA model's state: variables only the training model has (distillation adapters) are not averaged.
function* pairs(a: TrainableModel, b: TrainableModel): Generator<[tf.Variable, tf.Variable]> {
  for (const kind of ['params', 'buffers'] as const) {
    for (const [name, w] of b[kind]) {
      const v = a[kind].get(name);
      if (!v) throw new Error(`model has no ${name}, which its EMA has`);
      yield [v, w];
    }
  }
}
