import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { Annotation, BoxXYXY, Detection } from '@kd-edge/core';
import { ConfusionMatrix, confusionMatrixSvg, normalizeColumns, plotConfusionMatrix } from '../src/plots/confusion-matrix.js';

const det = (box: BoxXYXY, score: number, cls: number): Detection => ({ box, score, cls });
const gt = (box: BoxXYXY, cls: number): Annotation => ({ box, cls });
const A: BoxXYXY = [0, 0, 10, 10];
const B: BoxXYXY = [20, 0, 30, 10];
const C: BoxXYXY = [40, 0, 50, 10];
const FAR: BoxXYXY = [100, 100, 110, 110];
// IoU with A: 8·10 / (100 + 100 − 80) = 0.667 and 5·10 / 150 = 0.333.
const A_SHIFT2: BoxXYXY = [2, 0, 12, 10];
const A_SHIFT5: BoxXYXY = [5, 0, 15, 10];
const BG = 3; // background index for nc = 3

describe('ConfusionMatrix (ultralytics ConfusionMatrix.process_batch)', () => {
  it('counts a pair at [predicted, true]: the diagonal when the classes agree, off it when not', () => {
    const cm = new ConfusionMatrix(3);
    cm.processImage([det(A, 0.9, 0), det(B, 0.8, 2), det(C, 0.7, 1)], [gt(A, 0), gt(B, 1), gt(C, 1)]);
    expect(cm.count(0, 0)).toBe(1);
    expect(cm.count(1, 1)).toBe(1);
    expect(cm.count(2, 1)).toBe(1); // class 1 predicted as 2
    expect(cm.matrix.reduce((s, v) => s + v, 0)).toBe(3);
    expect(cm.tpFp()).toEqual({ tp: [1, 1, 0], fp: [0, 0, 1] });
  });

  it('puts a missed label in the background row and an unpaired detection in the background column', () => {
    const cm = new ConfusionMatrix(3);
    cm.processImage([det(A, 0.9, 0), det(FAR, 0.6, 2)], [gt(A, 0), gt(B, 1)]);
    expect(cm.rows()).toEqual([
      [1, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 0, 1], // FP of class 2
      [0, 1, 0, 0], // class 1 missed
    ]);
  });

  it('leaves out detections at or below conf 0.25 and pairs only above IoU 0.45', () => {
    const cm = new ConfusionMatrix(3);
    cm.processImage([det(A, 0.25, 0), det(B, 0.26, 1)], [gt(A, 0), gt(B, 1)]);
    expect(cm.count(BG, 0)).toBe(1); // its detection was not confident enough
    expect(cm.count(1, 1)).toBe(1);
    const iou = new ConfusionMatrix(3);
    iou.processImage([det(A_SHIFT5, 0.9, 0)], [gt(A, 0)]);
    expect([iou.count(0, 0), iou.count(BG, 0), iou.count(0, BG)]).toEqual([0, 1, 1]);
    const ok = new ConfusionMatrix(3);
    ok.processImage([det(A_SHIFT2, 0.9, 0)], [gt(A, 0)]);
    expect(ok.count(0, 0)).toBe(1);
  });

  it('pairs one to one by IoU, whatever the scores: a duplicate is a background FP', () => {
    const cm = new ConfusionMatrix(3);
    // The better-overlapping box wins the label though its score is lower.
    cm.processImage([det(A_SHIFT2, 0.95, 1), det(A, 0.5, 0)], [gt(A, 0)]);
    expect(cm.count(0, 0)).toBe(1);
    expect(cm.count(1, BG)).toBe(1);
    expect(cm.count(1, 0)).toBe(0);
  });

  it('counts detections of an image without labels, or with no pair at all, as background FPs', () => {
    const cm = new ConfusionMatrix(3);
    cm.processImage([det(A, 0.9, 2)], []);
    cm.processImage([det(FAR, 0.9, 1)], [gt(A, 0)]);
    cm.processImage([], [gt(B, 2)]);
    expect(cm.count(2, BG)).toBe(1);
    expect(cm.count(1, BG)).toBe(1);
    expect(cm.count(BG, 0)).toBe(1);
    expect(cm.count(BG, 2)).toBe(1);
    expect(cm.matrix.reduce((s, v) => s + v, 0)).toBe(4);
  });

  it('rejects classes outside 0..nc−1 and bad thresholds', () => {
    expect(() => new ConfusionMatrix(0)).toThrow(/nc/);
    expect(() => new ConfusionMatrix(2, { conf: 2 })).toThrow(/conf/);
    expect(() => new ConfusionMatrix(2).processImage([det(A, 0.9, 2)], [gt(A, 0)])).toThrow(/class 2/);
  });

  it('normalises each true-class column to 1 and plots a 3000 × 2250 PNG with the names and background', async () => {
    const cm = new ConfusionMatrix(3);
    cm.processImage([det(A, 0.9, 0), det(B, 0.9, 0), det(FAR, 0.9, 1)], [gt(A, 0), gt(B, 1), gt(C, 1)]);
    const norm = normalizeColumns(cm);
    expect(norm[0]![0]).toBeCloseTo(1, 6);
    expect([norm[0]![1], norm[BG]![1]]).toEqual([expect.closeTo(0.5, 6), expect.closeTo(0.5, 6)]);
    expect(norm[1]![BG]).toBeCloseTo(1, 6);
    const names = ['cat', 'dog', 'a&b'];
    const svg = confusionMatrixSvg(cm, names);
    for (const text of ['cat', 'dog', 'a&amp;b', 'background', 'Predicted', 'True', 'Confusion Matrix', '0.50', '1.00']) expect(svg).toContain(`>${text}<`);
    const file = join(mkdtempSync(join(tmpdir(), 'kd-cm-')), 'confusion_matrix.png');
    await plotConfusionMatrix(cm, names, file);
    const meta = await sharp(file).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 3000, 2250, 3]);
  });
});
