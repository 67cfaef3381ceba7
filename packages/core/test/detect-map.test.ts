import { describe, expect, it } from 'vitest';
import { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS } from '../src/detect/coco-match.js';
import { evaluateCoco } from '../src/detect/map.js';
import type { Annotation, BoxXYXY, Detection } from '../src/detect/types.js';

const det = (box: BoxXYXY, score: number, cls = 0): Detection => ({ box, score, cls });
const gt = (box: BoxXYXY, cls = 0, crowd = false): Annotation => ({ box, cls, crowd });
const A: BoxXYXY = [0, 0, 10, 10];
const B: BoxXYXY = [100, 0, 110, 10];
const FAR: BoxXYXY = [500, 500, 510, 510];

// Reading the 101-point grid: recall thresholds 0, 0.01, …, 1; precision is read at the first
// detection whose recall reaches the threshold, after the precision envelope.
describe('evaluateCoco', () => {
  it('uses numpy linspace thresholds', () => {
    expect(COCO_IOU_THRESHOLDS).toHaveLength(10);
    expect(COCO_IOU_THRESHOLDS[5]).toBe(0.75);
    expect(COCO_IOU_THRESHOLDS[8]).toBe(0.8999999999999999); // what numpy gives too
    expect(COCO_RECALL_THRESHOLDS).toHaveLength(101);
    expect(COCO_RECALL_THRESHOLDS[50]).toBe(0.5);
  });

  it('gives 1 for a perfect detector', () => {
    const r = evaluateCoco(
      [
        { detections: [det(A, 0.9), det(B, 0.3, 1)], annotations: [gt(A), gt(B, 1)] },
        { detections: [det(B, 0.6)], annotations: [gt(B)] },
      ],
      2,
    );
    expect([r.map, r.map50, r.map75, r.ar100]).toEqual([1, 1, 1, 1].map(() => expect.closeTo(1, 12)));
    expect(r.perClass.map((c) => [c.cls, c.nGt, c.nDet])).toEqual([
      [0, 2, 2],
      [1, 1, 1],
    ]);
  });

  it('an FP ranked above a TP costs exactly the hand-computed area', () => {
    // 2 GTs; ranked TP 0.9, FP 0.8, TP 0.7: tp [1,1,2], fp [0,1,1], rc [.5,.5,1], pr [1,.5,2/3]
    // envelope pr [1, 2/3, 2/3]; thresholds 0..0.50 (51 points) read pr[0] = 1, 0.51..1 (50) read pr[2] = 2/3
    // AP = (51 + 50·2/3) / 101 = 253/303 at every IoU threshold.
    const r = evaluateCoco([{ detections: [det(A, 0.9), det(FAR, 0.8), det(B, 0.7)], annotations: [gt(A), gt(B)] }], 1);
    expect(r.map).toBeCloseTo(253 / 303, 12);
    expect(r.map50).toBeCloseTo(253 / 303, 12);
    expect(r.ar100).toBe(1);
    // The same FP ranked last costs nothing: recall 1 is reached at precision 1.
    const late = evaluateCoco([{ detections: [det(A, 0.9), det(B, 0.8), det(FAR, 0.7)], annotations: [gt(A), gt(B)] }], 1);
    expect(late.map).toBeCloseTo(1, 12);
  });

  it('keeps input order among equal scores (stable sort), within and across images', () => {
    // FP first: tp [0,1], fp [1,1] → pr [0,.5] → envelope [.5,.5] → AP 0.5. TP first: rc [1,1], pr [1,.5] → AP 1.
    const one = (dets: Detection[]) => evaluateCoco([{ detections: dets, annotations: [gt(A)] }], 1).map;
    expect(one([det(FAR, 0.5), det(A, 0.5)])).toBeCloseTo(0.5, 12);
    expect(one([det(A, 0.5), det(FAR, 0.5)])).toBeCloseTo(1, 12);
    const fpImage = { detections: [det(FAR, 0.5)], annotations: [] };
    const tpImage = { detections: [det(A, 0.5)], annotations: [gt(A)] };
    expect(evaluateCoco([fpImage, tpImage], 1).map).toBeCloseTo(0.5, 12);
    expect(evaluateCoco([tpImage, fpImage], 1).map).toBeCloseTo(1, 12);
  });

  it('leaves a class without GT out of the mean and counts a class without detections as 0', () => {
    const noGt = evaluateCoco([{ detections: [det(A, 0.9), det(B, 0.8, 1)], annotations: [gt(A)] }], 3);
    expect(noGt.map).toBeCloseTo(1, 12);
    expect(noGt.perClass[1]).toEqual({ cls: 1, nGt: 0, nDet: 1, ap: -1, ap50: -1, ap75: -1, recall: -1 });
    expect(noGt.perClass[2].ap).toBe(-1);
    const noDet = evaluateCoco([{ detections: [det(A, 0.9)], annotations: [gt(A), gt(B, 1)] }], 2);
    expect(noDet.perClass[1].ap).toBe(0);
    expect(noDet.map).toBeCloseTo(0.5, 12);
    expect(noDet.ar100).toBeCloseTo(0.5, 12);
    expect(evaluateCoco([{ detections: [det(A, 0.9)], annotations: [] }], 1).map).toBe(-1);
  });

  it('lets a crowd GT absorb several detections without FP', () => {
    const crowd = gt([100, 100, 200, 200], 0, true);
    // Both detections lie inside the crowd region: IoU = inter / detection area = 1 → matched, ignored.
    const dets = [det([110, 110, 120, 120], 0.9), det([150, 150, 160, 160], 0.8), det(A, 0.5)];
    const r = evaluateCoco([{ detections: dets, annotations: [gt(A), crowd] }], 1);
    expect(r.map).toBeCloseTo(1, 12);
    expect(r.perClass[0].nGt).toBe(1);
    // As a regular GT (IoU 100/10000 with each detection) it makes both FPs and counts as a second GT:
    // tp [0,0,1], fp [1,1,1], rc [0,0,.5]: envelope pr 1/3 up to recall .5 → AP50 = (1/3)·51/101.
    const plain = evaluateCoco([{ detections: dets, annotations: [gt(A), { ...crowd, crowd: false }] }], 1);
    expect(plain.map50).toBeCloseTo((1 / 3) * (51 / 101), 12);
    // A class whose only GT is a crowd has no GT to count: excluded.
    expect(evaluateCoco([{ detections: dets.slice(0, 2), annotations: [crowd] }], 1).map).toBe(-1);
  });

  it('prefers a regular GT over a crowd one', () => {
    // The detection overlaps a regular GT (IoU 1) and a crowd GT: it is a TP, not ignored.
    const r = evaluateCoco([{ detections: [det(A, 0.9)], annotations: [gt([0, 0, 20, 20], 0, true), gt(A)] }], 1);
    expect(r.map).toBeCloseTo(1, 12);
  });

  it('counts a second detection on one GT as an FP', () => {
    // GTs A and B; ranked A 0.9, A again 0.8, B 0.7: the duplicate is an FP between two TPs → 253/303 as above.
    const r = evaluateCoco([{ detections: [det(A, 0.9), det(A, 0.8), det(B, 0.7)], annotations: [gt(A), gt(B)] }], 1);
    expect(r.map).toBeCloseTo(253 / 303, 12);
  });

  it('matches at an IoU exactly equal to the threshold', () => {
    // [0,0,10,5] vs [0,0,10,10]: inter 50, union 100 → IoU 0.5 exactly: TP at t = .5 only → AP = 1/10.
    const r = evaluateCoco([{ detections: [det([0, 0, 10, 5], 0.9)], annotations: [gt(A)] }], 1);
    expect(r.map50).toBeCloseTo(1, 12);
    expect(r.map).toBeCloseTo(0.1, 12);
    expect(r.map75).toBe(0);
    const below = evaluateCoco([{ detections: [det([0, 0, 10, 4.999], 0.9)], annotations: [gt(A)] }], 1);
    expect(below.map50).toBe(0);
  });

  it('averages over IoU thresholds for a box of known IoU', () => {
    // [0,0,10,7.2] vs A: IoU 72/100 = 0.72 → matched at .5, .55, .6, .65, .7 → AP = 5/10.
    const r = evaluateCoco([{ detections: [det([0, 0, 10, 7.2], 0.9)], annotations: [gt(A)] }], 1);
    expect(r.map).toBeCloseTo(0.5, 12);
    expect(r.map50).toBeCloseTo(1, 12);
    expect(r.map75).toBe(0);
    expect(r.ar100).toBeCloseTo(0.5, 12);
  });

  it('gives a tied-IoU detection the later GT, as pycocotools does', () => {
    // G1 [0,0,10,10], G2 [2,0,12,10]. d1 (0.9) [1,0,11,10] has IoU 90/110 = 0.818 with both → takes G2 (later wins).
    // d2 (0.8) = G2's box: IoU with G1 80/120 = 0.667, with G2 1.
    // t ≤ .65: d1→G2, d2→G1: AP 1 (4 thresholds).
    // t = .7, .75, .8: d1→G2, d2 FP: tp [1,1], fp [0,1], rc [.5,.5] → AP 51/101.
    // t ≥ .85: d1 FP, d2→G2: tp [0,1], fp [1,1], pr envelope [.5,.5] up to rc .5 → AP 25.5/101.
    // mAP = (4 + 3·51/101 + 3·25.5/101) / 10 = 633.5/1010. (If the first GT won, d2 would always match G2.)
    const r = evaluateCoco(
      [{ detections: [det([1, 0, 11, 10], 0.9), det([2, 0, 12, 10], 0.8)], annotations: [gt(A), gt([2, 0, 12, 10])] }],
      1,
    );
    expect(r.map).toBeCloseTo(633.5 / 1010, 12);
  });

  it('truncates to maxDets per image and class, keeping the highest scores', () => {
    // Two GTs, two perfect detections, maxDets 1: only the 0.9 one counts → rc [.5], pr [1] → AP 51/101, AR .5.
    const img = { detections: [det(B, 0.2), det(A, 0.9)], annotations: [gt(A), gt(B)] };
    const r = evaluateCoco([img], 1, { maxDets: 1 });
    expect(r.map).toBeCloseTo(51 / 101, 12);
    expect(r.ar100).toBeCloseTo(0.5, 12);
    expect(r.perClass[0].nDet).toBe(1);
    // The cut is per class, not per image: one detection of each of two classes both count.
    const two = evaluateCoco([{ detections: [det(A, 0.9), det(B, 0.8, 1)], annotations: [gt(A), gt(B, 1)] }], 2, { maxDets: 1 });
    expect(two.map).toBeCloseTo(1, 12);
  });

  it('rejects classes outside 0..nc−1', () => {
    expect(() => evaluateCoco([{ detections: [det(A, 0.9, 2)], annotations: [] }], 2)).toThrow(/cls 2/);
    expect(() => evaluateCoco([], 0)).toThrow(/nc/);
    expect(() => evaluateCoco([], 1, { maxDets: 0 })).toThrow(/maxDets/);
  });

  it('returns, on request, the IoU-0.5 precision-recall curve whose mean is each class AP50', () => {
    // 2 GTs; ranked TP 0.9, FP 0.8, TP 0.7 (as above): recall thresholds up to 0.50 read 1, the rest 2/3.
    const images = [
      { detections: [det(A, 0.9), det(FAR, 0.8), det(B, 0.7)], annotations: [gt(A), gt(B)] },
      { detections: [det(A, 0.5, 1)], annotations: [gt(B, 1)] },
    ];
    const plain = evaluateCoco(images, 3);
    const r = evaluateCoco(images, 3, { prCurves: true });
    expect({ ...r, prCurves: undefined }).toEqual({ ...plain, prCurves: undefined });
    const pr = r.prCurves!;
    expect(pr).toHaveLength(3);
    expect(pr[2]).toBeNull();
    expect(pr[0]!).toHaveLength(101);
    expect([pr[0]![0], pr[0]![50], pr[0]![51], pr[0]![100]]).toEqual([1, 1, 2 / 3, 2 / 3].map((v) => expect.closeTo(v, 12)));
    expect([...pr[1]!].every((v) => v === 0)).toBe(true); // a miss: precision 0 everywhere
    for (const k of [0, 1]) expect(pr[k]!.reduce((s, v) => s + v, 0) / 101).toBeCloseTo(r.perClass[k].ap50, 12);
    expect(r.map50).toBeCloseTo((r.perClass[0].ap50 + r.perClass[1].ap50) / 2, 12);
  });
});
