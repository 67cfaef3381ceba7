import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { yoloDescription } from '@kd-edge/core';
import * as tf from '../src/tf.js';
import { selectBackend } from '../src/backend/select.js';
import { dawnFlags, describeAdapter, NO_ADAPTER_MESSAGE, WEBGPU_CANNOT_TRAIN } from '../src/backend/webgpu.js';
import { BackendError } from '../src/errors.js';
import { scaleLossHyp, yoloLoss } from '../src/loss/yolo-loss.js';
import { createYoloModel } from '../src/model/yolo.js';
import type { DetectionModel } from '../src/model/types.js';
import { HYP_SCRATCH_LOW } from '../src/train/hyp.js';
import { relErr } from './rel-err.js';
import { NO_ADAPTER_REASON, webgpuAdapter } from './webgpu-probe.js';

const run = promisify(execFile);
const SELECT = fileURLToPath(new URL('../src/backend/select.ts', import.meta.url));
const adapter = await webgpuAdapter(dawnFlags());
// Dawn's null backend: an adapter that runs no kernels, enough to reach the training guard without a GPU.
const nullAdapter = await webgpuAdapter(['backend=null']);
const CLI = fileURLToPath(new URL('../src/bin/kd-trainer.ts', import.meta.url));

const NC = 2;
const IMG = 64;
const BATCH = 2;

interface StepResult {
  loss: number[];
  grads: Record<string, Float32Array>;
}

// One forward + YOLOv5 loss + backward, read back with data(): under Node the webgpu backend cannot
// read GPU tensors synchronously, so this is shardGradients (src/train/step.ts) without its dataSync.
async function trainingStep(model: DetectionModel): Promise<StepResult> {
  const images = new Float32Array(BATCH * IMG * IMG * 3).map((_, i) => ((i * 7919) % 255) / 255);
  const targets = Float32Array.from([0, 0, 0.5, 0.5, 0.3, 0.4, 0, 1, 0.2, 0.3, 0.15, 0.2, 1, 1, 0.6, 0.4, 0.5, 0.3]);
  const hyp = scaleLossHyp(HYP_SCRATCH_LOW, model.nl, model.nc, IMG);
  const names = [...model.params.keys()];
  const vars = names.map((n) => model.params.get(n)!);
  const items: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const x = tf.tensor4d(images, [BATCH, IMG, IMG, 3]);
    const terms = yoloLoss(model.forward(x, true), targets, targets.length / 6, model, hyp);
    items.push(tf.keep(terms.box), tf.keep(terms.obj), tf.keep(terms.cls));
    return terms.total;
  }, vars);
  const loss = await Promise.all([value, ...items].map(async (t) => (await t.data())[0]!));
  const out: Record<string, Float32Array> = {};
  for (const [k, n] of names.entries()) out[n] = (await grads[vars[k]!.name]!.data()) as Float32Array;
  tf.dispose([value, ...items, ...Object.values(grads)]);
  return { loss, grads: out };
}

// The same weights on every backend: made once, then copied into a model built on the active backend.
async function modelOn(weights: Map<string, Float32Array>): Promise<DetectionModel> {
  const model = createYoloModel(yoloDescription('n', NC), { seed: 0 });
  for (const kind of ['params', 'buffers'] as const) {
    for (const [name, v] of model[kind]) v.assign(tf.tensor(weights.get(`${kind}/${name}`)!, v.shape));
  }
  return model;
}

describe('webgpu backend', () => {
  it.skipIf(adapter === undefined)(`trains yolov5n like wasm: loss and every gradient agree ${adapter ? `(on ${adapter})` : `(skipped: ${NO_ADAPTER_REASON})`}`, async () => {
    await selectBackend('wasm');
    const reference = createYoloModel(yoloDescription('n', NC), { seed: 0 });
    const weights = new Map<string, Float32Array>();
    for (const kind of ['params', 'buffers'] as const) {
      for (const [name, v] of reference[kind]) weights.set(`${kind}/${name}`, (await v.data()) as Float32Array);
    }
    const onWasm = await trainingStep(reference);
    const chosen = await selectBackend('webgpu');
    expect(chosen.name).toBe('webgpu');
    const onWebGpu = await trainingStep(await modelOn(weights));
    // [total, box, obj, cls]
    for (const [k, v] of onWasm.loss.entries()) expect(Math.abs(onWebGpu.loss[k]! - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v)));
    const worst = Object.keys(onWasm.grads)
      .map((name) => ({ name, err: relErr(onWebGpu.grads[name]!, onWasm.grads[name]!) }))
      .sort((a, b) => b.err - a.err);
    expect(worst.length).toBeGreaterThan(100);
    expect(worst[0]!.err, `${worst[0]!.name}`).toBeLessThan(2e-3);
  });

  it.skipIf(adapter !== undefined)(`'webgpu' without an adapter throws BackendError saying what to install (runs where ${NO_ADAPTER_REASON})`, async () => {
    const err = await selectBackend('webgpu').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('BACKEND_UNAVAILABLE');
    const msg = (err as Error).message;
    expect(msg).toContain(NO_ADAPTER_MESSAGE);
    expect(msg).toMatch(/no WebGPU adapter found/);
    expect(msg).toMatch(/lavapipe or SwiftShader/);
    expect(msg).toMatch(/Jetson the NVIDIA L4T Vulkan driver/);
    expect(msg).toContain('docs/backends.md');
  });

  it(`'auto' never picks webgpu (training cannot run on it yet) and leaves nothing that keeps Node running`, async () => {
    // A child process that must end by itself: a Dawn instance left referenced would keep it alive.
    const code = `
      const { selectBackend } = await import(${JSON.stringify(SELECT)});
      const lines = [];
      const log = { debug() {}, info: (m) => lines.push(m), warn: (m) => lines.push('WARN ' + m), error() {} };
      const chosen = await selectBackend('auto', log);
      const explicit = await selectBackend('webgpu').then((b) => b.name, (e) => e.message);
      console.log(JSON.stringify({ chosen: chosen.name, explicit, lines }));`;
    const { stdout } = await run(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', code], { timeout: 60_000 });
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { chosen: string; explicit: string; lines: string[] };
    expect(r.chosen).toBe('wasm');
    expect(r.lines.filter((l) => l.startsWith('WARN'))).toEqual([]);
    expect(r.lines.join('\n')).not.toMatch(/webgpu/i);
    if (adapter === undefined) expect(r.explicit).toContain('no WebGPU adapter');
    else expect(r.explicit).toBe('webgpu');
  });

  it.skipIf(nullAdapter === undefined)(`'kd-trainer train --backend webgpu' stops before training with the reason (on Dawn's null adapter${nullAdapter ? '' : ': not available here'})`, async () => {
    const r = await run(process.execPath, ['--conditions=source', '--import', 'tsx', CLI, 'train', '--backend', 'webgpu', '--data', 'coco128.yaml', '--epochs', '1'], {
      env: { ...process.env, KD_TRAINER_DAWN_FLAGS: 'backend=null' }, timeout: 60_000,
    }).then(() => ({ code: 0, out: '' }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(WEBGPU_CANNOT_TRAIN);
  });

  it('names the adapter from whatever its info fills in, and reads Dawn flags from the environment', () => {
    expect(describeAdapter({ vendor: 'nvidia', architecture: 'ampere', device: '', description: 'NVIDIA Orin' })).toBe('nvidia ampere, NVIDIA Orin');
    expect(describeAdapter({ vendor: 'intel', architecture: 'gen-12lp' })).toBe('intel gen-12lp');
    expect(describeAdapter({})).toBe('an unnamed adapter');
    expect(describeAdapter(undefined)).toBe('an unnamed adapter');
    expect(dawnFlags({})).toEqual([]);
    expect(dawnFlags({ KD_TRAINER_DAWN_FLAGS: 'adapter=NVIDIA RTX A2000; backend=vulkan;' })).toEqual(['adapter=NVIDIA RTX A2000', 'backend=vulkan']);
  });
});
