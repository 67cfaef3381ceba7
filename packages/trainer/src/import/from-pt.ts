import { describeModelYaml, type YoloDescription } from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import type { StoredTensor } from '../model/weights-io.js';
import { oihwToHwio, type SourceWeights } from './source-weights.js';
import { readUltralyticsCheckpoint } from './torch-checkpoint.js';

/**
 * An ultralytics YOLOv5 `.pt` checkpoint (v6.x, v7.0) as {@link SourceWeights}: its `ema` entry, else
 * `model`, read without executing the pickle; the network from the model YAML it carries, with the
 * anchors of its Detect layer (AutoAnchor may have changed them) and its class names.
 */
export async function ptSource(file: string): Promise<SourceWeights> {
  const ck = await readUltralyticsCheckpoint(file);
  if (ck.yaml === null) throw new WeightsError(`${file}: the checkpoint carries no model YAML; kd-trainer cannot tell its network`);
  let description: YoloDescription;
  try {
    description = describeModelYaml({ ...ck.yaml, nc: ck.nc, anchors: ck.anchorsPx });
  } catch (err) {
    throw new WeightsError(`${file}: its model YAML is not a network kd-trainer builds (${(err as Error).message})`, { cause: err });
  }
  if (ck.names.length === ck.nc) description.names = ck.names;
  const tensors = new Map<string, StoredTensor>();
  for (const [name, e] of ck.stateDict) {
    const t = { shape: e.shape, data: e.data };
    tensors.set(name, e.shape.length === 4 ? oihwToHwio(t) : t);
  }
  const notes = [`${file}: ${ck.className} (${ck.dtype}, '${ck.entry}' entry${ck.epoch !== null && ck.epoch >= 0 ? `, epoch ${ck.epoch}` : ''}${ck.date ? `, ${ck.date.slice(0, 10)}` : ''})`];
  return { file, description, tensors, notes };
}
