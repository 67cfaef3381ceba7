/**
 * `node --conditions=source --import tsx packages/trainer/bench/teacher-cache.bench.ts`: what
 * `--teacher-cache` saves. The shipped yolov5s teacher (examples/teacher) over one epoch of the demo's
 * size (512 images of 128 px, batches of 16): teacher time without the cache, the first epoch with it
 * (teacher runs and records are written), and every later epoch (records read back). Prints figures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '@kd-edge/core';
import { OnnxTeacher } from '../src/distill/teacher/onnx-teacher.js';
import { TeacherCache } from '../src/distill/teacher/teacher-cache.js';

const IMAGES = Number(process.env.BENCH_IMAGES ?? 512);
const [B, S] = [16, 128];
const teacherFile = process.env.TEACHER ?? fileURLToPath(new URL('../../../examples/teacher/shapes-yolov5s.fp16.onnx', import.meta.url));

const rand = seededRandom(3);
const batches = Array.from({ length: IMAGES / B }, (_, b) => {
  const images = new Float32Array(B * S * S * 3);
  for (let i = 0; i < images.length; i++) images[i] = rand();
  return { images, files: Array.from({ length: B }, (_, i) => `images/train/${b * B + i}.jpg`) };
});

const dir = await mkdtemp(join(tmpdir(), 'kd-teacher-cache-bench-'));
const teacher = await OnnxTeacher.open(teacherFile);
const plain = async (): Promise<number> => {
  const t0 = performance.now();
  for (const b of batches) await teacher.predict(b.images, B, S, S);
  return performance.now() - t0;
};
const cached = TeacherCache.wrap(teacher, join(dir, 'cache'));
const viaCache = async (): Promise<number> => {
  const t0 = performance.now();
  for (const b of batches) await cached.predictSamples(b.images, B, S, S, b.files);
  return performance.now() - t0;
};
await teacher.predict(batches[0]!.images, B, S, S); // warm-up
const none = await plain();
const first = await viaCache();
const second = await viaCache();
const third = await viaCache();
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
console.log(`teacher ${teacherFile.split('/').pop()}, ${IMAGES} images of ${S} px, batches of ${B}`);
console.log(`no cache                 ${s(none)} per epoch`);
console.log(`cache, first epoch       ${s(first)} (teacher runs, records written)`);
console.log(`cache, later epochs      ${s(second)}, ${s(third)} (records read)  → ${(none / ((second + third) / 2)).toFixed(1)}× less teacher time`);
await cached.dispose();
await rm(dir, { recursive: true, force: true });
