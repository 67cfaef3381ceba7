import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { evaluateCoco, nonMaxSuppression, precisionRecall, type Detection, type EvalImage } from '@kd-edge/core';
import type { Batch } from '../src/data/types.js';
import { boxSmooth, confidenceCurvePlot, curvePlotSvg, prCurvePlot } from '../src/plots/curves.js';
import { annotationsOf, validateWith, type DetectionPredictor } from '../src/val/validator.js';

const NC = 3;
const S = 64;
const NAMES = ['circle', 'square', 'star'];

/** A seeded generator (mulberry32), so the scene is the same on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n images of S×S, each with two labelled boxes in separate quadrants. */
function scene(n: number, seed: number): Batch {
  const r = rng(seed);
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const [qx, qy] of [[0.25, 0.25], [0.75, 0.75]] as const) {
      targets.push(i, Math.floor(r() * NC), qx + (r() - 0.5) * 0.1, qy + (r() - 0.5) * 0.1, 0.15 + r() * 0.15, 0.15 + r() * 0.15);
    }
  }
  return {
    images: new Float32Array(n * S * S * 3).fill(0.5), n, height: S, width: S, targets: Float32Array.from(targets), nTargets: targets.length / 6,
    files: Array.from({ length: n }, (_, i) => `/data/images/img_${i}.jpg`), shapes: [],
  };
}

/**
 * A detector that finds most labelled boxes (some with the wrong class or a poor box), at scores that
 * make ranking errors, and adds one false positive per image: decoded rows [cx, cy, w, h, obj, cls…].
 */
function fakePredictor(seed: number): DetectionPredictor {
  const r = rng(seed);
  const rows = 4;
  return {
    nc: NC,
    async predict(part) {
      const out = new Float32Array(part.n * rows * (5 + NC));
      const used = new Array<number>(part.n).fill(0);
      const put = (i: number, v: number[], cls: number) => {
        const o = (i * rows + used[i]!++) * (5 + NC);
        out.set(v, o);
        out[o + 5 + cls] = 1;
      };
      for (let k = 0; k < part.nTargets; k++) {
        const [i, cls, cx, cy, w, h] = Array.from(part.targets.subarray(k * 6, k * 6 + 6));
        const u = r();
        if (u < 0.15) continue; // missed
        const shift = u < 0.3 ? 0.6 : 0.05; // a poor box: IoU below 0.5
        const wrong = r() < 0.15;
        put(i!, [(cx! + w! * shift) * S, cy! * S, w! * S, h! * S, wrong ? 0.2 + r() * 0.4 : 0.3 + r() * 0.7], wrong ? (cls! + 1) % NC : cls!);
      }
      for (let i = 0; i < part.n; i++) put(i, [0.75 * S, 0.2 * S, 8, 8, r() * 0.8], Math.floor(r() * NC));
      return { decoded: out, preMs: 0, inferMs: 0 };
    },
  };
}

async function* batchesOf(...bs: Batch[]): AsyncIterable<Batch> {
  yield* bs;
}

describe('validation plots: curves from the figures validate() reports', () => {
  it('writes the val plots and curves whose marked values are the reported P, R and mAP50', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kd-val-plots-')), 'nested');
    const batches = [scene(6, 1), scene(6, 2), scene(6, 3), scene(5, 4)];
    const r = await validateWith(fakePredictor(7), batchesOf(...batches), { plots: { saveDir: dir, names: NAMES } });
    // A second pass without plots gives the same figures (plots change nothing).
    const plain = await validateWith(fakePredictor(7), batchesOf(...batches), {});
    expect({ ...r, speed: 0, plots: undefined }).toEqual({ ...plain, speed: 0, plots: undefined });
    expect(r.map50).toBeGreaterThan(0.2);
    expect(r.map50).toBeLessThan(0.95);

    const expected = ['val_batch0_labels.jpg', 'val_batch0_pred.jpg', 'val_batch1_labels.jpg', 'val_batch1_pred.jpg', 'val_batch2_labels.jpg',
      'val_batch2_pred.jpg', 'confusion_matrix.png', 'PR_curve.png', 'F1_curve.png', 'P_curve.png', 'R_curve.png'];
    expect(r.plots!.files.map((f) => f.slice(dir.length + 1))).toEqual(expected);
    expect(existsSync(join(dir, 'val_batch3_labels.jpg'))).toBe(false);
    for (const f of expected) {
      const meta = await sharp(join(dir, f)).metadata();
      // Six 64-pixel images: a 3 × 3 grid of tiles scaled up to 320 pixels.
      const size = f.startsWith('val_batch') ? [960, 960] : f.startsWith('confusion') ? [3000, 2250] : [2250, 1500];
      expect([meta.format, meta.width, meta.height], f).toEqual([f.endsWith('.jpg') ? 'jpeg' : 'png', ...size]);
    }
    // The confusion matrix holds every label once (a column each) and its counts are whole boxes.
    const cm = r.plots!.confusionMatrix;
    const labels = batches.reduce((s, b) => s + b.nTargets, 0);
    expect(cm.flat().every(Number.isInteger)).toBe(true);
    expect(cm.reduce((s, row) => s + row.slice(0, NC).reduce((a, v) => a + v, 0), 0)).toBe(labels);
    expect(cm.slice(0, NC).reduce((s, row, c) => s + row[c]!, 0)).toBeGreaterThan(labels / 2);
    expect(cm[NC]![NC]).toBe(0);

    // Replay the pass (the same seeded detector, NMS settings and labels) for the curves' data.
    const seen: EvalImage[] = [];
    const replay = fakePredictor(7);
    for (const b of batches) {
      const { decoded } = await replay.predict(b);
      const per = decoded.length / b.n;
      for (let i = 0; i < b.n; i++) {
        const dets: Detection[] = nonMaxSuppression(decoded.subarray(i * per, (i + 1) * per), NC, { confThres: 0.001, iouThres: 0.6, maxDet: 300, multiLabel: true });
        seen.push({ detections: dets, annotations: annotationsOf(b, i) });
      }
    }
    const coco = evaluateCoco(seen, NC, { maxDets: 300, prCurves: true });
    const pr = precisionRecall(seen, NC, 0.5, { curves: true });
    expect(coco.map50).toBe(r.map50);
    expect(pr.precision).toBe(r.precision);

    // PR curve: the legend carries mAP50 and each class's AP50, and the mean line integrates to mAP50.
    const prPlot = prCurvePlot(coco, NAMES);
    expect(prPlot.all.label).toBe(`all classes ${r.map50.toFixed(3)} mAP@0.5`);
    expect(prPlot.classes.map((c) => c.label)).toEqual(r.perClass.map((c) => `${NAMES[c.cls]} ${c.map50.toFixed(3)}`));
    const meanPr = Array.from(prPlot.all.y).reduce((s, v) => s + v, 0) / prPlot.all.y.length;
    expect(meanPr).toBeCloseTo(r.map50, 12);
    expect(curvePlotSvg(prPlot)).toContain(`>all classes ${r.map50.toFixed(3)} mAP@0.5<`);

    // F1 curve: its peak is the confidence at which P and R are read; the class means there are P and R.
    const f1 = confidenceCurvePlot(pr.curves!, 'F1', NAMES);
    expect(f1.best!.confidence).toBe(pr.confidence);
    expect(f1.all.label).toBe(`all classes ${f1.best!.value.toFixed(2)} at ${pr.confidence.toFixed(3)}`);
    const at = f1.best!.index;
    const meanAt = (plot: ReturnType<typeof confidenceCurvePlot>) => plot.classes.reduce((s, c) => s + c.y[at]!, 0) / plot.classes.length;
    expect(meanAt(confidenceCurvePlot(pr.curves!, 'P', NAMES))).toBeCloseTo(r.precision, 12);
    expect(meanAt(confidenceCurvePlot(pr.curves!, 'R', NAMES))).toBeCloseTo(r.recall, 12);
    r.perClass.forEach((c) => {
      expect(pr.curves!.precision[c.cls]![at]).toBe(c.precision);
      expect(pr.curves!.recall[c.cls]![at]).toBe(c.recall);
    });
    // The P and R legends name their curves' maxima.
    const p = confidenceCurvePlot(pr.curves!, 'P', NAMES);
    expect(p.best!.value).toBe(Math.max(...p.all.y as Float64Array));
  });

  it('smooths like ultralytics smooth(): a 101-tap box filter over 1000 points, edges padded', () => {
    const step = Float64Array.from({ length: 1000 }, (_, i) => (i < 500 ? 0 : 1));
    const s = boxSmooth(step, 0.1);
    expect(s[0]).toBe(0);
    expect(s[999]).toBeCloseTo(1, 12);
    expect(s[500]).toBeCloseTo(51 / 101, 12); // taps 450..550: 51 ones
    expect(s[449]).toBe(0);
  });
});
