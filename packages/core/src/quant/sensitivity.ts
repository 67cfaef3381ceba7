import type * as ort from 'onnxruntime-node';
import { DataType, type ModelProto } from '../onnx/types.js';
import { inferElemTypes } from './elem-types.js';
import { producerMap, requireGraph } from './graph-index.js';
import { batchTensor, checkInputShape, openSession, resolveInput, runAndVisit, withExtraOutputs, type BatchSource } from './ort-run.js';
import { QuantError } from './quant-error.js';

/** Options of {@link sensitivityReport}. */
export interface SensitivityOptions {
  /** Shape of every input batch. */
  inputShape: readonly number[];
  /** The input batches feed (default: the model's only input). */
  inputName?: string;
  /** Only these float tensors (default: every quantized activation found in the QDQ model). */
  tensors?: readonly string[];
  /** Stop after this many batches. */
  maxBatches?: number;
  /** Extra onnxruntime session options for both models. */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Quantization error of one activation tensor, float model against QDQ model. */
export interface SensitivityRow {
  /** Tensor name in the float model. */
  tensor: string;
  /** Node producing it in the float model ('' for a graph input). */
  node: string;
  /** Its op type ('input' for a graph input). */
  opType: string;
  /** 20·log10(‖float‖ / ‖float − qdq‖) over all batches; higher is better. */
  sqnrDb: number;
  /** ‖float − qdq‖ / ‖float‖. */
  relL2: number;
  /** Largest |float − qdq|. */
  maxAbs: number;
  /** SQNR of the QDQ model's own quantize → dequantize step on this tensor (ORT's `qdq_err`). */
  qdqSqnrDb: number;
}

interface Pairing {
  tensor: string;
  /** Value before QuantizeLinear, in the QDQ model. */
  pre: string;
  /** Output of the DequantizeLinear, in the QDQ model. */
  post: string;
}

// numpy.finfo(float).eps, the floor ORT's compute_signal_to_quantization_noice_ratio puts under both norms.
const EPS = 2.220446049250313e-16;

/**
 * Pairs float tensors with their dequantized copies in the QDQ model: each QuantizeLinear →
 * DequantizeLinear pair stands for the tensor its QuantizeLinear reads, or for the graph output its
 * DequantizeLinear writes (`t_QuantizeLinear_Input` → Q → DQ → `t`).
 */
function pairTensors(floatModel: ModelProto, qdqModel: ModelProto): Pairing[] {
  const fg = requireGraph(floatModel);
  const qg = requireGraph(qdqModel);
  const floatTypes = inferElemTypes(fg);
  const floatInits = new Set(fg.initializer.map((t) => t.name));
  const isFloatActivation = (t: string): boolean => !floatInits.has(t) && floatTypes.get(t) === DataType.FLOAT;
  const qProducers = producerMap(qg);
  const qOutputs = new Set(qg.output.map((o) => o.name));
  const pairs = new Map<string, Pairing>();
  for (const dq of qg.node) {
    if (dq.opType !== 'DequantizeLinear') continue;
    const q = qProducers.get(dq.input[0]);
    if (!q || q.opType !== 'QuantizeLinear') continue;
    const post = dq.output[0];
    const pre = q.input[0];
    const tensor = qOutputs.has(post) && isFloatActivation(post) ? post : pre;
    if (!isFloatActivation(tensor) || pairs.has(tensor)) continue;
    pairs.set(tensor, { tensor, pre, post });
  }
  return [...pairs.values()];
}

interface Accum {
  x2: number;
  d2: number;
  maxAbs: number;
  p2: number;
  pd2: number;
}

function sqnr(signal2: number, noise2: number): number {
  return 20 * Math.log10(Math.max(Math.sqrt(signal2), EPS) / Math.max(Math.sqrt(noise2), EPS));
}

async function* limited(source: BatchSource, max: number): AsyncGenerator<Float32Array> {
  if (max <= 0) return;
  let n = 0;
  for await (const b of source) {
    yield b;
    if (++n >= max) return;
  }
}

/**
 * Per-tensor quantization error, like onnxruntime's `qdq_loss_debug`: the float model and the QDQ
 * model run on the same inputs with the activations of interest as extra outputs, each float tensor
 * is compared with its dequantized copy, and the rows come back worst first (lowest SQNR).
 * @example
 * const rows = await sensitivityReport(model, int8, calib, { inputShape: [1, 3, 640, 640], maxBatches: 8 });
 * console.log(formatSensitivityTable(rows, { limit: 20 }));
 */
export async function sensitivityReport(
  floatModel: ModelProto,
  qdqModel: ModelProto,
  inputs: BatchSource,
  options: SensitivityOptions,
): Promise<SensitivityRow[]> {
  checkInputShape(options.inputShape);
  const inputName = resolveInput(floatModel, options.inputName);
  resolveInput(qdqModel, inputName);
  let pairs = pairTensors(floatModel, qdqModel);
  if (options.tensors) {
    const wanted = new Set(options.tensors);
    pairs = pairs.filter((p) => wanted.has(p.tensor));
  }
  if (pairs.length === 0) throw new QuantError('QUANT_MODEL_INVALID', 'the QDQ model has no quantized activations matching the float model');

  const floatFetch = pairs.map((p) => p.tensor);
  const qdqFetch = [...new Set(pairs.flatMap((p) => [p.pre, p.post]))];
  const sessionOptions: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'basic', ...options.sessionOptions };
  const floatSession = await openSession(withExtraOutputs(floatModel, floatFetch), sessionOptions);
  let qdqSession: ort.InferenceSession | undefined;
  const acc = new Map<string, Accum>(pairs.map((p) => [p.tensor, { x2: 0, d2: 0, maxAbs: 0, p2: 0, pd2: 0 }]));
  let batches = 0;
  try {
    qdqSession = await openSession(withExtraOutputs(qdqModel, qdqFetch), sessionOptions);
    for await (const batch of limited(inputs, options.maxBatches ?? Infinity)) {
      const feeds = { [inputName]: batchTensor(batch, options.inputShape, batches) };
      const ref = new Map<string, Float32Array>();
      await runAndVisit(floatSession, feeds, floatFetch, (name, v) => ref.set(name, v.slice()));
      const qdq = new Map<string, Float32Array>();
      await runAndVisit(qdqSession, feeds, qdqFetch, (name, v) => qdq.set(name, v.slice()));
      for (const p of pairs) {
        const x = ref.get(p.tensor)!;
        const y = qdq.get(p.post)!;
        const pre = qdq.get(p.pre)!;
        if (x.length !== y.length || pre.length !== y.length) {
          throw new QuantError('QUANT_INPUT_MISMATCH', `tensor '${p.tensor}' has ${x.length} values in the float model and ${y.length} in the QDQ model`);
        }
        const a = acc.get(p.tensor)!;
        for (let i = 0; i < x.length; i++) {
          const d = x[i] - y[i];
          a.x2 += x[i] * x[i];
          a.d2 += d * d;
          if (Math.abs(d) > a.maxAbs) a.maxAbs = Math.abs(d);
          const e = pre[i] - y[i];
          a.p2 += pre[i] * pre[i];
          a.pd2 += e * e;
        }
      }
      batches++;
    }
  } finally {
    await floatSession.release();
    await qdqSession?.release();
  }
  if (batches === 0) throw new QuantError('QUANT_CALIBRATION_EMPTY', 'sensitivity report got no input batches');

  const producers = producerMap(requireGraph(floatModel));
  const rows = pairs.map((p): SensitivityRow => {
    const a = acc.get(p.tensor)!;
    const node = producers.get(p.tensor);
    return {
      tensor: p.tensor,
      node: node ? node.name : '',
      opType: node ? node.opType : 'input',
      sqnrDb: sqnr(a.x2, a.d2),
      relL2: Math.sqrt(a.d2) / Math.max(Math.sqrt(a.x2), EPS),
      maxAbs: a.maxAbs,
      qdqSqnrDb: sqnr(a.p2, a.pd2),
    };
  });
  return rows.sort((a, b) => a.sqnrDb - b.sqnrDb);
}

/** Options of {@link formatSensitivityTable}. */
export interface SensitivityTableOptions {
  /** Show only the first rows (the worst ones). */
  limit?: number;
}

/**
 * The rows as a plain-text table (tensor, op, SQNR dB, rel. L2, max |err|), worst first as given.
 * @example console.log(formatSensitivityTable(rows, { limit: 10 }));
 */
export function formatSensitivityTable(rows: readonly SensitivityRow[], options: SensitivityTableOptions = {}): string {
  const shown = options.limit === undefined ? rows : rows.slice(0, options.limit);
  const head = ['tensor', 'op', 'SQNR dB', 'rel L2', 'max |err|', 'QDQ SQNR dB'];
  const cells = shown.map((r) => [
    r.tensor,
    r.opType,
    r.sqnrDb.toFixed(1),
    r.relL2.toExponential(2),
    r.maxAbs.toExponential(2),
    r.qdqSqnrDb.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string =>
    c.map((v, i) => (i < 2 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  if (shown.length < rows.length) out.push(`... ${rows.length - shown.length} more`);
  return out.join('\n');
}
