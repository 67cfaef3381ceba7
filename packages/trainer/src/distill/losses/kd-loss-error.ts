import { KdEdgeError } from '@kd-edge/core';

/**
 * A distillation-loss setting that cannot be used: an unknown or repeated loss name
 * (`KD_LOSS_UNKNOWN`, `KD_LOSS_DUPLICATE`) or a loss that does not apply to the task (`KD_LOSS_TASK`).
 */
export class KdLossError extends KdEdgeError {
  constructor(code: 'KD_LOSS_UNKNOWN' | 'KD_LOSS_DUPLICATE' | 'KD_LOSS_TASK', message: string) {
    super(code, message);
  }
}
