// Issue 17: the engine build takes the plan and calibration cache of the device's TensorRT version, fp16 without one.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPackage, buildTrtPlan, generateKeyPair, writeCalibCaches } from '@kd-edge/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildEngine } from '../src/runtime/trtexec-build.js';

const STANDIN = fileURLToPath(new URL('./fixtures/trtexec-standin.mjs', import.meta.url));
const SHA = 'b'.repeat(64);
const VERSIONS = ['8.2.1', '10.3.0'];
let root: string;
let pkg: string;

/** A signed package folder with a calibration cache and plan per TensorRT version, as `kd-trainer package --trt-versions` makes it. */
async function makeVersionedPackage(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), 'not really onnx');
  const caches = writeCalibCaches(new Map([['images', { min: 0, max: 1 }]]), VERSIONS);
  for (const v of VERSIONS) {
    await writeFile(join(dir, `calib.${v}.cache`), caches.get(v)!);
    const plan = buildTrtPlan({
      trtVersion: v, precision: 'best', input: { name: 'images', shape: [1, 3, 64, 64] },
      onnxFile: 'model.onnx', calibCacheFile: `calib.${v}.cache`, engineFile: 'model.engine', workspaceMiB: 256,
    });
    await writeFile(join(dir, `trt-plan.${v}.json`), JSON.stringify(plan));
  }
  const versions = VERSIONS.map((v) => ({ trtVersion: v, plan: `trt-plan.${v}.json`, calibCache: `calib.${v}.cache` }));
  await buildPackage({
    dir, name: 'shapes', version: '1.0.0', task: 'detect', createdAt: '2026-11-01T12:00:00Z',
    input: { name: 'images', shape: [1, 3, 64, 64], layout: 'NCHW', dtype: 'float32', normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 } },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 252, 7] }, names: ['a', 'b'], strides: [8, 16, 32], anchors: [[10, 13], [30, 61], [116, 90]],
    tensorrt: { plan: versions[0]!.plan, calibCache: versions[0]!.calibCache, versions },
    targets: [{ file: 'model.onnx', precision: 'int8', runtime: 'tensorrt', arch: ['aarch64'] }],
    privateKey: generateKeyPair().privateKeyPem,
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-trt-versions-'));
  pkg = join(root, 'pkg');
  await makeVersionedPackage(pkg);
});
afterEach(() => {
  delete process.env.KD_TRTEXEC_STANDIN_VERSION;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('buildEngine with a cache and plan per TensorRT version', () => {
  it.each(VERSIONS)('TensorRT %s: its own plan and cache, int8', async (v) => {
    process.env.KD_TRTEXEC_STANDIN_VERSION = v;
    const built = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, `cache-${v}`), trtVersion: v });
    expect(built.planFile).toBe(`trt-plan.${v}.json`);
    expect(built.fp16Fallback).toBeUndefined();
    expect(built.args).toContain('--best');
    expect(built.args).toContain(`--calib=${join(pkg, `calib.${v}.cache`)}`);
    // the cache handed to trtexec carries this version's header
    expect((await readFile(join(pkg, `calib.${v}.cache`), 'utf8')).split('\n')[0]).toBe(v === '8.2.1' ? 'TRT-8201-EntropyCalibration2' : 'TRT-100300-EntropyCalibration2');
    expect(JSON.parse(await readFile(built.enginePath, 'utf8'))).toMatchObject({ precision: 'best' });
  });

  it('a TensorRT version without a cache builds fp16, without --calib, and says why', async () => {
    process.env.KD_TRTEXEC_STANDIN_VERSION = '8.5.2';
    const built = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'cache-852'), trtVersion: '8.5.2' });
    expect(built.fp16Fallback).toBe('TensorRT 8.5.2 has no calibration cache or plan in the package (it has 8.2.1, 10.3.0): the engine is built fp16');
    expect(built.plan).toMatchObject({ precision: 'fp16' });
    expect(built.plan.calibCacheFile).toBeUndefined();
    expect(built.args).toContain('--fp16');
    expect(built.args!.some((a) => a.startsWith('--calib'))).toBe(false);
    expect(JSON.parse(await readFile(built.enginePath, 'utf8'))).toMatchObject({ precision: 'fp16' });
    // from the engine cache the next time, still saying so
    const again = await buildEngine({ trtexec: STANDIN, packageDir: pkg, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'cache-852'), trtVersion: '8.5.2' });
    expect([again.cached, again.fp16Fallback]).toEqual([true, built.fp16Fallback]);
  });

  it('a single-plan package whose cache is for another version builds fp16 too', async () => {
    process.env.KD_TRTEXEC_STANDIN_VERSION = '10.3.0';
    const dir = join(root, 'legacy');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.onnx'), 'x');
    await writeFile(join(dir, 'calib.cache'), writeCalibCaches(new Map([['images', 1]]), ['10.3.0']).get('10.3.0')!);
    await writeFile(join(dir, 'trt-plan.json'), JSON.stringify(buildTrtPlan({
      trtVersion: '10.3.0', precision: 'int8', input: { name: 'images', shape: [1, 3, 64, 64] }, onnxFile: 'model.onnx', calibCacheFile: 'calib.cache', engineFile: 'model.engine',
    })));
    const same = await buildEngine({ trtexec: STANDIN, packageDir: dir, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'c-l1'), trtVersion: '10.3.0' });
    expect([same.fp16Fallback, same.args!.includes('--int8')]).toEqual([undefined, true]);
    const other = await buildEngine({ trtexec: STANDIN, packageDir: dir, packageSha256: SHA, gpu: 'Orin', cacheDir: join(root, 'c-l2'), trtVersion: '10.4.0' });
    expect(other.fp16Fallback).toBe("trt-plan.json's calibration cache calib.cache is for TensorRT 10.3.0, the device has 10.4.0: the engine is built fp16");
    expect(other.args).toContain('--fp16');
  });
});
