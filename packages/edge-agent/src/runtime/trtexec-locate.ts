import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { RuntimeError } from './runtime-error.js';

/** Where JetPack and NVIDIA's TensorRT containers install trtexec (it is not on PATH there). */
export const DEFAULT_TRTEXEC_PATHS: readonly string[] = ['/usr/src/tensorrt/bin/trtexec'];

/** Options of {@link locateTrtexec}. */
export interface LocateTrtexecOptions {
  /** An explicit path (from the agent config); when given it must be an executable file, or this throws. */
  path?: string;
  /** The PATH to search (default `process.env.PATH`). */
  envPath?: string;
  /** Searched after PATH (default {@link DEFAULT_TRTEXEC_PATHS}). */
  fallbacks?: readonly string[];
}

/** Whether `file` is a regular file this process may execute. */
export async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const s = await stat(file);
    if (!s.isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable `name` in the directories of a PATH string, or undefined. */
export async function findOnPath(name: string, envPath: string | undefined = process.env.PATH): Promise<string | undefined> {
  for (const dir of (envPath ?? '').split(delimiter)) {
    // An empty PATH entry means the working directory; an agent must not pick up binaries from there.
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Finds trtexec: the explicit path, then PATH, then {@link DEFAULT_TRTEXEC_PATHS}. Returns undefined when there is
 * none (the agent then uses ONNX Runtime); throws `RUNTIME_TRTEXEC_NOT_FOUND` only for a bad explicit path.
 */
export async function locateTrtexec(options: LocateTrtexecOptions = {}): Promise<string | undefined> {
  if (options.path !== undefined) {
    if (await isExecutableFile(options.path)) return options.path;
    throw new RuntimeError('RUNTIME_TRTEXEC_NOT_FOUND', `trtexec path ${JSON.stringify(options.path)} is not an executable file`);
  }
  const onPath = await findOnPath('trtexec', 'envPath' in options ? options.envPath : process.env.PATH);
  if (onPath !== undefined) return onPath;
  for (const candidate of options.fallbacks ?? DEFAULT_TRTEXEC_PATHS) {
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}
