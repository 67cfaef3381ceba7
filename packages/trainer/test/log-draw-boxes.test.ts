import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { classColor, detectionsSvg, drawDetections } from '../src/log/draw-boxes.js';

function grey(width: number, height: number): Uint8Array {
  return new Uint8Array(width * height * 3).fill(128);
}

describe('drawDetections', () => {
  it('returns an RGB PNG of the input size with box edges in the class colour', async () => {
    const png = await drawDetections(grey(64, 48), 64, 48, [{ box: [10, 20, 50, 40], cls: 0, score: 0.9 }], ['person'], { lineWidth: 2 });
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 64, 48, 3]);
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => [...data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3)];
    expect(px(10, 30)).toEqual([0xff, 0x38, 0x38]); // left edge, class 0 colour
    expect(px(30, 30)).toEqual([128, 128, 128]); // inside the box is untouched
    expect(px(60, 5)).toEqual([128, 128, 128]);
  });

  it('writes JPEG on request and tolerates boxes outside the image', async () => {
    const jpg = await drawDetections(grey(40, 30), 40, 30, [{ box: [-10, -10, 100, 100], cls: 3 }, { box: [5, 5, 5, 9], cls: 1 }], [], { format: 'jpeg' });
    const meta = await sharp(jpg).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 40, 30]);
  });

  it('labels with name and score, escapes XML and skips empty boxes', () => {
    const svg = detectionsSvg(100, 100, [
      { box: [10, 30, 60, 80], cls: 1, score: 0.456 },
      { box: [0, 0, 20, 20], cls: 7 },
      { box: [50, 50, 40, 60], cls: 0 },
    ], ['a', 'b & <c>']);
    expect(svg).toContain('>b &amp; &lt;c&gt; 0.46</text>');
    expect(svg).toContain('>class 7</text>');
    expect(svg.match(/fill="none"/g)).toHaveLength(2);
    expect(classColor(20)).toBe(classColor(0));
  });

  it('checks the pixel buffer size', async () => {
    await expect(drawDetections(new Uint8Array(10), 4, 4, [], [])).rejects.toThrow(/48 bytes/);
  });
});
