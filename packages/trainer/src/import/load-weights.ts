import { open } from 'node:fs/promises';
import { WeightsError } from '../errors.js';
import type { DetectionModel } from '../model/types.js';
import { KDW_MAGIC, loadModel } from '../model/weights-io.js';

/** The weight file kinds `--weights` takes: kd-edge's own `.kdw`, an ultralytics `.pt` checkpoint, an ONNX export. */
export type WeightsKind = 'kdw' | 'pt' | 'onnx';

/** What {@link loadDetectionModel} returns. */
export interface LoadedDetector {
  model: DetectionModel;
  kind: WeightsKind;
  /** Lines worth telling the user (what was folded, which entry of a checkpoint was used…). */
  notes: string[];
}

/** The kind of a weights file, from its first bytes (a zip is a torch checkpoint), else its extension. */
export async function weightsKind(file: string): Promise<WeightsKind> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (head.toString('latin1') === KDW_MAGIC) return 'kdw';
    if (head[0] === 0x50 && head[1] === 0x4b) return 'pt';
  } finally {
    await fh.close();
  }
  if (/\.onnx$/i.test(file)) return 'onnx';
  if (/\.pt$/i.test(file)) return 'pt';
  throw new WeightsError(`${file}: not a kd-edge .kdw, an ultralytics .pt checkpoint or an ONNX file`);
}

/**
 * A detector as a trainable TensorFlow.js model from any weights kind. The backend must be selected first.
 * @example
 * const { model, notes } = await loadDetectionModel('yolov5n.pt');
 */
export async function loadDetectionModel(file: string): Promise<LoadedDetector> {
  const kind = await weightsKind(file);
  if (kind === 'kdw') {
    const { model } = await loadModel(file);
    if (model.description.type !== 'yolov5') throw new WeightsError(`${file} holds a ${model.description.type}, not a detector`);
    return { model: model as DetectionModel, kind, notes: [] };
  }
  throw new WeightsError(`${file}: loading ${kind} weights is not implemented yet`);
}
