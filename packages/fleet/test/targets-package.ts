// A signed package with per-target files, as `kd-trainer package` writes it since issue 17 (built the way
// packages/edge-agent/test/agent-deploy-targets.test.ts builds it): fp32, S8S8 and U8S8 int8 from one calibration.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildPackage, calibrate, decodeModel, encodeModel, packDirectory, quantizeQdq, seededRandom, type Manifest, type ManifestTarget,
} from '@kd-edge/core';
import { writeTinyYolo } from '../../edge-agent/test/fixtures/serve/models.js';

/** A package `.tar` and what a deploy command needs of it. */
export interface TargetsPackage {
  name: string;
  version: string;
  tar: string;
  sha256: string;
  size: number;
  manifest: Manifest;
}

/** U8S8 for x86-64, S8S8 for aarch64, fp32 for both: the order pickTarget reads them in. */
export const MIXED_FLEET_TARGETS: readonly ManifestTarget[] = [
  { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8' },
  { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' },
  { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] },
];

/** Builds `<dir>.tar` from a tiny 64 px YOLO, its two int8 variants and {@link MIXED_FLEET_TARGETS}. */
export async function makeTargetsPackage(dir: string, name: string, version: string, privateKeyPem: string): Promise<TargetsPackage> {
  const work = `${dir}-work`;
  await mkdir(dir, { recursive: true });
  await mkdir(work, { recursive: true });
  const tiny = await writeTinyYolo(work, 64, 7);
  await copyFile(tiny.decoded, join(dir, 'model.onnx'));
  const fp32 = decodeModel(new Uint8Array(await readFile(tiny.decoded)));
  const rand = seededRandom(5);
  const images = Array.from({ length: 4 }, () => Float32Array.from({ length: 3 * 64 * 64 }, () => rand()));
  const { ranges } = await calibrate(fp32, images, { method: 'minmax', inputShape: [1, 3, 64, 64] });
  await writeFile(join(dir, 'model.int8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'int8' }).model));
  await writeFile(join(dir, 'model.int8.u8s8.onnx'), encodeModel(quantizeQdq(fp32, { ranges, activationType: 'uint8' }).model));
  const m = tiny.decodedModel;
  const manifest = await buildPackage({
    dir, name, version, task: 'detect', createdAt: '2026-11-01T12:00:00Z',
    input: m.input, output: m.output, names: [...m.names], strides: [...m.strides], anchors: m.anchors.map((a) => [...a]),
    targets: [...MIXED_FLEET_TARGETS], privateKey: privateKeyPem,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  const bytes = await readFile(tar);
  return { name, version, tar, manifest, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}
