import * as ort from 'onnxruntime-node';
import { silentLogger, type Logger } from '@kd-edge/core';
import { RuntimeError } from './runtime-error.js';

/** An execution provider by name (`'tensorrt'`, `'cuda'`, `'cpu'`, …) or with its ORT options. */
export type ExecutionProviderPreference = string | ort.InferenceSession.ExecutionProviderConfig;

/** The default preference: TensorRT, then CUDA, then the CPU. */
export const DEFAULT_EXECUTION_PROVIDERS: readonly string[] = ['tensorrt', 'cuda', 'cpu'];

/** Options of {@link OrtRuntime.load}. */
export interface OrtRuntimeOptions {
  /** Providers to try in order; the first that creates a session wins (default {@link DEFAULT_EXECUTION_PROVIDERS}). */
  executionProviders?: readonly ExecutionProviderPreference[];
  /** Other session options (threads, graph optimisation); `executionProviders` here is ignored. */
  sessionOptions?: Omit<ort.InferenceSession.SessionOptions, 'executionProviders'>;
  logger?: Logger;
}

/** One provider that could not create a session, and why. */
export interface ProviderFailure {
  provider: string;
  message: string;
}

/** Name, element type and shape (numbers, or names for symbolic dims) of a model input or output. */
export interface OrtValueInfo {
  name: string;
  type: string;
  shape: readonly (number | string)[];
}

/** One output of {@link OrtRuntime.run}, copied out of ORT (the native tensor is released). */
export interface OrtOutput {
  type: string;
  dims: readonly number[];
  data: ort.Tensor['data'];
}

function providerName(p: ExecutionProviderPreference): string {
  return typeof p === 'string' ? p : p.name;
}

function valueInfo(meta: readonly ort.InferenceSession.ValueMetadata[], names: readonly string[]): OrtValueInfo[] {
  return names.map((name) => {
    const m = meta.find((x) => x.name === name);
    if (m === undefined || !m.isTensor) return { name, type: 'unknown', shape: [] };
    return { name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d))) };
  });
}

/**
 * An ONNX model loaded in onnxruntime-node with the first execution provider of a preference list that works.
 * ORT adds its CPU provider behind the chosen one by itself, so nodes the chosen provider cannot run still run.
 * @example
 * const rt = await OrtRuntime.load('model.onnx', { executionProviders: ['cuda', 'cpu'] });
 * const out = await rt.run(pixels, [1, 3, 320, 320]);
 * await rt.dispose();
 */
export class OrtRuntime {
  /** Provider the session was created with. */
  readonly executionProvider: string;
  /** Providers tried before it that failed, in order. */
  readonly failures: readonly ProviderFailure[];
  readonly inputs: readonly OrtValueInfo[];
  readonly outputs: readonly OrtValueInfo[];
  #session: ort.InferenceSession | undefined;

  private constructor(session: ort.InferenceSession, provider: string, failures: ProviderFailure[]) {
    this.#session = session;
    this.executionProvider = provider;
    this.failures = failures;
    this.inputs = valueInfo(session.inputMetadata, session.inputNames);
    this.outputs = valueInfo(session.outputMetadata, session.outputNames);
  }

  /**
   * Creates a session with each provider in turn until one works. Throws a {@link RuntimeError}
   * `RUNTIME_LOAD_FAILED` listing every provider's failure when none does.
   */
  static async load(modelPath: string, options: OrtRuntimeOptions = {}): Promise<OrtRuntime> {
    if (typeof modelPath !== 'string' || modelPath === '') throw new TypeError('modelPath must be a non-empty string');
    const prefs = options.executionProviders ?? DEFAULT_EXECUTION_PROVIDERS;
    if (!Array.isArray(prefs) || prefs.length === 0) {
      throw new RangeError('executionProviders must be a non-empty array of provider names or configs');
    }
    const log = options.logger ?? silentLogger;
    const failures: ProviderFailure[] = [];
    for (const pref of prefs) {
      const name = providerName(pref);
      try {
        // One provider per attempt, so a failure is attributed to the provider that caused it.
        const session = await ort.InferenceSession.create(modelPath, {
          ...options.sessionOptions,
          executionProviders: [pref],
        });
        log.info(`onnxruntime: ${modelPath} loaded with ${name}`);
        return new OrtRuntime(session, name, failures);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        failures.push({ provider: name, message });
        log.warn(`onnxruntime: ${name} could not load ${modelPath}: ${message}`);
      }
    }
    throw new RuntimeError(
      'RUNTIME_LOAD_FAILED',
      `no execution provider could load ${modelPath}:\n` + failures.map((f) => `  ${f.provider}: ${f.message}`).join('\n'),
    );
  }

  /** The first input (detectors have one). */
  get input(): OrtValueInfo {
    return this.inputs[0]!;
  }

  /** The first input's dims with every symbolic dim replaced by `fill` (default 1). */
  inputDims(fill = 1): number[] {
    return this.input.shape.map((d) => (typeof d === 'number' ? d : fill));
  }

  /**
   * Runs the model on one float32 tensor fed to the first input and returns every output by name. Throws
   * `RUNTIME_INPUT_INVALID` when dims disagree with the data or the model, `RUNTIME_RUN_FAILED` when ORT fails.
   */
  async run(data: Float32Array, dims: readonly number[]): Promise<Record<string, OrtOutput>> {
    const session = this.#session;
    if (session === undefined) throw new RuntimeError('RUNTIME_DISPOSED', 'the runtime has been disposed');
    if (!(data instanceof Float32Array)) throw new TypeError('data must be a Float32Array');
    if (!Array.isArray(dims) || dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new RangeError(`dims must be positive integers, got ${JSON.stringify(dims)}`);
    }
    const input = this.input;
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new RuntimeError('RUNTIME_INPUT_INVALID', `dims ${dims.join('x')} hold ${count} values, data has ${data.length}`);
    }
    if (input.shape.length > 0) {
      const bad = input.shape.length !== dims.length || input.shape.some((d, i) => typeof d === 'number' && d !== dims[i]);
      if (bad) {
        throw new RuntimeError(
          'RUNTIME_INPUT_INVALID',
          `input ${input.name} expects shape [${input.shape.join(', ')}], got [${dims.join(', ')}]`,
        );
      }
    }
    const feed = new ort.Tensor('float32', data, dims);
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await session.run({ [input.name]: feed });
    } catch (e) {
      throw new RuntimeError('RUNTIME_RUN_FAILED', `onnxruntime run failed: ${(e as Error).message}`, { cause: e });
    }
    const out: Record<string, OrtOutput> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { type: t.type, dims: [...t.dims], data: t.data };
    }
    return out;
  }

  /** Releases the native session; later runs throw `RUNTIME_DISPOSED`. Safe to call twice. */
  async dispose(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined) await session.release();
  }
}
