import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { augmentSample, boxCandidate, DEFAULT_HYP, transformBoxes, type SampleSource } from '../src/data/augment.js';
import { mosaicPlan, renderRegion, type LabelledImage } from '../src/data/mosaic.js';
import { Rng } from '../src/data/rng.js';
import type { AugmentHyp } from '../src/data/types.js';

const S = 64;

/** A dark image, long side S, holding one pure red square; its label is the square's box. */
async function redSquare(w: number, h: number, x: number, y: number, side: number): Promise<LabelledImage> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="rgb(30,40,50)"/>` +
    `<rect x="${x}" y="${y}" width="${side}" height="${side}" fill="rgb(255,0,0)"/></svg>`;
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    image: { data, width: info.width, height: info.height },
    labels: Float32Array.from([0, (x + side / 2) / w, (y + side / 2) / h, side / w, side / h]),
  };
}

let source: SampleSource;
beforeAll(async () => {
  const imgs = await Promise.all([
    redSquare(64, 48, 10, 8, 20), redSquare(40, 64, 6, 30, 16), redSquare(64, 64, 30, 30, 24), redSquare(64, 32, 44, 4, 12),
  ]);
  source = { count: imgs.length, size: S, load: async (i) => imgs[i]! };
});

const isRed = (d: Uint8Array, p: number) => d[p * 3]! > 150 && d[p * 3 + 1]! < 110 && d[p * 3 + 2]! < 110;

describe('augmentSample', () => {
  it('is reproducible from (seed, epoch, index) and changes with the seed', async () => {
    const a = await augmentSample(source, 2, DEFAULT_HYP, Rng.derive(7, 0, 2));
    const b = await augmentSample(source, 2, DEFAULT_HYP, Rng.derive(7, 0, 2));
    const c = await augmentSample(source, 2, DEFAULT_HYP, Rng.derive(8, 0, 2));
    expect(a.data.length).toBe(S * S * 3);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
    expect(Buffer.from(a.data).equals(Buffer.from(c.data))).toBe(false);
  });

  it.each([
    ['mosaic + scale/translate + flips', { ...DEFAULT_HYP, hsv_h: 0, hsv_s: 0, hsv_v: 0, flipud: 0.5 }],
    ['mosaic + rotation and shear', { ...DEFAULT_HYP, hsv_h: 0, hsv_s: 0, hsv_v: 0, degrees: 10, shear: 3 }],
    ['letterbox (no mosaic) + affine', { ...DEFAULT_HYP, hsv_h: 0, hsv_s: 0, hsv_v: 0, mosaic: 0 }],
  ] as [string, AugmentHyp][])('keeps boxes inside the image and on the shapes: %s', async (_, hyp) => {
    let red = 0, redInBox = 0, boxes = 0;
    for (let k = 0; k < 24; k++) {
      const s = await augmentSample(source, k % 4, hyp, Rng.derive(1, k, k % 4));
      const inBox = new Uint8Array(S * S);
      for (let i = 0; i < s.labels.length; i += 5) {
        boxes++;
        const [cx, cy, w, h] = [s.labels[i + 1]!, s.labels[i + 2]!, s.labels[i + 3]!, s.labels[i + 4]!];
        expect(cx - w / 2).toBeGreaterThanOrEqual(-1e-6);
        expect(cy - h / 2).toBeGreaterThanOrEqual(-1e-6);
        expect(cx + w / 2).toBeLessThanOrEqual(1 + 1e-6);
        expect(cy + h / 2).toBeLessThanOrEqual(1 + 1e-6);
        expect(w * S).toBeGreaterThan(2);
        const x1 = Math.floor((cx - w / 2) * S), x2 = Math.ceil((cx + w / 2) * S);
        const y1 = Math.floor((cy - h / 2) * S), y2 = Math.ceil((cy + h / 2) * S);
        let hits = 0;
        for (let y = y1; y < y2; y++) {
          for (let x = x1; x < x2; x++) {
            if (isRed(s.data, y * S + x)) hits++;
          }
        }
        // The square fills most of its box (a rotated square still fills over 60 %).
        expect(hits / ((x2 - x1) * (y2 - y1))).toBeGreaterThan(0.4);
        for (let y = Math.max(0, y1 - 1); y < Math.min(S, y2 + 1); y++) {
          for (let x = Math.max(0, x1 - 1); x < Math.min(S, x2 + 1); x++) inBox[y * S + x] = 1;
        }
      }
      for (let p = 0; p < S * S; p++) {
        if (isRed(s.data, p)) { red++; if (inBox[p]) redInBox++; }
      }
    }
    expect(boxes).toBeGreaterThanOrEqual(20);
    // Red left without a box: only slivers that box_candidates dropped.
    expect(redInBox / red).toBeGreaterThan(0.95);
  });

  it('changes colours with HSV gains but not geometry', async () => {
    // Gains are drawn whenever one of them is non-zero (as in ultralytics), so both runs draw the same stream.
    const plain = await augmentSample(source, 1, { ...DEFAULT_HYP, hsv_s: 0 }, Rng.derive(3, 0, 1));
    const jittered = await augmentSample(source, 1, DEFAULT_HYP, Rng.derive(3, 0, 1));
    expect(Array.from(jittered.labels)).toEqual(Array.from(plain.labels));
    expect(Buffer.from(jittered.data).equals(Buffer.from(plain.data))).toBe(false);
  });
});

describe('mosaic and box geometry', () => {
  it('lays four images around the centre and clips boxes to the 2S canvas', () => {
    const img = (w: number, h: number, v: number): LabelledImage => ({
      image: { data: new Uint8Array(w * h * 3).fill(v), width: w, height: h },
      labels: Float32Array.from([1, 0.5, 0.5, 1, 1]), // the whole image
    });
    const plan = mosaicPlan([img(64, 48, 10), img(64, 48, 20), img(32, 64, 30), img(64, 64, 40)], 64, 40, 100);
    expect(plan.pieces.map((p) => [p.x, p.y])).toEqual([[-24, 52], [40, 52], [8, 100], [40, 100]]);
    expect(Array.from(plan.boxes)).toEqual([1, 0, 52, 40, 100, 1, 40, 52, 104, 100, 1, 8, 100, 40, 128, 1, 40, 100, 104, 128]);
    const px = renderRegion(plan, 0, 0, 128, 128);
    const at = (x: number, y: number) => px[(y * 128 + x) * 3];
    expect([at(0, 0), at(0, 60), at(39, 99), at(40, 60), at(20, 110), at(100, 127), at(120, 120)]).toEqual([114, 10, 10, 20, 30, 40, 114]);
  });

  it('drops boxes that shrink too much, get too thin or are cut off (box_candidates)', () => {
    expect(boxCandidate(10, 10, 9, 9)).toBe(true);
    expect(boxCandidate(10, 10, 2, 40)).toBe(false); // w <= 2 px
    expect(boxCandidate(40, 40, 10, 10)).toBe(false); // 6 % of the area left
    expect(boxCandidate(300, 4, 200, 4)).toBe(true);
    expect(boxCandidate(1000, 3, 500, 3)).toBe(false); // aspect 167 >= 100
    const boxes = Float32Array.from([0, 10, 10, 30, 30, 1, 55, 10, 70, 30]);
    // Shift right by 10: the second box (x 65..80) keeps only 64-65.
    const out = transformBoxes(boxes, [1, 0, 0, 1, 10, 0], 64, 1);
    expect(Array.from(out)).toEqual([0, 30 / 64, 20 / 64, 20 / 64, 20 / 64]);
  });
});
