import type { AugmentHyp } from '../data/types.js';
import type { LossHyp } from '../loss/yolo-loss.js';

/** All training hyperparameters, ultralytics names. */
export interface Hyp extends AugmentHyp, LossHyp {
  lr0: number;
  lrf: number;
  momentum: number;
  weight_decay: number;
  warmup_epochs: number;
  warmup_momentum: number;
  warmup_bias_lr: number;
}

/** ultralytics YOLOv5 `data/hyps/hyp.scratch-low.yaml`. */
export const HYP_SCRATCH_LOW: Hyp = {
  lr0: 0.01,
  lrf: 0.01,
  momentum: 0.937,
  weight_decay: 0.0005,
  warmup_epochs: 3.0,
  warmup_momentum: 0.8,
  warmup_bias_lr: 0.1,
  box: 0.05,
  cls: 0.5,
  obj: 1.0,
  anchor_t: 4.0,
  label_smoothing: 0.0,
  hsv_h: 0.015,
  hsv_s: 0.7,
  hsv_v: 0.4,
  degrees: 0.0,
  translate: 0.1,
  scale: 0.5,
  shear: 0.0,
  flipud: 0.0,
  fliplr: 0.5,
  mosaic: 1.0,
};
