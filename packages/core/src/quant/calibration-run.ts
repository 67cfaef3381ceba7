import type * as ort from 'onnxruntime-node';
import { DataType, type ModelProto } from '../onnx/types.js';
import { createCollector, type CollectorOptionsMap } from './calibrate/create-collector.js';
import type { CalibrationMethod, RangeCollector, TensorRange } from './calibrate/types.js';
import { inferElemTypes } from './elem-types.js';
import { matchesAny, requireGraph, type NamePattern } from './graph-index.js';
import { batchTensor, checkInputShape, openSession, resolveInput, runAndVisit, withExtraOutputs, type BatchSource } from './ort-run.js';
import { DEFAULT_QDQ_OP_TYPES, QDQ_OP_HANDLERS } from './qdq.js';
import { QuantError } from './quant-error.js';

/** Options of {@link selectCalibrationTensors}. */
export interface CalibrationTensorOptions {
  /** Op types that will be quantized (default {@link DEFAULT_QDQ_OP_TYPES}). */
  opTypes?: readonly string[];
  /** Nodes that won't be quantized, so their tensors need no range. */
  exclude?: readonly NamePattern[];
}

/** Options of {@link calibrate}. */
export interface CalibrateOptions<M extends CalibrationMethod = CalibrationMethod> extends CalibrationTensorOptions {
  method: M;
  /** Shape of every batch, e.g. [1, 3, 640, 640]. */
  inputShape: readonly number[];
  /** The input batches feed (default: the model's only input). */
  inputName?: string;
  /** Tensors to collect (default {@link selectCalibrationTensors}). */
  tensors?: readonly string[];
  collectorOptions?: CollectorOptionsMap[M];
  /** Called after each batch with the number of batches done. */
  onProgress?: (batchesDone: number) => void;
  /** Extra onnxruntime session options (default graph optimization 'basic'). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Result of {@link calibrate}. */
export interface CalibrationResult {
  ranges: Map<string, TensorRange>;
  collector: RangeCollector;
  /** Tensors whose values were collected. */
  tensors: string[];
  batches: number;
}

/**
 * Tensors a calibration run should collect, as ORT's `select_tensors_to_calibrate`: every float32,
 * non-initializer input and output of the nodes that will be quantized, plus the graph's float inputs.
 */
export function selectCalibrationTensors(model: ModelProto, options: CalibrationTensorOptions = {}): string[] {
  const graph = requireGraph(model);
  const opTypes = new Set(options.opTypes ?? DEFAULT_QDQ_OP_TYPES);
  const types = inferElemTypes(graph);
  const inits = new Set(graph.initializer.map((t) => t.name));
  const picked = new Set<string>();
  const take = (t: string): void => {
    if (t !== '' && !inits.has(t) && types.get(t) === DataType.FLOAT) picked.add(t);
  };
  for (const v of graph.input) take(v.name);
  for (const n of graph.node) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    if (!(n.opType in QDQ_OP_HANDLERS) || !opTypes.has(n.opType) || matchesAny(n.name, options.exclude)) continue;
    for (const t of n.input) take(t);
    for (const t of n.output) take(t);
  }
  return [...picked];
}

async function* asAsync(source: BatchSource): AsyncGenerator<Float32Array> {
  yield* source;
}

/**
 * Runs the float model on calibration batches with onnxruntime-node and collects the range of every
 * tensor that static quantization needs: the selected tensors become extra graph outputs of a copy of
 * the model, each batch's values go to a {@link RangeCollector} and are freed.
 * @example
 * const { ranges } = await calibrate(model, images(), { method: 'percentile', inputShape: [1, 3, 640, 640] });
 */
export async function calibrate<M extends CalibrationMethod>(
  model: ModelProto,
  batches: BatchSource,
  options: CalibrateOptions<M>,
): Promise<CalibrationResult> {
  checkInputShape(options.inputShape);
  const collector = createCollector(options.method, options.collectorOptions);
  const inputName = resolveInput(model, options.inputName);
  const tensors = options.tensors ? [...options.tensors] : selectCalibrationTensors(model, options);
  if (tensors.length === 0) throw new QuantError('QUANT_MODEL_INVALID', 'no float tensors to calibrate');
  // 'basic' only folds constants; every collected tensor is a graph output, so its values are ORT's own.
  const session = await openSession(withExtraOutputs(model, tensors), { graphOptimizationLevel: 'basic', ...options.sessionOptions });
  let count = 0;
  try {
    for await (const batch of asAsync(batches)) {
      const feeds = { [inputName]: batchTensor(batch, options.inputShape, count) };
      await runAndVisit(session, feeds, tensors, (name, values) => collector.add(name, values));
      count++;
      options.onProgress?.(count);
    }
  } finally {
    await session.release();
  }
  if (count === 0) throw new QuantError('QUANT_CALIBRATION_EMPTY', 'calibration got no batches');
  return { ranges: collector.ranges(), collector, tensors, batches: count };
}
