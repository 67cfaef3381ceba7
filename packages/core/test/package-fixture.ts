import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { BuildPackageOptions } from '../src/package/build.js';
import { encodeTarHeader, tarChecksum, TAR_BLOCK } from '../src/package/tar-header.js';

/** A temporary directory removed after the current test. */
export function useTempDirs(): () => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const d = await mkdtemp(join(tmpdir(), 'kd-package-'));
    dirs.push(d);
    return d;
  };
}

/** Deterministic pseudo-random bytes (xorshift) standing in for a model file. */
export function fakeBytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Fill `dir` with a detector package's files: two models, a TensorRT plan and cache, and a val/ set. */
export async function writePackageFiles(dir: string): Promise<void> {
  await writeFile(join(dir, 'model.onnx'), fakeBytes(3000, 1));
  await writeFile(join(dir, 'model.int8.onnx'), fakeBytes(1500, 2));
  await writeFile(join(dir, 'calib.cache'), 'TRT-8601-EntropyCalibration2\nimages: 3c010204\n');
  await writeFile(join(dir, 'trt-plan.json'), '{"precision":"int8"}\n');
  await mkdir(join(dir, 'val', 'images'), { recursive: true });
  await mkdir(join(dir, 'val', 'labels'), { recursive: true });
  await writeFile(join(dir, 'val', 'images', 'a.jpg'), fakeBytes(700, 3));
  await writeFile(join(dir, 'val', 'labels', 'a.txt'), '0 0.5 0.5 0.2 0.3\n');
}

/** The manifest fields of a small two-class YOLOv5 detector. */
export function detectorOptions(dir: string): BuildPackageOptions {
  return {
    dir,
    name: 'yolov5n-pets',
    version: '1.2.0',
    task: 'detect',
    createdAt: '2026-05-01T12:00:00Z',
    input: {
      name: 'images',
      shape: ['batch', 3, 320, 320],
      layout: 'NCHW',
      dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      letterbox: { color: [114, 114, 114], auto: false, stride: 32 },
    },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: ['batch', 6300, 7] },
    names: ['cat', 'dog'],
    strides: [8, 16, 32],
    anchors: [
      [10, 13, 16, 30, 33, 23],
      [30, 61, 62, 45, 59, 119],
      [116, 90, 156, 198, 373, 326],
    ],
    metrics: { 'metrics/mAP50(B)': 0.5, 'metrics/mAP50-95(B)': 0.31 },
  };
}

/** Raw tar entry for hand-made (possibly hostile) archives. */
export interface RawEntry {
  path: string;
  data?: Buffer;
  typeflag?: string;
  linkname?: string;
  /** Size written in the header when it should lie about the data. */
  size?: number;
}

/** A ustar header with any typeflag, linkname and path (no checks), checksum recomputed. */
export function rawHeader(e: RawEntry): Buffer {
  const size = e.size ?? e.data?.length ?? 0;
  const block = encodeTarHeader({ path: 'x', type: 'file', mode: 0o644, size, mtime: 0 });
  block.fill(0, 0, 100);
  block.write(e.path, 0, 100, 'utf8');
  if (e.typeflag !== undefined) block.write(e.typeflag, 156, 1, 'latin1');
  if (e.linkname !== undefined) block.write(e.linkname, 157, 100, 'utf8');
  block.write(`${tarChecksum(block).unsigned.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

/** An archive from raw entries, ended by two zero blocks. */
export function rawTar(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(rawHeader(e));
    const data = e.data ?? Buffer.alloc(0);
    parts.push(data, Buffer.alloc((TAR_BLOCK - (data.length % TAR_BLOCK)) % TAR_BLOCK));
  }
  parts.push(Buffer.alloc(2 * TAR_BLOCK));
  return Buffer.concat(parts);
}
