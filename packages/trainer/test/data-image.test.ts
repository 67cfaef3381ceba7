import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flipAffine, warpCanvas, type Affine } from '../src/data/augment.js';
import { decodeBmp, readBmpInfo } from '../src/data/bmp.js';
import { applyHsv, hsvGains } from '../src/data/hsv.js';
import { decodeImage, letterboxImage, loadResized } from '../src/data/image.js';
import type { CanvasPlan } from '../src/data/mosaic.js';
import { Rng } from '../src/data/rng.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kd-image-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

function pattern(w: number, h: number): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      px[o] = (x * 37 + y * 11) & 255;
      px[o + 1] = (x * 5 + y * 23) & 255;
      px[o + 2] = (x * y * 7 + 13) & 255;
    }
  }
  return px;
}

/** Writes a BMP: 24-bit BI_RGB, or 32-bit with bitfield masks [r, g, b] (BI_BITFIELDS) or BGRX (BI_RGB). */
function encodeBmp(rgb: Uint8Array, w: number, h: number, opts: { bpp: 24 | 32; topDown: boolean; masks?: [number, number, number] }): Buffer {
  const stride = Math.floor((opts.bpp * w + 31) / 32) * 4;
  const extra = opts.masks ? 12 : 0;
  const offset = 14 + 40 + extra;
  const buf = Buffer.alloc(offset + stride * h);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(offset, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(w, 18);
  buf.writeInt32LE(opts.topDown ? -h : h, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(opts.bpp, 28);
  buf.writeUInt32LE(opts.masks ? 3 : 0, 30);
  if (opts.masks) opts.masks.forEach((m, i) => buf.writeUInt32LE(m >>> 0, 54 + 4 * i));
  for (let y = 0; y < h; y++) {
    const row = offset + (opts.topDown ? y : h - 1 - y) * stride;
    for (let x = 0; x < w; x++) {
      const [r, g, b] = [rgb[(y * w + x) * 3]!, rgb[(y * w + x) * 3 + 1]!, rgb[(y * w + x) * 3 + 2]!];
      if (opts.bpp === 24) {
        buf[row + x * 3] = b; buf[row + x * 3 + 1] = g; buf[row + x * 3 + 2] = r;
      } else if (opts.masks) {
        // Each channel placed where its mask says, alpha in the remaining byte.
        const shift = (m: number) => Math.log2(m & -m);
        const v = (r << shift(opts.masks[0])) | (g << shift(opts.masks[1])) | (b << shift(opts.masks[2]));
        buf.writeUInt32LE(v >>> 0, row + x * 4);
      } else {
        buf[row + x * 4] = b; buf[row + x * 4 + 1] = g; buf[row + x * 4 + 2] = r; buf[row + x * 4 + 3] = 255;
      }
    }
  }
  return buf;
}

describe('BMP decoding', () => {
  const w = 13, h = 7; // odd width: rows are padded to 4 bytes
  const rgb = pattern(w, h);
  it.each([
    ['24-bit bottom-up', { bpp: 24, topDown: false }],
    ['24-bit top-down', { bpp: 24, topDown: true }],
    ['32-bit BI_RGB bottom-up', { bpp: 32, topDown: false }],
    ['32-bit BITFIELDS top-down, RGBA byte order', { bpp: 32, topDown: true, masks: [0x000000ff, 0x0000ff00, 0x00ff0000] }],
  ] as const)('%s decodes to the same pixels as a PNG of them', async (name, opts) => {
    const bmpFile = join(dir, `${name.replace(/\W+/g, '_')}.bmp`);
    const pngFile = join(dir, `${name.replace(/\W+/g, '_')}.png`);
    await writeFile(bmpFile, encodeBmp(rgb, w, h, opts as Parameters<typeof encodeBmp>[3]));
    await sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } }).png().toFile(pngFile);
    const a = await decodeImage(bmpFile);
    const b = await decodeImage(pngFile);
    expect([a.width, a.height]).toEqual([w, h]);
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    expect(Buffer.from(a.data).equals(Buffer.from(rgb))).toBe(true);
  });

  it('resizes BMP files through sharp like any other image', async () => {
    const file = join(dir, 'big.bmp');
    await writeFile(file, encodeBmp(pattern(40, 20), 40, 20, { bpp: 24, topDown: false }));
    const r = await loadResized(file, 16);
    expect([r.width, r.height]).toEqual([16, 8]);
  });

  it('rejects truncated, compressed and palette files', () => {
    const good = encodeBmp(rgb, w, h, { bpp: 24, topDown: false });
    expect(() => readBmpInfo(good.subarray(0, 60), 60)).toThrow(/truncated/);
    const rle = Buffer.from(good); rle.writeUInt32LE(1, 30);
    expect(() => decodeBmp(rle)).toThrow(/compression/);
    const pal = Buffer.from(good); pal.writeUInt16LE(8, 28);
    expect(() => decodeBmp(pal)).toThrow(/8 bit/);
  });
});

describe('letterboxImage', () => {
  it('keeps the aspect and centres the content with grey 114 padding', async () => {
    const rgb = new Uint8Array(200 * 100 * 3).fill(200);
    const lb = await letterboxImage(rgb, 200, 100, 64);
    expect(lb.ratio).toEqual([32 / 100, 64 / 200]);
    expect(lb.pad).toEqual([0, 16]);
    const row = (y: number) => lb.data[(y * 64 + 10) * 3];
    expect([row(0), row(15), row(16), row(47), row(48), row(63)]).toEqual([114, 114, 200, 200, 114, 114]);
  });

  it('puts the odd padding pixel at the bottom/right like ultralytics', async () => {
    const lb = await letterboxImage(new Uint8Array(100 * 61 * 3).fill(10), 100, 61, 64);
    // 61 * 0.64 = 39.04 -> 39 rows; 25 rows of padding: 12 on top, 13 below.
    expect(lb.pad).toEqual([0, 12]);
    expect(lb.data[(11 * 64) * 3]).toBe(114);
    expect(lb.data[(12 * 64) * 3]).toBe(10);
    expect(lb.data[(50 * 64) * 3]).toBe(10);
    expect(lb.data[(51 * 64) * 3]).toBe(114);
    // Upscaling a small image fills the long side.
    const up = await letterboxImage(new Uint8Array(20 * 10 * 3).fill(10), 20, 10, 64);
    expect(up.ratio).toEqual([3.2, 3.2]);
    expect(up.pad).toEqual([0, 16]);
  });
});

/** cv2.warpAffine-style reference with pixel centres at +0.5 and grey outside. */
function referenceWarp(src: Uint8Array, sw: number, sh: number, m: Affine, size: number): Float64Array {
  const [a, b, c, d, tx, ty] = m;
  const det = a * d - b * c;
  const out = new Float64Array(size * size * 3);
  for (let j = 0; j < size; j++) {
    for (let i = 0; i < size; i++) {
      const qx = i + 0.5 - tx, qy = j + 0.5 - ty;
      const px = (d * qx - b * qy) / det - 0.5, py = (-c * qx + a * qy) / det - 0.5;
      const x0 = Math.floor(px), y0 = Math.floor(py), fx = px - x0, fy = py - y0;
      for (let ch = 0; ch < 3; ch++) {
        let v = 0;
        for (const [dx, dy, wt] of [[0, 0, (1 - fx) * (1 - fy)], [1, 0, fx * (1 - fy)], [0, 1, (1 - fx) * fy], [1, 1, fx * fy]] as const) {
          const x = x0 + dx, y = y0 + dy;
          v += wt * (x >= 0 && y >= 0 && x < sw && y < sh ? src[(y * sw + x) * 3 + ch]! : 114);
        }
        out[(j * size + i) * 3 + ch] = v;
      }
    }
  }
  return out;
}

describe('warpCanvas', () => {
  const sw = 48, sh = 40;
  const src = pattern(sw, sh);
  const plan: CanvasPlan = { width: sw, height: sh, pieces: [{ image: { data: src, width: sw, height: sh }, x: 0, y: 0 }], boxes: new Float32Array(0) };

  it.each([
    ['scale and sub-pixel shift', [0.7, 0, 0, 0.7, 3.3, -2.6]],
    ['rotation, shear and shift', [0.93, 0.31, -0.27, 0.91, -5.2, 8.7]],
    ['enlarging, most of it outside', [1.6, 0.1, -0.05, 1.4, -30.4, -12.2]],
    ['mirrored', [-1.1, 0, 0, 1.1, 40.25, 1.5]],
  ] as const)('matches a bilinear reference: %s', async (_, m) => {
    const size = 32;
    const got = await warpCanvas(plan, [...m] as Affine, size);
    const ref = referenceWarp(src, sw, sh, [...m] as Affine, size);
    let err = 0;
    for (let k = 0; k < ref.length; k++) err += Math.abs(ref[k]! - got[k]!);
    expect(err / ref.length).toBeLessThan(0.6);
  });

  it('mirrors exactly with a folded flip', async () => {
    const size = 40;
    const m = flipAffine([1, 0, 0, 1, -4, 0], size, true, false);
    const got = await warpCanvas(plan, m, size);
    for (const [x, y] of [[0, 0], [5, 7], [39, 39]]) {
      const srcX = size - 1 - x + 4;
      for (let ch = 0; ch < 3; ch++) expect(got[(y * size + x) * 3 + ch]).toBe(src[(y * sw + srcX) * 3 + ch]);
    }
  });
});

describe('HSV jitter', () => {
  it('uses OpenCV 8-bit HSV with multiplicative LUTs', () => {
    const px = new Uint8Array([0, 255, 0, 100, 100, 100, 255, 0, 0]);
    applyHsv(px, [1.5, 1, 0.5]);
    // green (H=60) -> H=90 (cyan) at half value (255*0.5 truncated to 127, like numpy's astype); grey stays grey at half value; red (H=0) keeps its hue
    expect(Array.from(px)).toEqual([0, 127, 127, 50, 50, 50, 127, 0, 0]);
  });

  it('is close to the identity with unit gains and skipped when all gains are zero', () => {
    const px = pattern(32, 32);
    const copy = Uint8Array.from(px);
    applyHsv(px, [1, 1, 1]);
    // 8-bit HSV quantises hue to 2 degrees, so a round trip moves saturated pixels a little.
    let err = 0, sum = 0;
    for (let k = 0; k < px.length; k++) { err = Math.max(err, Math.abs(px[k]! - copy[k]!)); sum += Math.abs(px[k]! - copy[k]!); }
    expect(err).toBeLessThanOrEqual(5);
    expect(sum / px.length).toBeLessThan(1);
    expect(hsvGains(() => 0.3, 0, 0, 0)).toBeNull();
    const g = hsvGains(new Rng(1).next.bind(new Rng(1)), 0.015, 0.7, 0.4)!;
    expect(g[0]).toBeGreaterThanOrEqual(0.985); expect(g[0]).toBeLessThanOrEqual(1.015);
    expect(g[1]).toBeGreaterThanOrEqual(0.3); expect(g[2]).toBeLessThanOrEqual(1.4);
  });
});
