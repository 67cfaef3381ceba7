// Supervision of the runner, with the ONNX Runtime stand-in as the runner: a SIGKILL mid-stream is a restart and
// no lost inference, a hung runner is killed and restarted, repeated crashes give up with a fallback event, and an
// engine swap through the model slot under continuous inference drops nothing.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelSlot } from '../src/serve/model-slot.js';
import type { Detector } from '../src/serve/detector.js';
import { RunnerSupervisor, type RunnerFallback } from '../src/runtime/trt-runner/runner-supervisor.js';
import { openRunnerDetector, TrtRunnerRuntime } from '../src/runtime/trt-runner/runner-runtime.js';
import { constantDetectorModel, tempDir, writeConstantDetector } from './fixtures/serve/models.js';
import { shmTempDir, standinCommand, until } from './trt-runner-helpers.js';

let dir: string;
let shmDir: string;
let cleanup: Array<() => Promise<void>> = [];
let modelA: string;
let modelB: string;
const rowsA = [[16, 16, 8, 8, 0.9, 0.9, 0.1]];
const rowsB = [[10, 10, 4, 4, 0.8, 0.1, 0.9]];

beforeAll(async () => {
  const t = await tempDir('kd-trt-sup-');
  const s = await shmTempDir();
  dir = t.dir;
  shmDir = s.dir;
  cleanup = [t.remove, s.remove];
  modelA = await writeConstantDetector(dir, 'a.onnx', 32, rowsA, 2);
  modelB = await writeConstantDetector(dir, 'b.onnx', 32, rowsB, 2);
});
afterAll(async () => {
  for (const f of cleanup) await f();
});

const input = new Float32Array(3 * 32 * 32).fill(0.25);

/** Runs `rt` back to back until `stop()` holds; counts successes, failures, and which model answered. */
function serve(rt: { run: TrtRunnerRuntime['run'] }, stop: () => boolean): { done: Promise<void>; ok: number[]; failed: Error[] } {
  const ok: number[] = [];
  const failed: Error[] = [];
  const done = (async () => {
    while (!stop()) {
      try {
        const out = await rt.run(input, [1, 3, 32, 32]);
        ok.push((out.output0!.data as Float32Array)[0]!);
      } catch (e) {
        failed.push(e as Error);
      }
    }
  })();
  return { done, ok, failed };
}

describe('RunnerSupervisor', () => {
  it('restarts the runner after a SIGKILL mid-stream, loads its engines again, and no inference is lost', async () => {
    const sup = new RunnerSupervisor({ command: standinCommand(shmDir), backoff: { baseMs: 10 } });
    const crashes: unknown[] = [];
    const ready: Array<{ restarts: number; reloaded: string[] }> = [];
    sup.on('crash', (c) => crashes.push(c));
    sup.on('ready', (r) => ready.push(r));
    await sup.start();
    const rt = await TrtRunnerRuntime.load(sup, modelA, { shmDir });
    try {
      const firstPid = sup.pid!;
      let stop = false;
      const s = serve(rt, () => stop);
      await until('a few inferences', () => s.ok.length >= 3);
      process.kill(firstPid, 'SIGKILL');
      await until('the restart', () => ready.length === 2);
      const before = s.ok.length;
      await until('inferences after the restart', () => s.ok.length >= before + 3);
      stop = true;
      await s.done;

      expect(s.failed).toEqual([]);
      expect(s.ok.every((v) => v === 16)).toBe(true);
      expect(crashes).toHaveLength(1);
      expect(crashes[0]).toMatchObject({ crash: { signal: 'SIGKILL' }, crashesInWindow: 1 });
      expect(ready[1]).toMatchObject({ restarts: 1, reloaded: [rt.engineKey] });
      expect(sup.pid).not.toBe(firstPid);
      expect(sup.state).toBe('ready');
      // The next single inference works too.
      await expect(rt.run(input, [1, 3, 32, 32])).resolves.toHaveProperty('output0');
    } finally {
      await rt.dispose();
      await sup.close();
    }
    expect(await readdir(shmDir)).toEqual([]);
  });

  it('kills and restarts a runner that stops answering (SIGSTOP), and the waiting inference is answered by the new one', async () => {
    const sup = new RunnerSupervisor({ command: standinCommand(shmDir), backoff: { baseMs: 10 } });
    await sup.start();
    const rt = await TrtRunnerRuntime.load(sup, modelA, { shmDir, timeoutMs: 3000 });
    try {
      await rt.run(input, [1, 3, 32, 32]);
      const pid = sup.pid!;
      process.kill(pid, 'SIGSTOP');
      const out = await rt.run(input, [1, 3, 32, 32]);
      expect((out.output0!.data as Float32Array)[0]).toBe(16);
      expect(sup.restarts).toBe(1);
      expect(sup.pid).not.toBe(pid);
    } finally {
      await rt.dispose();
      await sup.close();
    }
  });

  it('gives up after maxCrashes crashes within the window, with a fallback event naming why; later requests fail with TRT_RUNNER_GAVE_UP', async () => {
    const sup = new RunnerSupervisor({ command: standinCommand(shmDir), maxCrashes: 2, backoff: { baseMs: 10 } });
    const fallbacks: RunnerFallback[] = [];
    sup.on('fallback', (f) => fallbacks.push(f));
    sup.on('ready', ({ pid }) => process.kill(pid!, 'SIGKILL'));
    await sup.start().catch(() => undefined);
    await until('the fallback', () => fallbacks.length === 1);
    expect(sup.state).toBe('failed');
    expect(fallbacks[0]!.code).toBe('TRT_RUNNER_GAVE_UP');
    expect(fallbacks[0]!.crashes).toHaveLength(2);
    expect(fallbacks[0]!.reason).toMatch(/crashed 2 times within 600 s \(last: was killed by SIGKILL.*\); serve with ONNX Runtime/);
    await expect(sup.infer({ engine: 'x', shm: join(shmDir, 'x'), inputs: [], outputs: [] })).rejects.toMatchObject({ code: 'TRT_RUNNER_GAVE_UP' });
    await expect(TrtRunnerRuntime.load(sup, modelA, { shmDir })).rejects.toMatchObject({ code: 'TRT_RUNNER_GAVE_UP' });
    await sup.close();
  });

  it('counts a runner that dies at start (missing library) as a crash: start() rejects and the fallback names the exit and stderr', async () => {
    const dying = join(dir, 'no-lib.mjs');
    await writeFile(dying, "process.stderr.write('error while loading shared libraries: libnvinfer.so.8\\n'); process.exit(127);\n");
    const sup = new RunnerSupervisor({ command: [process.execPath, dying], maxCrashes: 3, backoff: { baseMs: 5 } });
    const delays: Array<number | undefined> = [];
    sup.on('crash', (c) => delays.push(c.restartInMs));
    const fallback = new Promise<RunnerFallback>((resolve) => sup.once('fallback', resolve));
    await expect(sup.start()).rejects.toMatchObject({ code: 'TRT_RUNNER_GAVE_UP' });
    const f = await fallback;
    expect(f.reason).toMatch(/crashed 3 times .*exited with code 127.*libnvinfer\.so\.8/);
    expect(delays).toEqual([5, 10, undefined]);
    await sup.close();
  });

  it('swaps detectors in the model slot under continuous inference with zero dropped or failed inferences', async () => {
    const sup = new RunnerSupervisor({ command: standinCommand(shmDir) });
    await sup.start();
    const names = ['cat', 'dog'];
    const v1 = await openRunnerDetector(sup, modelA, constantDetectorModel(32, 1, names, '1.0.0'), { shmDir });
    const slot = new ModelSlot<Detector>(v1);
    const results: string[] = [];
    let failures = 0;
    let frames = 0;
    let stop = false;
    const blank = { data: Buffer.alloc(32 * 32 * 3, 114), width: 32, height: 32, channels: 3 as const };
    const loop = (async () => {
      while (!stop) {
        frames++;
        try {
          const r = await slot.infer(blank);
          results.push(`${r.detector.version}:${r.detections[0]?.name}`);
        } catch {
          failures++;
        }
      }
    })();
    try {
      await until('frames on v1', () => results.length >= 5);
      const v2 = await openRunnerDetector(sup, modelB, constantDetectorModel(32, 1, names, '2.0.0'), { shmDir });
      await slot.swap(v2); // resolves once v1 is disposed, after its last inference
      expect(await readdir(shmDir)).toHaveLength(1);
      const at = results.length;
      await until('frames on v2', () => results.length >= at + 5);
      stop = true;
      await loop;
      expect(failures).toBe(0);
      expect(results).toHaveLength(frames);
      const firstV2 = results.findIndex((r) => r.startsWith('2.0.0'));
      expect(results.slice(0, firstV2).every((r) => r === '1.0.0:cat')).toBe(true);
      expect(results.slice(firstV2).every((r) => r === '2.0.0:dog')).toBe(true);
    } finally {
      stop = true;
      await loop;
      await slot.close();
      await sup.close();
    }
    expect(await readdir(shmDir)).toEqual([]);
  });
});
