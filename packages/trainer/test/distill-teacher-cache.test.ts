import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord } from '../src/distill/teacher/cache-record.js';
import { TeacherCache } from '../src/distill/teacher/teacher-cache.js';
import type { Teacher, TeacherOutput } from '../src/distill/types.js';
import { uniform } from './model-fixtures.js';

const [H, W] = [32, 64];
const PER = H * W * 3;
const FEATURE = '/model.17/cv3/act/Mul_output_0';

/** A detector-shaped fake whose outputs are a function of each image's pixels; it records its calls. */
class FakeTeacher implements Teacher {
  readonly kind = 'onnx' as const;
  readonly source = 'fake.onnx';
  readonly task = 'detect' as const;
  readonly nc = 1;
  readonly head = { nc: 1, strides: [8, 16, 32], anchors: [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]] };
  readonly imgsz = undefined;
  readonly batch = undefined;
  readonly paramCount = 42;
  readonly calls: { n: number; first: number[] }[] = [];
  constructor(readonly fileHash = 'hash-a', readonly featureNames: string[] = []) {}

  async predict(images: Float32Array, n: number, height: number, width: number): Promise<TeacherOutput> {
    this.calls.push({ n, first: Array.from({ length: n }, (_, b) => images[b * height * width * 3]!) });
    const c = 2 * (this.nc + 5);
    const levels = this.head.strides.map((s, l) => {
      const ny = height / s;
      const nx = width / s;
      const data = new Float32Array(n * ny * nx * c);
      for (let b = 0; b < n; b++) for (let i = 0; i < ny * nx * c; i++) data[b * ny * nx * c + i] = images[b * height * width * 3 + i]! * (l + 1) - i;
      return { data, ny, nx };
    });
    const out: TeacherOutput = { levels, ms: 1 };
    if (this.featureNames.length > 0) {
      const [fc, fh, fw] = [4, height / 8, width / 8];
      const data = new Float32Array(n * fc * fh * fw);
      for (let b = 0; b < n; b++) data.fill(images[b * height * width * 3]! + 100, b * fc * fh * fw, (b + 1) * fc * fh * fw);
      out.features = new Map([[FEATURE, { data, shape: [n, fc, fh, fw] }]]);
    }
    return out;
  }

  async dispose(): Promise<void> {}
}

/** Images whose first pixel is their index, so the fake's call log shows which ones it saw. */
function batch(ids: number[]): Float32Array {
  const out = new Float32Array(ids.length * PER);
  ids.forEach((id, b) => {
    out.set(uniform(PER, id + 1), b * PER);
    out[b * PER] = id;
  });
  return out;
}

const paths = (ids: number[]): string[] => ids.map((i) => `/data/images/img${i}.jpg`);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kd-teacher-cache-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('TeacherCache', () => {
  it('misses, writes one file per sample under <hash[0:2]>/, then hits without running the teacher', async () => {
    const fake = new FakeTeacher();
    const cache = TeacherCache.wrap(fake, dir);
    const ids = [0, 1, 2];
    const first = await cache.predictSamples(batch(ids), 3, H, W, paths(ids));
    expect([first.hits, first.misses]).toEqual([0, 3]);
    const direct = await fake.predict(batch(ids), 3, H, W);
    first.levels!.forEach((lv, l) => expect(lv.data).toEqual(direct.levels![l]!.data));
    for (const p of paths(ids)) {
      const key = cache.keyOf(p, H, W);
      expect(key).toMatch(/^[0-9a-f]{64}$/);
      expect(cache.fileOf(key)).toBe(join(dir, key.slice(0, 2), `${key}.bin`));
      expect(existsSync(cache.fileOf(key))).toBe(true);
    }
    fake.calls.length = 0;
    const second = await cache.predictSamples(batch(ids), 3, H, W, paths(ids));
    expect(fake.calls).toEqual([]);
    expect([second.hits, second.misses]).toEqual([3, 0]);
    second.levels!.forEach((lv, l) => {
      expect([lv.ny, lv.nx]).toEqual([first.levels![l]!.ny, first.levels![l]!.nx]);
      expect(lv.data).toEqual(first.levels![l]!.data);
    });
    const s = cache.stats();
    expect(s).toMatchObject({ hits: 3, misses: 3, corrupt: 0, writeErrors: 0 });
    const sizes = paths(ids).reduce((a, p) => a + statSync(cache.fileOf(cache.keyOf(p, H, W))).size, 0);
    expect(s.bytesWritten).toBe(sizes);
    expect(s.bytesRead).toBe(sizes);
  });

  it('runs the teacher only on the missing samples of a mixed batch, keeping the batch order', async () => {
    const fake = new FakeTeacher();
    const cache = TeacherCache.wrap(fake, dir);
    await cache.predictSamples(batch([1, 3]), 2, H, W, paths([1, 3]));
    fake.calls.length = 0;
    const ids = [0, 1, 2, 3];
    const out = await cache.predictSamples(batch(ids), 4, H, W, paths(ids));
    expect(fake.calls).toEqual([{ n: 2, first: [0, 2] }]);
    expect([out.hits, out.misses]).toEqual([2, 2]);
    const direct = await fake.predict(batch(ids), 4, H, W);
    out.levels!.forEach((lv, l) => expect(lv.data).toEqual(direct.levels![l]!.data));
  });

  it('treats truncated and corrupt files as misses and rewrites them', async () => {
    const fake = new FakeTeacher();
    const cache = TeacherCache.wrap(fake, dir);
    const ids = [0, 1, 2];
    const want = await cache.predictSamples(batch(ids), 3, H, W, paths(ids));
    const [f0, f1, f2] = paths(ids).map((p) => cache.fileOf(cache.keyOf(p, H, W)));
    truncateSync(f0!, statSync(f0!).size - 5);
    const bytes = readFileSync(f1!);
    bytes[bytes.length - 3]! ^= 0x40; // one payload bit: only the CRC can tell
    writeFileSync(f1!, bytes);
    writeFileSync(f2!, 'not a record');
    fake.calls.length = 0;
    const again = await cache.predictSamples(batch(ids), 3, H, W, paths(ids));
    expect(fake.calls).toEqual([{ n: 3, first: [0, 1, 2] }]);
    expect(again.misses).toBe(3);
    expect(cache.stats().corrupt).toBe(3);
    again.levels!.forEach((lv, l) => expect(lv.data).toEqual(want.levels![l]!.data));
    fake.calls.length = 0;
    const third = await cache.predictSamples(batch(ids), 3, H, W, paths(ids));
    expect(fake.calls).toEqual([]);
    expect(third.hits).toBe(3);
  });

  it('keys on teacher file hash, image path and image size', async () => {
    const a = TeacherCache.wrap(new FakeTeacher('hash-a'), dir);
    const b = TeacherCache.wrap(new FakeTeacher('hash-b'), dir);
    const p = paths([0])[0]!;
    const keys = new Set([a.keyOf(p, H, W), b.keyOf(p, H, W), a.keyOf(p, W, H), a.keyOf(paths([1])[0]!, H, W)]);
    expect(keys.size).toBe(4);
    await a.predictSamples(batch([0]), 1, H, W, [p]);
    const other = await b.predictSamples(batch([0]), 1, H, W, [p]);
    expect(other.misses).toBe(1);
  });

  it('stores and restores feature maps, and features are part of the key', async () => {
    const fake = new FakeTeacher('hash-a', [FEATURE]);
    const cache = TeacherCache.wrap(fake, dir);
    expect(cache.keyOf('x', H, W)).not.toBe(TeacherCache.wrap(new FakeTeacher('hash-a'), dir).keyOf('x', H, W));
    const ids = [4, 5];
    const first = await cache.predictSamples(batch(ids), 2, H, W, paths(ids));
    const second = await cache.predictSamples(batch(ids), 2, H, W, paths(ids));
    expect(second.hits).toBe(2);
    const f = second.features!.get(FEATURE)!;
    expect(f.shape).toEqual([2, 4, H / 8, W / 8]);
    expect(f.data).toEqual(first.features!.get(FEATURE)!.data);
    expect(f.data[0]).toBe(104);
    expect(f.data[f.data.length - 1]).toBe(105);
  });

  it('still returns outputs when a record cannot be written, and counts it', async () => {
    const blocked = join(dir, 'file');
    writeFileSync(blocked, '');
    const cache = TeacherCache.wrap(new FakeTeacher(), blocked);
    const out = await cache.predictSamples(batch([0]), 1, H, W, paths([0]));
    expect(out.levels).toHaveLength(3);
    expect(cache.stats().writeErrors).toBe(1);
    expect(cache.stats().lastWriteError).toContain(blocked);
  });

  it('checks its arguments and passes plain predict through uncached', async () => {
    const fake = new FakeTeacher();
    const cache = TeacherCache.wrap(fake, dir);
    await expect(cache.predictSamples(batch([0, 1]), 2, H, W, paths([0]))).rejects.toThrow(RangeError);
    await cache.predict(batch([0]), 1, H, W);
    expect(fake.calls).toHaveLength(1);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 0 });
    expect([cache.kind, cache.task, cache.nc, cache.fileHash, cache.paramCount]).toEqual(['onnx', 'detect', 1, 'hash-a', 42]);
  });
});

describe('cache records', () => {
  it('round-trip, and reject every truncation', () => {
    const rec = {
      levels: [{ data: Float32Array.from([1, -2, 3.5, Number.NaN]), ny: 1, nx: 2, c: 2 }],
      logits: Float32Array.from([0.25]),
      features: [{ name: 'f', data: Float32Array.from([7, 8]), shape: [2, 1, 1] as [number, number, number] }],
    };
    const buf = encodeRecord(rec);
    expect(buf.toString('latin1', 0, 4)).toBe('KDTC');
    const back = decodeRecord(buf)!;
    expect(back.levels![0]!.data).toEqual(rec.levels[0]!.data);
    expect(back.logits).toEqual(rec.logits);
    expect(back.features).toEqual(rec.features);
    for (let len = 0; len < buf.length; len++) expect(decodeRecord(buf.subarray(0, len))).toBeUndefined();
  });
});
