import { planClassifier } from './classifier-description.js';
import { countTrainable } from './plan.js';
import type { ModelDescription } from './description.js';
import { planYolo } from './yolo-description.js';

/** Options of countParams. */
export interface CountParamsOptions {
  /**
   * Count as after ultralytics' `fuse()` (BatchNorm folded into a conv bias: −γ, −β, +bias per Conv),
   * which is what its published model tables report. Default false (the trainable count).
   */
  fused?: boolean;
}

/**
 * Trainable parameters of a described model, counted from shapes without allocating anything
 * (conv weights, BatchNorm weight and bias, Detect/linear weight and bias), as PyTorch counts them.
 * @example countParams(yoloDescription('s', 80)) // 7,235,389 (fused: 7,225,885)
 */
export function countParams(desc: ModelDescription, opts: CountParamsOptions = {}): number {
  const specs = desc.type === 'yolov5' ? planYolo(desc).specs : planClassifier(desc).specs;
  const total = countTrainable(specs);
  if (opts.fused !== true) return total;
  const bnChannels = specs.reduce((n, s) => (s.name.endsWith('.bn.bias') ? n + s.shape[0]! : n), 0);
  return total - bnChannels;
}
