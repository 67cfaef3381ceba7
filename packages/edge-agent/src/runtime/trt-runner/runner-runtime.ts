import { randomBytes } from 'node:crypto';
import { Detector, type DetectorModel, type DetectorOptions, type TensorLike } from '../../serve/detector.js';
import { TENSOR_DTYPES, type TensorDtype, type TensorSpec } from './protocol.js';
import type { RunnerSupervisor } from './runner-supervisor.js';
import { layoutRegions, ShmRegion, type RegionLayout } from './shm-region.js';
import { TrtRunnerError } from './trt-runner-error.js';

/** Options of {@link TrtRunnerRuntime.load}. */
export interface TrtRunnerRuntimeOptions {
  /** Key of the engine in the runner (default a fresh unique one, so two runtimes never share a key). */
  engineKey?: string;
  /** Directory of the shared-memory file; must be the runner's `--shm-dir` (default /dev/shm). */
  shmDir?: string;
  /** Name of the shared-memory file (default `kd-trt-<pid>-<random>`); the agent names its own so it can clean them up. */
  shmName?: string;
  /** Per-inference timeout passed to the supervisor. */
  timeoutMs?: number;
}

/** One output as {@link TrtRunnerRuntime.run} returns it: a typed array of its dtype (float16 as raw Uint16Array). */
export interface TrtRunnerOutput extends TensorLike {
  dims: number[];
  data: Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
}

function typed(bytes: Uint8Array, dtype: TensorDtype): TrtRunnerOutput['data'] {
  const n = bytes.byteLength / TENSOR_DTYPES[dtype];
  switch (dtype) {
    case 'float32': return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'float16': return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    case 'int8': return new Int8Array(bytes.buffer, bytes.byteOffset, n);
    case 'int32': return new Int32Array(bytes.buffer, bytes.byteOffset, n);
    case 'int64': return new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
    case 'uint8':
    case 'bool': return bytes;
  }
}

/**
 * One engine in a supervised runner, with its own shared-memory file, shaped like the agent's `OrtRuntime`
 * (`inputs`, `outputs`, `run(data, dims)`, `dispose()`) so a {@link Detector} can serve through it. Runs on one
 * runtime are sent one at a time (they share the file); a runner crash under a run is retried by the supervisor.
 */
export class TrtRunnerRuntime {
  readonly engineKey: string;
  /** The engine (or, in the stand-in, .onnx) file. */
  readonly path: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly #supervisor: RunnerSupervisor;
  readonly #shm: ShmRegion;
  readonly #layout: RegionLayout;
  readonly #timeoutMs: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #disposed: Promise<void> | undefined;

  private constructor(supervisor: RunnerSupervisor, key: string, path: string, inputs: TensorSpec[], outputs: TensorSpec[], shm: ShmRegion, layout: RegionLayout, timeoutMs?: number) {
    this.#supervisor = supervisor;
    this.engineKey = key;
    this.path = path;
    this.inputs = inputs;
    this.outputs = outputs;
    this.#shm = shm;
    this.#layout = layout;
    this.#timeoutMs = timeoutMs;
  }

  /** Loads `path` into the supervised runner and makes its shared-memory file. Throws the runner's error when it does not load. */
  static async load(supervisor: RunnerSupervisor, path: string, options: TrtRunnerRuntimeOptions = {}): Promise<TrtRunnerRuntime> {
    const key = options.engineKey ?? `e-${randomBytes(6).toString('hex')}`;
    const loaded = await supervisor.load(key, path);
    try {
      const layout = layoutRegions(loaded.inputs, loaded.outputs);
      const shm = await ShmRegion.create({ dir: options.shmDir, name: options.shmName, size: layout.size });
      return new TrtRunnerRuntime(supervisor, key, path, loaded.inputs, loaded.outputs, shm, layout, options.timeoutMs);
    } catch (e) {
      await supervisor.unload(key).catch(() => undefined);
      throw e;
    }
  }

  /** The shared-memory file's path (for logs and tests). */
  get shmPath(): string {
    return this.#shm.path;
  }

  /**
   * Feeds `data` to the first input (float32, dims equal to the engine's) and returns every output by name.
   * Throws TRT_RUNNER_INPUT_INVALID for wrong dims or data, the runner's or supervisor's errors otherwise.
   */
  run(data: Float32Array, dims: readonly number[]): Promise<Record<string, TrtRunnerOutput>> {
    const next = this.#queue.then(() => this.#run(data, dims));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #run(data: Float32Array, dims: readonly number[]): Promise<Record<string, TrtRunnerOutput>> {
    if (this.#disposed !== undefined) throw new TrtRunnerError('TRT_RUNNER_CLOSED', `engine '${this.engineKey}' has been disposed`);
    const input = this.inputs[0]!;
    const region = this.#layout.inputs[0]!;
    if (input.dtype !== 'float32') throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `input '${input.name}' is ${input.dtype}; run() feeds float32`);
    if (this.inputs.length !== 1) throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `the engine has ${this.inputs.length} inputs; run() feeds one`);
    if (!(data instanceof Float32Array)) throw new TypeError('data must be a Float32Array');
    if (dims.length !== input.shape.length || dims.some((d, i) => d !== input.shape[i])) {
      throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `input '${input.name}' has shape [${input.shape.join(', ')}], got [${dims.join(', ')}]`);
    }
    if (data.byteLength !== region.bytes) {
      throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `input '${input.name}' takes ${region.bytes / 4} values, got ${data.length}`);
    }
    await this.#shm.write(region.offset, data);
    const reply = await this.#supervisor.infer(
      { engine: this.engineKey, shm: this.#shm.path, inputs: this.#layout.inputs, outputs: this.#layout.outputs },
      this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs },
    );
    const out: Record<string, TrtRunnerOutput> = {};
    for (const spec of this.outputs) {
      const r = this.#layout.outputs.find((o) => o.name === spec.name)!;
      const got = reply.outputs.find((o) => o.name === spec.name);
      if (got === undefined || got.offset !== r.offset || got.bytes !== r.bytes) {
        throw new TrtRunnerError('TRT_RUNNER_PROTOCOL', `the result does not name output '${spec.name}' where it was asked for`);
      }
      out[spec.name] = { dims: [...got.shape], data: typed(await this.#shm.read(r.offset, r.bytes), spec.dtype) };
    }
    return out;
  }

  /** Unloads the engine (after runs in progress) and removes the shared-memory file. Safe to call twice. */
  dispose(): Promise<void> {
    this.#disposed ??= this.#queue.then(async () => {
      try {
        await this.#supervisor.unload(this.engineKey);
      } catch {
        // A supervisor that gave up or closed holds no engine.
      }
      await this.#shm.close();
    });
    return this.#disposed;
  }
}

/**
 * A {@link Detector} (letterbox, YOLO decode, NMS) that runs its model in the supervised TensorRT runner: the same
 * interface as the ONNX Runtime detector, so a `ModelSlot` can serve through either. Disposing it unloads the engine.
 * @example
 * const detector = await openRunnerDetector(supervisor, '/var/lib/kd-agent/engines/m.engine', manifest);
 * const { detections } = await detector.detect(jpeg);
 */
export async function openRunnerDetector(
  supervisor: RunnerSupervisor, path: string, model: DetectorModel, options: DetectorOptions & TrtRunnerRuntimeOptions = {},
): Promise<Detector> {
  const runtime = await TrtRunnerRuntime.load(supervisor, path, options);
  try {
    return new Detector(runtime, model, options);
  } catch (e) {
    await runtime.dispose();
    throw e;
  }
}
