import type * as ort from 'onnxruntime-node';
import type { ModelProto } from '../onnx/types.js';
import type { CollectorOptionsMap } from './calibrate/create-collector.js';
import type { CalibrationMethod, TensorRange } from './calibrate/types.js';
import { calibrate } from './calibration-run.js';
import { convertToFloat16 } from './fp16.js';
import { requireGraph, type NamePattern } from './graph-index.js';
import { quantizeWeightsInt8, type SkippedNode } from './int8-weights.js';
import type { BatchSource } from './ort-run.js';
import { quantizeQdq } from './qdq.js';
import { QuantError } from './quant-error.js';
import { sensitivityReport, type SensitivityRow } from './sensitivity.js';
import { tensorByteSize } from './tensor-io.js';

/** Quantization modes, as the CLI names them. */
export const QUANT_MODES = {
  fp16: 'float16 weights and activations, float32 inputs and outputs',
  'int8-weights': 'int8 weights per output channel, float activations ("dynamic")',
  int8: 'static int8 QDQ: calibrated activations, int8 weights, int32 biases',
} as const;

/** One of {@link QUANT_MODES}. */
export type QuantMode = keyof typeof QUANT_MODES;

/** Batches for calibration: an array (or a function returning a fresh iterable) can be read twice. */
export type CalibrationSource = BatchSource | (() => BatchSource);

/** Options of {@link quantizeModel}. */
export interface QuantizeModelOptions {
  mode: QuantMode;
  /** int8: the calibration inputs, their shape and the input they feed. */
  calibration?: { batches: CalibrationSource; inputShape: readonly number[]; inputName?: string };
  /** int8: range method (default 'minmax'). */
  method?: CalibrationMethod;
  collectorOptions?: CollectorOptionsMap[CalibrationMethod];
  /** int8 / int8-weights: nodes left in float. */
  exclude?: readonly NamePattern[];
  /** int8: symmetric activations (default false). */
  activationSymmetric?: boolean;
  /** int8 / int8-weights: per-channel weights (default true). */
  perChannel?: boolean;
  /** int8: op types to quantize. */
  opTypes?: readonly string[];
  /** int8: keep Relu / Clip rather than folding them into the producer's quantization. */
  keepRemovableActivations?: boolean;
  /**
   * int8: activation type. Default 'int8' (S8S8, ORT's default, what TensorRT and ARM CPUs such as
   * Jetson's run fused). 'uint8' (U8S8) for x86 CPUs: onnxruntime on x86 fuses only uint8-activation QDQ
   * groups into QLinearConv when a tensor has several readers (every SiLU input does), so S8S8 models
   * run unfused and slower than float there.
   */
  activationType?: 'int8' | 'uint8';
  /** int8: 7-bit weights for U8S8 on x86 CPUs without VNNI (default false). */
  reduceRange?: boolean;
  /** fp16: keep float32 graph inputs and outputs (default true). */
  keepIoTypes?: boolean;
  /** fp16: op types kept in float32. */
  blockOps?: readonly string[];
  /** int8: also compare float and int8 activations on (at most `maxBatches` of) the calibration batches. */
  sensitivity?: boolean | { maxBatches?: number };
  /** Progress of the calibration and sensitivity runs (batches done). */
  onProgress?: (stage: 'calibrate' | 'sensitivity', batchesDone: number) => void;
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** What a {@link quantizeModel} run did. */
export interface QuantizeReport {
  mode: QuantMode;
  /** Initializer bytes before and after. */
  bytesBefore: number;
  bytesAfter: number;
  notes: string[];
  skipped: SkippedNode[];
  /** Activations now quantized (int8). */
  quantizedTensors: string[];
  /** Weights (and int8 biases) now stored quantized. */
  quantizedWeights: string[];
  /** int8: calibrated ranges, the method and the number of batches. */
  ranges?: Map<string, TensorRange>;
  method?: CalibrationMethod;
  batches?: number;
  /** int8 with `sensitivity`: per-tensor error, worst first. */
  sensitivity?: SensitivityRow[];
}

function initializerBytes(model: ModelProto): number {
  return requireGraph(model).initializer.reduce((s, t) => s + tensorByteSize(t), 0);
}

function open(source: CalibrationSource): BatchSource {
  return typeof source === 'function' ? source() : source;
}

/**
 * One call per CLI mode: fp16 ({@link convertToFloat16}), int8-weights ({@link quantizeWeightsInt8})
 * or int8 ({@link calibrate} then {@link quantizeQdq}, optionally {@link sensitivityReport}).
 * @example
 * const { model: int8, report } = await quantizeModel(model, {
 *   mode: 'int8',
 *   calibration: { batches: () => loadImages(), inputShape: [1, 3, 640, 640] },
 *   method: 'percentile',
 * });
 */
export async function quantizeModel(model: ModelProto, options: QuantizeModelOptions): Promise<{ model: ModelProto; report: QuantizeReport }> {
  if (!options || !Object.hasOwn(QUANT_MODES, options.mode)) {
    throw new RangeError(`mode must be one of ${Object.keys(QUANT_MODES).join(', ')}, got ${JSON.stringify(options?.mode)}`);
  }
  const bytesBefore = initializerBytes(model);
  const base = { mode: options.mode, bytesBefore, notes: [] as string[], skipped: [] as SkippedNode[], quantizedTensors: [] as string[], quantizedWeights: [] as string[] };

  if (options.mode === 'fp16') {
    const r = convertToFloat16(model, { keepIoTypes: options.keepIoTypes, blockOps: options.blockOps });
    return { model: r.model, report: { ...base, bytesAfter: initializerBytes(r.model), notes: r.notes } };
  }
  if (options.mode === 'int8-weights') {
    const r = quantizeWeightsInt8(model, { exclude: options.exclude, perChannel: options.perChannel });
    return {
      model: r.model,
      report: { ...base, bytesAfter: r.bytesAfter, skipped: r.skipped, quantizedWeights: r.quantizedWeights },
    };
  }

  const cal = options.calibration;
  if (!cal) throw new TypeError('calibration is required for mode int8');
  const wantsSensitivity = options.sensitivity !== undefined && options.sensitivity !== false;
  if (wantsSensitivity && typeof cal.batches !== 'function' && !Array.isArray(cal.batches)) {
    throw new TypeError('calibration.batches must be an array or a function returning a fresh iterable when sensitivity is on');
  }
  const method = options.method ?? 'minmax';
  const calibration = await calibrate(model, open(cal.batches), {
    method,
    inputShape: cal.inputShape,
    inputName: cal.inputName,
    collectorOptions: options.collectorOptions,
    opTypes: options.opTypes,
    exclude: options.exclude,
    onProgress: (n) => options.onProgress?.('calibrate', n),
    sessionOptions: options.sessionOptions,
  });
  const q = quantizeQdq(model, {
    ranges: calibration.ranges,
    activationSymmetric: options.activationSymmetric,
    perChannel: options.perChannel,
    exclude: options.exclude,
    opTypes: options.opTypes,
    keepRemovableActivations: options.keepRemovableActivations,
    activationType: options.activationType ?? 'int8',
    reduceRange: options.reduceRange,
  });
  const report: QuantizeReport = {
    ...base,
    bytesAfter: initializerBytes(q.model),
    notes: q.warnings,
    skipped: q.skipped,
    quantizedTensors: q.quantizedTensors,
    quantizedWeights: q.quantizedWeights,
    ranges: calibration.ranges,
    method,
    batches: calibration.batches,
  };
  if (wantsSensitivity) {
    const maxBatches = typeof options.sensitivity === 'object' ? options.sensitivity.maxBatches : undefined;
    let done = 0;
    try {
      report.sensitivity = await sensitivityReport(model, q.model, counting(open(cal.batches), () => options.onProgress?.('sensitivity', ++done)), {
        inputShape: cal.inputShape,
        inputName: cal.inputName,
        maxBatches,
        sessionOptions: options.sessionOptions,
      });
    } catch (cause) {
      if (cause instanceof QuantError && cause.code === 'QUANT_MODEL_INVALID') {
        report.notes.push(`no sensitivity report: ${cause.message}`);
      } else {
        throw cause;
      }
    }
  }
  return { model: q.model, report };
}

async function* counting(source: BatchSource, tick: () => void): AsyncGenerator<Float32Array> {
  for await (const b of source) {
    // Counted when handed out: the report stops pulling after its last batch.
    tick();
    yield b;
  }
}
