import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bestPossibleRecall, checkAnchors, kmeanAnchors, labelShapes, type AnchorData } from '../src/data/autoanchor.js';
import { Rng } from '../src/data/rng.js';
import { memoryLogger } from '../src/util/logger.js';

const DEFAULT_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]];
const STRIDES = [8, 16, 32];

/** Images of a few sizes, each holding 1–4 boxes whose letterboxed pixel size is `box()`. */
function dataset(seed: number, images: number, imgsz: number, box: (r: Rng) => [number, number]): AnchorData {
  const r = new Rng(seed);
  const sizes: [number, number][] = [[imgsz, imgsz], [256, 192], [192, 256], [1280, 720], [500, 375]];
  const shapes: [number, number][] = [];
  const labels: [number, number][][] = [];
  for (let i = 0; i < images; i++) {
    const [w, h] = r.choice(sizes);
    const f = imgsz / Math.max(w, h);
    shapes.push([w, h]);
    labels.push(Array.from({ length: r.int(1, 4) }, () => {
      const [bw, bh] = box(r);
      return [bw / (w * f), bh / (h * f)] as [number, number];
    }));
  }
  return { shapes, labels };
}

/** Thin, tall boxes near 4×60 and 6×90 px at imgsz 128: the default anchors fit them badly. */
const thinData = (seed = 1) => dataset(seed, 300, 128, (r) => {
  const s = r.uniform(0.85, 1.15);
  return r.chance(0.5) ? [4 * s, 60 * s] : [6 * s, 90 * s];
});

/** Boxes 20–300 px of aspect 1:2 to 2:1 at imgsz 640: the default anchors fit them. */
const cocoLikeData = (seed = 2) => dataset(seed, 300, 640, (r) => {
  const a = Math.exp(r.uniform(Math.log(0.5), Math.log(2)));
  const s = Math.exp(r.uniform(Math.log(20), Math.log(300)));
  return [Math.min(300, Math.max(20, s * Math.sqrt(a))), Math.min(300, Math.max(20, s / Math.sqrt(a)))];
});

const pairs = (flat: readonly number[]) => Array.from({ length: flat.length / 2 }, (_, j) => [flat[2 * j]!, flat[2 * j + 1]!] as const);
const area = ([w, h]: readonly [number, number]) => w * h;

/** kmean_anchors' fitness on labels of at least 2 px: mean best ratio metric above 1/thr. */
function fitness(anchors: readonly (readonly [number, number])[], wh: readonly number[], thr: number): number {
  let sum = 0, n = 0;
  for (let i = 0; i < wh.length; i += 2) {
    const w = wh[i]!, h = wh[i + 1]!;
    if (w < 2 && h < 2) continue;
    n++;
    const best = Math.max(...anchors.map(([aw, ah]) => Math.min(w / aw, aw / w, h / ah, ah / h)));
    if (best > 1 / thr) sum += best;
  }
  return sum / n;
}

describe('bestPossibleRecall', () => {
  // Per label, anchors [10,10] and [20,40] give x: 10×10 → 1, 0.25 · 20×40 → 0.25, 1 · 5×5 → 0.5, 0.125 ·
  // 100×100 → 0.1, 0.2 · 14×20 → 0.5, 0.5. A ratio of exactly 4 (x = 0.25) is not above 1/thr.
  const anchors = [10, 10, 20, 40];
  const wh = [10, 10, 20, 40, 5, 5, 100, 100, 14, 20];

  it('counts labels with a best anchor above 1/thr, and anchors above 1/thr per label', () => {
    expect(bestPossibleRecall(anchors, wh)).toEqual({ bpr: 4 / 5, aat: 5 / 5 });
    // thr 2: only x > 0.5 counts, so 10×10 and 20×40 alone, once each.
    expect(bestPossibleRecall(anchors, wh, 2)).toEqual({ bpr: 2 / 5, aat: 2 / 5 });
    // thr 10: every pair with x > 0.1: 10×10 and 20×40 twice, 5×5 twice, 100×100 once (0.2), 14×20 twice.
    expect(bestPossibleRecall(anchors, wh, 10)).toEqual({ bpr: 5 / 5, aat: 9 / 5 });
  });

  it('takes pairs or flattened lists, and gives zeros for no labels', () => {
    expect(bestPossibleRecall(pairs(anchors), pairs(wh))).toEqual(bestPossibleRecall(anchors, Float32Array.from(wh)));
    expect(bestPossibleRecall(anchors, [])).toEqual({ bpr: 0, aat: 0 });
    expect(() => bestPossibleRecall([10, 10, 20], wh)).toThrow(RangeError);
  });

  it('measures the default YOLOv5 anchors on hand-made shapes', () => {
    // 16×30 alone fits 6×90 (x = 1/3); 4×60 best meets 16×30 at x = 0.25 exactly, which does not count;
    // 33×23 fits six: 10×13, 16×30, 33×23, 30×61, 62×45 and 116×90 (x = 23/90 ≈ 0.256).
    const flat = DEFAULT_ANCHORS.flat();
    expect(bestPossibleRecall(flat, [6, 90, 4, 60, 33, 23])).toEqual({ bpr: 2 / 3, aat: 7 / 3 });
  });
});

describe('labelShapes', () => {
  const data: AnchorData = { shapes: [[200, 100], [50, 100], [640, 480]], labels: [[[0.5, 0.5], [0.1, 1]], [], [[0.25, 0.5]]] };

  it('scales each image so its long side is imgsz, then the normalised sizes to pixels', () => {
    expect(Array.from(labelShapes(data, { imgsz: 100 }))).toEqual([50, 25, 10, 50, 25, 37.5]);
  });

  it('jitters each image by one seeded factor in [0.9, 1.1]', () => {
    const a = labelShapes(data, { imgsz: 100, scaleJitter: true, seed: 3 });
    const b = labelShapes(data, { imgsz: 100, scaleJitter: true, seed: 3 });
    const c = labelShapes(data, { imgsz: 100, scaleJitter: true, seed: 4 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const plain = labelShapes(data, { imgsz: 100 });
    const f = a.map((v, i) => v / plain[i]!);
    for (const v of f) expect(v).toBeGreaterThanOrEqual(0.9 - 1e-6), expect(v).toBeLessThanOrEqual(1.1 + 1e-6);
    // Image 0's two labels share a factor; image 2's is drawn after image 1's unused one.
    expect(f[0]).toBeCloseTo(f[1]!, 5);
    expect(f[0]).toBeCloseTo(f[3]!, 5);
    expect(f[0]).not.toBeCloseTo(f[4]!, 5);
  });

  it('rejects mismatched shapes and labels', () => {
    expect(() => labelShapes({ shapes: [[10, 10]], labels: [] }, { imgsz: 64 })).toThrow(/one entry per image/);
  });
});

describe('kmeanAnchors', () => {
  it('returns n anchors sorted by area that fit the labels', () => {
    const wh = labelShapes(thinData(), { imgsz: 128 });
    const k = kmeanAnchors(wh, { n: 9, imgsz: 128, seed: 0 });
    expect(k).toHaveLength(9);
    for (let j = 1; j < k.length; j++) expect(area(k[j]!)).toBeGreaterThanOrEqual(area(k[j - 1]!));
    for (const [w, h] of k) expect(h / w).toBeGreaterThan(8);
    expect(bestPossibleRecall(k, wh).bpr).toBe(1);
  });

  it('drops labels under 2 px on both sides and warns about those under 3 px', () => {
    const log = memoryLogger();
    // 1×1 and 1.5×1.9 are dropped, 1×10 is kept though narrow; three are under 3 px on a side.
    const wh = [1, 1, 1.5, 1.9, 1, 10, 20, 20, 30, 30, 40, 40];
    const k = kmeanAnchors(wh, { n: 4, imgsz: 64, seed: 0, gen: 50, logger: log });
    expect(k).toHaveLength(4);
    expect(log.lines).toContainEqual({ level: 'warn', msg: 'AutoAnchor: Extremely small objects found: 3 of 6 labels are <3 pixels in size' });
    expect(log.lines).toContainEqual({ level: 'info', msg: 'AutoAnchor: Running kmeans for 4 anchors on 4 points...' });
  });

  it('falls back to a random init when there are fewer shapes or clusters than anchors', () => {
    for (const wh of [[10, 20, 30, 40], [4, 60, 6, 90, 4, 60, 6, 90, 4, 60, 6, 90]]) {
      const log = memoryLogger();
      const k = kmeanAnchors(wh, { n: 3, imgsz: 128, seed: 5, logger: log });
      expect(k).toHaveLength(3);
      expect(log.lines).toContainEqual({ level: 'warn', msg: 'AutoAnchor: switching strategies from kmeans to random init' });
      for (const [w, h] of k) expect(Math.min(w, h)).toBeGreaterThanOrEqual(2);
    }
  });

  it('is reproducible from the seed', () => {
    const wh = labelShapes(cocoLikeData(), { imgsz: 640 });
    const a = kmeanAnchors(wh, { imgsz: 640, seed: 7, gen: 200 });
    expect(kmeanAnchors(wh, { imgsz: 640, seed: 7, gen: 200 })).toEqual(a);
    expect(kmeanAnchors(wh, { imgsz: 640, seed: 8, gen: 200 })).not.toEqual(a);
  });

  // ultralytics' own kmean_anchors (YOLOv5 v7.0, seeds 0) on the same shapes; see fixtures/autoanchor/make-fixture.py.
  const cases = JSON.parse(readFileSync(new URL('./fixtures/autoanchor/ultralytics-kmean-anchors.json', import.meta.url), 'utf8')) as {
    name: string; imgsz: number; n: number; thr: number; wh: number[];
    ultralytics: { anchors: [number, number][]; bpr: number; aat: number; fitness: number };
  }[];
  it.each(cases)('matches ultralytics kmean_anchors in fit on $name shapes', ({ imgsz, n, thr, wh, ultralytics }) => {
    const k = kmeanAnchors(wh, { n, imgsz, thr, seed: 0 });
    const ours = bestPossibleRecall(k, wh, thr);
    expect(ours.bpr).toBeGreaterThanOrEqual(ultralytics.bpr - 0.01);
    expect(ours.aat).toBeCloseTo(ultralytics.aat, -0.3); // within ±1 anchor/label
    expect(fitness(k, wh, thr)).toBeGreaterThan(ultralytics.fitness - 0.01);
    // Same scale: each sorted anchor's area within 2× of ultralytics' (different random streams).
    k.forEach((a, j) => expect(Math.abs(Math.log(area(a) / area(ultralytics.anchors[j]!)))).toBeLessThan(Math.log(2)));
  });

  it('handles 20k labels in seconds', () => {
    const r = new Rng(9);
    const wh = new Float32Array(40_000);
    for (let i = 0; i < wh.length; i += 2) {
      const s = Math.exp(r.uniform(Math.log(8), Math.log(400))), a = Math.exp(r.uniform(-1, 1));
      wh[i] = s * a; wh[i + 1] = s / a;
    }
    const t0 = performance.now();
    const k = kmeanAnchors(wh, { imgsz: 640, seed: 0 });
    const ms = performance.now() - t0;
    expect(bestPossibleRecall(k, wh).bpr).toBeGreaterThan(0.99);
    expect(ms).toBeLessThan(60_000); // 1–2.5 s on one core; 11 s seen on an overloaded 2-core runner
  });
});

describe('checkAnchors', () => {
  it('keeps the default anchors on data they fit, with ultralytics wording', () => {
    const log = memoryLogger();
    const r = checkAnchors(DEFAULT_ANCHORS, STRIDES, cocoLikeData(), { imgsz: 640, seed: 0, logger: log });
    expect(r.changed).toBe(false);
    expect(r.anchors).toEqual(DEFAULT_ANCHORS);
    expect(r.bpr).toBeGreaterThan(0.98);
    expect(r.initial).toEqual({ bpr: r.bpr, aat: r.aat });
    expect(r.message).toBe(`AutoAnchor: ${r.aat.toFixed(2)} anchors/target, ${r.bpr.toFixed(3)} Best Possible Recall (BPR). Current anchors are a good fit to dataset ✅`);
    expect(log.lines).toEqual([{ level: 'info', msg: r.message }]);
  });

  it('replaces badly fitting anchors with ones shaped like the data, small to large along the strides', () => {
    const log = memoryLogger();
    const data = thinData();
    const r = checkAnchors(DEFAULT_ANCHORS, STRIDES, data, { imgsz: 128, seed: 0, logger: log });
    expect(r.initial.bpr).toBeLessThan(0.98);
    expect(r.changed).toBe(true);
    expect(r.bpr).toBeGreaterThan(0.98);
    expect(r.bpr).toBeGreaterThan(r.initial.bpr);
    expect(r.message).toBe('AutoAnchor: Done ✅ (optional: update model *.yaml to use these anchors in the future)');
    expect(log.lines[0]!.msg).toMatch(/^AutoAnchor: \d\.\d\d anchors\/target, 0\.\d{3} Best Possible Recall \(BPR\)\. Anchors are a poor fit to dataset ⚠️, attempting to improve\.\.\.$/);
    expect(r.anchors.map((l) => l.length)).toEqual([6, 6, 6]);
    const all = r.anchors.flatMap(pairs);
    // Tall and thin like the 4×60 / 6×90 boxes, within the data's size range.
    for (const [w, h] of all) {
      expect(h / w).toBeGreaterThan(8);
      expect(h).toBeGreaterThan(40);
      expect(h).toBeLessThan(120);
    }
    for (let j = 1; j < all.length; j++) expect(area(all[j]!)).toBeGreaterThanOrEqual(area(all[j - 1]!));
    // The returned fit is that of the new anchors on the same jittered shapes.
    const jittered = labelShapes(data, { imgsz: 128, scaleJitter: true, seed: 0 });
    expect(bestPossibleRecall(r.anchors.flat(), jittered)).toEqual({ bpr: r.bpr, aat: r.aat });
  });

  it('puts the largest anchors first when the strides run large to small', () => {
    const r = checkAnchors([...DEFAULT_ANCHORS].reverse(), [32, 16, 8], thinData(), { imgsz: 128, seed: 0 });
    expect(r.changed).toBe(true);
    const levelArea = r.anchors.map((l) => pairs(l).reduce((s, p) => s + area(p), 0));
    expect(levelArea[0]).toBeGreaterThan(levelArea[1]!);
    expect(levelArea[1]).toBeGreaterThan(levelArea[2]!);
  });

  it('is reproducible from the seed', () => {
    const a = checkAnchors(DEFAULT_ANCHORS, STRIDES, thinData(), { imgsz: 128, seed: 3, gen: 300 });
    expect(checkAnchors(DEFAULT_ANCHORS, STRIDES, thinData(), { imgsz: 128, seed: 3, gen: 300 })).toEqual(a);
    expect(checkAnchors(DEFAULT_ANCHORS, STRIDES, thinData(), { imgsz: 128, seed: 4, gen: 300 }).anchors).not.toEqual(a.anchors);
  });

  it('keeps the original anchors when the new ones recall less', () => {
    // Most labels are under 2 px, which only the tiny anchor covers; k-means never sees them.
    const labels: [number, number][][] = [[...Array<[number, number]>(6).fill([1 / 64, 1 / 64]), [0.5, 0.5], [0.55, 0.45]]];
    const log = memoryLogger();
    const r = checkAnchors([[1, 1]], [8], { shapes: [[64, 64]], labels }, { imgsz: 64, seed: 0, gen: 100, logger: log });
    expect(r.initial.bpr).toBeCloseTo(0.75, 5);
    expect(r.changed).toBe(false);
    expect(r.anchors).toEqual([[1, 1]]);
    expect(r.message).toBe('AutoAnchor: Done ⚠️ (original anchors better than new anchors, proceeding with original anchors)');
  });

  it('keeps the anchors when there are no labels, and checks its arguments', () => {
    const r = checkAnchors(DEFAULT_ANCHORS, STRIDES, { shapes: [[640, 480]], labels: [[]] });
    expect(r).toMatchObject({ changed: false, anchors: DEFAULT_ANCHORS, bpr: 0 });
    expect(() => checkAnchors(DEFAULT_ANCHORS, [8, 16], cocoLikeData())).toThrow(/one level per stride/);
    expect(() => checkAnchors([[10, 13, 16]], [8], cocoLikeData())).toThrow(RangeError);
  });
});
