import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrtBuildError } from './trt-build-error.js';

/**
 * Where TensorRT's headers are searched when no folder is given: JetPack's (`libnvinfer-dev`), as in the runner's
 * Makefile, then NVIDIA's x86-64 Debian packages, then `/usr/include`.
 */
export const DEFAULT_TENSORRT_INCLUDE_DIRS: readonly string[] = ['/usr/include/aarch64-linux-gnu', '/usr/include/x86_64-linux-gnu', '/usr/include'];
/** Where `libnvinfer.so` is searched when no folder is given (JetPack's first). */
export const DEFAULT_TENSORRT_LIB_DIRS: readonly string[] = ['/usr/lib/aarch64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/usr/lib'];
/** Where CUDA's `cuda_runtime_api.h` is searched when no folder is given. */
export const DEFAULT_CUDA_INCLUDE_DIRS: readonly string[] = ['/usr/local/cuda/include'];
/** Where `libcudart.so` is searched when no folder is given. */
export const DEFAULT_CUDA_LIB_DIRS: readonly string[] = ['/usr/local/cuda/lib64'];

/** The two TensorRT API generations the runner's one source builds for (see docs/trt-runner.md). */
export type TensorrtApi = 'bindings' | 'tensors';

/** The TensorRT version a `NvInferVersion.h` declares, and what the runner builds for it. */
export interface TensorrtHeaderVersion {
  major: number;
  minor: number;
  patch: number;
  /** `8.2.1`: what the runner's hello reports as `version`. */
  version: string;
  /** `bindings` below 8.5 (enqueueV2), `tensors` from 8.5 (enqueueV3): the runner's hello `api`. */
  api: TensorrtApi;
  /** kd-edge's own compat declarations (`KD_COMPAT_TENSORRT_HEADERS`), not NVIDIA's: a compile check, not TensorRT. */
  compatHeaders: boolean;
}

/** The API generation the runner compiles for TensorRT `major.minor` (the same test as engine.cpp's). */
export function tensorrtApi(major: number, minor: number): TensorrtApi {
  return major > 8 || (major === 8 && minor >= 5) ? 'tensors' : 'bindings';
}

/** One line for people: `bindings API (enqueueV2)` or `tensor-name API (enqueueV3)`. */
export function describeTensorrtApi(api: TensorrtApi): string {
  return api === 'tensors' ? 'tensor-name API (enqueueV3)' : 'binding API (enqueueV2)';
}

/**
 * Reads NV_TENSORRT_MAJOR/MINOR/PATCH from the text of `NvInferVersion.h`, or undefined when one is missing. Values
 * may go through other macros, as from TensorRT 10.11 (`#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE`).
 */
export function parseTensorrtVersionHeader(text: string): TensorrtHeaderVersion | undefined {
  const defines = new Map<string, string>();
  const code = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/.*$/gm, '');
  for (const m of code.matchAll(/^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?:[ \t]+([^\s]+))?/gm)) {
    if (!defines.has(m[1]!)) defines.set(m[1]!, m[2] ?? '');
  }
  const resolve = (name: string): number | undefined => {
    let value = defines.get(name);
    // A few levels of macro-to-macro, never a loop.
    for (let depth = 0; depth < 8 && value !== undefined; depth++) {
      const v = value.replace(/^\((.*)\)$/, '$1');
      if (/^\d+$/.test(v)) return Number(v);
      if (!/^[A-Za-z_]\w*$/.test(v)) return undefined;
      value = defines.get(v);
    }
    return undefined;
  };
  const major = resolve('NV_TENSORRT_MAJOR');
  const minor = resolve('NV_TENSORRT_MINOR');
  const patch = resolve('NV_TENSORRT_PATCH');
  if (major === undefined || minor === undefined || patch === undefined) return undefined;
  return { major, minor, patch, version: `${major}.${minor}.${patch}`, api: tensorrtApi(major, minor), compatHeaders: defines.has('KD_COMPAT_TENSORRT_HEADERS') };
}

/** Reads and parses `<dir>/NvInferVersion.h`; AGENT_TRT_BUILD_VERSION_UNREADABLE when it declares no version. */
export async function readTensorrtVersion(includeDir: string): Promise<TensorrtHeaderVersion> {
  const file = join(includeDir, 'NvInferVersion.h');
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new TrtBuildError('AGENT_TRT_BUILD_VERSION_UNREADABLE', `${file}: cannot read it (${err.code ?? err.message})`, { cause: err });
  });
  const version = parseTensorrtVersionHeader(text);
  if (version === undefined) {
    throw new TrtBuildError('AGENT_TRT_BUILD_VERSION_UNREADABLE', `${file} does not define NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR and NV_TENSORRT_PATCH as numbers`);
  }
  if (version.major < 8) {
    throw new TrtBuildError('AGENT_TRT_BUILD_UNSUPPORTED_VERSION', `${file} is TensorRT ${version.version}; the runner builds for TensorRT 8.0 and later (JetPack 4.6 or newer)`);
  }
  return version;
}

/**
 * The first of `dirs` that holds every one of `files` (regular files, symlinks followed). Throws
 * AGENT_TRT_BUILD_HEADERS_NOT_FOUND (or `code`) naming what was looked for, every folder searched and the flag that
 * sets it.
 */
export async function findDirWith(
  what: string, dirs: readonly string[], files: readonly string[], flag: string, code: 'AGENT_TRT_BUILD_HEADERS_NOT_FOUND' | 'AGENT_TRT_BUILD_LIBS_NOT_FOUND' = 'AGENT_TRT_BUILD_HEADERS_NOT_FOUND',
): Promise<string> {
  for (const dir of dirs) {
    const present = await Promise.all(files.map((f) => stat(join(dir, f)).then((s) => s.isFile(), () => false)));
    if (present.every(Boolean)) return dir;
  }
  throw new TrtBuildError(code, `${what}: no ${files.join(' + ')} in ${dirs.join(', ')} (searched in that order); give the folder with ${flag}`);
}
