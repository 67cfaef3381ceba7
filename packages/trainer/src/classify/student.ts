import { classifierDescription, ConfigError, YOLO_SCALES, type ClassifierDescription, type YoloScale } from '@kd-edge/core';
import { createClassifier } from '../model/classifier.js';
import type { ClassificationModel, TrainableModel } from '../model/types.js';
import { loadModelWeights } from '../model/weights-io.js';
import * as tf from '../tf.js';
import type { Logger } from '../util/logger.js';

/** The scale `--model` names: `yolov5s-cls` (or `yolov5s`) → 's'. */
export function classifierScale(model: string): YoloScale {
  const m = /^yolov5([a-z])(-cls)?$/.exec(model.trim());
  if (m === null || !(m[1]! in YOLO_SCALES)) {
    throw new ConfigError('model', model, Object.keys(YOLO_SCALES).map((s) => `yolov5${s}-cls`).join(', '));
  }
  return m[1] as YoloScale;
}

/** A model's name for messages: `yolov5n-cls`, or `custom-cls`. */
export function classifierName(desc: ClassifierDescription): string {
  return desc.scale === 'custom' ? 'custom-cls' : `yolov5${desc.scale}-cls`;
}

/**
 * Copies every tensor of `source` whose name and size match one of the model's (ultralytics'
 * intersect_dicts); the rest keep their fresh values. Returns how many of the model's tensors it set.
 */
export function transferState(model: TrainableModel, source: ReadonlyMap<string, Float32Array>): { transferred: number; total: number } {
  let transferred = 0;
  const vars = [...model.params, ...model.buffers];
  for (const [name, v] of vars) {
    const t = source.get(name);
    if (t === undefined || t.length !== v.size) continue;
    tf.tidy(() => v.assign(tf.tensor(t, v.shape)));
    transferred++;
  }
  return { transferred, total: vars.length };
}

/**
 * The classifier to train: new from `--model` (seeded), or from `--weights` (a .kdw classifier keeps
 * its architecture; a .kdw detector gives a classifier of its scale and its backbone, as ultralytics
 * turns a detection model into a ClassificationModel), with `nc` classes named `names`.
 */
export async function buildStudent(
  cfg: { model: string; weights: string; dropout: number; seed: number }, nc: number, names: string[], log: Logger,
): Promise<ClassificationModel> {
  if (!cfg.weights) {
    return createClassifier(classifierDescription(classifierScale(cfg.model), nc, { names, dropout: cfg.dropout }), { seed: cfg.seed });
  }
  const src = await loadModelWeights(cfg.weights);
  const d = src.description;
  const mult = { depth_multiple: d.depth_multiple, width_multiple: d.width_multiple };
  const scale = (Object.keys(YOLO_SCALES) as YoloScale[]).find((s) => s === d.scale) ?? mult;
  const desc = d.type === 'classifier'
    ? { ...(d as ClassifierDescription), nc, names: [...names], dropout: cfg.dropout }
    : classifierDescription(scale, nc, { names, dropout: cfg.dropout });
  const model = createClassifier(desc, { seed: cfg.seed });
  const { transferred, total } = transferState(model, src.weights);
  log.info(`Transferred ${transferred}/${total} items from ${cfg.weights}`);
  if (d.type !== 'classifier') log.info(`${cfg.weights} is a detector: its backbone starts a ${classifierName(desc)}, the Classify head is fresh`);
  else if (d.nc !== nc) log.info(`${cfg.weights} has nc=${d.nc}; the linear layer is initialised fresh for nc=${nc}`);
  return model;
}
