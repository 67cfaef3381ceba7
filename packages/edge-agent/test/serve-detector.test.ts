import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBmp, decodeToRgb } from '../src/serve/decode-image.js';
import { Detector, type RuntimeLike } from '../src/serve/detector.js';
import { letterboxToTensor } from '../src/serve/preprocess.js';
import { ServeError } from '../src/serve/serve-error.js';
import {
  constantDetectorModel, imagesInput, picturePng, solidPng, tempDir, writeConstantDetector, writeTinyYolo,
} from './fixtures/serve/models.js';

let dir: string;
let remove: () => Promise<void>;

beforeAll(async () => {
  ({ dir, remove } = await tempDir());
});
afterAll(async () => remove());

/** A 24-bit bottom-up BMP of `width`×`height` filled by `px(x, y)`. */
function bmp24(width: number, height: number, px: (x: number, y: number) => [number, number, number]): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + stride * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = px(x, y);
      const o = 54 + (height - 1 - y) * stride + x * 3;
      buf[o] = b;
      buf[o + 1] = g;
      buf[o + 2] = r;
    }
  }
  return buf;
}

describe('image decoding', () => {
  it('decodes PNG, raw RGBA and BMP to the same RGB pixels', async () => {
    const px = (x: number, y: number): [number, number, number] => [x * 20, y * 30, 200 - x * 10];
    const raw = Buffer.alloc(5 * 3 * 3);
    for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) raw.set(px(x, y), (y * 5 + x) * 3);
    const png = await sharp(raw, { raw: { width: 5, height: 3, channels: 3 } }).png().toBuffer();
    const rgba = await sharp(raw, { raw: { width: 5, height: 3, channels: 3 } }).ensureAlpha().raw().toBuffer();

    const fromPng = await decodeToRgb(png);
    const fromRgba = await decodeToRgb({ data: rgba, width: 5, height: 3, channels: 4 });
    const fromBmp = decodeBmp(bmp24(5, 3, px));
    for (const img of [fromPng, fromRgba, fromBmp]) {
      expect([img.width, img.height]).toEqual([5, 3]);
      expect([...img.data]).toEqual([...raw]);
    }
  });

  it('refuses bytes that are not an image with SERVE_IMAGE_DECODE', async () => {
    await expect(decodeToRgb(Buffer.from('not an image at all'))).rejects.toMatchObject({ code: 'SERVE_IMAGE_DECODE' });
    const png = await solidPng(8, 8, [1, 2, 3]);
    await expect(decodeToRgb(png.subarray(0, 40))).rejects.toBeInstanceOf(ServeError);
    await expect(decodeToRgb(Buffer.from('BM-short'))).rejects.toMatchObject({ code: 'SERVE_IMAGE_DECODE' });
  });
});

describe('letterboxToTensor', () => {
  it('pads with the manifest colour, centres the content and normalises per channel', async () => {
    // 64 wide, 32 high into 32×32: ratio 0.5, content 32×16 at rows 8..23.
    const rgb = await decodeToRgb(await solidPng(64, 32, [200, 100, 50]));
    const norm = { scale: 1 / 255, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] };
    const out = await letterboxToTensor(rgb, {
      size: [32, 32], normalisation: norm, letterbox: { color: [114, 0, 255], auto: false, stride: 32 }, auto: false,
    });
    expect(out.dims).toEqual([1, 3, 32, 32]);
    expect(out.geometry.ratio).toBe(0.5);
    expect(out.geometry.pad).toEqual([0, 8]);
    const at = (c: number, y: number, x: number): number => out.data[c * 1024 + y * 32 + x];
    const expectNorm = (v: number, c: number): number => (v / 255 - norm.mean[c]) / norm.std[c];
    // Padding rows above and below.
    for (const y of [0, 7, 24, 31]) {
      expect(at(0, y, 5)).toBeCloseTo(expectNorm(114, 0), 5);
      expect(at(1, y, 5)).toBeCloseTo(expectNorm(0, 1), 5);
      expect(at(2, y, 5)).toBeCloseTo(expectNorm(255, 2), 5);
    }
    for (const y of [8, 15, 23]) {
      expect(at(0, y, 20)).toBeCloseTo(expectNorm(200, 0), 5);
      expect(at(1, y, 20)).toBeCloseTo(expectNorm(100, 1), 5);
      expect(at(2, y, 20)).toBeCloseTo(expectNorm(50, 2), 5);
    }
  });
});

describe('Detector', () => {
  it('maps boxes from the letterboxed input back to source pixels and names classes', async () => {
    // Model space 32×32; a 64×32 source is scaled by 0.5 and padded 8 px above.
    const file = await writeConstantDetector(dir, 'const.onnx', 32, [
      [16, 16, 16, 8, 0.9, 0.1, 0.8], // class 1 (score 0.72), box [8, 12, 24, 20]
      [16, 16, 16, 8, 0.1, 0.9, 0.1], // objectness below conf
    ], 2);
    const det = await Detector.open(file, constantDetectorModel(32, 2, ['cat', 'dog']));
    try {
      const result = await det.detect(await picturePng(64, 32));
      expect(result.width).toBe(64);
      expect(result.height).toBe(32);
      expect(result.detections).toHaveLength(1);
      const [d] = result.detections;
      expect(d.cls).toBe(1);
      expect(d.name).toBe('dog');
      expect(d.score).toBeCloseTo(0.72, 5);
      expect(d.box.map((v) => Math.round(v * 1000) / 1000)).toEqual([16, 8, 48, 24]);
      for (const t of [result.timings.preMs, result.timings.inferMs, result.timings.postMs]) expect(t).toBeGreaterThanOrEqual(0);

      // Options: a higher conf removes it, maxDet 0 returns nothing.
      expect((await det.detect(await picturePng(64, 32), { conf: 0.8 })).detections).toEqual([]);
      expect((await det.detect(await picturePng(64, 32), { maxDet: 0 })).detections).toEqual([]);
      await expect(det.detect(await picturePng(8, 8), { conf: 2 })).rejects.toBeInstanceOf(RangeError);
    } finally {
      await det.dispose();
    }
    await expect(det.detect(await picturePng(8, 8))).rejects.toMatchObject({ code: 'SERVE_CLOSED' });
  });

  it('gives the same detections from raw heads (core decode) as from the decoded export', async () => {
    const tiny = await writeTinyYolo(dir, 64);
    const decoded = await Detector.open(tiny.decoded, tiny.decodedModel);
    const raw = await Detector.open(tiny.raw, tiny.rawModel);
    try {
      for (const [w, h] of [[96, 64], [40, 80]]) {
        const png = await picturePng(w, h, w);
        const opts = { conf: 0.3, iou: 1, maxDet: 100_000 }; // no suppression: NMS near its threshold would amplify rounding
        const a = await decoded.detect(png, opts);
        const b = await raw.detect(png, opts);
        expect(a.detections.length).toBeGreaterThan(0);
        // Rounding differs between the graph's decode and core's, so compare away from the thresholds:
        // every clear detection of one path has its twin in the other.
        const matches = (d: (typeof a.detections)[number], others: typeof a.detections): boolean =>
          others.some((o) => o.cls === d.cls && Math.abs(o.score - d.score) < 1e-4 && o.box.every((v, k) => Math.abs(v - d.box[k]) < 1e-2));
        for (const [x, y] of [[a, b], [b, a]]) {
          const clear = x.detections.filter((d) => d.score > 0.31);
          expect(clear.length).toBeGreaterThan(0);
          for (const d of clear) expect(matches(d, y.detections)).toBe(true);
        }
        expect(Math.abs(a.detections.length - b.detections.length)).toBeLessThanOrEqual(3);
        for (const d of a.detections) {
          // Clipped to the source image.
          expect(Math.min(...d.box)).toBeGreaterThanOrEqual(0);
          expect(d.box[2]).toBeLessThanOrEqual(w);
          expect(d.box[3]).toBeLessThanOrEqual(h);
        }
      }
    } finally {
      await Promise.all([decoded.dispose(), raw.dispose()]);
    }
  });

  it('takes a runtime-shaped backend and a prepared tensor (the benchmark path)', async () => {
    const file = await writeConstantDetector(dir, 'const-rt.onnx', 32, [[16, 16, 8, 8, 0.9, 0.9]], 1);
    const session = await ort.InferenceSession.create(file);
    let disposed = 0;
    const runtime: RuntimeLike = {
      inputs: [{ name: 'images' }],
      outputs: [{ name: 'output0' }],
      run: (data, dims) => session.run({ images: new ort.Tensor('float32', data, [...dims]) }),
      dispose: async () => {
        disposed++;
        await session.release();
      },
    };
    const det = new Detector(runtime, constantDetectorModel(32, 1, ['thing']));
    const prepared = await det.prepare(await solidPng(32, 32, [9, 9, 9]));
    expect(prepared.dims).toEqual([1, 3, 32, 32]);
    const r = await det.detectTensor(prepared);
    expect(r.timings.preMs).toBe(0);
    expect(r.detections).toEqual([{ cls: 0, name: 'thing', score: expect.closeTo(0.81, 5), box: [12, 12, 20, 20] }]);
    await det.dispose();
    await det.dispose();
    expect(disposed).toBe(1);
  });

  it('refuses a manifest that does not match the model with SERVE_MODEL_LAYOUT', async () => {
    const file = await writeConstantDetector(dir, 'const-bad.onnx', 32, [[16, 16, 8, 8, 0.9, 0.9]], 1);
    const model = constantDetectorModel(32, 1, ['thing']);
    await expect(Detector.open(file, { ...model, input: { ...imagesInput(32), name: 'pixels' } })).rejects.toMatchObject({
      code: 'SERVE_MODEL_LAYOUT',
    });
    await expect(Detector.open(file, { ...model, output: { ...model.output, layout: 'logits' } })).rejects.toMatchObject({
      code: 'SERVE_MODEL_LAYOUT',
    });
    // Three class names for a model with one: the output's last dim is wrong, found on the first run.
    const det = await Detector.open(file, { ...model, names: ['a', 'b', 'c'] });
    await expect(det.detect(await solidPng(32, 32, [0, 0, 0]))).rejects.toMatchObject({ code: 'SERVE_MODEL_LAYOUT' });
    await det.dispose();
  });
});
