import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KdEdgeError } from '@kd-edge/core';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeBmp } from '../src/data/bmp.js';
import { encodeBmp } from '../src/predict/annotate.js';
import { cocoImageId, cocoResults, formatG, yoloLabelLines } from '../src/predict/labels.js';
import { parseClasses } from '../src/predict/predict-schema.js';
import { scaleDetections } from '../src/predict/preprocess.js';
import { countSummary, postprocess } from '../src/predict/run-predict.js';
import { incrementPath } from '../src/predict/save-dir.js';
import { globFiles, globSegmentRegExp, listSources } from '../src/predict/sources.js';

const dir = mkdtempSync(join(tmpdir(), 'kd-predict-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('predict sources', () => {
  const root = join(dir, 'src');
  mkdirSync(join(root, 'sub', 'deep'), { recursive: true });
  for (const f of ['img10.jpg', 'img2.jpg', 'img1.PNG', 'notes.txt', 'clip.mp4', 'sub/s.jpg', 'sub/deep/d.bmp', '.hidden.jpg']) writeFileSync(join(root, f), 'x');
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'empty', 'readme.md'), 'x');

  it('lists a folder (not its sub-folders) in natural order, images and videos only', async () => {
    const e = await listSources(root);
    expect(e.map((x) => [x.kind, x.path.slice(root.length + 1)])).toEqual([
      ['video', 'clip.mp4'], ['image', 'img1.PNG'], ['image', 'img2.jpg'], ['image', 'img10.jpg'],
    ]);
  });

  it('takes one file, a glob, and ** for any depth', async () => {
    expect(await listSources(join(root, 'img2.jpg'))).toEqual([{ kind: 'image', path: join(root, 'img2.jpg') }]);
    expect((await listSources(join(root, 'img?.jpg'))).map((x) => x.path)).toEqual([join(root, 'img2.jpg')]);
    expect((await listSources(join(root, 'img[0-9]*.*'))).map((x) => x.path)).toEqual(['img1.PNG', 'img2.jpg', 'img10.jpg'].map((f) => join(root, f)));
    expect((await globFiles(join(root, '**', '*.{jpg}'))).length).toBe(0);
    expect((await globFiles(join(root, '**', '*.jpg'))).map((p) => p.slice(root.length + 1))).toEqual(['img2.jpg', 'img10.jpg', 'sub/s.jpg']);
    expect((await globFiles(join(root, 'sub', '*', '*.bmp'))).map((p) => p.slice(root.length + 1))).toEqual(['sub/deep/d.bmp']);
  });

  it('fails with one line naming the path when nothing usable is there', async () => {
    await expect(listSources(join(root, 'missing.jpg'))).rejects.toThrow(/missing\.jpg: no such file or folder/);
    await expect(listSources(join(root, 'empty'))).rejects.toThrow(/no images or videos found in .*empty/);
    await expect(listSources(join(root, '*.gif'))).rejects.toThrow(/no images or videos found/);
    await expect(listSources(join(root, 'notes.txt'))).rejects.toThrow(/notes\.txt: not an image/);
    await expect(listSources('0')).rejects.toBeInstanceOf(KdEdgeError);
    await expect(listSources('rtsp://camera/stream')).rejects.toThrow(/not supported/);
  });

  it('glob segments: *, ?, classes and negation; no dot-files unless asked', () => {
    expect(globSegmentRegExp('*.jpg').test('a.jpg')).toBe(true);
    expect(globSegmentRegExp('*.jpg').test('.a.jpg')).toBe(false);
    expect(globSegmentRegExp('.*.jpg').test('.a.jpg')).toBe(true);
    expect(globSegmentRegExp('a[!0-9].png').test('ab.png')).toBe(true);
    expect(globSegmentRegExp('a[!0-9].png').test('a1.png')).toBe(false);
    expect(globSegmentRegExp('a+b(1).jpg').test('a+b(1).jpg')).toBe(true);
  });
});

describe('predict helpers', () => {
  it("formats numbers as Python's %g", () => {
    const cases: [number, string][] = [
      [0, '0'], [0.5, '0.5'], [1, '1'], [0.123456789, '0.123457'], [1e-5, '1e-05'], [0.0001, '0.0001'], [0.00012345678, '0.000123457'],
      [100000, '100000'], [1e6, '1e+06'], [123456789, '1.23457e+08'], [-2.5, '-2.5'], [0.9999996, '1'], [12.5, '12.5'],
    ];
    for (const [v, s] of cases) expect(formatG(v), String(v)).toBe(s);
  });

  it('writes YOLO label lines normalised to the original image, conf appended on request', () => {
    const dets = [{ box: [10, 20, 30, 60] as [number, number, number, number], cls: 1, score: 0.875 }];
    expect(yoloLabelLines(dets, [80, 100], false)).toEqual(['1 0.2 0.5 0.2 0.5']);
    expect(yoloLabelLines(dets, [80, 100], true)).toEqual(['1 0.2 0.5 0.2 0.5 0.875']);
  });

  it('COCO results: integer image ids for numeric stems, xywh boxes rounded as val.py', () => {
    expect(cocoImageId('000123')).toBe(123);
    expect(cocoImageId('img_1')).toBe('img_1');
    expect(cocoResults(7, [{ box: [1.23456, 2, 11.5, 4.0004], cls: 0, score: 0.1234567 }])).toEqual([
      { image_id: 7, category_id: 0, bbox: [1.235, 2, 10.265, 2], score: 0.12346 },
    ]);
  });

  it('counts classes as detect.py prints them', () => {
    const d = (cls: number) => ({ box: [0, 0, 1, 1] as [number, number, number, number], cls, score: 1 });
    expect(countSummary([d(1), d(0), d(0)], ['circle', 'square'])).toBe('2 circles, 1 square, ');
    expect(countSummary([d(3)], ['a'])).toBe('1 class3, ');
  });

  it('parses --classes from spaces or commas and rejects non-indices', () => {
    expect(parseClasses('')).toBeUndefined();
    expect(parseClasses('0 2')).toEqual([0, 2]);
    expect(parseClasses('1,3')).toEqual([1, 3]);
    expect(() => parseClasses('1 x')).toThrow(/classes/);
    expect(() => parseClasses('-1')).toThrow(KdEdgeError);
  });

  it('maps letterboxed boxes back to the original image and clips them', () => {
    const out = scaleDetections([{ box: [-4, 10, 40, 60], cls: 0, score: 1 }], { gain: [0.5, 0.5], pad: [0, 8] }, [100, 60]);
    expect(out[0]!.box).toEqual([0, 4, 60, 100]);
  });

  it('--classes drops rows whose best class is filtered before NMS, so they suppress nothing (agnostic)', () => {
    // Two overlapping boxes: class 0 (score 0.9) and class 1 (0.8).
    const rows = Float32Array.from([50, 50, 20, 20, 0.9, 1, 0, 52, 50, 20, 20, 0.8, 0, 1]);
    const base = { confThres: 0.25, iouThres: 0.45, maxDet: 10 };
    expect(postprocess(rows, 2, { ...base, agnostic: true }).map((d) => d.cls)).toEqual([0]);
    expect(postprocess(rows, 2, { ...base, agnostic: true, classes: [1] }).map((d) => d.cls)).toEqual([1]);
    expect(postprocess(rows, 2, base).map((d) => d.cls)).toEqual([0, 1]);
    expect(postprocess(rows, 2, { ...base, classes: [0] }).map((d) => d.cls)).toEqual([0]);
    expect(postprocess(rows, 2, { ...base, maxDet: 1 }).length).toBe(1);
  });

  it('increments project/name as ultralytics: exp, exp2, exp3; exist_ok reuses', () => {
    const p = join(dir, 'runs');
    expect(incrementPath(p, 'exp', false)).toBe(join(p, 'exp'));
    mkdirSync(join(p, 'exp'), { recursive: true });
    expect(incrementPath(p, 'exp', false)).toBe(join(p, 'exp2'));
    mkdirSync(join(p, 'exp2'));
    expect(incrementPath(p, 'exp', false)).toBe(join(p, 'exp3'));
    expect(incrementPath(p, 'exp', true)).toBe(join(p, 'exp'));
  });

  it('writes BMP files that the BMP reader gives back', () => {
    const img = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };
    const back = decodeBmp(encodeBmp(img));
    expect([back.width, back.height]).toEqual([3, 2]);
    expect([...back.data]).toEqual([...img.data]);
  });
});
