import { describe, expect, it } from 'vitest';
import { nmsBoxes, nonMaxSuppression, type NmsOptions } from '../src/detect/nms.js';
import { boxIou } from '../src/detect/box.js';
import type { BoxXYXY, Detection } from '../src/detect/types.js';

/** Rows [cx, cy, w, h, obj, cls…] as a Float32Array. */
const rows = (...r: number[][]): Float32Array => Float32Array.from(r.flat());

describe('nonMaxSuppression', () => {
  // nc = 2. A and B overlap (IoU = 18·20 / (400 + 400 − 360) = 0.818), C is B's box with class 1.
  const A = [50, 50, 20, 20, 0.9, 1, 0];
  const B = [52, 50, 20, 20, 0.8, 1, 0];
  const C = [52, 50, 20, 20, 0.7, 0, 1];

  it('suppresses an overlapping box of the same class and keeps another class', () => {
    const dets = nonMaxSuppression(rows(A, B, C), 2);
    expect(dets.map((d) => d.cls)).toEqual([0, 1]);
    expect(dets[0].box).toEqual([40, 40, 60, 60]);
    expect(dets[0].score).toBe(Math.fround(0.9));
    expect(dets[1].score).toBe(Math.fround(Math.fround(0.7) * 1));
  });

  it('suppresses across classes when classAgnostic', () => {
    expect(nonMaxSuppression(rows(A, B, C), 2, { classAgnostic: true }).map((d) => d.score)).toEqual([Math.fround(0.9)]);
  });

  it('keeps both when the IoU does not exceed iouThres', () => {
    expect(nonMaxSuppression(rows(A, B), 2, { iouThres: 0.85 })).toHaveLength(2);
  });

  it('filters on objectness and on obj·cls, strictly above confThres', () => {
    const lowObj = [10, 10, 4, 4, 0.25, 1, 0]; // obj not > 0.25
    const lowScore = [100, 10, 4, 4, 0.5, 0.5, 0]; // 0.5·0.5 = 0.25, not > 0.25
    const ok = [200, 10, 4, 4, 0.5, 0.6, 0];
    const dets = nonMaxSuppression(rows(lowObj, lowScore, ok), 2);
    expect(dets).toHaveLength(1);
    expect(dets[0].score).toBe(Math.fround(Math.fround(0.5) * Math.fround(0.6)));
  });

  it('respects maxDet and maxNms, highest scores first', () => {
    const far = [0.9, 0.8, 0.7, 0.6].map((s, i) => [i * 100 + 10, 10, 10, 10, s, 1, 0]);
    expect(nonMaxSuppression(rows(...far), 2, { maxDet: 2 }).map((d) => d.box[0])).toEqual([5, 105]);
    expect(nonMaxSuppression(rows(...far.reverse()), 2, { maxNms: 3 }).map((d) => d.box[0])).toEqual([5, 105, 205]);
  });

  it('emits every passing class of a box with multiLabel, only the best without', () => {
    const box = [50, 50, 10, 10, 1, 0.9, 0.8];
    const multi = nonMaxSuppression(rows(box), 2, { multiLabel: true });
    expect(multi.map((d) => [d.cls, d.score])).toEqual([
      [0, Math.fround(0.9)],
      [1, Math.fround(0.8)],
    ]);
    expect(nonMaxSuppression(rows(box), 2).map((d) => d.cls)).toEqual([0]);
    // With one class multiLabel changes nothing (ultralytics: multi_label &= nc > 1).
    expect(nonMaxSuppression(rows([50, 50, 10, 10, 1, 0.9]), 1, { multiLabel: true })).toHaveLength(1);
  });

  it('keeps row order among equal scores', () => {
    const dets = nonMaxSuppression(rows([300, 10, 10, 10, 0.5, 1, 0], [10, 10, 10, 10, 0.5, 1, 0]), 2);
    expect(dets.map((d) => d.box[0])).toEqual([295, 5]);
  });

  it('rejects bad arguments', () => {
    expect(() => nonMaxSuppression(new Float32Array(8), 2)).toThrow(/5\+nc/);
    expect(() => nonMaxSuppression(new Float32Array(7), 2, { iouThres: 2 })).toThrow(/iouThres/);
    expect(() => nonMaxSuppression(new Float32Array(7), 2, { maxDet: -1 })).toThrow(/maxDet/);
  });

  /** Textbook version: all candidates, stable sort, slice, suppressed flags per class. */
  function reference(pred: Float32Array, nc: number, o: Required<NmsOptions>): Detection[] {
    const no = 5 + nc;
    const cand: { row: number; cls: number; score: number }[] = [];
    for (let r = 0; r < pred.length / no; r++) {
      const obj = pred[r * no + 4];
      if (!(obj > Math.fround(o.confThres))) continue;
      const s = Array.from({ length: nc }, (_, k) => Math.fround(obj * pred[r * no + 5 + k]));
      if (o.multiLabel) s.forEach((v, k) => v > Math.fround(o.confThres) && cand.push({ row: r, cls: k, score: v }));
      else {
        const k = s.indexOf(Math.max(...s));
        if (s[k] > Math.fround(o.confThres)) cand.push({ row: r, cls: k, score: s[k] });
      }
    }
    const sorted = cand.sort((a, b) => b.score - a.score).slice(0, o.maxNms);
    const box = (c: { row: number }): BoxXYXY => {
      const b = pred.subarray(c.row * no, c.row * no + 4);
      return Array.from(Float32Array.from([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2])) as BoxXYXY;
    };
    const gone = new Uint8Array(sorted.length);
    const out: Detection[] = [];
    for (let i = 0; i < sorted.length; i++) {
      if (gone[i]) continue;
      out.push({ box: box(sorted[i]), score: sorted[i].score, cls: sorted[i].cls });
      for (let j = i + 1; j < sorted.length; j++) {
        if ((o.classAgnostic || sorted[j].cls === sorted[i].cls) && boxIou(box(sorted[i]), box(sorted[j])) > o.iouThres) gone[j] = 1;
      }
    }
    return out.slice(0, o.maxDet);
  }

  it('matches a textbook NMS on random data, including the maxNms cut among tied scores', () => {
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const nc = 3;
    const n = 1500;
    const pred = new Float32Array(n * (5 + nc));
    for (let r = 0; r < n; r++) {
      const w = 5 + rand() * 60;
      // Quantised scores make many exact ties, also at the maxNms cut.
      pred.set([rand() * 300, rand() * 300, w, w * (0.5 + rand()), Math.ceil(rand() * 8) / 8], r * 8);
      for (let k = 0; k < nc; k++) pred[r * 8 + 5 + k] = Math.ceil(rand() * 4) / 4;
    }
    for (const multiLabel of [false, true]) {
      for (const classAgnostic of [false, true]) {
        const o = { confThres: 0.2, iouThres: 0.45, maxDet: 100, multiLabel, classAgnostic, maxNms: 700 };
        expect(nonMaxSuppression(pred, nc, o)).toEqual(reference(pred, nc, o));
      }
    }
  });
});

describe('nmsBoxes', () => {
  it('returns kept indices by descending score', () => {
    const boxes = [0, 0, 10, 10, 1, 0, 11, 10, 50, 50, 60, 60];
    // box 1 overlaps box 0 with IoU 9·10 / (100 + 100 − 90) = 0.818
    expect(nmsBoxes(boxes, [0.5, 0.9, 0.7], 0.5)).toEqual([1, 2]);
    expect(nmsBoxes(boxes, [0.5, 0.9, 0.7], 0.82)).toEqual([1, 2, 0]);
    expect(() => nmsBoxes([0, 0, 1], [1], 0.5)).toThrow(RangeError);
  });
});
