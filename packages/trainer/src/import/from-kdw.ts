import type { YoloDescription } from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import { openModelArchive, type StoredTensor } from '../model/weights-io.js';
import { withTorchOnlyItems } from './torch-only-items.js';
import type { SourceWeights } from './source-weights.js';

/** A kd-edge `.kdw` (weights or a training checkpoint: its EMA model) as {@link SourceWeights}. */
export async function kdwSource(file: string): Promise<SourceWeights> {
  const a = await openModelArchive(file);
  if (a.description.type !== 'yolov5') throw new WeightsError(`${file} holds a ${a.description.type}, not a YOLOv5 detector`);
  const tensors = new Map<string, StoredTensor>();
  for (const [name, t] of a.archive.tensors) {
    const m = /^(params|buffers)\/(.+)$/.exec(name);
    if (m) tensors.set(m[2]!, t);
  }
  const description = a.description as YoloDescription;
  return { file, description, tensors: withTorchOnlyItems(tensors, description), notes: [] };
}
