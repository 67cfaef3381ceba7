import sharp from 'sharp';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions, VAL_SCHEMA } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { EXPORT_SCHEMA } from '../src/export/export-schema.js';
import { runExport } from '../src/export/run-export.js';
import { saveWeights } from '../src/model/weights-io.js';
import type { CocoResult } from '../src/predict/labels.js';
import { PREDICT_SCHEMA } from '../src/predict/predict-schema.js';
import { runPredict } from '../src/predict/run-predict.js';
import { memoryLogger } from '../src/util/logger.js';
import { runVal, type RunValResult } from '../src/val/run-val.js';
import { boxyDetector, cli, resizedCopy, writeFixedOutputOnnx } from './predict-fixtures.js';

let dir: string;
let yaml: string;
let weights: string;
let exported: string;
let pseudoYaml: string;

const config = (over: Record<string, unknown>) =>
  resolveOptions(VAL_SCHEMA, [{ data: yaml, imgsz: 64, batch_size: 4, workers: 0, backend: 'cpu', project: join(dir, 'runs', 'val'), ...over }]).config;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kd-val-kinds-'));
  yaml = (await synthesizeDataset({ out: join(dir, 'data'), train: 6, val: 8, imgsz: 96, classes: 2, seed: 5 })).yaml;
  await selectBackend('cpu');
  const model = boxyDetector(3, { otherClassBias: -8, whBias: -1.5 });
  weights = join(dir, 'boxy.kdw');
  await saveWeights(weights, model, { meta: { names: ['circle', 'square'] } });
  model.dispose();
  exported = join(dir, 'export');
  await runExport(resolveOptions(EXPORT_SCHEMA, [{
    weights, out: exported, formats: 'onnx,int8', imgsz: 64, data: yaml, calib_images: 6, sensitivity_images: 0, bench_runs: 1, val_batch: 4, workers: 0,
  }]).config);
  // A random model scores ~0 mAP on real labels, which any two runs match. Labelled with the model's
  // own detect.py-style predictions instead, the set gives the .kdw a high mAP50 for the exports to
  // reproduce (and ties predict --save-txt to what val reads).
  const pseudo = join(dir, 'pseudo');
  const pl = await runPredict(resolveOptions(PREDICT_SCHEMA, [{
    weights, source: join(dir, 'data', 'images', 'val'), imgsz: 64, backend: 'cpu', nosave: true, save_txt: true, project: join(dir, 'pl'),
  }]).config);
  mkdirSync(join(pseudo, 'labels'), { recursive: true });
  cpSync(join(dir, 'data', 'images', 'val'), join(pseudo, 'images'), { recursive: true });
  for (const im of pl.images) {
    const stem = basename(im.path).replace(/\.\w+$/, '');
    writeFileSync(join(pseudo, 'labels', `${stem}.txt`), im.labelFile ? readFileSync(im.labelFile) : '');
  }
  pseudoYaml = join(pseudo, 'data.yaml');
  writeFileSync(pseudoYaml, 'path: .\ntrain: images\nval: images\nnc: 2\nnames: [circle, square]\n');
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kd-trainer val on any weights kind', () => {
  const results: Record<string, RunValResult> = {};

  it('the exported fp32 and int8 ONNX validate by themselves, with the mAP50 of the .kdw', async () => {
    for (const [kind, file] of [['kdw', weights], ['fp32', join(exported, 'model.onnx')], ['int8', join(exported, 'model.int8.onnx')]] as const) {
      const log = memoryLogger();
      results[kind] = await runVal(config({ weights: file, data: pseudoYaml }), { logger: log });
      const msgs = log.lines.map((l) => l.msg);
      expect(msgs).toContainEqual(expect.stringMatching(/^\s+Class\s+Images\s+Instances\s+P\s+R\s+mAP50\s+mAP50-95$/));
      expect(msgs).toContainEqual(expect.stringMatching(/^\s+all\s+8\s+\d+(\s+\d\.\d{3}){4}$/));
      expect(msgs).toContainEqual(expect.stringMatching(/^Speed: /));
      // A .kdw that loads whole says nothing about transferring items.
      expect(msgs.filter((m) => m.includes('Transferred'))).toEqual([]);
    }
    const { kdw, fp32, int8 } = results as Required<typeof results>;
    expect(kdw!.map50).toBeGreaterThan(0.8);
    expect(kdw!.instances).toBeGreaterThan(40);
    expect(fp32!.map50).toBeCloseTo(kdw!.map50, 3);
    expect(fp32!.map).toBeCloseTo(kdw!.map, 3);
    // int8 moves the boxes by a pixel or so: the same at IoU 0.5, a little lower at the strict thresholds.
    expect(Math.abs(int8!.map50 - kdw!.map50)).toBeLessThan(0.05);
    expect(Math.abs(int8!.map - kdw!.map)).toBeLessThan(0.15);
    // Nothing asked to be saved: nothing written.
    expect(existsSync(join(dir, 'runs'))).toBe(false);
    expect(kdw!.saveDir).toBeUndefined();
  }, 120_000);

  it('a model whose class count differs from the dataset fails naming both', async () => {
    const yaml3 = (await synthesizeDataset({ out: join(dir, 'data3'), train: 1, val: 1, imgsz: 64, classes: 3, seed: 1 })).yaml;
    await expect(runVal(config({ weights: join(exported, 'model.int8.onnx'), data: yaml3 }))).rejects.toThrow(/model\.int8\.onnx predicts 2 classes \(circle, square\) but .*data\.yaml has nc=3/);
    await expect(runVal(config({ weights: join(dir, 'missing.onnx') }))).rejects.toThrow(/missing\.onnx: no such weights file/);
  });

  it('--save-json writes COCO results and --save-txt labels, in original pixels, to runs/val/exp, exp2', async () => {
    // Non-square images with numeric stems (integer image ids), and a model whose boxes are known.
    const root = join(dir, 'numeric');
    mkdirSync(join(root, 'images'), { recursive: true });
    mkdirSync(join(root, 'labels'), { recursive: true });
    const src = join(dir, 'data', 'images', 'val');
    for (const [i, f] of readdirSync(src).sort().slice(0, 3).entries()) {
      await resizedCopy(join(src, f), join(root, 'images', `${i + 1}.jpg`), 96, 64);
      cpSync(join(dir, 'data', 'labels', 'val', f.replace(/\.\w+$/, '.txt')), join(root, 'labels', `${i + 1}.txt`));
    }
    const numericYaml = join(root, 'data.yaml');
    writeFileSync(numericYaml, 'path: .\ntrain: images\nval: images\nnc: 2\nnames: [circle, square]\n');
    const fixed = join(dir, 'fixed.onnx');
    writeFixedOutputOnnx(fixed, [[32, 30, 20, 10, 0.9, 0.9, 0.1], [10, 40, 8, 8, 0.8, 0.05, 0.95], [50, 50, 10, 10, 0.0005, 0.5, 0.5]], {
      imgsz: 64, nc: 2, metadata: { stride: '32', names: "{0: 'circle', 1: 'square'}" },
    });
    const log = memoryLogger();
    const r = await runVal(config({ weights: fixed, data: numericYaml, save_json: true, save_txt: true, save_conf: true }), { logger: log });
    expect(r.saveDir).toBe(join(dir, 'runs', 'val', 'exp'));
    const json = JSON.parse(readFileSync(join(r.saveDir!, 'predictions.json'), 'utf8')) as CocoResult[];
    // 96×64 letterboxed into 64×64: gain 2/3 wide and 43/64 high, 10 px on top. val keeps every class per box (multi-label).
    const [gx, gy, top] = [64 / 96, 43 / 64, 10];
    const box = (x1: number, y1: number, x2: number, y2: number) => [x1 / gx, (y1 - top) / gy, (x2 - x1) / gx, (y2 - y1) / gy];
    const want = [
      { category_id: 0, bbox: box(22, 25, 42, 35), score: 0.81 },
      { category_id: 1, bbox: box(6, 36, 14, 44), score: 0.76 },
      { category_id: 1, bbox: box(22, 25, 42, 35), score: 0.09 },
      { category_id: 0, bbox: box(6, 36, 14, 44), score: 0.04 },
    ];
    expect(json).toHaveLength(12);
    for (const id of [1, 2, 3]) {
      const mine = json.filter((e) => e.image_id === id);
      expect(mine.map((e) => Object.keys(e).sort())).toEqual(Array(4).fill(['bbox', 'category_id', 'image_id', 'score']));
      expect(mine.map((e) => e.category_id)).toEqual(want.map((w) => w.category_id));
      for (const [k, w] of want.entries()) {
        expect(mine[k]!.score).toBeCloseTo(w.score, 5);
        for (let j = 0; j < 4; j++) expect(Math.abs(mine[k]!.bbox[j]! - w.bbox[j]!)).toBeLessThanOrEqual(0.0005 + 1e-9);
      }
    }
    expect(readdirSync(join(r.saveDir!, 'labels')).sort()).toEqual(['1.txt', '2.txt', '3.txt']);
    const lines = readFileSync(join(r.saveDir!, 'labels', '2.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
    expect(lines[0]).toEqual([0, ...[32 / gx / 96, (30 - top) / gy / 64, 20 / gx / 96, 10 / gy / 64, 0.81].map((v) => Number(v.toPrecision(6)))]);
    expect(log.lines.map((l) => l.msg)).toEqual(expect.arrayContaining([`Results saved to ${r.saveDir}`, `3 labels saved to ${join(r.saveDir!, 'labels')}`]));

    const again = await runVal(config({ weights: fixed, data: numericYaml, save_json: true }));
    expect(again.saveDir).toBe(join(dir, 'runs', 'val', 'exp2'));
    expect(readdirSync(again.saveDir!)).toEqual(['predictions.json']);
  }, 60_000);

  it('--plots writes the confusion matrix, the curves and the val batches of any weights kind', async () => {
    const r = await runVal(config({ weights: join(exported, 'model.int8.onnx'), plots: true, name: 'plots' }));
    expect(r.saveDir).toBe(join(dir, 'runs', 'val', 'plots'));
    for (const f of ['confusion_matrix.png', 'PR_curve.png', 'F1_curve.png', 'P_curve.png', 'R_curve.png', 'val_batch0_labels.jpg', 'val_batch0_pred.jpg']) {
      const meta = await sharp(join(r.saveDir!, f)).metadata();
      expect(meta.width, f).toBeGreaterThan(300);
    }
    const quiet = await runVal(config({ weights: join(exported, 'model.int8.onnx'), name: 'quiet' }));
    expect(quiet.saveDir).toBeUndefined();
    expect(existsSync(join(dir, 'runs', 'val', 'quiet'))).toBe(false);
  }, 120_000);

  it('the CLI validates an int8 export by itself and prints its table', async () => {
    const r = await cli(['val', '--weights', join(exported, 'model.int8.onnx'), '--data', yaml, '--img', '64', '--batch-size', '4', '--workers', '0',
      '--save-json', '--project', join(dir, 'cli-val')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s+all\s+8\s+\d+(\s+\d\.\d{3}){4}$/m);
    expect(r.stdout).toContain(`Results saved to ${join(dir, 'cli-val', 'exp')}`);
    const json = JSON.parse(readFileSync(join(dir, 'cli-val', 'exp', 'predictions.json'), 'utf8')) as CocoResult[];
    expect(json.length).toBeGreaterThan(0);
    expect(json.every((e) => typeof e.image_id === 'string' && /^val_\d+$/.test(e.image_id) && (e.category_id === 0 || e.category_id === 1)
      && e.bbox.length === 4 && e.bbox[2] >= 0 && e.bbox[3] >= 0 && e.bbox[0] + e.bbox[2] <= 96.001 && e.score > 0 && e.score <= 1)).toBe(true);
  }, 120_000);
});
