import { planYolo } from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import { writeModelArchive, type StoredTensor } from '../model/weights-io.js';
import { readSourceWeights, type WeightsKind } from './load-weights.js';

/** What {@link convertWeights} wrote. */
export interface ConvertResult {
  kind: WeightsKind;
  out: string;
  tensors: number;
  notes: string[];
}

/**
 * `kd-trainer convert`: any weights kd-trainer reads (ultralytics `.pt`, a YOLOv5 ONNX export, `.kdw`) as a
 * `.kdw` of the same network, classes and anchors. No compute backend is needed; the file is written durably.
 * @example await convertWeights('yolov5s.pt', 'yolov5s.kdw')
 */
export async function convertWeights(file: string, out: string): Promise<ConvertResult> {
  const src = await readSourceWeights(file);
  const params = new Map<string, StoredTensor>();
  const buffers = new Map<string, StoredTensor>();
  for (const spec of planYolo(src.description).specs) {
    const t = src.tensors.get(spec.name);
    if (t === undefined || t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
      throw new WeightsError(`${file}: ${spec.name} is ${t ? `[${t.shape.join(', ')}]` : 'missing'}, the model needs [${spec.shape.join(', ')}]`);
    }
    (spec.trainable ? params : buffers).set(spec.name, t);
  }
  await writeModelArchive(out, src.description, { params, buffers }, { convertedFrom: file, kind: src.kind, notes: src.notes });
  return { kind: src.kind, out, tensors: params.size + buffers.size, notes: src.notes };
}
