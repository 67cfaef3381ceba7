import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseTrtVersion } from '@kd-edge/core';

/** What a TensorRT engine is bound to: the package it came from, the TensorRT version and the GPU that built it. */
export interface EngineCacheKey {
  /** sha256 (hex) of the package tar. */
  packageSha256: string;
  /** TensorRT version of the trtexec that builds it, e.g. `8.6.2`. */
  trtVersion: string;
  /** GPU name, e.g. `Orin` or `NVIDIA GeForce RTX 3060`. */
  gpu: string;
}

/** A cached engine and the metadata written next to it. */
export interface CachedEngine {
  enginePath: string;
  key: EngineCacheKey;
  size: number;
  createdAt: string;
}

/** A folder being filled by a build; {@link commit} publishes it under its key atomically. */
export interface EngineReservation {
  /** Where the build writes the engine. */
  enginePath: string;
  commit(): Promise<CachedEngine>;
  abort(): Promise<void>;
}

const META = 'engine.json';

function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '_').replace(/^[._-]+/, '').slice(0, 48) || 'gpu';
}

/**
 * Engines on disk keyed by (package sha256, TensorRT version, GPU), so a second deploy of the same package on the
 * same device reuses the engine instead of rebuilding it (minutes on a Jetson). Layout:
 * `<dir>/<sha256>/trt-<version>/<gpu-slug>-<hash8>/<engineFile>` with `engine.json` beside it.
 */
export class EngineCache {
  readonly dir: string;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('dir must be a non-empty path');
    this.dir = dir;
  }

  /** The folder of a key (validated: a sha256 of 64 hex digits, a TensorRT version, a non-empty GPU name). */
  keyDir(key: EngineCacheKey): string {
    if (!/^[0-9a-f]{64}$/.test(key.packageSha256)) {
      throw new RangeError(`packageSha256 must be 64 lower-case hex digits, got ${JSON.stringify(key.packageSha256)}`);
    }
    const v = parseTrtVersion(key.trtVersion);
    if (typeof key.gpu !== 'string' || key.gpu.trim() === '') throw new RangeError('gpu must be a non-empty name');
    // The slug keeps folders readable; the hash keeps two names that slug alike apart.
    const gpuId = `${slug(key.gpu)}-${createHash('sha256').update(key.gpu).digest('hex').slice(0, 8)}`;
    return join(this.dir, key.packageSha256, `trt-${v.major}.${v.minor}.${v.patch}`, gpuId);
  }

  /** The cached engine of a key, or undefined when there is none (or it is incomplete). */
  async lookup(key: EngineCacheKey, engineFile: string): Promise<CachedEngine | undefined> {
    const dir = this.keyDir(key);
    try {
      const meta = JSON.parse(await readFile(join(dir, META), 'utf8')) as CachedEngine;
      const enginePath = join(dir, engineFile);
      const s = await stat(enginePath);
      if (!s.isFile() || s.size === 0 || s.size !== meta.size) return undefined;
      return { enginePath, key, size: s.size, createdAt: meta.createdAt };
    } catch {
      return undefined;
    }
  }

  /** A temporary folder for building the engine of `key`; the caller commits it after a successful build. */
  async reserve(key: EngineCacheKey, engineFile: string): Promise<EngineReservation> {
    if (!/^(?![.-])[A-Za-z0-9._+@-]{1,255}$/.test(engineFile)) {
      throw new RangeError(`engineFile must be a plain file name, got ${JSON.stringify(engineFile)}`);
    }
    const finalDir = this.keyDir(key);
    const parent = join(finalDir, '..');
    await mkdir(parent, { recursive: true });
    const tmpDir = `${finalDir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await mkdir(tmpDir);
    const enginePath = join(tmpDir, engineFile);
    return {
      enginePath,
      commit: async () => {
        const s = await stat(enginePath);
        const createdAt = new Date().toISOString();
        await writeFile(join(tmpDir, META), JSON.stringify({ key, engineFile, size: s.size, createdAt }, null, 2) + '\n');
        // A stale or half-written folder of the same key (a crash mid-commit) is replaced; rename is atomic.
        await rm(finalDir, { recursive: true, force: true });
        await rename(tmpDir, finalDir);
        return { enginePath: join(finalDir, engineFile), key, size: s.size, createdAt };
      },
      abort: () => rm(tmpDir, { recursive: true, force: true }),
    };
  }

  /** Removes every engine of a package (e.g. when the store garbage-collects it). */
  async evictPackage(packageSha256: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(packageSha256)) throw new RangeError('packageSha256 must be 64 lower-case hex digits');
    await rm(join(this.dir, packageSha256), { recursive: true, force: true });
  }
}
