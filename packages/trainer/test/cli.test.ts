import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@kd-edge/core';
import { resolveHyp, resolveOptions, TRAIN_SCHEMA } from '../src/config.js';
import type { DistillStepInfo } from '../src/distill/distill-session.js';
import { KD_TRAINER_BIN, runCli } from './cli-runner.js';

const cli = (args: string[]) => runCli(args, 60_000);

/**
 * Starts a training command (`train`, `distill`) of 50 epochs of 16 steps (64 images, batch 4) from
 * sources into `dir`/runs/int and sends it Ctrl-C once steps are running; resolves with its exit code and output.
 */
async function interruptedRun(args: string[], dir: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [
    '--conditions=source', '--import', 'tsx', KD_TRAINER_BIN, ...args, '--imgsz', '64',
    '--batch-size', '4', '--epochs', '50', '--backend', 'wasm', '--threads', '1', '--project', join(dir, 'runs'), '--name', 'int',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  // Interrupt once training steps are running.
  await new Promise<void>((resolve) => {
    const t = setInterval(() => { if (/1\/50 .*\d+\/16/.test(out)) { clearInterval(t); resolve(); } }, 100);
  });
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, out };
}

describe('configuration', () => {
  it('layers a cfg file under flags and validates once', () => {
    const { config, extra } = resolveOptions(TRAIN_SCHEMA, [{ data: 'a.yaml', epochs: 5, 'batch-size': 8, lr0: 0.02 }, { epochs: '7' }], ['lr0']);
    expect(config.epochs).toBe(7);
    expect(config.batch_size).toBe(8);
    expect(config.imgsz).toBe(640);
    expect(extra).toEqual({ lr0: 0.02 });
    expect(resolveHyp(extra).lr0).toBe(0.02);
  });

  it('names the field, the value and the allowed values', () => {
    const bad = (layer: Record<string, unknown>) => () => resolveOptions(TRAIN_SCHEMA, [{ data: 'a.yaml', ...layer }]);
    expect(bad({ imgsz: 16 })).toThrow(/invalid imgsz: 16 \(allowed: an integer ≥ 32\)/);
    expect(bad({ backend: 'gpu' })).toThrow(/invalid backend: "gpu" \(allowed: auto, tensorflow-gpu, webgpu, tensorflow, wasm, cpu\)/);
    expect(bad({ epochs: 1.5 })).toThrow(ConfigError);
    expect(bad({ cos_lr: 'maybe' })).toThrow(/true or false/);
    expect(bad({ colour: 'red' })).toThrow(/invalid colour/);
    expect(() => resolveOptions(TRAIN_SCHEMA, [{}])).toThrow(/invalid data.*required/);
    expect(() => resolveHyp({ lr0: -1 })).toThrow(/hyp\.lr0/);
    expect(() => resolveHyp({ momentumm: 0.9 })).toThrow(/hyp\.momentumm/);
  });
});

describe('kd-trainer CLI', () => {
  it('prints help for each command', async () => {
    const r = await cli(['train', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--data', '--imgsz', '--batch-size', '--epochs', '--backend', '--resume', '--cfg']) expect(r.stdout).toContain(flag);
    expect((await cli(['data', 'synth', '--help'])).stdout).toContain('--classes');
  });

  it('fails at start on an invalid value, naming field, value and allowed values', async () => {
    const r = await cli(['train', '--data', 'x.yaml', '--imgsz', '16']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid imgsz: "16"');
    expect(r.stderr).toContain('an integer ≥ 32');
    expect(r.stderr).toContain('CONFIG_INVALID');
  });

  it('reads options from --cfg and reports a bad key in it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    writeFileSync(join(dir, 'run.yaml'), 'data: x.yaml\nepochz: 3\n');
    const r = await cli(['train', '--cfg', join(dir, 'run.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid epochz');
  });

  it('stops before training when the dataset is missing', async () => {
    const r = await cli(['train', '--data', '/nonexistent/data.yaml', '--backend', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nonexistent\/data\.yaml/);
    expect(r.stderr).toContain('DATASET_INVALID');
  });

  it('explains how to install a native backend that is asked for but missing', async () => {
    const r = await cli(['train', '--data', 'x.yaml', '--backend', 'tensorflow-gpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('npm install @tensorflow/tfjs-node-gpu');
  });

  it('maps --device as ultralytics does, and refuses a GPU index on a CPU backend', async () => {
    const { backendForDevice } = await import('../src/backend/device.js');
    const env: NodeJS.ProcessEnv = {};
    expect(backendForDevice('', 'auto', env)).toBe('auto');
    expect(backendForDevice('cpu', 'auto', env)).toBe('wasm');
    expect(backendForDevice('cpu', 'tensorflow', env)).toBe('tensorflow');
    expect(backendForDevice('0,1', 'auto', env)).toBe('tensorflow-gpu');
    expect(env.CUDA_VISIBLE_DEVICES).toBe('0,1');
    expect(() => backendForDevice('0', 'wasm', {})).toThrow(/--device 0 asks for a GPU but --backend wasm/);
    const untouched: NodeJS.ProcessEnv = {};
    expect(backendForDevice('0', 'webgpu', untouched)).toBe('webgpu');
    expect(untouched.CUDA_VISIBLE_DEVICES).toBeUndefined();
    expect(() => backendForDevice('cpu', 'webgpu', {})).toThrow(/--device cpu contradicts --backend webgpu/);
    expect(() => backendForDevice('cuda', 'auto', {})).toThrow(/expected cpu, a CUDA index/);
    const r = await cli(['train', '--data', 'x.yaml', '--device', '0', '--backend', 'wasm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--device 0 asks for a GPU');
    const gpu = await cli(['train', '--data', 'x.yaml', '--device', '0']);
    expect(gpu.stderr).toContain('npm install @tensorflow/tfjs-node-gpu');
  });

  it('rounds an image size up to the largest stride with a warning, as check_img_size', async () => {
    const { checkImgSize } = await import('../src/model/img-size.js');
    const { memoryLogger } = await import('../src/util/logger.js');
    const log = memoryLogger();
    expect(checkImgSize(100, 32, log)).toBe(128);
    expect(checkImgSize(640, 32, log)).toBe(640);
    expect(checkImgSize(32, 32, log)).toBe(64);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      '--img-size 100 must be multiple of max stride 32, updating to 128',
      '--img-size 32 must be multiple of max stride 32, updating to 64',
    ]);
  });

  it('takes the flags ultralytics users type: --img, --batch', () => {
    const { config } = resolveOptions(TRAIN_SCHEMA, [{ data: 'a.yaml', img: 96, batch: 4 }]);
    expect([config.imgsz, config.batch_size]).toEqual([96, 4]);
  });

  it('saves last.kdw and exits 130 on Ctrl-C during training', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const synth = await cli(['data', 'synth', '--out', dir, '--train', '64', '--val', '4', '--imgsz', '64', '--classes', '2']);
    expect(synth.code).toBe(0);
    const { code, out } = await interruptedRun(['train', '--data', join(dir, 'data.yaml')], dir);
    expect(code).toBe(130);
    expect(out).toContain('Interrupted');
    const { loadModel } = await import('../src/model/weights-io.js');
    const { selectBackend } = await import('../src/backend/select.js');
    await selectBackend('cpu');
    const ck = await loadModel(join(dir, 'runs', 'int', 'weights', 'last.kdw'));
    // Interrupted mid-epoch, or between epochs after the last complete one was saved.
    expect(ck.meta).toMatchObject({ kind: 'kd-trainer-checkpoint' });
    expect(ck.meta.epoch as number).toBeLessThan(49);
    if (ck.meta.epochComplete === false) expect(out).toContain('--resume');
    ck.model.dispose();
  });

  it('distill too saves last.kdw and exits 130 on Ctrl-C, and --resume continues the distillation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const synth = await cli(['data', 'synth', '--out', dir, '--train', '64', '--val', '4', '--imgsz', '64', '--classes', '2']);
    expect(synth.code).toBe(0);
    const { selectBackend } = await import('../src/backend/select.js');
    const { writeUntrainedTeacher } = await import('./model-fixtures.js');
    await selectBackend('cpu');
    const teacher = await writeUntrainedTeacher(join(dir, 'teacher.onnx'));
    // --kd-stop never: α must stay 0.5 after the resume however many epochs ran before the interrupt.
    const { code, out } = await interruptedRun(['distill', '--teacher', teacher, '--kd-loss', 'yolo-kd+feature', '--kd-stop', 'never', '--data', join(dir, 'data.yaml')], dir);
    expect(code).toBe(130);
    expect(out).toContain('Interrupted');
    const { loadModel } = await import('../src/model/weights-io.js');
    const ck = await loadModel(join(dir, 'runs', 'int', 'weights', 'last.kdw'));
    expect(ck.meta).toMatchObject({ kind: 'kd-trainer-checkpoint', distill: { teacher, kd_loss: 'yolo-kd+feature' } });
    expect(ck.meta.epoch as number).toBeLessThan(49);
    if (ck.meta.epochComplete === false) expect(out).toContain('--resume');
    // The feature adapters are trained state too: the checkpoint carries them for --resume.
    expect(Object.keys(ck.extraTensors).some((k) => k.startsWith('train/kd.adapter.'))).toBe(true);
    ck.model.dispose();

    // --resume takes the checkpoint's settings (teacher, KD loss, epochs) and goes on distilling where it stopped.
    const { DISTILL_SCHEMA } = await import('../src/distill/distill-schema.js');
    const { runDistill } = await import('../src/distill/run-distill.js');
    const { HYP_SCRATCH_LOW } = await import('../src/train/hyp.js');
    const steps: DistillStepInfo[] = [];
    const { config } = resolveOptions(DISTILL_SCHEMA, [{ data: join(dir, 'data.yaml'), teacher: 'ignored.onnx', resume: join(dir, 'runs', 'int'), backend: 'wasm' }]);
    const r = await runDistill(config, HYP_SCRATCH_LOW, { maxSteps: 2, onStep: (s) => steps.push(s), progress: { write: () => true } });
    expect(r.distilled.saveDir).toBe(join(dir, 'runs', 'int'));
    expect(r.interrupted).toBe(true);
    const resumedEpoch = (ck.meta.epoch as number) + (ck.meta.epochComplete ? 1 : 0);
    expect(steps.map((s) => s.epoch)).toEqual([resumedEpoch, resumedEpoch]);
    expect(steps.every((s) => s.alpha === 0.5 && s.loss.length === 7 && s.loss[6]! > 0)).toBe(true);
  });

  it('writes a synthetic dataset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kd-cli-'));
    const r = await cli(['data', 'synth', '--out', dir, '--train', '4', '--val', '2', '--imgsz', '64', '--classes', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('data.yaml');
  });
});
