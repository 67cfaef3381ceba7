// A manifest's `replay` (issue 16, labelled replay): the images of the original domain and, optionally, their
// ground-truth label files in a folder beside them. A labels folder holds only `.txt` files named after an image
// under `dir`; older manifests (images only, flat `replay/`) stay valid. Checked on parsed manifests and on a real
// signed package, whose label files are covered by their hashes like every file.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPackage, PACKAGE_LAYOUT } from '../src/package/build.js';
import { generateKeyPair } from '../src/package/keys.js';
import { parseManifest } from '../src/package/manifest.js';
import { verifyPackage } from '../src/package/verify.js';
import { detectorOptions, fakeBytes, useTempDirs, writePackageFiles } from './package-fixture.js';

const tempDir = useTempDirs();

/** A manifest listing `paths` (besides model.onnx), with `replay` when given. */
function manifest(paths: string[], replay?: unknown): Record<string, unknown> {
  return {
    manifestVersion: 1, name: 'shapes', version: '1.0.0', createdAt: '2026-05-01T12:00:00Z', task: 'detect',
    input: {
      name: 'images', shape: [1, 3, 64, 64], layout: 'NCHW', dtype: 'float32',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] }, letterbox: { color: [114, 114, 114], auto: false, stride: 32 },
    },
    output: { name: 'output0', layout: 'yolov5-decoded', shape: [1, 252, 8] },
    names: ['a', 'b', 'c'], strides: [32], anchors: [[10, 13, 16, 30]], precision: 'fp32',
    models: [{ file: 'model.onnx', precision: 'fp32', format: 'onnx' }],
    files: ['model.onnx', ...paths].map((path) => ({ path, sha256: 'a'.repeat(64), size: 1 })), metrics: {},
    ...(replay === undefined ? {} : { replay }),
  };
}

const IMAGES = ['replay/images/0000.jpg', 'replay/images/0001.png', 'replay/images/0002.jpg'];

/** The refusal of `fn`: its code, field and message. */
const refusal = (fn: () => unknown): { code?: string; field?: string; message: string } => {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: string; field?: string; message: string };
    return { code: e.code, field: e.field, message: e.message };
  }
  throw new Error('expected a refusal');
};

describe('manifest replay.labels', () => {
  it('keeps a labels folder beside the images whose files are named after images, some or all of them', () => {
    const all = parseManifest(manifest([...IMAGES, 'replay/labels/0000.txt', 'replay/labels/0001.txt', 'replay/labels/0002.txt'],
      { dir: 'replay/images', images: 3, labels: 'replay/labels' }));
    expect(all.replay).toEqual({ dir: 'replay/images', images: 3, labels: 'replay/labels' });
    // Fewer label files than images: the rest are the teacher's to label.
    const some = parseManifest(manifest([...IMAGES, 'replay/labels/0001.txt'], { dir: 'replay/images', images: 3, labels: 'replay/labels' }));
    expect(some.replay).toEqual({ dir: 'replay/images', images: 3, labels: 'replay/labels' });
    // Nested folders: the path below each folder is what matches.
    const nested = parseManifest(manifest(['r/img/a/1.jpg', 'r/lab/a/1.txt'], { dir: 'r/img', images: 1, labels: 'r/lab' }));
    expect(nested.replay).toEqual({ dir: 'r/img', images: 1, labels: 'r/lab' });
  });

  it('still reads a replay of images only, as packages before labelled replay wrote it', () => {
    const old = parseManifest(manifest(['replay/0000.jpg', 'replay/0001.jpg'], { dir: 'replay', images: 2 }));
    expect(old.replay).toEqual({ dir: 'replay', images: 2 });
    expect('labels' in old.replay!).toBe(false);
  });

  it('refuses a label file without an image, a file that is not .txt, and a folder overlapping the images, naming replay.labels', () => {
    const replay = { dir: 'replay/images', images: 3, labels: 'replay/labels' };
    const unmatched = refusal(() => parseManifest(manifest([...IMAGES, 'replay/labels/0000.txt', 'replay/labels/0007.txt'], replay)));
    expect(unmatched).toEqual({
      code: 'PACKAGE_MANIFEST_INVALID', field: 'replay.labels',
      message: 'invalid manifest field replay.labels: "replay/labels" (allowed: label files named after an image under replay/images/; replay/labels/0007.txt has no image)',
    });
    const notText = refusal(() => parseManifest(manifest([...IMAGES, 'replay/labels/0000.txt', 'replay/labels/0001.json'], replay)));
    expect(notText).toEqual({
      code: 'PACKAGE_MANIFEST_INVALID', field: 'replay.labels',
      message: 'invalid manifest field replay.labels: "replay/labels" (allowed: a directory of .txt label files only; it lists replay/labels/0001.json)',
    });
    // An image's stem with another extension is not its label file.
    expect(refusal(() => parseManifest(manifest([...IMAGES, 'replay/labels/0000.jpg.txt'], replay))).field).toBe('replay.labels');
    // The labels inside the images folder (they would count as images), or the images inside the labels folder.
    expect(refusal(() => parseManifest(manifest(['replay/0000.jpg', 'replay/labels/0000.txt'], { dir: 'replay', images: 2, labels: 'replay/labels' }))))
      .toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID', field: 'replay.labels', message: expect.stringContaining('a directory apart from replay.dir "replay"') });
    expect(refusal(() => parseManifest(manifest(IMAGES, { dir: 'replay/images', images: 3, labels: 'replay/images' })))).toMatchObject({ field: 'replay.labels' });
    expect(refusal(() => parseManifest(manifest(IMAGES, { dir: 'replay/images', images: 3, labels: 'replay' })))).toMatchObject({ field: 'replay.labels' });
    // A folder listing nothing, a path out of the package, a value that is no path.
    expect(refusal(() => parseManifest(manifest(IMAGES, replay)))).toMatchObject({
      field: 'replay.labels', message: expect.stringContaining('a directory holding at least one listed file'),
    });
    expect(refusal(() => parseManifest(manifest(IMAGES, { ...replay, labels: '../labels' })))).toMatchObject({ code: 'PACKAGE_PATH_ESCAPE', field: 'replay.labels' });
    expect(refusal(() => parseManifest(manifest(IMAGES, { ...replay, labels: 3 })))).toMatchObject({ code: 'PACKAGE_MANIFEST_INVALID', field: 'replay.labels' });
    expect(refusal(() => parseManifest(manifest(IMAGES, { ...replay, extra: 1 })))).toMatchObject({ field: 'replay.extra' });
  });

  it('a signed package with labelled replay verifies; a label file changed afterwards does not', async () => {
    const key = generateKeyPair();
    const dir = join(await tempDir(), 'pkg');
    await mkdir(join(dir, PACKAGE_LAYOUT.replayImages), { recursive: true });
    await mkdir(join(dir, PACKAGE_LAYOUT.replayLabels), { recursive: true });
    await writePackageFiles(dir);
    await writeFile(join(dir, PACKAGE_LAYOUT.replayImages, '0000.jpg'), fakeBytes(500, 5));
    await writeFile(join(dir, PACKAGE_LAYOUT.replayImages, '0001.jpg'), fakeBytes(500, 6));
    await writeFile(join(dir, PACKAGE_LAYOUT.replayLabels, '0000.txt'), '1 0.5 0.5 0.25 0.25\n');
    await writeFile(join(dir, PACKAGE_LAYOUT.replayLabels, '0001.txt'), '');
    const built = await buildPackage({
      ...detectorOptions(dir), privateKey: key.privateKeyPem,
      replay: { dir: PACKAGE_LAYOUT.replayImages, images: 2, labels: PACKAGE_LAYOUT.replayLabels },
    });
    expect(built.files.map((f) => f.path)).toEqual(expect.arrayContaining(['replay/labels/0000.txt', 'replay/labels/0001.txt']));
    const trusted = { trustedKeys: [key.publicKeyPem] };
    expect((await verifyPackage(dir, trusted)).manifest.replay).toEqual({ dir: 'replay/images', images: 2, labels: 'replay/labels' });
    await writeFile(join(dir, PACKAGE_LAYOUT.replayLabels, '0000.txt'), '2 0.5 0.5 0.25 0.25\n');
    await expect(verifyPackage(dir, trusted)).rejects.toMatchObject({ code: 'PACKAGE_HASH_MISMATCH' });
  });
});
