import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ortRuntimeInfo } from '../src/runtime/ort-info.js';
import { OrtRuntime } from '../src/runtime/ort-runtime.js';
import { RuntimeError } from '../src/runtime/runtime-error.js';
import { tinyModel } from './fixtures/tiny-model.js';

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kd-runtime-ort-'));
  modelPath = join(dir, 'tiny.onnx');
  await writeFile(modelPath, tinyModel());
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('OrtRuntime', () => {
  it('falls back along the preference list and reports each failure', async () => {
    const rt = await OrtRuntime.load(modelPath, { executionProviders: ['no-such-ep', 'cpu'] });
    try {
      expect(rt.executionProvider).toBe('cpu');
      expect(rt.failures).toHaveLength(1);
      expect(rt.failures[0]!.provider).toBe('no-such-ep');
      expect(rt.failures[0]!.message).not.toBe('');
      expect(rt.input).toEqual({ name: 'x', type: 'float32', shape: ['batch', 4] });
      expect(rt.inputDims()).toEqual([1, 4]);
      expect(rt.outputs.map((o) => o.name)).toEqual(['y', 'z']);
    } finally {
      await rt.dispose();
    }
  });

  it('uses the default list (tensorrt, cuda, cpu): whatever loads, earlier ones are listed as failures', async () => {
    const rt = await OrtRuntime.load(modelPath);
    try {
      const order = ['tensorrt', 'cuda', 'cpu'];
      expect(order).toContain(rt.executionProvider);
      expect(rt.failures.map((f) => f.provider)).toEqual(order.slice(0, order.indexOf(rt.executionProvider)));
    } finally {
      await rt.dispose();
    }
  });

  it('throws RUNTIME_LOAD_FAILED listing every provider when none loads', async () => {
    let err: unknown;
    try {
      await OrtRuntime.load(modelPath, { executionProviders: ['bogus-a', 'bogus-b'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('RUNTIME_LOAD_FAILED');
    expect((err as RuntimeError).message).toMatch(/bogus-a: .*\n.*bogus-b: /s);
    await expect(OrtRuntime.load(join(dir, 'missing.onnx'), { executionProviders: ['cpu'] })).rejects.toMatchObject({
      code: 'RUNTIME_LOAD_FAILED',
    });
    await expect(OrtRuntime.load(modelPath, { executionProviders: [] })).rejects.toThrow(RangeError);
  });

  it('runs and returns every named output; checks dims; refuses runs after dispose', async () => {
    const rt = await OrtRuntime.load(modelPath, { executionProviders: ['cpu'] });
    const out = await rt.run(new Float32Array([-1, 1, -2, 2, 0, 0, 0, 0]), [2, 4]);
    expect(out.y!.dims).toEqual([2, 4]);
    expect([...(out.y!.data as Float32Array)]).toEqual([0, 2, 2, 5, 0, 1, 2, 3]);
    expect([...(out.z!.data as Float32Array)]).toEqual([-2, 2, -4, 4, 0, 0, 0, 0]);
    await expect(rt.run(new Float32Array(4), [1, 3])).rejects.toMatchObject({ code: 'RUNTIME_INPUT_INVALID' });
    await expect(rt.run(new Float32Array(8), [1, 8])).rejects.toThrow(/expects shape \[batch, 4\]/);
    await expect(rt.run(new Float32Array(4), [1, 0, 4])).rejects.toThrow(RangeError);
    await rt.dispose();
    await rt.dispose();
    await expect(rt.run(new Float32Array(4), [1, 4])).rejects.toMatchObject({ code: 'RUNTIME_DISPOSED' });
  });
});

describe('ortRuntimeInfo', () => {
  it('reports the version and the providers the binding knows', () => {
    const info = ortRuntimeInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.executionProviders).toContain('cpu');
    expect(info.bundled).toContain('cpu');
    expect(info.bundled.every((b) => info.executionProviders.includes(b))).toBe(true);
  });
});
