// The package an accepted adaptation becomes (adapt-package.ts), built from a real kd-trainer package and export: it
// keeps the base's replay images with their labels and its adapt.recipe, so the adapted model can be adapted again the
// same way; a job's copy of the replay set keeps images/ and labels/ siblings, so kd-trainer adapt --replay finds the
// labels; and `kd-trainer package --adapt-recipe` writes the recipe, refusing values out of the adapt command's bounds.
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, parseManifest, toPublicKey, writeKeyPair } from '@kd-edge/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adaptChildArgs } from '../src/adapt/adapt-child.js';
import { copyJobReplay } from '../src/adapt/adapt-jobs.js';
import { buildAdaptedPackage } from '../src/adapt/adapt-package.js';
import { verifyOwnPackage } from '../src/adapt/own-package.js';
import { makeStudentPackage, type BuiltPackage } from './agent-adapt-fixtures.js';
import { runPackage } from '../../trainer/src/export/run-package.js';
import { imageToLabelPath } from '../../trainer/src/data/scan.js';

let root: string;
let keyFile: string;
let withReplay: BuiltPackage;
let plain: BuiltPackage;
const device = generateKeyPair();
const deviceKey = { publicKey: toPublicKey(device.publicKeyPem), privateKey: device.privateKeyPem };
const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kd-agent-adapt-package-'));
  keyFile = join(root, 'fleet.key');
  await writeKeyPair(generateKeyPair(), { privateKeyPath: keyFile, publicKeyPath: join(root, 'fleet.pub') });
  await writeFile(join(root, 'recipe.yaml'), 'epochs: 4\nlr0: 0.001\nminGain: 0.005\n');
  withReplay = await makeStudentPackage(join(root, 'pkgs'), 'shapes', '1.0.0', keyFile, 7, { replayImages: 1, adaptRecipe: join(root, 'recipe.yaml') });
  plain = await makeStudentPackage(join(root, 'pkgs'), 'plain', '1.0.0', keyFile);
}, 300_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A trainer job folder as an accepted job leaves it: export/ (the export the package was made from) and run/weights/best.kdw. */
async function acceptedJob(p: BuiltPackage, dir: string): Promise<string> {
  await cp(p.work!.export, join(dir, 'export'), { recursive: true });
  await mkdir(join(dir, 'run', 'weights'), { recursive: true });
  await cp(p.work!.weights, join(dir, 'run', 'weights', 'best.kdw'));
  return dir;
}

describe('the adapted package', () => {
  it('carries the base\'s replay images and labels and manifest replay, and its adapt.recipe, signed by the device', async () => {
    const REPLAY = { dir: 'replay/images', images: 1, labels: 'replay/labels' };
    expect(withReplay.manifest.replay).toEqual(REPLAY);
    expect(withReplay.manifest.adapt).toEqual({ recipe: { epochs: 4, lr0: 0.001, minGain: 0.005 } });
    const jobDir = await acceptedJob(withReplay, join(root, 'job-replay'));
    const built = await buildAdaptedPackage({
      jobDir, dir: join(root, 'adapted'), version: '1.0.0+adapt.cam-01.1', createdAt: '2026-12-01T00:00:00Z',
      base: { manifest: parseManifest(withReplay.manifest), dir: withReplay.dir, precision: 'fp32' }, privateKey: deviceKey.privateKey,
    });
    expect(built.manifest.replay).toEqual(REPLAY);
    expect(built.manifest.adapt).toEqual(withReplay.manifest.adapt);
    // The same images and label files, byte for byte, listed and hashed in the adapted manifest.
    for (const sub of ['images', 'labels']) {
      const names = await readdir(join(withReplay.dir, 'replay', sub));
      expect(names).toHaveLength(1);
      expect(await readdir(join(built.dir, 'replay', sub))).toEqual(names);
      for (const n of names) {
        const listed = built.manifest.files.find((f) => f.path === `replay/${sub}/${n}`);
        expect(listed?.sha256).toBe(await sha(join(withReplay.dir, 'replay', sub, n)));
      }
    }
    const verified = await verifyOwnPackage(built.tar, deviceKey);
    expect(verified.manifest).toMatchObject({ version: '1.0.0+adapt.cam-01.1', replay: REPLAY, adapt: { recipe: { epochs: 4 } } });
  }, 120_000);

  it('a job copies the replay images and their labels as siblings and passes the images as --replay, where kd-trainer finds each label', async () => {
    const base = join(root, 'job-copy', 'base');
    const replay = await copyJobReplay(withReplay.dir, parseManifest(withReplay.manifest).replay!, base);
    expect(replay).toBe(join(base, 'replay', 'images'));
    const args = adaptChildArgs({ frames: '/cap', teacher: '/t.onnx', weights: join(base, 'model.kdw'), out: join(root, 'job-copy', 'job'), replay, threads: 1, batch: 4, recipe: {} });
    expect(args[args.indexOf('--replay') + 1]).toBe(replay);
    const images = await readdir(replay);
    expect(images).toHaveLength(1);
    for (const n of images) {
      // kd-trainer's own rule (images/ → labels/) from the image the job trains on to the package's label file.
      const label = imageToLabelPath(join(replay, n));
      expect(label).toBe(join(base, 'replay', 'labels', `${n.slice(0, n.lastIndexOf('.'))}.txt`));
      expect(await sha(label)).toBe(await sha(join(withReplay.dir, 'replay', 'labels', `${n.slice(0, n.lastIndexOf('.'))}.txt`)));
    }
    // A package of images only (before labelled replay): the images alone, the teacher labels them.
    const old = join(root, 'job-old', 'base');
    expect(await copyJobReplay(withReplay.dir, { dir: 'replay/images', images: 1 }, old)).toBe(join(old, 'replay', 'images'));
    expect(await readdir(join(old, 'replay'))).toEqual(['images']);
  });

  it('a base whose replay has no labels (packages before labelled replay) makes a package of the images alone', async () => {
    const { labels: _labels, ...imagesOnly } = parseManifest(withReplay.manifest).replay!;
    const jobDir = await acceptedJob(withReplay, join(root, 'job-images-only'));
    const built = await buildAdaptedPackage({
      jobDir, dir: join(root, 'adapted-images-only'), version: '1.0.0+adapt.cam-01.1', createdAt: '2026-12-01T00:00:00Z',
      base: { manifest: { ...parseManifest(withReplay.manifest), replay: imagesOnly }, dir: withReplay.dir, precision: 'fp32' }, privateKey: deviceKey.privateKey,
    });
    expect(built.manifest.replay).toEqual({ dir: 'replay/images', images: 1 });
    expect(built.manifest.files.some((f) => f.path.startsWith('replay/labels/'))).toBe(false);
  }, 120_000);

  it('a base without replay or recipe makes a package without them', async () => {
    const jobDir = await acceptedJob(plain, join(root, 'job-plain'));
    const built = await buildAdaptedPackage({
      jobDir, dir: join(root, 'adapted-plain'), version: '1.0.0+adapt.cam-01.1', createdAt: '2026-12-01T00:00:00Z',
      base: { manifest: parseManifest(plain.manifest), dir: plain.dir, precision: 'fp32' }, privateKey: deviceKey.privateKey,
    });
    expect('replay' in built.manifest).toBe(false);
    expect('adapt' in built.manifest).toBe(false);
    expect(built.manifest.files.some((f) => f.path.startsWith('replay/'))).toBe(false);
  }, 120_000);
});

describe('kd-trainer package --adapt-recipe', () => {
  it('refuses a recipe out of the adapt command\'s bounds or with an unknown key, naming the file and the field, and writes nothing', async () => {
    const base = { from: plain.work!.export, name: 'plain', version: '2.0.0', sign: keyFile, tar: false };
    const bad = join(root, 'bad.yaml');
    await writeFile(bad, 'epochs: 5000\n');
    await expect(runPackage({ ...base, out: join(root, 'p-bad'), adaptRecipe: bad })).rejects.toMatchObject({
      code: 'EXPORT_INVALID', message: `--adapt-recipe ${bad}: invalid manifest field adapt.recipe.epochs: 5000 (allowed: an integer <= 1000)`,
    });
    await writeFile(bad, 'epochs: 5\nbatch: 4\n');
    await expect(runPackage({ ...base, out: join(root, 'p-bad'), adaptRecipe: bad })).rejects.toMatchObject({
      code: 'EXPORT_INVALID', message: expect.stringContaining('adapt.recipe.batch: 4 (allowed: no such field; known: epochs, imgsz, lr0, pseudoConf, holdout, timeBudgetSec, memoryBudgetMb, minGain, maxLoss)'),
    });
    await expect(runPackage({ ...base, out: join(root, 'p-teacher'), adaptRecipe: join(root, 'recipe.yaml'), role: 'teacher' })).rejects.toMatchObject({ code: 'EXPORT_INVALID' });
    expect((await readdir(root)).filter((n) => n.startsWith('p-'))).toEqual([]);
  }, 60_000);
});
