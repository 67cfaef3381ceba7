import * as tf from '../src/tf.js';
import { describe, expect, it } from 'vitest';
import { BACKEND_NAMES, type BackendName, selectBackend } from '../src/backend/select.js';
import { registerWasmKernels } from '../src/backend/kernels/register-all.js';
import { BackendError } from '../src/errors.js';
import { memoryLogger } from '../src/util/logger.js';


describe('selectBackend', () => {
  it('rejects an unknown name with a RangeError listing the choices', async () => {
    await expect(selectBackend('webgl' as BackendName)).rejects.toThrow(RangeError);
    await expect(selectBackend('webgl' as BackendName)).rejects.toThrow(BACKEND_NAMES.join(', '));
  });

  it("'tensorflow' without @tensorflow/tfjs-node throws BackendError naming the package to install", async () => {
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe('BACKEND_UNAVAILABLE');
    expect((err as Error).message).toContain('npm install @tensorflow/tfjs-node@4.22.0');
    expect((err as Error).message).toContain('docs/backends.md');
  });

  it("'tensorflow-gpu' names CUDA and cuDNN in its install hint", async () => {
    const err = await selectBackend('tensorflow-gpu').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/tfjs-node-gpu@4\.22\.0.*CUDA 11\.x and cuDNN 8/);
  });

  it(`'auto' falls back to wasm here and says in one line that native TensorFlow is not installed`, async () => {
    const logger = memoryLogger();
    const chosen = await selectBackend('auto', logger);
    expect(chosen.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([]);
    const line = logger.lines.find((l) => l.msg.includes('not installed'))?.msg ?? '';
    expect(line).toContain('@tensorflow/tfjs-node-gpu');
    expect(line).toContain('@tensorflow/tfjs-node');
    expect(line).toContain('docs/backends.md');
    expect(logger.lines.some((l) => l.level === 'info' && l.msg.startsWith('backend: wasm'))).toBe(true);
  });

  it("an explicitly requested native backend that is missing says 'not installed'", async () => {
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect((err as Error).message).toContain('@tensorflow/tfjs-node is not installed');
  });

  it("'wasm' registers the training kernels; registering twice is harmless", async () => {
    await selectBackend('wasm');
    registerWasmKernels();
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')).toBeDefined();
    expect(tf.getKernel(tf.UnsortedSegmentSum, 'wasm')).toBeDefined();
    expect(tf.getKernel(tf.LogSoftmax, 'wasm')).toBeDefined();
  });

  it("'cpu' works and can train (gradients are registered under Node)", async () => {
    const chosen = await selectBackend('cpu');
    expect(chosen.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const g = tf.grad((x: tf.Tensor) => tf.mean(tf.square(x)))(tf.tensor1d([1, 2, 3]));
    expect(Array.from(g.dataSync()).map((v) => Number(v.toFixed(5)))).toEqual([0.66667, 1.33333, 2]);
  });
});
