import * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/encode.js';
import { DataType, type ModelProto } from '../onnx/types.js';
import { cloneModel, requireGraph } from './graph-index.js';
import { QuantError } from './quant-error.js';

/** Calibration or evaluation inputs: float32 batches of one input, in any iterable form. */
export type BatchSource = Iterable<Float32Array> | AsyncIterable<Float32Array>;

/**
 * A copy of `model` whose graph outputs also include `tensors` (float32, shape left open), so an
 * ORT session returns those intermediate values.
 */
export function withExtraOutputs(model: ModelProto, tensors: readonly string[]): ModelProto {
  const out = cloneModel(model);
  const graph = requireGraph(out);
  const present = new Set(graph.output.map((o) => o.name));
  for (const name of tensors) {
    if (present.has(name)) continue;
    present.add(name);
    graph.output.push({ name, type: { tensorType: { elemType: DataType.FLOAT } } });
  }
  return out;
}

/** The one input batches are fed to: `inputName`, or the model's only non-initializer input. */
export function resolveInput(model: ModelProto, inputName: string | undefined): string {
  const graph = requireGraph(model);
  const inits = new Set(graph.initializer.map((t) => t.name));
  const inputs = graph.input.map((v) => v.name).filter((n) => !inits.has(n));
  if (inputName !== undefined) {
    if (!inputs.includes(inputName)) {
      throw new QuantError('QUANT_INPUT_MISMATCH', `model has no input '${inputName}' (inputs: ${inputs.join(', ')})`);
    }
    if (inputs.length > 1) {
      throw new QuantError('QUANT_INPUT_MISMATCH', `model has ${inputs.length} inputs (${inputs.join(', ')}); only single-input models are supported`);
    }
    return inputName;
  }
  if (inputs.length !== 1) {
    throw new QuantError('QUANT_INPUT_MISMATCH', `model has ${inputs.length} inputs (${inputs.join(', ')}); only single-input models are supported`);
  }
  return inputs[0];
}

/** Opens an onnxruntime-node CPU session on an in-memory model. */
export async function openSession(model: ModelProto, options: ort.InferenceSession.SessionOptions = {}): Promise<ort.InferenceSession> {
  try {
    // Severity 3 (errors only): ORT's load-time warnings would otherwise go straight to stderr.
    return await ort.InferenceSession.create(encodeModel(model), { executionProviders: ['cpu'], logSeverityLevel: 3, ...options });
  } catch (cause) {
    throw new QuantError('QUANT_RUNTIME_FAILED', `onnxruntime could not load the model: ${String(cause)}`, { cause });
  }
}

/** Wraps one batch as the float32 tensor `shape` describes, checking the element count. */
export function batchTensor(batch: Float32Array, shape: readonly number[], index: number): ort.Tensor {
  if (!(batch instanceof Float32Array)) throw new TypeError(`batch ${index} must be a Float32Array`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (batch.length !== n) {
    throw new QuantError('QUANT_INPUT_MISMATCH', `batch ${index} has ${batch.length} values; inputShape [${shape.join(', ')}] needs ${n}`);
  }
  return new ort.Tensor('float32', batch, [...shape]);
}

/** Checks an input shape: positive integers. */
export function checkInputShape(shape: unknown): asserts shape is readonly number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new TypeError(`inputShape must be an array of positive integers, got ${JSON.stringify(shape)}`);
  }
}

/** Runs `session` and hands each fetched float output to `use`, then frees every output. */
export async function runAndVisit(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches: readonly string[],
  use: (name: string, values: Float32Array) => void,
): Promise<void> {
  let results: ort.InferenceSession.ReturnType;
  try {
    results = await session.run(feeds, [...fetches]);
  } catch (cause) {
    throw new QuantError('QUANT_RUNTIME_FAILED', `onnxruntime failed to run the model: ${String(cause)}`, { cause });
  }
  try {
    for (const name of fetches) {
      const t = results[name];
      if (t.type !== 'float32') throw new QuantError('QUANT_MODEL_INVALID', `tensor '${name}' is ${t.type}, not float32`);
      use(name, t.data as Float32Array);
    }
  } finally {
    for (const t of Object.values(results)) t.dispose();
  }
}
