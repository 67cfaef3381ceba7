import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPackage, packDirectory, seededRandom, type KeyInput } from '@kd-edge/core';
import type { VersionInfo } from '../src/store/version-key.js';

/** A signed package folder, its tar, and the identity the store files it under. */
export interface TestPackage {
  dir: string;
  tar: string;
  info: VersionInfo;
}

/** Deterministic bytes standing in for a model file. */
export function modelBytes(n: number, seed: number): Buffer {
  const rand = seededRandom(seed);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

/** Build a small signed classifier package `name@version` under `root` (folder and tar), as `kd-trainer package` would. */
export async function makeTestPackage(root: string, name: string, version: string, privateKey: KeyInput, modelSize = 64 * 1024): Promise<TestPackage> {
  const dir = join(root, `${name}-${version}`);
  await mkdir(dir, { recursive: true });
  const seed = [...version].reduce((a, c) => a * 31 + c.charCodeAt(0), 7);
  await writeFile(join(dir, 'model.onnx'), modelBytes(modelSize, seed));
  await writeFile(join(dir, 'labels.txt'), `cat\ndog\n${version}\n`);
  await buildPackage({
    dir,
    name,
    version,
    task: 'classify',
    createdAt: '2026-05-01T12:00:00Z',
    input: {
      name: 'images',
      shape: [1, 3, 32, 32],
      layout: 'NCHW',
      dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
    },
    output: { name: 'logits', layout: 'logits', shape: [1, 2] },
    names: ['cat', 'dog'],
    privateKey,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  const sha256 = createHash('sha256').update(await readFile(tar)).digest('hex');
  return { dir, tar, info: { name, version, sha256 } };
}
