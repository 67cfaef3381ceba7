import type { ModelWeights } from '@kd-edge/core';
import type { TrainableModel } from '../model/types.js';

/**
 * A model's parameters and buffers as plain float32 arrays by state_dict name (the layout core's
 * exporter reads). Copies the values out of the backend once.
 */
export function modelWeights(model: TrainableModel): ModelWeights {
  const out = new Map<string, Float32Array>();
  for (const map of [model.params, model.buffers]) {
    for (const [name, v] of map) out.set(name, v.dataSync() as Float32Array);
  }
  return out;
}
