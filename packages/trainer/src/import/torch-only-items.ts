import { planYolo, type YoloDescription } from '@kd-edge/core';
import type { StoredTensor } from '../model/weights-io.js';

/**
 * Adds what a PyTorch state_dict holds and kd-edge's models do not (BatchNorm `num_batches_tracked`, the
 * Detect `anchors` buffer in grid units), so a transfer from a `.kdw` or ONNX counts items as one from
 * a `.pt` does. Entries already present are kept.
 */
export function withTorchOnlyItems(tensors: Map<string, StoredTensor>, desc: YoloDescription): Map<string, StoredTensor> {
  const out = new Map(tensors);
  for (const name of tensors.keys()) {
    if (!name.endsWith('.bn.running_var')) continue;
    const counter = name.replace(/running_var$/, 'num_batches_tracked');
    if (!out.has(counter)) out.set(counter, { shape: [], data: new Float32Array(1) });
  }
  const plan = planYolo(desc);
  const detect = plan.layers.find((l) => l.type === 'Detect');
  const key = detect ? `model.${detect.index}.anchors` : undefined;
  if (key !== undefined && !out.has(key)) {
    const na = desc.anchors[0]!.length / 2;
    const data = new Float32Array(desc.anchors.length * na * 2);
    desc.anchors.forEach((level, i) => level.forEach((v, j) => { data[i * na * 2 + j] = v / plan.strides[i]!; }));
    out.set(key, { shape: [desc.anchors.length, na, 2], data });
  }
  return out;
}
