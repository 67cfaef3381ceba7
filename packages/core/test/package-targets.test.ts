// Issue 17: the manifest's `targets` (which file serves which device) and TensorRT files per version.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPackage } from '../src/package/build.js';
import { generateKeyPair } from '../src/package/keys.js';
import { parseManifest, type ManifestTarget } from '../src/package/manifest.js';
import { verifyPackage } from '../src/package/verify.js';
import { packDirectory } from '../src/package/tar-write.js';
import { calibCacheHeader, parseCalibCache, writeCalibCache, writeCalibCaches } from '../src/tensorrt/calib-cache.js';
import { detectorOptions, fakeBytes, useTempDirs, writePackageFiles } from './package-fixture.js';

const tempDir = useTempDirs();
const key = generateKeyPair();
const trusted = { trustedKeys: [key.publicKeyPem] };

const TARGETS: ManifestTarget[] = [
  { file: 'model.int8.u8s8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['x86_64'], quantization: 'u8s8', note: 'U8S8 for x86' },
  { file: 'model.int8.onnx', precision: 'int8', runtime: 'onnxruntime', arch: ['aarch64'], quantization: 's8s8' },
  { file: 'model.onnx', precision: 'fp32', runtime: 'onnxruntime', arch: ['x86_64', 'aarch64'] },
  { file: 'model.onnx', precision: 'int8', runtime: 'tensorrt', arch: ['aarch64'] },
];

async function packageDir(): Promise<string> {
  const dir = await tempDir();
  await writePackageFiles(dir);
  await writeFile(join(dir, 'model.int8.u8s8.onnx'), fakeBytes(1500, 4));
  return dir;
}

describe('manifest targets', () => {
  it('a package with targets builds, signs and verifies from its folder and its tar, targets intact', async () => {
    const dir = await packageDir();
    const built = await buildPackage({ ...detectorOptions(dir), targets: TARGETS, privateKey: key.privateKeyPem });
    expect(built.targets).toEqual(TARGETS);
    // models found in the folder: the U8S8 file is int8 by its name
    expect(built.models.map((m) => [m.file, m.precision])).toEqual([['model.int8.onnx', 'int8'], ['model.int8.u8s8.onnx', 'int8'], ['model.onnx', 'fp32']]);
    const v = await verifyPackage(dir, trusted);
    expect(v.manifest.targets).toEqual(TARGETS);
    const tar = `${dir}.tar`;
    await packDirectory(dir, tar);
    expect((await verifyPackage(tar, trusted)).manifest.targets).toEqual(TARGETS);
    // under the signature: a changed target is a bad signature
    const json = JSON.parse(JSON.stringify(v.manifest)) as Record<string, unknown>;
    (json.targets as ManifestTarget[])[0]!.arch = ['aarch64'];
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(json));
    await expect(verifyPackage(dir, trusted)).rejects.toMatchObject({ code: 'PACKAGE_SIGNATURE_INVALID' });
  });

  it('an old package without targets (or tensorrt.versions) still verifies and keeps them absent', async () => {
    const dir = await tempDir();
    await writePackageFiles(dir);
    await buildPackage({ ...detectorOptions(dir), privateKey: key.privateKeyPem });
    const v = await verifyPackage(dir, trusted);
    expect('targets' in v.manifest).toBe(false);
    expect(v.manifest.tensorrt).toEqual({ plan: 'trt-plan.json', calibCache: 'calib.cache' });
  });

  it('refuses a target that is not one of the models, a wrong precision, a bad architecture or quantization, by field', async () => {
    const dir = await packageDir();
    const m = await buildPackage({ ...detectorOptions(dir), targets: TARGETS });
    const bad = (targets: unknown): (() => unknown) => () => parseManifest({ ...m, targets });
    const t0 = TARGETS[0]!;
    expect(bad([{ ...t0, file: 'calib.cache' }])).toThrow(/targets\[0\]\.file: "calib\.cache" \(allowed: the file of one of models/);
    expect(bad([{ ...t0, precision: 'fp32' }])).toThrow(/targets\[0\]\.precision: "fp32" \(allowed: 'int8', the precision of models' model\.int8\.u8s8\.onnx\)/);
    expect(bad([{ ...t0, arch: ['x64'] }])).toThrow(/targets\[0\]\.arch\[0\]: "x64" \(allowed: 'x86_64' \| 'aarch64' \| 'armv7l'\)/);
    expect(bad([{ ...t0, arch: ['x86_64', 'x86_64'] }])).toThrow(/targets\[0\]\.arch/);
    expect(bad([{ ...t0, arch: [] }])).toThrow(/targets\[0\]\.arch/);
    expect(bad([{ ...TARGETS[2]!, quantization: 'u8s8' }])).toThrow(/targets\[0\]\.quantization: "u8s8" \(allowed: no value unless precision is 'int8'\)/);
    expect(bad([{ ...t0, runtime: 'openvino' }])).toThrow(/targets\[0\]\.runtime/);
    expect(bad([{ ...t0, extra: 1 }])).toThrow(/targets\[0\]\.extra/);
    expect(bad([])).toThrow(/invalid manifest field targets/);
    try {
      bad([{ ...t0, file: 'nope.onnx' }])();
    } catch (e) {
      expect(e).toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID' });
    }
  });
});

describe('TensorRT files per version', () => {
  it('tensorrt.versions lists a plan and cache per version; the first is tensorrt.plan/calibCache', async () => {
    const dir = await tempDir();
    await writePackageFiles(dir);
    for (const v of ['8.2.1', '10.3.0']) {
      await writeFile(join(dir, `trt-plan.${v}.json`), '{}\n');
      await writeFile(join(dir, `calib.${v}.cache`), `TRT-x\n`);
    }
    const versions = [
      { trtVersion: '8.2.1', plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache' },
      { trtVersion: '10.3.0', plan: 'trt-plan.10.3.0.json', calibCache: 'calib.10.3.0.cache' },
    ];
    const tensorrt = { plan: 'trt-plan.8.2.1.json', calibCache: 'calib.8.2.1.cache', versions };
    await buildPackage({ ...detectorOptions(dir), tensorrt, privateKey: key.privateKeyPem });
    expect((await verifyPackage(dir, trusted)).manifest.tensorrt).toEqual(tensorrt);
    const m = await buildPackage({ ...detectorOptions(dir), tensorrt });
    const bad = (t: unknown): (() => unknown) => () => parseManifest({ ...m, tensorrt: t });
    expect(bad({ ...tensorrt, versions: [versions[0], { ...versions[1], trtVersion: '8.2.1' }] })).toThrow(/tensorrt\.versions\[1\]\.trtVersion: "8\.2\.1" \(allowed: a version no other entry names\)/);
    expect(bad({ ...tensorrt, versions: [{ ...versions[0], trtVersion: '8.2' }] })).toThrow(/tensorrt\.versions\[0\]\.trtVersion: "8\.2"/);
    expect(bad({ ...tensorrt, versions: [{ ...versions[0], plan: 'trt-plan.9.0.0.json' }] })).toThrow(/tensorrt\.versions\[0\]\.plan: "trt-plan\.9\.0\.0\.json" \(allowed: a path listed in files\)/);
    expect(bad({ ...tensorrt, plan: 'trt-plan.10.3.0.json', calibCache: 'calib.10.3.0.cache' })).toThrow(/tensorrt\.plan: .*the first version's plan and cache/);
  });

  it('one cache body, a header per version: exact headers, identical bodies, each parses back', () => {
    const ranges = new Map([['images', { min: 0, max: 1 }], ['/model.0/conv/Conv_output_0', { min: -3, max: 127 }]]);
    const caches = writeCalibCaches(ranges, ['8.2.1', '8.5.2', '8.6.1', '10.3.0']);
    expect([...caches.keys()]).toEqual(['8.2.1', '8.5.2', '8.6.1', '10.3.0']);
    const lines = [...caches.values()].map((c) => c.split('\n'));
    expect(lines.map((l) => l[0])).toEqual([
      'TRT-8201-EntropyCalibration2', 'TRT-8502-EntropyCalibration2', 'TRT-8601-EntropyCalibration2', 'TRT-100300-EntropyCalibration2',
    ]);
    for (const l of lines) expect(l.slice(1)).toEqual(['images: 3c010204', '/model.0/conv/Conv_output_0: 3f800000', '']);
    // each is exactly what writeCalibCache writes for its version alone
    expect(caches.get('8.6.1')).toBe(writeCalibCache(ranges, { trtVersion: '8.6.1' }));
    expect(parseCalibCache(caches.get('10.3.0')!).version).toBe(100300);
    expect(calibCacheHeader({ trtVersion: '8.2.1', algorithm: 'MinMaxCalibration' })).toBe('TRT-8201-MinMaxCalibration');
    expect(() => writeCalibCaches(ranges, [])).toThrow(/at least one TensorRT version/);
    expect(() => writeCalibCaches(ranges, ['8.2.1', '8.2.1.6'])).toThrow(/names TensorRT 8\.2\.1\.6 twice/);
    expect(() => writeCalibCaches(ranges, ['eight'])).toThrow(/trtVersion must look like/);
  });
});
