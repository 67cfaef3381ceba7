import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/backend/select.js';
import { resolveOptions } from '../src/config.js';
import { synthesizeDataset } from '../src/data/synth.js';
import { saveWeights } from '../src/model/weights-io.js';
import { PREDICT_SCHEMA } from '../src/predict/predict-schema.js';
import { runPredict } from '../src/predict/run-predict.js';
import { findExecutable } from '../src/predict/video.js';
import { memoryLogger } from '../src/util/logger.js';
import { boxyDetector, cli, resizedCopy } from './predict-fixtures.js';

const FFMPEG = findExecutable('ffmpeg') !== undefined && findExecutable('ffprobe') !== undefined;
let dir: string;
let weights: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kd-predict-video-'));
  await selectBackend('cpu');
  const model = boxyDetector(2);
  weights = join(dir, 'boxy.kdw');
  await saveWeights(weights, model, { meta: { names: ['circle', 'square'] } });
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function probe(file: string): { width: number; height: number; frames: number } {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'json', file], { encoding: 'utf8' });
  const s = (JSON.parse(out) as { streams: { width: number; height: number; nb_read_frames: string }[] }).streams[0]!;
  return { width: s.width, height: s.height, frames: Number(s.nb_read_frames) };
}

describe('kd-trainer predict on video', () => {
  it('a 3-frame mp4: one line and label file per frame, an annotated mp4', async (ctx) => {
    if (!FFMPEG) ctx.skip('ffmpeg and ffprobe are not on PATH (apt-get install ffmpeg to run this test)');
    await synthesizeDataset({ out: join(dir, 'data'), train: 1, val: 3, imgsz: 96, classes: 2, seed: 4 });
    const val = join(dir, 'data', 'images', 'val');
    const frames = join(dir, 'frames');
    mkdirSync(frames);
    for (const [i, f] of readdirSync(val).sort().entries()) await resizedCopy(join(val, f), join(frames, `f${i + 1}.png`), 96, 64);
    const src = join(dir, 'media');
    mkdirSync(src);
    const video = join(src, 'clip.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-framerate', '3', '-i', join(frames, 'f%d.png'), '-c:v', 'mpeg4', '-q:v', '2', '-pix_fmt', 'yuv420p', video]);
    await resizedCopy(join(frames, 'f1.png'), join(src, 'still.jpg'), 80, 60);

    const log = memoryLogger();
    const cfg = resolveOptions(PREDICT_SCHEMA, [{ weights, source: src, imgsz: 64, backend: 'cpu', project: join(dir, 'runs'), save_txt: true }]).config;
    const r = await runPredict(cfg, { logger: log });
    const msgs = log.lines.map((l) => l.msg);
    expect(msgs.filter((m) => /^video 1\/2 \(\d\/3\) .*clip\.mp4: 64x64 /.test(m)).length).toBe(3);
    expect(msgs).toContainEqual(expect.stringMatching(/^image 2\/2 .*still\.jpg: 64x64 /));
    expect(r.images.filter((im) => im.path === video).map((im) => [im.frame, im.shape])).toEqual([[1, [64, 96]], [2, [64, 96]], [3, [64, 96]]]);
    expect(r.images.every((im) => im.detections.length > 0)).toBe(true);
    expect(readdirSync(join(r.saveDir, 'labels')).sort()).toEqual(['clip_1.txt', 'clip_2.txt', 'clip_3.txt', 'still.txt']);
    expect(r.saved).toEqual([join(r.saveDir, 'clip.mp4'), join(r.saveDir, 'still.jpg')]);
    expect(probe(join(r.saveDir, 'clip.mp4'))).toEqual({ width: 96, height: 64, frames: 3 });
  }, 120_000);

  it('a video without ffmpeg on PATH: one line naming ffmpeg and the file', async () => {
    const fake = join(dir, 'nope', 'movie.mp4');
    mkdirSync(dirname(fake), { recursive: true });
    writeFileSync(fake, 'not really a video');
    const emptyBin = join(dir, 'empty-bin');
    mkdirSync(emptyBin, { recursive: true });
    const r = await cli(['predict', '--weights', weights, '--source', fake, '--project', join(dir, 'ff-runs')], { HOME: dir, PATH: emptyBin });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^kd-trainer: ${fake}: reading videos needs ffmpeg and ffprobe on PATH.*\\[PREDICT_FFMPEG_MISSING\\]$`));
    expect(existsSync(join(dir, 'ff-runs'))).toBe(false);
  }, 60_000);
});
