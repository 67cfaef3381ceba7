import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KdEdgeError } from '@kd-edge/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import type { DetectionModel } from '../src/model/types.js';
import { saveWeights } from '../src/model/weights-io.js';
import { PREDICT_SCHEMA } from '../src/predict/predict-schema.js';
import { runPredict, type PredictReport } from '../src/predict/run-predict.js';
import { memoryLogger } from '../src/util/logger.js';
import { boxyDetector, cli, directDetections, resizedCopy, writeFixedOutputOnnx } from './predict-fixtures.js';

let dir: string;
let images: string;
let weights: string;
let model: DetectionModel;
const NMS = { confThres: 0.25, iouThres: 0.45, maxDet: 1000 };
// Non-square originals (width × height) so that the letterbox pads and the boxes must be mapped back.
const FILES: [string, number, number][] = [['a.jpg', 96, 64], ['b.png', 64, 80], ['c.jpg', 50, 50]];

const config = (over: Record<string, unknown>) =>
  resolveOptions(PREDICT_SCHEMA, [{ weights, source: images, imgsz: 64, backend: 'cpu', project: join(dir, 'runs'), ...over }]).config;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kd-predict-'));
  await synthesizeDataset({ out: join(dir, 'data'), train: 1, val: 3, imgsz: 96, classes: 2, seed: 3 });
  const val = join(dir, 'data', 'images', 'val');
  const srcs = readdirSync(val).sort().map((f) => join(val, f));
  images = join(dir, 'images');
  mkdirSync(images);
  for (const [i, [f, w, h]] of FILES.entries()) await resizedCopy(srcs[i]!, join(images, f), w, h);
  await selectBackend('cpu');
  model = boxyDetector(1);
  weights = join(dir, 'boxy.kdw');
  await saveWeights(weights, model, { meta: { names: ['circle', 'square'] } });
});
afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function parseLabels(file: string): number[][] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
}

describe('kd-trainer predict', () => {
  let first: PredictReport;

  it('a folder: one annotated image per input and labels that match a direct model run, in original pixels', async () => {
    const log = memoryLogger();
    first = await runPredict(config({ save_txt: true, save_conf: true }), { logger: log });
    expect(first.saveDir).toBe(join(dir, 'runs', 'exp'));
    expect(readdirSync(first.saveDir).sort()).toEqual(['a.jpg', 'b.png', 'c.jpg', 'labels']);
    for (const [f, w, h] of FILES) {
      const meta = await sharp(join(first.saveDir, f)).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([w, h, f.endsWith('.png') ? 'png' : 'jpeg']);
    }
    let total = 0;
    for (const [i, [f, w, h]] of FILES.entries()) {
      const got = first.images[i]!;
      expect(got.path).toBe(join(images, f));
      expect(got.shape).toEqual([h, w]);
      const want = await directDetections(model, join(images, f), 64, NMS);
      expect(got.detections.length).toBe(want.dets.length);
      expect(want.dets.length).toBeGreaterThan(0);
      total += want.dets.length;
      const lines = parseLabels(join(first.saveDir, 'labels', f.replace(/\.\w+$/, '.txt')));
      expect(lines.length).toBe(want.dets.length);
      for (const [k, d] of want.dets.entries()) {
        const g = got.detections[k]!;
        expect(g.cls).toBe(d.cls);
        expect(g.score).toBeCloseTo(d.score, 6);
        for (let j = 0; j < 4; j++) expect(g.box[j]).toBeCloseTo(d.box[j]!, 3);
        const [x1, y1, x2, y2] = d.box;
        const [cls, cx, cy, bw, bh, conf] = lines[k]!;
        expect(cls).toBe(d.cls);
        expect(cx).toBeCloseTo((x1 + x2) / 2 / w, 5);
        expect(cy).toBeCloseTo((y1 + y2) / 2 / h, 5);
        expect(bw).toBeCloseTo((x2 - x1) / w, 5);
        expect(bh).toBeCloseTo((y2 - y1) / h, 5);
        expect(conf).toBeCloseTo(d.score, 5);
      }
    }
    const msgs = log.lines.map((l) => l.msg);
    expect(msgs).toContainEqual(expect.stringMatching(new RegExp(`^image 1/3 ${join(images, 'a.jpg')}: 64x64 (\\d+ (circle|square)s?, )+\\d+\\.\\dms$`)));
    expect(msgs).toContainEqual(expect.stringMatching(/^image 3\/3 .*c\.jpg: 64x64 /));
    expect(msgs).toContainEqual(expect.stringMatching(/^Speed: \d+\.\dms pre-process, \d+\.\dms inference, \d+\.\dms NMS per image at shape \(1, 3, 64, 64\)$/));
    expect(msgs).toContain(`Results saved to ${first.saveDir}`);
    expect(msgs).toContain(`3 labels saved to ${join(first.saveDir, 'labels')}`);
    expect(first.images.reduce((s, r) => s + r.detections.length, 0)).toBe(total);
  });

  it('--classes keeps only those classes: the same boxes as the unfiltered run has of them', async () => {
    const r = await runPredict(config({ classes: '1', nosave: true }));
    for (const [i, img] of r.images.entries()) {
      const want = first.images[i]!.detections.filter((d) => d.cls === 1);
      expect(img.detections).toEqual(want);
    }
    expect(r.images.some((im) => im.detections.length > 0)).toBe(true);
    expect(first.images.some((im) => im.detections.some((d) => d.cls === 0))).toBe(true);
  });

  it('--nosave writes no images; runs increment exp2, exp3; --exist-ok reuses exp', async () => {
    // The --classes run above took exp2.
    const r = await runPredict(config({ nosave: true, save_txt: true }));
    expect(r.saveDir).toBe(join(dir, 'runs', 'exp3'));
    expect(readdirSync(r.saveDir)).toEqual(['labels']);
    expect(r.saved).toEqual([]);
    const again = await runPredict(config({ exist_ok: true, source: join(images, 'c.jpg') }));
    expect(again.saveDir).toBe(join(dir, 'runs', 'exp'));
  });

  it('an ONNX export with ultralytics metadata (names dict, stride): names and boxes from it, mapped to the original', async () => {
    const onnx = join(dir, 'fixed.onnx');
    // In 64×64 letterbox pixels; the third row is below the confidence threshold.
    writeFixedOutputOnnx(onnx, [[32, 30, 20, 10, 0.9, 0.9, 0.1], [10, 40, 8, 8, 0.8, 0.05, 0.95], [50, 50, 10, 10, 0.1, 0.5, 0.5]], {
      imgsz: 64, nc: 2, metadata: { stride: '32', names: "{0: 'ring', 1: 'box'}" },
    });
    const log = memoryLogger();
    const r = await runPredict(config({ weights: onnx, source: join(images, 'a.jpg'), imgsz: 320, save_txt: true }), { logger: log });
    expect(log.lines).toContainEqual({ level: 'warn', msg: expect.stringMatching(/takes 64x64 inputs .*--imgsz 320 ignored/) });
    expect(log.lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(/a\.jpg: 64x64 1 ring, 1 box, /));
    // 96×64 → 64×43 (gain 2/3 wide, 43/64 high), padded 10 px on top.
    const [gx, gy, top] = [64 / 96, 43 / 64, 10];
    const want = [[22, 25, 42, 35, 0], [6, 36, 14, 44, 1]].map(([x1, y1, x2, y2, cls]) => ({ box: [x1! / gx, (y1! - top) / gy, x2! / gx, (y2! - top) / gy], cls }));
    const got = r.images[0]!.detections;
    expect(got.map((d) => d.cls)).toEqual(want.map((d) => d.cls));
    for (const [k, d] of want.entries()) for (let j = 0; j < 4; j++) expect(got[k]!.box[j]).toBeCloseTo(d.box[j]!, 4);
    expect(got[0]!.score).toBeCloseTo(0.81, 6);
    expect(readFileSync(join(r.saveDir, 'labels', 'a.txt'), 'utf8')).toBe(
      `0 ${[(22 + 42) / 2 / gx / 96, ((25 + 35) / 2 - top) / gy / 64, 20 / gx / 96, 10 / gy / 64].map((v) => Number(v.toPrecision(6))).join(' ')}\n` +
      `1 ${[10 / gx / 96, (40 - top) / gy / 64, 8 / gx / 96, 8 / gy / 64].map((v) => Number(v.toPrecision(6))).join(' ')}\n`,
    );
  });

  it('bad inputs fail with a KdEdgeError naming the path', async () => {
    await expect(runPredict(config({ weights: join(dir, 'nope.kdw') }))).rejects.toThrow(new RegExp(`${join(dir, 'nope.kdw')}: no such weights file`));
    await expect(runPredict(config({ source: join(dir, 'data', 'labels') }))).rejects.toThrow(/no images or videos found in .*labels/);
    const broken = join(dir, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'bad.jpg'), 'not a jpeg');
    const e = await runPredict(config({ source: broken, project: join(dir, 'bad-runs') })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KdEdgeError);
    expect((e as Error).message).toMatch(new RegExp(`^${join(broken, 'bad.jpg')}: cannot read the image`));
  });

  it('the CLI prints detect.py lines, takes --img, --classes a b, and --hide-conf; a missing file is one line', async () => {
    const project = join(dir, 'cli-runs');
    const r = await cli(['predict', '--weights', weights, '--source', join(images, '*.jpg'), '--img', '60', '--backend', 'cpu', '--project', project,
      '--classes', '0', '1', '--save-txt', '--hide-conf', '--line-thickness', '1']);
    expect(r.stderr).toContain('WARNING: --img-size 60 must be multiple of max stride 32, updating to 64');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^image 1\/2 .*a\.jpg: 64x64 \d+ /m);
    expect(r.stdout).toMatch(/^image 2\/2 .*c\.jpg: 64x64 \d+ /m);
    expect(r.stdout).toMatch(/^Speed: .* at shape \(1, 3, 64, 64\)$/m);
    expect(r.stdout).toContain(`Results saved to ${join(project, 'exp')}\n2 labels saved to ${join(project, 'exp', 'labels')}`);
    expect(existsSync(join(project, 'exp', 'a.jpg'))).toBe(true);

    const bad = await cli(['predict', '--weights', join(dir, 'missing.kdw'), '--source', images]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([`kd-trainer: ${join(dir, 'missing.kdw')}: no such weights file [WEIGHTS_INVALID]`]);
  }, 120_000);
});
