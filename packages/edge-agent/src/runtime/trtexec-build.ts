import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseManifest, parseTrtVersion, trtexecArgs, validateTrtPlan, silentLogger, type Logger, type Manifest } from '@kd-edge/core';
import type { TrtPlan } from '@kd-edge/core';
import { pickTensorrt } from '../model/pick-target.js';
import { EngineCache } from './engine-cache.js';
import { RuntimeError } from './runtime-error.js';
import { runTrtexec } from './trtexec-process.js';
import { detectTrtexecVersion } from './trtexec-version.js';

/** The build plan's file name inside a model package. */
export const TRT_PLAN_FILE = 'trt-plan.json';

/** Options of {@link buildEngine}. */
export interface BuildEngineOptions {
  /** trtexec to run (see `locateTrtexec`). */
  trtexec: string;
  /**
   * The extracted, verified package folder: its manifest's `tensorrt` names the plan and calibration cache of each
   * TensorRT version (else the single trt-plan.json and the cache it names).
   */
  packageDir: string;
  /** sha256 of the package tar: part of the cache key. */
  packageSha256: string;
  /** GPU name: part of the cache key (see `detectGpuName`). */
  gpu: string;
  /** Engine cache folder. */
  cacheDir: string;
  /** TensorRT version of `trtexec` (detected with `--help` when absent). */
  trtVersion?: string;
  /** Build even when the cache has the engine. */
  force?: boolean;
  /** Build time limit (default 30 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

/** An engine ready to load: from the cache or just built. */
export interface BuiltEngine {
  enginePath: string;
  cached: boolean;
  trtVersion: string;
  /** The plan as built: precision fp16 and no cache when {@link BuiltEngine.fp16Fallback} says why. */
  plan: TrtPlan;
  /** The plan file used. */
  planFile: string;
  /** Why the engine was built fp16 instead of the plan's int8: the package has no calibration cache for this TensorRT. */
  fp16Fallback?: string;
  /** trtexec arguments of the build (absent when cached). */
  args?: string[];
  /** Build wall time (absent when cached). */
  buildMs?: number;
}

async function readPlan(packageDir: string, planFile: string): Promise<TrtPlan> {
  const file = join(packageDir, planFile);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RuntimeError('RUNTIME_TRTEXEC_PLAN', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return validateTrtPlan(JSON.parse(text));
  } catch (e) {
    throw new RuntimeError('RUNTIME_TRTEXEC_PLAN', `${file}: ${(e as Error).message}`, { cause: e });
  }
}

async function readManifest(packageDir: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(packageDir, 'manifest.json'), 'utf8');
  } catch {
    return undefined; // a bare folder with trt-plan.json (tests, hand-made packages)
  }
  try {
    return parseManifest(JSON.parse(text));
  } catch (e) {
    throw new RuntimeError('RUNTIME_TRTEXEC_PLAN', `${join(packageDir, 'manifest.json')}: ${(e as Error).message}`, { cause: e });
  }
}

const exact = (v: string): string => {
  const { major, minor, patch } = parseTrtVersion(v);
  return `${major}.${minor}.${patch}`;
};

/**
 * The plan to build on a device with TensorRT `trtVersion`: the manifest's entry for that exact version; without
 * one, or when a single plan's cache was written for another version (TensorRT skips a cache whose header is not its
 * own, and trtexec cannot calibrate), the plan built fp16 without the cache, and why.
 */
async function planFor(packageDir: string, trtVersion: string): Promise<{ plan: TrtPlan; planFile: string; fp16Fallback?: string }> {
  const manifest = await readManifest(packageDir);
  const choice = manifest?.tensorrt?.versions !== undefined ? pickTensorrt(manifest, trtVersion) : undefined;
  const planFile = choice?.plan ?? manifest?.tensorrt?.plan ?? TRT_PLAN_FILE;
  const plan = await readPlan(packageDir, planFile);
  let fp16Fallback: string | undefined;
  if (choice?.fp16Fallback) {
    fp16Fallback = choice.reason;
  } else if (choice === undefined && plan.calibCacheFile !== undefined && exact(plan.trtVersion) !== exact(trtVersion)) {
    fp16Fallback = `${planFile}'s calibration cache ${plan.calibCacheFile} is for TensorRT ${plan.trtVersion}, the device has ${trtVersion}: the engine is built fp16`;
  }
  if (fp16Fallback === undefined || plan.precision === 'fp16') return { plan, planFile };
  const { calibCacheFile: _dropped, ...rest } = plan;
  const fp16 = validateTrtPlan({ ...rest, precision: 'fp16', layerPrecisions: plan.layerPrecisions.filter((l) => l.precision !== 'int8') });
  return { plan: fp16, planFile, fp16Fallback };
}

async function requireFile(path: string, what: string): Promise<void> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isFile()) throw new RuntimeError('RUNTIME_TRTEXEC_PLAN', `${what} ${path} named by ${TRT_PLAN_FILE} is missing`);
}

/**
 * Builds the TensorRT engine of a package from its trt-plan.json (and calibration cache) with trtexec, or returns
 * the cached one for the same (package sha256, TensorRT version, GPU). trtexec runs from an argument array (core's
 * `trtexecArgs`, spelled for the device's TensorRT version), never through a shell.
 * @example
 * const { enginePath, cached } = await buildEngine({ trtexec, packageDir, packageSha256, gpu: 'Orin', cacheDir });
 */
export async function buildEngine(options: BuildEngineOptions): Promise<BuiltEngine> {
  const log = options.logger ?? silentLogger;
  const trtVersion = options.trtVersion ?? (await detectTrtexecVersion(options.trtexec, { logger: log, signal: options.signal }));
  const { plan, planFile, fp16Fallback } = await planFor(options.packageDir, trtVersion);
  if (fp16Fallback !== undefined) log.warn(fp16Fallback);
  const cache = new EngineCache(options.cacheDir);
  const key = { packageSha256: options.packageSha256, trtVersion, gpu: options.gpu };
  if (options.force !== true) {
    const hit = await cache.lookup(key, plan.engineFile);
    if (hit !== undefined) {
      log.info(`TensorRT engine from cache: ${hit.enginePath}`);
      return { enginePath: hit.enginePath, cached: true, trtVersion, plan, planFile, ...(fp16Fallback ? { fp16Fallback } : {}) };
    }
  }
  const onnxPath = join(options.packageDir, plan.onnxFile);
  await requireFile(onnxPath, 'ONNX model');
  let calibPath: string | undefined;
  if (plan.calibCacheFile !== undefined) {
    calibPath = join(options.packageDir, plan.calibCacheFile);
    await requireFile(calibPath, 'calibration cache');
  }
  const slot = await cache.reserve(key, plan.engineFile);
  const args = trtexecArgs({ ...plan, trtVersion }, { onnxPath, enginePath: slot.enginePath, ...(calibPath ? { calibPath } : {}) });
  try {
    log.info(`building TensorRT engine (${plan.precision}, TensorRT ${trtVersion}, ${options.gpu})`);
    const run = await runTrtexec(options.trtexec, args, {
      timeoutMs: options.timeoutMs ?? 30 * 60_000,
      signal: options.signal,
      logger: log,
      what: 'engine build',
    });
    const s = await stat(slot.enginePath).catch(() => undefined);
    if (!s?.isFile() || s.size === 0) {
      throw new RuntimeError('RUNTIME_TRTEXEC_FAILED', 'engine build: trtexec exited 0 but wrote no engine', {
        outputTail: run.tail,
      });
    }
    const entry = await slot.commit();
    return { enginePath: entry.enginePath, cached: false, trtVersion, plan, planFile, ...(fp16Fallback ? { fp16Fallback } : {}), args, buildMs: run.durationMs };
  } catch (e) {
    await slot.abort();
    throw e;
  }
}
