import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { FeatureMap, HeadGeometry, Teacher, TeacherOutput } from '../types.js';
import { decodeRecord, encodeRecord, type SampleRecord } from './cache-record.js';
import { TeacherError } from './teacher-error.js';

/** Counters of a {@link TeacherCache} since it was made. */
export interface TeacherCacheStats {
  hits: number;
  /** Samples the teacher had to run on (corrupt files included). */
  misses: number;
  /** Misses whose file existed but was truncated, corrupt or did not fit the batch (rewritten). */
  corrupt: number;
  bytesRead: number;
  bytesWritten: number;
  /** Records that could not be written (the outputs were still returned). */
  writeErrors: number;
  lastWriteError?: string;
}

/** What {@link TeacherCache.predictSamples} returns: the batch's outputs and how many came from disk. */
export interface CachedTeacherOutput extends TeacherOutput {
  hits: number;
  misses: number;
}

/** The feature names a teacher returns, when it says (OnnxTeacher.featureNames). */
function featureNamesOf(t: Teacher): readonly string[] {
  const names = (t as { featureNames?: unknown }).featureNames;
  return Array.isArray(names) ? (names as string[]) : [];
}

function split(out: TeacherOutput, n: number, features: readonly string[]): SampleRecord[] {
  return Array.from({ length: n }, (_, b) => {
    const r: SampleRecord = {};
    if (out.levels !== undefined) {
      r.levels = out.levels.map((lv) => {
        const size = lv.data.length / n;
        return { data: lv.data.subarray(b * size, (b + 1) * size), ny: lv.ny, nx: lv.nx, c: size / (lv.ny * lv.nx) };
      });
    }
    if (out.logits !== undefined) {
      const nc = out.logits.length / n;
      r.logits = out.logits.subarray(b * nc, (b + 1) * nc);
    }
    if (features.length > 0) {
      r.features = features.map((name) => {
        const f = out.features?.get(name);
        if (f === undefined) throw new TeacherError('DISTILL_RUNTIME', `the teacher returned no feature map ${name}`);
        const [, c, h, w] = f.shape;
        return { name, data: f.data.subarray(b * c * h * w, (b + 1) * c * h * w), shape: [c, h, w] };
      });
    }
    return r;
  });
}

/**
 * An on-disk cache of a teacher's outputs, one file per sample (`<dir>/<key[0:2]>/<key>.bin`, key =
 * sha256 of teacher file hash, feature names, image path and image size), so epochs after the first
 * skip the teacher. Only valid when the teacher sees the same pixels for a given image path and
 * size every epoch, i.e. without per-sample random augmentation (mosaic, flips, HSV, random
 * perspective): with augmentation the cached outputs belong to another picture. Records are written
 * atomically (temporary file, then rename); truncated or corrupt ones count as misses and are rewritten.
 * @example
 * const cached = TeacherCache.wrap(teacher, 'runs/distill/teacher-cache');
 * const out = await cached.predictSamples(images, n, 320, 320, imagePaths);
 */
export class TeacherCache implements Teacher {
  private readonly counters: TeacherCacheStats = { hits: 0, misses: 0, corrupt: 0, bytesRead: 0, bytesWritten: 0, writeErrors: 0 };
  private readonly features: readonly string[];
  /** Feature shapes [C, H, W] seen per image size, so a stale record of another shape is a miss. */
  private readonly featureShapes = new Map<string, Map<string, [number, number, number]>>();

  private constructor(readonly teacher: Teacher, readonly dir: string) {
    this.features = [...featureNamesOf(teacher)];
  }

  /** Wraps `teacher` with a cache in `dir` (created on first write). */
  static wrap(teacher: Teacher, dir: string): TeacherCache {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir: expected a directory path');
    return new TeacherCache(teacher, dir);
  }

  get kind(): Teacher['kind'] { return this.teacher.kind; }
  get source(): string { return this.teacher.source; }
  get task(): Teacher['task'] { return this.teacher.task; }
  get head(): HeadGeometry | undefined { return this.teacher.head; }
  get nc(): number { return this.teacher.nc; }
  get imgsz(): [number, number] | undefined { return this.teacher.imgsz; }
  get batch(): number | undefined { return this.teacher.batch; }
  get fileHash(): string { return this.teacher.fileHash; }
  get paramCount(): number { return this.teacher.paramCount; }

  /** A copy of the counters. */
  stats(): TeacherCacheStats {
    return { ...this.counters };
  }

  /** The cache key (sha256 hex) of one sample. */
  keyOf(sample: string, height: number, width: number): string {
    return createHash('sha256').update(JSON.stringify([this.teacher.fileHash, this.features, sample, height, width])).digest('hex');
  }

  /** Where the record of `key` lives. */
  fileOf(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.bin`);
  }

  /** Runs the teacher, uncached (no sample identities to key on). */
  predict(images: Float32Array, n: number, height: number, width: number): Promise<TeacherOutput> {
    return this.teacher.predict(images, n, height, width);
  }

  /**
   * Like predict, for samples identified by `samples[i]` (the image path): records on disk are used,
   * the teacher runs once on the batch of the others, and their records are written.
   */
  async predictSamples(images: Float32Array, n: number, height: number, width: number, samples: readonly string[]): Promise<CachedTeacherOutput> {
    const t0 = performance.now();
    if (!Array.isArray(samples) || samples.length !== n || !samples.every((s) => typeof s === 'string')) {
      throw new RangeError(`samples: expected ${n} sample keys (image paths), got ${Array.isArray(samples) ? samples.length : typeof samples}`);
    }
    if (!(images instanceof Float32Array) || images.length !== n * height * width * 3) {
      throw new RangeError(`images: expected a Float32Array of ${n}×${height}×${width}×3 values`);
    }
    const files = samples.map((s) => this.fileOf(this.keyOf(s, height, width)));
    const records: (SampleRecord | undefined)[] = await Promise.all(files.map((f) => this.read(f, height, width)));
    const miss = records.flatMap((r, i) => (r === undefined ? [i] : []));
    if (miss.length > 0) {
      const per = height * width * 3;
      let sub = images;
      if (miss.length < n) {
        sub = new Float32Array(miss.length * per);
        miss.forEach((i, k) => sub.set(images.subarray(i * per, (i + 1) * per), k * per));
      }
      const out = await this.teacher.predict(sub, miss.length, height, width);
      const fresh = split(out, miss.length, this.features);
      this.learnShapes(fresh[0]!, height, width);
      miss.forEach((i, k) => { records[i] = fresh[k]; });
      await Promise.all(miss.map((i, k) => this.write(files[i]!, fresh[k]!)));
    }
    this.counters.hits += n - miss.length;
    this.counters.misses += miss.length;
    return { ...this.assemble(records as SampleRecord[], n), hits: n - miss.length, misses: miss.length, ms: performance.now() - t0 };
  }

  async dispose(): Promise<void> {
    await this.teacher.dispose();
  }

  private async read(file: string, height: number, width: number): Promise<SampleRecord | undefined> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.counters.corrupt++;
      return undefined;
    }
    this.counters.bytesRead += buf.byteLength;
    const r = decodeRecord(buf);
    if (r === undefined || !this.fits(r, height, width)) {
      this.counters.corrupt++;
      return undefined;
    }
    this.learnShapes(r, height, width);
    return r;
  }

  /** Whether a record has the layout this teacher gives at this image size. */
  private fits(r: SampleRecord, height: number, width: number): boolean {
    const head = this.teacher.head;
    if (head !== undefined) {
      const no = head.nc + 5;
      if (r.levels === undefined || r.levels.length !== head.strides.length) return false;
      const ok = r.levels.every((lv, l) => {
        const s = head.strides[l]!;
        return lv.ny === height / s && lv.nx === width / s && lv.c === (head.anchors[l]!.length / 2) * no;
      });
      if (!ok) return false;
    } else if (r.levels !== undefined) return false;
    if (this.teacher.task === 'classify' && r.logits?.length !== this.teacher.nc) return false;
    const fs = r.features ?? [];
    if (fs.length !== this.features.length || fs.some((f, i) => f.name !== this.features[i])) return false;
    const known = this.featureShapes.get(`${height}x${width}`);
    return known === undefined || fs.every((f) => known.get(f.name)?.every((d, k) => d === f.shape[k]) ?? true);
  }

  private learnShapes(r: SampleRecord, height: number, width: number): void {
    const key = `${height}x${width}`;
    if (this.featureShapes.has(key) || r.features === undefined) return;
    this.featureShapes.set(key, new Map(r.features.map((f) => [f.name, f.shape])));
  }

  private async write(file: string, r: SampleRecord): Promise<void> {
    const buf = encodeRecord(r);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(tmp, buf);
      // rename is atomic within a directory: readers see the old record, or none, or the whole new one.
      await fsp.rename(tmp, file);
      this.counters.bytesWritten += buf.byteLength;
    } catch (err) {
      this.counters.writeErrors++;
      this.counters.lastWriteError = `${file}: ${(err as Error).message}`;
      await fsp.unlink(tmp).catch(() => undefined);
    }
  }

  private assemble(records: SampleRecord[], n: number): TeacherOutput {
    const first = records[0]!;
    const out: TeacherOutput = { ms: 0 };
    if (first.levels !== undefined) {
      out.levels = first.levels.map((lv, l) => {
        const size = lv.data.length;
        const data = new Float32Array(n * size);
        records.forEach((r, b) => data.set(r.levels![l]!.data, b * size));
        return { data, ny: lv.ny, nx: lv.nx };
      });
    }
    if (first.logits !== undefined) {
      const nc = first.logits.length;
      const data = new Float32Array(n * nc);
      records.forEach((r, b) => data.set(r.logits!, b * nc));
      out.logits = data;
    }
    if (first.features !== undefined && first.features.length > 0) {
      const maps = new Map<string, FeatureMap>();
      first.features.forEach((f, i) => {
        const [c, h, w] = f.shape;
        const data = new Float32Array(n * c * h * w);
        records.forEach((r, b) => {
          const g = r.features![i]!;
          if (g.data.length !== c * h * w) {
            throw new TeacherError('DISTILL_RUNTIME', `teacher cache ${this.dir}: feature ${f.name} is [${g.shape.join(', ')}] in one record and [${f.shape.join(', ')}] in another; delete the cache directory`);
          }
          data.set(g.data, b * c * h * w);
        });
        maps.set(f.name, { data, shape: [n, c, h, w] });
      });
      out.features = maps;
    }
    return out;
  }
}
