import { readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { join } from 'node:path';
import { parseManifest, type Manifest, type ManifestModel } from '@kd-edge/core';
import { ortRuntimeInfo } from '../runtime/ort-info.js';
import { OrtRuntime } from '../runtime/ort-runtime.js';
import { lastDeviceFacts } from '../status/device-facts.js';
import { pickTarget, type PickedTarget, type TargetFacts } from './pick-target.js';
import { Detector } from '../serve/detector.js';
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
   * The device facts that pick the file to serve (see {@link pickTarget}); each one left out is this process's:
   * `os.arch()`, the TensorRT version of the last `deviceFacts()` call, the first of `providers` ONNX Runtime has.
   */
  facts?: Partial<TargetFacts>;
}

/** A stored version loaded and warmed up: what serves inference and what the benchmark measures. */
export interface LoadedModel {
  stored: StoredVersion;
  manifest: Manifest;
  /** The package's model entry that was loaded: the one {@link pickTarget} chose for this device. */
  model: ManifestModel;
  /** Why that file, and what TensorRT would serve on this device. */
  target: PickedTarget;
  runtime: OrtRuntime;
  detector: Detector;
}

/** The facts {@link loadModel} picks with: the given ones, else this process's. */
export function targetFacts(options: Pick<LoadModelOptions, 'providers' | 'facts'>): TargetFacts {
  const available = ortRuntimeInfo().executionProviders;
  return {
    arch: options.facts?.arch ?? arch(),
    tensorrt: options.facts?.tensorrt !== undefined ? options.facts.tensorrt : (lastDeviceFacts()?.tensorrt ?? null),
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
    const [h, w] = detector.inputSize;
    const blank = { data: Buffer.alloc(w * h * 3, 114), width: w, height: h, channels: 3 as const };
    for (let i = 0; i < (options.warmup ?? 2); i++) await detector.detect(blank);
    return { stored, manifest, model, target, runtime, detector };
  } catch (err) {
    await runtime.dispose();
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: ${model.file} loads but does not run: ${(err as Error).message}`, { cause: err });
  }
}
