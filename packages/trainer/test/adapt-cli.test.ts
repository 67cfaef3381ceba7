import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdaptProgress, AdaptReport } from '../src/adapt/adapt-report.js';
import { synthFrames, writeCapture, writeStudent, writeTeacher } from './adapt-fixtures.js';
import { runCli } from './cli-runner.js';

// The command as kd-agent will run it: a child process, JSON lines on stdout, its exit code, adapt.json and export/.
describe('kd-trainer adapt (CLI)', () => {
  const root = mkdtempSync(join(tmpdir(), 'kd-adapt-cli-'));
  const capture = join(root, 'capture');
  const job = join(root, 'job');
  let base: string[] = [];

  beforeAll(async () => {
    writeCapture(capture, await synthFrames(root, 12, 8));
    const teacher = writeTeacher(join(root, 'teacher.onnx'));
    const student = await writeStudent(join(root, 'student.kdw'));
    base = ['adapt', '--frames', capture, '--teacher', teacher, '--weights', student, '--out', job,
      '--img', '64', '--batch', '8', '--epochs', '1', '--backend', 'wasm', '--threads', '1', '--workers', '0', '--calib-images', '4'];
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('exits 0 when accepted (--json: progress, then the report), 3 when the same job is rejected (the table), 2 on a missing teacher', async () => {
    const ok = await runCli([...base, '--min-gain', '-1', '--lr0', '0.001', '--json'], 300_000);
    expect(ok.code, ok.stderr).toBe(0);
    const lines = ok.stdout.trim().split('\n').map((l) => JSON.parse(l) as { progress?: AdaptProgress; report?: AdaptReport });
    const stages = lines.filter((l) => l.progress).map((l) => l.progress!.stage).filter((s, i, a) => s !== a[i - 1]);
    expect(stages).toEqual(['label', 'train', 'evaluate', 'export']);
    const report = lines.at(-1)!.report!;
    expect(report).toEqual(JSON.parse(readFileSync(join(job, 'adapt.json'), 'utf8')));
    expect(report).toMatchObject({ accepted: true, split: { adapt: 10, holdout: 2 }, training: { stopReason: 'completed', epochsRun: 1 } });
    expect(report.recipe.hyp.lr0).toBe(0.001);
    expect(existsSync(join(job, 'export', 'model.int8.onnx'))).toBe(true);
    // The log and the table go to stderr.
    expect(ok.stderr).toMatch(/label: 12\/12 frames, \d+ boxes/);
    expect(ok.stderr).toMatch(/train: epoch 1\/1, box [\d.]+, obj [\d.]+/);
    expect(ok.stderr).toMatch(/\naccepted: hold-out mAP50-95 [\d.]+ → [\d.]+ \([+−][\d.]+\) ≥ min-gain -1\.000\n/);

    const no = await runCli([...base, '--min-gain', '1']);
    expect(no.code, no.stderr).toBe(3);
    expect(no.stdout).toMatch(/\n\s+hold-out: 2 frames\n/);
    expect(no.stdout).toMatch(/\nserving\s+[\d.]+\s+[\d.]+\nadapted\s+[\d.]+\s+[\d.]+\nchange\s+[+−][\d.]+\s+[+−][\d.]+\n/);
    expect(no.stdout).toMatch(/\nrejected: hold-out mAP50-95 .* < min-gain 1\.000\n/);
    expect(existsSync(join(job, 'export'))).toBe(false);
    expect(JSON.parse(readFileSync(join(job, 'adapt.json'), 'utf8'))).toMatchObject({ accepted: false, exportSkipped: 'rejected' });

    const bad = await runCli([...base, '--out', join(root, 'job2'), '--teacher', join(root, 'missing.onnx')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^kd-trainer: teacher .*missing\.onnx not found \(ENOENT\) \[DISTILL_TEACHER_NOT_FOUND\]\n$/);
  }, 600_000);
});
