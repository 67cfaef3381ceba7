import { describe, expect, it } from 'vitest';
import { boxArea, boxIou, xywhToXyxy, xyxyToXywh } from '../src/detect/box.js';
import { letterbox, scaleBoxes } from '../src/detect/letterbox.js';
import type { BoxXYXY } from '../src/detect/types.js';

describe('box helpers', () => {
  it('converts between centre and corner forms', () => {
    expect(xywhToXyxy([50, 40, 20, 10])).toEqual([40, 35, 60, 45]);
    expect(xyxyToXywh([40, 35, 60, 45])).toEqual([50, 40, 20, 10]);
  });

  it('computes areas and IoU', () => {
    expect(boxArea([0, 0, 10, 5])).toBe(50);
    expect(boxArea([10, 0, 0, 5])).toBe(0);
    // inter 5·10 = 50, union 100 + 100 − 50 = 150
    expect(boxIou([0, 0, 10, 10], [5, 0, 15, 10])).toBeCloseTo(1 / 3, 12);
    expect(boxIou([0, 0, 10, 10], [0, 0, 10, 10])).toBe(1);
    expect(boxIou([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
    expect(boxIou([0, 0, 0, 0], [0, 0, 0, 0])).toBe(0);
  });
});

describe('letterbox', () => {
  it('pads a 640x480 image into a 640 square with 80 px on top', () => {
    const g = letterbox([480, 640], 640);
    expect(g).toEqual({ ratio: 1, pad: [0, 80], newUnpad: [640, 480], dwdh: [0, 80], shape: [640, 640] });
  });

  it('splits odd padding with round(d/2 ± 0.1): the smaller half on top', () => {
    // dh = (640 − 427) / 2 = 106.5 → top round(106.4) = 106, bottom round(106.6) = 107
    const g = letterbox([427, 640], 640);
    expect(g.pad).toEqual([0, 106]);
    expect(g.dwdh).toEqual([0, 106.5]);
    expect(g.shape).toEqual([640, 640]);
  });

  it("rounds the resized size half to even like Python's round()", () => {
    // r = min(100/200, 100/5) = 0.5; width 5·0.5 = 2.5 → 2 (Math.round would give 3); dw = 98 → 49 each side
    const g = letterbox([200, 5], [100, 100]);
    expect(g.ratio).toBe(0.5);
    expect(g.newUnpad).toEqual([2, 100]);
    expect(g.pad).toEqual([49, 0]);
  });

  it('does not enlarge with scaleup false and pads to the stride with auto', () => {
    const g = letterbox([100, 200], 640, { scaleup: false });
    // r = min(6.4, 3.2) capped to 1; dw = 440/2, dh = 540/2
    expect(g.ratio).toBe(1);
    expect(g.pad).toEqual([220, 270]);
    const a = letterbox([470, 640], 640, { auto: true });
    // dh = 170 mod 32 = 10 → 5 each side
    expect(a.pad).toEqual([0, 5]);
    expect(a.shape).toEqual([480, 640]);
  });

  it('rejects bad shapes', () => {
    expect(() => letterbox([0, 10], 640)).toThrow(RangeError);
    expect(() => letterbox([10, 10], [640] as unknown as [number, number])).toThrow(/newShape/);
  });

  it('scaleBoxes inverts the letterbox mapping and clips to the original image', () => {
    // 427x640 into 320: r = 0.5, unpadded 320x214 (213.5 → 214), dh = 106/2 = 53 on top.
    const g = letterbox([427, 640], 320);
    expect(g.ratio).toBe(0.5);
    expect(g.pad).toEqual([0, 53]);
    // original [100, 50, 300, 200] → letterboxed [50, 25 + 53, 150, 100 + 53]
    const lb: BoxXYXY[] = [
      [50, 78, 150, 153],
      [-10, 40, 400, 500],
    ];
    const back = scaleBoxes(lb, g.ratio, g.pad, [427, 640]);
    expect(back[0]).toEqual([100, 50, 300, 200]);
    // x1 −20 → 0, y1 (40 − 53)/0.5 = −26 → 0, x2 800 → 640, y2 894 → 427
    expect(back[1]).toEqual([0, 0, 640, 427]);
    const flat = scaleBoxes(Float32Array.from([50, 78, 150, 153]), g.ratio, g.pad, [427, 640]);
    expect(Array.from(flat)).toEqual([100, 50, 300, 200]);
  });
});
