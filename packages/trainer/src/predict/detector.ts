import { existsSync, statSync } from 'node:fs';
import { inspectModel, readOnnxFile } from '@kd-edge/core';
import { selectBackend, type BackendName } from '../backend/select.js';
import { WeightsError } from '../errors.js';
import { onnxModelInfo } from '../export/model-info.js';
import { loadDetectionModel, weightsKind, type WeightsKind } from '../import/load-weights.js';
import { openModelArchive } from '../model/weights-io.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { OnnxDetectionPredictor } from '../val/onnx-predictor.js';
import type { DetectionPredictor } from '../val/validator.js';
import { TfjsDetectionPredictor } from './tfjs-predictor.js';

/** A detector ready to run, whatever its weights kind, with what it says about itself. */
export interface OpenedDetector {
  predictor: DetectionPredictor;
  kind: WeightsKind;
  /** Class names (from the weights; `class<i>` when they hold none). */
  names: string[];
  nc: number;
  /** Largest stride: input sides must be multiples of it. */
  stride: number;
  /** The fixed [height, width] input of an ONNX model exported without --dynamic. */
  inputSize?: [number, number];
  /** Lines worth telling the user. */
  notes: string[];
  /** Frees the model or session. */
  close(): Promise<void>;
}

/** Options of {@link openDetector}. */
export interface OpenDetectorOptions {
  /** TensorFlow.js backend for .kdw/.pt weights (default 'auto'); ONNX files run in ONNX Runtime. */
  backend?: BackendName;
  logger?: Logger;
}

function checkNames(names: unknown, nc: number): string[] | undefined {
  return Array.isArray(names) && names.length === nc && names.every((n) => typeof n === 'string') ? [...names] as string[] : undefined;
}

/**
 * Opens `.kdw` and `.pt` weights as a TensorFlow.js model (through loadDetectionModel) and ONNX
 * files as they are in ONNX Runtime (an exported fp32, fp16 or int8 model validates and predicts by
 * itself); names and stride come from the weights or the ONNX metadata (kd-edge's or ultralytics').
 * @example
 * const det = await openDetector('runs/train/exp/weights/best.kdw', { backend: 'wasm' });
 */
export async function openDetector(file: string, opts: OpenDetectorOptions = {}): Promise<OpenedDetector> {
  const log = opts.logger ?? silentLogger;
  if (!existsSync(file)) throw new WeightsError(`${file}: no such weights file`);
  if (!statSync(file).isFile()) throw new WeightsError(`${file}: not a file`);
  const kind = await weightsKind(file);
  if (kind === 'onnx') return openOnnx(file);
  await selectBackend(opts.backend ?? 'auto', log);
  const { model, notes: all, transfer } = await loadDetectionModel(file);
  // A .kdw of our own that loads whole is the normal case for val and predict: its transfer count is noise.
  const notes = kind === 'kdw' && transfer.transferred === transfer.total ? all.filter((n) => !n.startsWith('Transferred ')) : all;
  let names = checkNames(model.description.names, model.nc);
  if (names === undefined && kind === 'kdw') names = checkNames((await openModelArchive(file)).meta.names, model.nc);
  return {
    predictor: new TfjsDetectionPredictor(model),
    kind,
    names: names ?? Array.from({ length: model.nc }, (_, i) => `class${i}`),
    nc: model.nc,
    stride: Math.max(...model.strides),
    notes,
    async close() {
      model.dispose();
    },
  };
}

async function openOnnx(file: string): Promise<OpenedDetector> {
  const proto = await readOnnxFile(file);
  const info = onnxModelInfo(proto, file);
  if (info.task !== 'detect') throw new WeightsError(`${file} is a classifier, not a detector`);
  if (info.outputLayout !== 'yolov5-decoded') {
    throw new WeightsError(`${file} outputs the raw head tensors (exported with --raw); predict and val need the decoded output0 (export without --raw)`);
  }
  // kd-edge writes `strides` and `stride`, ultralytics `stride` only (its largest).
  const meta = inspectModel(proto).metadata;
  const metaStride = Number(meta.stride);
  const stride = Number.isInteger(metaStride) && metaStride > 0 ? metaStride : Math.max(...info.strides);
  const predictor = await OnnxDetectionPredictor.open(file, info.nc);
  const notes = info.names.every((n, i) => n === `class${i}`) && meta.names === undefined ? [`${file} has no 'names' metadata: classes are named class0…`] : [];
  return {
    predictor,
    kind: 'onnx',
    names: info.names,
    nc: info.nc,
    stride,
    ...(info.imgsz ? { inputSize: info.imgsz } : {}),
    notes,
    close: () => predictor.close(),
  };
}
