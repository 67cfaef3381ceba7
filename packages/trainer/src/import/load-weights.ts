import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { KdEdgeError } from '@kd-edge/core';
import { WeightsError } from '../errors.js';
import type { DetectionModel } from '../model/types.js';
import { KDW_MAGIC } from '../model/weights-io.js';
import { createYoloModel } from '../model/yolo.js';
import { kdwSource } from './from-kdw.js';
import { onnxSource } from './from-onnx.js';
import type { SourceWeights } from './source-weights.js';
import { transferWeights, type TransferReport } from './transfer.js';

/** The weight file kinds `--weights` takes: kd-edge's own `.kdw`, an ultralytics `.pt` checkpoint, an ONNX export. */
export type WeightsKind = 'kdw' | 'pt' | 'onnx';

/** What {@link loadDetectionModel} returns. */
export interface LoadedDetector {
  model: DetectionModel;
  kind: WeightsKind;
  transfer: TransferReport;
  /** Lines worth telling the user (the transfer count, what was folded, which checkpoint entry was used…). */
  notes: string[];
}

/** Options of {@link loadDetectionModel}. */
export interface LoadDetectorOptions {
  /** The dataset's class count: a source with another one keeps every tensor but the Detect outputs. */
  nc?: number;
  /** The dataset's class names (default: the source's). */
  names?: string[];
  /** Seed of the fresh initialisation of what is not transferred. */
  seed?: number;
}

/** The kind of a weights file, from its first bytes (a zip is a torch checkpoint), else its extension. */
export async function weightsKind(file: string): Promise<WeightsKind> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new WeightsError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
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

/** Reads weights of any kind without building a model (no compute backend needed). */
export async function readSourceWeights(file: string): Promise<SourceWeights & { kind: WeightsKind }> {
  const kind = await weightsKind(file);
  if (kind === 'kdw') return { ...(await kdwSource(file)), kind };
  if (kind === 'onnx') return { ...(await onnxSource(file)), kind };
  const { ptSource } = await import('./from-pt.js');
  return { ...(await ptSource(file)), kind };
}

/**
 * A detector as a trainable TensorFlow.js model from any weights kind, transferred as ultralytics does:
 * the network of the source, with the dataset's class count; every tensor whose name and shape match is
 * copied, the rest keep a fresh initialisation. The backend must be selected first.
 * @example
 * const { model, notes } = await loadDetectionModel('yolov5n.pt', { nc: 3 });
 * // notes[0]: 'Transferred 343/349 items from yolov5n.pt'
 */
export async function loadDetectionModel(file: string, opts: LoadDetectorOptions = {}): Promise<LoadedDetector> {
  const src = await readSourceWeights(file);
  const nc = opts.nc ?? src.description.nc;
  const names = opts.names ?? (nc === src.description.nc ? src.description.names : undefined);
  const desc = { ...src.description, nc, ...(names ? { names } : {}) };
  if (!names) delete desc.names;
  let model: DetectionModel;
  try {
    model = createYoloModel(desc, { seed: opts.seed ?? 0 });
  } catch (err) {
    if (err instanceof KdEdgeError) throw err;
    throw new WeightsError(`${file}: its model cannot be built (${(err as Error).message})`, { cause: err });
  }
  const transfer = transferWeights(model, src);
  const notes = [`Transferred ${transfer.transferred}/${transfer.total} items from ${basename(file)}`, ...src.notes];
  if (nc !== src.description.nc) notes.push(`${basename(file)} has nc=${src.description.nc}; the Detect outputs are initialised fresh for nc=${nc}`);
  return { model, kind: src.kind, transfer, notes };
}
