import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPackage, packDirectory, seededRandom, type KeyInput } from '@kd-edge/core';
import { picturePng, writeTinyYolo } from '../../edge-agent/test/fixtures/serve/models.js';

/** The bench's package: its tar and size. */
export interface BenchPackage {
  tar: string;
  size: number;
  name: string;
  version: string;
}

/**
 * Builds a signed detector package (tiny seeded YOLOv5 at 64 px, so a thousand ORT sessions fit in memory)
 * padded with seeded random bytes to about `targetBytes`, laid out as kd-trainer's package does.
 */
export async function makeBenchPackage(root: string, key: KeyInput, targetBytes: number, name = 'bench-yolo', version = '1.0.0'): Promise<BenchPackage> {
  const dir = join(root, `${name}-${version}`);
  const work = join(root, `${name}-${version}-work`);
  await mkdir(join(dir, 'val', 'images'), { recursive: true });
  await mkdir(join(dir, 'val', 'labels'), { recursive: true });
  await mkdir(work, { recursive: true });
  const tiny = await writeTinyYolo(work, 64, 7);
  await copyFile(tiny.decoded, join(dir, 'model.onnx'));
  for (let i = 0; i < 3; i++) {
    await writeFile(join(dir, 'val', 'images', `im${i}.png`), await picturePng(80, 64, i + 1));
    await writeFile(join(dir, 'val', 'labels', `im${i}.txt`), `${i % 2} 0.5 0.5 0.3 0.4\n`);
  }
  // Random bytes, so that nothing on the way (tar, TCP) can shrink the transfer.
  const modelBytes = (await stat(join(dir, 'model.onnx'))).size;
  const pad = Buffer.alloc(Math.max(0, targetBytes - modelBytes - 64 * 1024));
  const rand = seededRandom(42);
  for (let i = 0; i + 4 <= pad.length; i += 4) pad.writeUInt32LE(Math.floor(rand() * 0x1_0000_0000) >>> 0, i);
  await writeFile(join(dir, 'padding.bin'), pad);
  const m = tiny.decodedModel;
  await buildPackage({
    dir, name, version, task: 'detect', createdAt: '2026-11-01T12:00:00Z',
    input: m.input, output: m.output, names: [...m.names], strides: [...m.strides], anchors: m.anchors.map((a) => [...a]),
    metrics: { 'metrics/mAP50(B)': 0.5 },
    privateKey: key,
  });
  const tar = `${dir}.tar`;
  await packDirectory(dir, tar);
  return { tar, size: (await stat(tar)).size, name, version };
}
