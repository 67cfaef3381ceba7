import { readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { join } from 'node:path';
import { parseManifest, type Manifest, type ManifestModel } from '@kd-edge/core';
import { ortRuntimeInfo } from '../runtime/ort-info.js';
import { OrtRuntime } from '../runtime/ort-runtime.js';
import { pickTarget, type PickedTarget, type TargetFacts } from './pick-target.js';
import { Detector } from '../serve/detector.js';
import type { RunnerSupervisor } from '../runtime/trt-runner/runner-supervisor.js';
import { TrtRunnerRuntime } from '../runtime/trt-runner/runner-runtime.js';
import type { StoredVersion } from '../store/model-store.js';
import { AgentError } from '../errors.js';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** ONNX Runtime execution providers, most preferred first. */
  providers: readonly string[];
  /** intra-op threads (0: ONNX Runtime's default). */
  threads?: number;
  conf?: number;
  iou?: number;
  /** Untimed runs after loading, so the first real frame does not pay for lazy initialisation (default 2). */
  warmup?: number;
  /**
   * The device facts that pick the file to serve (see {@link pickTarget}): the agent passes its own (those its status
   * reports). Each one left out is `os.arch()`, no TensorRT, the first of `providers` ONNX Runtime has.
   */
  facts?: Partial<TargetFacts>;
  /** Serve through the TensorRT runner when it is up and {@link RunnerServing.engine} names an engine. */
  runner?: RunnerServing;
}

/** How {@link loadModel} serves through the supervised TensorRT runner (`runtime.trtRunner`). */
export interface RunnerServing {
  supervisor: RunnerSupervisor;
  /** The runner's `--shm-dir`. */
  shmDir: string;
  /** Name of each engine's shared-memory file (the agent's own scheme, so it can clean up after a kill). */
  shmName?: () => string;
  /**
   * The file the runner loads for this version (an engine built by trtexec; the .onnx file for the stand-in), or
   * undefined when there is none and ONNX Runtime serves.
   */
  engine(stored: StoredVersion, manifest: Manifest, onnxFile: string): Promise<string | undefined>;
  /** Told when the runner was up but the engine did not load into it (ONNX Runtime serves instead). */
  onError?(error: Error): void;
}

/** Which runtime serves a loaded model: the TensorRT runner (or its stand-in), or ONNX Runtime in-process. */
export type ServingRuntime = 'tensorrt-runner' | 'onnxruntime';

/** What a {@link LoadedModel} tells of the runtime under its detector. */
export interface LoadedRuntime {
  readonly inputs: readonly { name: string }[];
  /** ONNX Runtime's execution provider, or the runner's `<runner> <impl> <version>`. */
  readonly executionProvider: string;
}

/** A stored version loaded and warmed up: what serves inference and what the benchmark measures. */
export interface LoadedModel {
  stored: StoredVersion;
  manifest: Manifest;
  /** The package's model entry that was loaded: the one {@link pickTarget} chose for this device. */
  model: ManifestModel;
  /** Why that file, and what TensorRT would serve on this device. */
  target: PickedTarget;
  runtime: LoadedRuntime;
  /** Which runtime serves it. */
  serving: ServingRuntime;
  /** For `tensorrt-runner`: whether the runner computes with TensorRT (false for the ONNX Runtime stand-in). */
  tensorrt: boolean;
  detector: Detector;
}

/** The facts {@link loadModel} picks with: the given ones, else `os.arch()`, no TensorRT and the first provider ONNX Runtime has. */
export function targetFacts(options: Pick<LoadModelOptions, 'providers' | 'facts'>): TargetFacts {
  const available = ortRuntimeInfo().executionProviders;
  return {
    arch: options.facts?.arch ?? arch(),
    tensorrt: options.facts?.tensorrt ?? null,
    executionProvider: options.facts?.executionProvider ?? options.providers.find((p) => available.includes(p)) ?? 'cpu',
  };
}

/**
 * Loads the model file of a stored version that serves on this device ({@link pickTarget}: U8S8 int8 on x86-64,
 * S8S8 on ARM64, fp32 otherwise, as the manifest's targets say; the default model for packages without targets) in
 * ONNX Runtime with the first execution provider that works, wraps it in a {@link Detector} and warms it up. Fails
 * with AGENT_LOAD_FAILED naming the file and why; nothing is left open on failure.
 */
export async function loadModel(stored: StoredVersion, options: LoadModelOptions): Promise<LoadedModel> {
  let manifest: Manifest;
  try {
    manifest = parseManifest(JSON.parse(await readFile(join(stored.dir, 'manifest.json'), 'utf8')));
  } catch (err) {
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: manifest.json: ${(err as Error).message}`, { cause: err });
  }
  const target = pickTarget(manifest, targetFacts(options));
  const model = target.model;
  const file = join(stored.dir, model.file);
  const viaRunner = options.runner === undefined ? undefined : await loadInRunner(options.runner, stored, manifest, file, options);
  if (viaRunner !== undefined) return { stored, manifest, model, target, ...viaRunner };
  let runtime: OrtRuntime;
  try {
    runtime = await OrtRuntime.load(file, {
      executionProviders: options.providers,
      sessionOptions: options.threads ? { intraOpNumThreads: options.threads } : {},
    });
  } catch (err) {
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: ${model.file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const detector = new Detector(runtime, manifest, { conf: options.conf, iou: options.iou });
    await warmUp(detector, options.warmup ?? 2);
    return { stored, manifest, model, target, runtime, serving: 'onnxruntime', tensorrt: false, detector };
  } catch (err) {
    await runtime.dispose();
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: ${model.file} loads but does not run: ${(err as Error).message}`, { cause: err });
  }
}

async function warmUp(detector: Detector, runs: number): Promise<void> {
  const [h, w] = detector.inputSize;
  const blank = { data: Buffer.alloc(w * h * 3, 114), width: w, height: h, channels: 3 as const };
  for (let i = 0; i < runs; i++) await detector.detect(blank);
}

/**
 * Loads the version's engine into the runner and warms it up, or returns undefined (ONNX Runtime serves) when the
 * runner is not up, there is no engine, or the engine does not load or run there.
 */
async function loadInRunner(
  runner: RunnerServing, stored: StoredVersion, manifest: Manifest, onnxFile: string, options: LoadModelOptions,
): Promise<Pick<LoadedModel, 'runtime' | 'serving' | 'tensorrt' | 'detector'> | undefined> {
  const hello = runner.supervisor.hello;
  if (runner.supervisor.state !== 'ready' || hello === undefined) return undefined;
  let rt: TrtRunnerRuntime | undefined;
  try {
    const engine = await runner.engine(stored, manifest, onnxFile);
    if (engine === undefined) return undefined;
    rt = await TrtRunnerRuntime.load(runner.supervisor, engine, { shmDir: runner.shmDir, shmName: runner.shmName?.() });
    const detector = new Detector(rt, manifest, { conf: options.conf, iou: options.iou });
    await warmUp(detector, options.warmup ?? 2);
    const runtime: LoadedRuntime = { inputs: rt.inputs, executionProvider: `${hello.runner} ${hello.impl} ${hello.version}`.slice(0, 64) };
    return { runtime, serving: 'tensorrt-runner', tensorrt: hello.impl === 'tensorrt', detector };
  } catch (err) {
    await rt?.dispose().catch(() => undefined);
    runner.onError?.(new AgentError('AGENT_LOAD_FAILED', `${stored.key}: the TensorRT runner does not serve it (${(err as Error).message}); ONNX Runtime serves`, { cause: err }));
    return undefined;
  }
}
