// Shared by the tests of issue 17 on the fleet side: a signed package carrying the TensorRT files that
// `kd-trainer export --trt-versions` writes, so that a rollout can compare its calibration caches with the
// TensorRT versions its targets report.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildPackage, buildTrtPlan, packDirectory, writeCalibCaches, type KeyInput, type ManifestTensorrt } from '@kd-edge/core';

/**
 * Build and pack `name@version` under `root`: a plan and an int8 calibration cache (one body, a header per version)
 * for each of `versions`, listed in `tensorrt.versions`; with `single`, the legacy pair `trt-plan.json` and
 * `calib.cache` for the one version, which the manifest does not name. Resolves to the `.tar`.
 */
export async function makeTrtPackage(
  root: string, name: string, version: string, versions: string[], privateKey: KeyInput, single = false,
): Promise<string> {
  const dir = join(root, `${name}-${version}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), Buffer.alloc(4096, version));
  const caches = writeCalibCaches(new Map([['images', 1], ['output', 4]]), versions);
  const entries: NonNullable<ManifestTensorrt['versions']> = [];
  for (const v of versions) {
    const names = single ? { plan: 'trt-plan.json', calibCache: 'calib.cache' } : { plan: `trt-plan.${v}.json`, calibCache: `calib.${v}.cache` };
    const plan = buildTrtPlan({ trtVersion: v, precision: 'best', input: { name: 'images', shape: [1, 3, 32, 32] }, onnxFile: 'model.onnx', calibCacheFile: names.calibCache });
    await writeFile(join(dir, names.plan), JSON.stringify(plan, null, 2));
    await writeFile(join(dir, names.calibCache), caches.get(v)!);
    entries.push({ trtVersion: v, ...names });
  }
  await buildPackage({
    dir, name, version, task: 'classify', createdAt: '2026-11-01T12:00:00Z',
    input: { name: 'images', shape: [1, 3, 32, 32], layout: 'NCHW', dtype: 'float32', normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] } },
    output: { name: 'logits', layout: 'logits', shape: [1, 2] }, names: ['circle', 'square'],
    // The single pair is found by buildPackage; per-version files are listed with their versions, first one also as plan/calibCache.
    ...(single ? {} : { tensorrt: { plan: entries[0]!.plan, calibCache: entries[0]!.calibCache!, versions: entries } }),
    privateKey,
  });
  await packDirectory(dir, `${dir}.tar`);
  return `${dir}.tar`;
}
