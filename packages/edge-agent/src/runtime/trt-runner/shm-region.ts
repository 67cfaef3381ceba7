import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SHM_NAME_RE, tensorBytes, type InputRegion, type TensorRegion, type TensorSpec } from './protocol.js';
import { TrtRunnerError } from './trt-runner-error.js';

/** Where the agent makes shared-memory files unless told otherwise. */
export const DEFAULT_SHM_DIR = '/dev/shm';

/** Options of {@link ShmRegion.create}. */
export interface ShmRegionOptions {
  /** Directory of the file, the runner's `--shm-dir` (default /dev/shm). */
  dir?: string;
  /** File name (default `kd-trt-<pid>-<random>`). */
  name?: string;
  /** Size in bytes. */
  size: number;
}

/** Where each tensor of an engine lies in its shared-memory file, and the file's size. */
export interface RegionLayout {
  inputs: InputRegion[];
  outputs: TensorRegion[];
  size: number;
}

/** Lays an engine's inputs, then outputs, one after another, each starting on an `align`-byte boundary. */
export function layoutRegions(inputs: readonly TensorSpec[], outputs: readonly TensorSpec[], align = 64): RegionLayout {
  if (!Number.isInteger(align) || align < 1) throw new RangeError(`align must be a positive integer, got ${align}`);
  let at = 0;
  const place = (spec: TensorSpec): TensorRegion => {
    const r = { name: spec.name, offset: at, bytes: tensorBytes(spec) };
    at = Math.ceil((at + r.bytes) / align) * align;
    return r;
  };
  const ins = inputs.map((s) => ({ ...place(s), shape: [...s.shape] }));
  const outs = outputs.map(place);
  return { inputs: ins, outputs: outs, size: Math.max(at, align) };
}

/**
 * A file in shared memory (tmpfs) that the agent creates and the runner maps: the agent writes inputs and reads
 * outputs with plain file I/O at offsets, so no tensor byte goes through the runner's pipe. Mode 0600, created
 * exclusively; {@link close} removes it.
 */
export class ShmRegion {
  readonly path: string;
  readonly size: number;
  #fh: FileHandle | undefined;

  private constructor(path: string, size: number, fh: FileHandle) {
    this.path = path;
    this.size = size;
    this.#fh = fh;
  }

  /** Creates the file at its full size. Throws TRT_RUNNER_INPUT_INVALID for a bad name or size, the fs error otherwise. */
  static async create(options: ShmRegionOptions): Promise<ShmRegion> {
    const { size } = options;
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}`);
    const name = options.name ?? `kd-trt-${process.pid}-${randomBytes(6).toString('hex')}`;
    if (!SHM_NAME_RE.test(name)) throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `shared-memory name ${JSON.stringify(name)} must match ${SHM_NAME_RE.source}`);
    const path = join(options.dir ?? DEFAULT_SHM_DIR, name);
    const fh = await open(path, 'wx+', 0o600);
    try {
      await fh.truncate(size);
    } catch (e) {
      await fh.close();
      await unlink(path).catch(() => undefined);
      throw e;
    }
    return new ShmRegion(path, size, fh);
  }

  #handle(): FileHandle {
    if (this.#fh === undefined) throw new TrtRunnerError('TRT_RUNNER_CLOSED', `shared-memory file ${this.path} is closed`);
    return this.#fh;
  }

  #check(offset: number, bytes: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(bytes) || offset < 0 || bytes < 0 || offset + bytes > this.size) {
      throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `[${offset}, +${bytes}) is outside the ${this.size}-byte file ${this.path}`);
    }
  }

  /** Writes `data`'s bytes at `offset`. */
  async write(offset: number, data: ArrayBufferView): Promise<void> {
    this.#check(offset, data.byteLength);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.#handle().write(bytes, done, bytes.length - done, offset + done);
      done += bytesWritten;
    }
  }

  /** Reads `bytes` bytes at `offset` into a new, 8-byte aligned buffer. */
  async read(offset: number, bytes: number): Promise<Uint8Array> {
    this.#check(offset, bytes);
    const out = new Uint8Array(new ArrayBuffer(bytes));
    let done = 0;
    while (done < bytes) {
      const { bytesRead } = await this.#handle().read(out, done, bytes - done, offset + done);
      if (bytesRead === 0) throw new TrtRunnerError('TRT_RUNNER_INPUT_INVALID', `${this.path} ended at ${offset + done}`);
      done += bytesRead;
    }
    return out;
  }

  /** Closes and removes the file. Safe to call twice. */
  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh === undefined) return;
    await fh.close();
    await unlink(this.path).catch(() => undefined);
  }
}
