import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultModel, parseManifest, type Manifest, type ManifestModel } from '@kd-edge/core';
import { OrtRuntime } from '../runtime/ort-runtime.js';
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
}

/** A stored version loaded and warmed up: what serves inference and what the benchmark measures. */
export interface LoadedModel {
  stored: StoredVersion;
  manifest: Manifest;
  /** The package's model entry that was loaded (the manifest's default). */
  model: ManifestModel;
  runtime: OrtRuntime;
  detector: Detector;
}

/**
 * Loads a stored version's default model in ONNX Runtime with the first execution provider that works,
 * wraps it in a {@link Detector} and warms it up. Fails with AGENT_LOAD_FAILED naming the file and why;
 * nothing is left open on failure.
 */
export async function loadModel(stored: StoredVersion, options: LoadModelOptions): Promise<LoadedModel> {
  let manifest: Manifest;
  try {
    manifest = parseManifest(JSON.parse(await readFile(join(stored.dir, 'manifest.json'), 'utf8')));
  } catch (err) {
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: manifest.json: ${(err as Error).message}`, { cause: err });
  }
  const model = defaultModel(manifest);
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
    return { stored, manifest, model, runtime, detector };
  } catch (err) {
    await runtime.dispose();
    throw new AgentError('AGENT_LOAD_FAILED', `${stored.key}: ${model.file} loads but does not run: ${(err as Error).message}`, { cause: err });
  }
}
