import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTrtVersion, trtexecArgs, validateTrtPlan, silentLogger, type Logger } from '@kd-edge/core';
import type { TrtPlan } from '@kd-edge/core';
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
  /** The extracted, verified package folder holding trt-plan.json, the ONNX model and calib.cache. */
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
  plan: TrtPlan;
  /** trtexec arguments of the build (absent when cached). */
  args?: string[];
  /** Build wall time (absent when cached). */
  buildMs?: number;
}

async function readPlan(packageDir: string): Promise<TrtPlan> {
  const file = join(packageDir, TRT_PLAN_FILE);
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
  const plan = await readPlan(options.packageDir);
  const trtVersion = options.trtVersion ?? (await detectTrtexecVersion(options.trtexec, { logger: log, signal: options.signal }));
  const device = parseTrtVersion(trtVersion);
  const planned = parseTrtVersion(plan.trtVersion);
  if (planned.major !== device.major || planned.minor !== device.minor) {
    // The flags are respelled for the device below; the calibration cache header may still be refused by TensorRT.
    log.warn(`trt-plan.json targets TensorRT ${plan.trtVersion}, the device has ${trtVersion}`);
  }
  const cache = new EngineCache(options.cacheDir);
  const key = { packageSha256: options.packageSha256, trtVersion, gpu: options.gpu };
  if (options.force !== true) {
    const hit = await cache.lookup(key, plan.engineFile);
    if (hit !== undefined) {
      log.info(`TensorRT engine from cache: ${hit.enginePath}`);
      return { enginePath: hit.enginePath, cached: true, trtVersion, plan };
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
    return { enginePath: entry.enginePath, cached: false, trtVersion, plan, args, buildMs: run.durationMs };
  } catch (e) {
    await slot.abort();
    throw e;
  }
}
