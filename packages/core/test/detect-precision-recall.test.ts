import { describe, expect, it } from 'vitest';
import { precisionRecall } from '../src/detect/precision-recall.js';
import type { Annotation, BoxXYXY, Detection } from '../src/detect/types.js';

const det = (box: BoxXYXY, score: number, cls = 0): Detection => ({ box, score, cls });
const gt = (box: BoxXYXY, cls = 0, crowd = false): Annotation => ({ box, cls, crowd });
const A: BoxXYXY = [0, 0, 10, 10];
const B: BoxXYXY = [100, 0, 110, 10];
const FAR: BoxXYXY = [500, 500, 510, 510];

describe('precisionRecall', () => {
  it('gives P = R = 1 for a perfect detector', () => {
    const r = precisionRecall([{ detections: [det(A, 0.9), det(B, 0.5, 1)], annotations: [gt(A), gt(B, 1)] }], 2);
    expect(r.precision).toBe(1);
    expect(r.recall).toBe(1);
    expect(r.f1).toBeCloseTo(1, 12);
  });

  it('reads every class at the confidence maximising the box-filtered mean F1', () => {
    // One GT; TP at 0.9, FP at 0.3. On the grid px = i/999: recall is 1 for px ≤ 0.9 and 0 above;
    // precision is 1/2 for px ≤ 0.3 and rises linearly to 1 at 0.9, so F1 = 2p/(p+1) grows up to
    // px = 0.9 (i = 899) and drops to 0 from i = 900. The 101-tap window mean is largest when its
    // last tap is i = 899, i.e. at i = 849: confidence 849/999, P = 1 − (0.9 − 849/999)/1.2, R = 1.
    const r = precisionRecall([{ detections: [det(A, 0.9), det(FAR, 0.3)], annotations: [gt(A)] }], 1);
    expect(r.confidence).toBeCloseTo(849 / 999, 12);
    expect(r.precision).toBeCloseTo(1 - (0.9 - 849 / 999) / 1.2, 12);
    expect(r.recall).toBeCloseTo(1, 12);
    const p = r.precision;
    expect(r.f1).toBeCloseTo((2 * p) / (p + 1), 12);
    expect(r.perClass[0]).toEqual({ cls: 0, precision: r.precision, recall: r.recall });
  });

  it('counts a class with GT but no detections as 0 and leaves out a class without GT', () => {
    const r = precisionRecall(
      [{ detections: [det(A, 0.9), det(FAR, 0.8, 2)], annotations: [gt(A), gt(B, 1)] }],
      3,
    );
    expect(r.precision).toBeCloseTo(0.5, 12);
    expect(r.recall).toBeCloseTo(0.5, 12);
    expect(r.perClass[1]).toEqual({ cls: 1, precision: 0, recall: 0 });
    expect(r.perClass[2]).toEqual({ cls: 2, precision: 0, recall: 0 });
  });

  it('treats a duplicate as an FP and drops detections on crowd GTs', () => {
    // TP 0.9 and duplicate 0.8 on one GT: precision [1, 1/2], recall [1, 1]. As above the window ends
    // at i = 899 (i = 849), where P = 1 − 5·(0.9 − 849/999) on the segment from (0.8, 1/2) to (0.9, 1).
    const dup = precisionRecall([{ detections: [det(A, 0.9), det(A, 0.8)], annotations: [gt(A)] }], 1);
    expect(dup.confidence).toBeCloseTo(849 / 999, 12);
    expect(dup.precision).toBeCloseTo(1 - 5 * (0.9 - 849 / 999), 10);
    expect(dup.recall).toBeCloseTo(1, 12);
    // A detection on a crowd GT is neither TP nor FP, even ranked first.
    const crowd = precisionRecall(
      [{ detections: [det(A, 0.9), det([200, 200, 210, 210], 0.95)], annotations: [gt(A), gt([150, 150, 300, 300], 0, true)] }],
      1,
    );
    expect(crowd.precision).toBe(1);
    expect(crowd.recall).toBeCloseTo(1, 12);
  });

  it('returns zeros when no class has ground truth', () => {
    expect(precisionRecall([{ detections: [det(A, 0.9)], annotations: [] }], 1)).toEqual({
      precision: 0,
      recall: 0,
      f1: 0,
      confidence: 0,
      perClass: [{ cls: 0, precision: 0, recall: 0 }],
    });
  });

  it('returns, on request, the per-class curves that the reported figures are read from', () => {
    const images = [
      { detections: [det(A, 0.9), det(FAR, 0.3), det(B, 0.7, 1), det(A, 0.6, 1)], annotations: [gt(A), gt(B, 1), gt([300, 0, 310, 10], 1)] },
      { detections: [det(B, 0.8)], annotations: [gt(B)] },
    ];
    const plain = precisionRecall(images, 3);
    const r = precisionRecall(images, 3, 0.5, { curves: true });
    // Asking for curves changes none of the figures.
    expect({ ...r, curves: undefined }).toEqual({ ...plain, curves: undefined });
    const c = r.curves!;
    expect(c.confidence).toHaveLength(1000);
    expect(c.confidence[c.best]).toBe(r.confidence);
    expect(c.precision[2]).toBeNull();
    for (const k of [0, 1]) {
      expect(c.precision[k]![c.best]).toBe(r.perClass[k].precision);
      expect(c.recall[k]![c.best]).toBe(r.perClass[k].recall);
      const p = c.precision[k]![500], rc = c.recall[k]![500];
      expect(c.f1[k]![500]).toBeCloseTo((2 * p * rc) / (p + rc + 1e-16), 12);
    }
    // Class 0: TPs at 0.9 and 0.8, an FP at 0.3; numpy interp is linear between the ranked scores.
    const x = 849 / 999;
    expect(c.recall[0]![999]).toBe(0);
    expect(c.recall[0]![849]).toBeCloseTo(0.5 + ((0.9 - x) / 0.1) * 0.5, 12);
    expect(c.recall[0]![Math.floor(0.5 * 999)]).toBeCloseTo(1, 12);
    expect(c.precision[0]![899]).toBe(1);
    expect(c.precision[0]![499]).toBeCloseTo(2 / 3 + (499 / 999 - 0.3) / 0.5 / 3, 12);
    expect(c.precision[0]![0]).toBeCloseTo(2 / 3, 12);
  });
});
