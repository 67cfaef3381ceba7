import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfig } from '../src/data/dataset-yaml.js';
import { DatasetError } from '../src/errors.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-yaml-'));
  for (const d of ['ds/images/train', 'ds/images/val', 'ds/images/test', 'cfg']) await mkdir(join(dir, d), { recursive: true });
  await writeFile(join(dir, 'ds/train.txt'), './images/train/a.jpg\n');
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function yamlAt(name: string, text: string): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, text);
  return f;
}

async function expectError(file: string, ...parts: string[]): Promise<void> {
  const err = await loadDatasetConfig(file).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DatasetError);
  expect((err as DatasetError).code).toBe('DATASET_INVALID');
  for (const p of parts) expect((err as Error).message).toContain(p);
}

describe('loadDatasetConfig', () => {
  it('reads list names and resolves a relative path against the YAML folder', async () => {
    const f = await yamlAt('cfg/a.yaml', 'path: ../ds\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n');
    const c = await loadDatasetConfig(f);
    expect(c.root).toBe(join(dir, 'ds'));
    expect(c.train).toEqual([join(dir, 'ds/images/train')]);
    expect(c.val).toEqual([join(dir, 'ds/images/val')]);
    expect(c.names).toEqual(['cat', 'dog']);
    expect(c.nc).toBe(2);
    expect(c.test).toBeUndefined();
    expect(c.file).toBe(f);
  });

  it('falls back to the working directory for a relative path, as ultralytics does', async () => {
    const f = await yamlAt('cfg/cwd.yaml', 'path: ds\ntrain: images/train\nval: images/val\nnames: [cat]\n');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect((await loadDatasetConfig(f)).root).toBe(join(dir, 'ds'));
    } finally {
      process.chdir(cwd);
    }
    await expectError(f, 'path', join(dir, 'cfg', 'ds'));
  });

  it('reads map names, a .txt list, a list of sources, test and a matching nc', async () => {
    const f = await yamlAt('ds/b.yaml', [
      'train: train.txt', 'val: [images/val, images/train]', 'test: images/test', 'nc: 3',
      'names:', '  0: person', '  2: car', '  1: bike', '',
    ].join('\n'));
    const c = await loadDatasetConfig(f);
    expect(c.root).toBe(join(dir, 'ds'));
    expect(c.train).toEqual([join(dir, 'ds/train.txt')]);
    expect(c.val).toEqual([join(dir, 'ds/images/val'), join(dir, 'ds/images/train')]);
    expect(c.test).toEqual([join(dir, 'ds/images/test')]);
    expect(c.names).toEqual(['person', 'bike', 'car']);
  });

  it('names classes from nc alone, like YOLOv5', async () => {
    const f = await yamlAt('ds/c.yaml', 'train: images/train\nval: images/val\nnc: 2\n');
    expect((await loadDatasetConfig(f)).names).toEqual(['class0', 'class1']);
  });

  it('rejects a missing file', async () => {
    await expectError(join(dir, 'nope.yaml'), 'nope.yaml');
  });

  it('rejects missing train and val', async () => {
    await expectError(await yamlAt('ds/e1.yaml', 'val: images/val\nnames: [a]\n'), 'e1.yaml', 'train');
    await expectError(await yamlAt('ds/e2.yaml', 'train: images/train\nnames: [a]\n'), 'e2.yaml', 'val');
  });

  it('rejects split paths that do not exist, naming them', async () => {
    await expectError(await yamlAt('ds/e3.yaml', 'train: images/train\nval: images/nothere\nnames: [a]\n'), 'e3.yaml', 'val', 'nothere');
    await expectError(await yamlAt('ds/e4.yaml', 'train: [images/train, gone.txt]\nval: images/val\nnames: [a]\n'), 'train', 'gone.txt');
    await expectError(await yamlAt('ds/e5.yaml', 'path: missingroot\ntrain: images/train\nval: images/val\nnames: [a]\n'), 'path', 'missingroot');
  });

  it('rejects missing or invalid names', async () => {
    await expectError(await yamlAt('ds/n1.yaml', 'train: images/train\nval: images/val\n'), 'n1.yaml', 'names');
    await expectError(await yamlAt('ds/n2.yaml', 'train: images/train\nval: images/val\nnames: {0: a, 2: b}\n'), 'names', '0..1');
    await expectError(await yamlAt('ds/n3.yaml', 'train: images/train\nval: images/val\nnames: 5\n'), 'names');
    await expectError(await yamlAt('ds/n4.yaml', 'train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n'), 'nc', '3');
    await expectError(await yamlAt('ds/n5.yaml', 'train: images/train\nval: images/val\nnames: [a, [b]]\n'), 'names[1]');
  });

  it('rejects YAML that is not a mapping', async () => {
    await expectError(await yamlAt('ds/bad.yaml', '- a\n- b\n'), 'bad.yaml');
    await expectError(await yamlAt('ds/bad2.yaml', 'train: [unclosed\n'), 'bad2.yaml', 'YAML');
  });
});
